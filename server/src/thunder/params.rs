//! Thunder's tunables (spec §3.8 config constants and §4.2 "Thunder
//! constants"). The release ships none of these values; each default below is
//! the spec's proposed value (our choice) unless it says otherwise.

use std::time::Duration;

/// The sentinel author key under which delete markers are kept in the
/// originals map (spec §3.3), so that they expire with the same trim pass.
pub const DELETE_EVENT_KEY: i64 = -1;

/// MAX_INPUT_LIST_SIZE (spec §3.6 step 4, §4.2): the longest following or
/// exclude list Thunder accepts. Home mixer's ThunderSource cuts the
/// following list it sends to this length, so the two cannot drift apart.
pub const MAX_INPUT_LIST_SIZE: usize = 5000;

/// Every Thunder tunable, in one typed struct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThunderParams {
    /// How long a post is kept, seconds (2 days: the For You horizon).
    pub retention_s: i64,
    /// Per-request scan budget; `Duration::ZERO` = none (spec §3.4 step 1).
    /// The CLI defaults to 100 ms, the store to none, as in the spec.
    pub request_timeout: Duration,
    /// Originals returned per followed author (10).
    pub max_original_posts_per_author: usize,
    /// Replies and retweets returned per followed author (5).
    pub max_reply_posts_per_author: usize,
    /// Video posts returned per followed author (5).
    pub max_video_posts_per_author: usize,
    /// Timeline entries looked at per author before lookups (100).
    pub max_tiny_posts_per_user_scan: usize,
    /// Largest accepted `following_user_ids` / `exclude_tweet_ids`
    /// ([`MAX_INPUT_LIST_SIZE`]).
    pub max_input_list_size: usize,
    /// Posts returned when the request's max_results is 0 (1200).
    pub max_posts_to_return: usize,
    /// Videos returned when the request's max_results is 0 (200).
    pub max_videos_to_return: usize,
    /// Requests served at once; the next one gets RESOURCE_EXHAUSTED (256).
    pub max_concurrent_requests: usize,
    /// A video shorter than this is not a video for the video timeline,
    /// milliseconds (10 000†; the feeder's inclusive test, spec §3.7).
    pub min_video_duration_ms: u32,
    /// How far past the store's clock a post's `created_at` may lie and
    /// still be stored, seconds (600; ours, spec §4.4). Producers' clocks
    /// drift by seconds, rarely minutes: a post stamped a little ahead is
    /// kept rather than lost for good, while a clock that is hours off (or
    /// a garbage timestamp) is skipped and counted as `in_future`. Deletion
    /// markers stamped later than this are remembered from the limit, so a
    /// bad `deleted_at` cannot pin an id forever.
    pub max_future_skew_s: i64,
}

impl ThunderParams {
    /// The creation times a post may have and be stored at `now`: from one
    /// retention ago to `max_future_skew_s` ahead (both ends kept).
    pub fn window(&self, now: i64) -> (i64, i64) {
        (
            now.saturating_sub(self.retention_s),
            now.saturating_add(self.max_future_skew_s),
        )
    }
}

impl Default for ThunderParams {
    fn default() -> Self {
        Self {
            retention_s: 172_800,
            request_timeout: Duration::ZERO,
            max_original_posts_per_author: 10,
            max_reply_posts_per_author: 5,
            max_video_posts_per_author: 5,
            max_tiny_posts_per_user_scan: 100,
            max_input_list_size: MAX_INPUT_LIST_SIZE,
            max_posts_to_return: 1200,
            max_videos_to_return: 200,
            max_concurrent_requests: 256,
            min_video_duration_ms: 10_000,
            max_future_skew_s: 600,
        }
    }
}
