//! [`ScoredPostsQuery`] (spec §2.1): the request plus what the query
//! hydrators add.

use crate::pipeline::framework::PipelineQuery;

/// One impression bloom filter sent by the client (spec §4.2 format):
/// `bits` holds `num_bits` bits, little-endian within each byte.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BloomFilterEntry {
    /// The bitset.
    pub bits: Vec<u8>,
    /// m: bits in use (≤ 8 · `bits.len()`).
    pub num_bits: u64,
    /// k: hash functions.
    pub num_hashes: u32,
}

/// What UserFeaturesQueryHydrator adds (spec §2.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFeatures {
    /// Muted keywords (phrases).
    pub muted_keywords: Vec<String>,
    /// Blocked accounts.
    pub blocked_user_ids: Vec<i64>,
    /// Muted accounts.
    pub muted_user_ids: Vec<i64>,
    /// Followed accounts, in the store's order: ThunderSource asks Thunder
    /// about the first MAX_INPUT_LIST_SIZE only (§2.4), so a store should
    /// list the follows that matter most first.
    pub followed_user_ids: Vec<i64>,
    /// Accounts the viewer subscribes to.
    pub subscribed_user_ids: Vec<i64>,
}

/// One aggregated engagement of the user action sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AggregatedAction {
    /// The engaged post.
    pub post_id: i64,
    /// Its author.
    pub author_id: i64,
    /// Union of the merged events' flags (bit i = Phoenix action i).
    pub actions: u32,
    /// Earliest impression time of the merged events, unix ms.
    pub impressed_ms: i64,
    /// Product surface of the first merged event.
    pub surface: u32,
}

/// What UserActionSeqQueryHydrator adds (spec §2.3): the viewer's recent
/// engagements, aggregated, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserActionSequence {
    /// The viewer.
    pub user_id: i64,
    /// Aggregated actions, oldest first (at most UAS_MAX_SEQUENCE_LENGTH).
    pub actions: Vec<AggregatedAction>,
    /// Impression time of the first action, ms (0 if none).
    pub first_sequence_time_ms: i64,
    /// Impression time of the last action, ms (0 if none).
    pub last_sequence_time_ms: i64,
    /// Name of the aggregator that built it.
    pub aggregation_provider: &'static str,
    /// When it was aggregated, unix ms.
    pub aggregation_time_ms: i64,
    /// One NEW_EVENT flag per action, all false.
    pub new_event_mask: Vec<bool>,
}

impl UserActionSequence {
    /// The sequence as Phoenix history items (one flag per action, the
    /// 19th, dwell_time, always false).
    pub fn to_history(&self) -> Vec<foryou_proto::v1::HistoryItem> {
        self.actions
            .iter()
            .map(|a| foryou_proto::v1::HistoryItem {
                post_id: a.post_id,
                author_id: a.author_id,
                actions: (0..19).map(|i| a.actions >> i & 1 == 1).collect(),
                product_surface: a.surface,
                timestamp_ms: a.impressed_ms,
                // The user action sequence carries no dwell seconds.
                dwell_s: 0.0,
            })
            .collect()
    }
}

/// The home-mixer query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScoredPostsQuery {
    /// The viewer (`viewer_id` on the wire; never 0 once validated).
    pub user_id: i64,
    /// Client application id.
    pub client_app_id: i32,
    /// Viewer country.
    pub country_code: String,
    /// Viewer language.
    pub language_code: String,
    /// Posts the client has shown.
    pub seen_ids: Vec<i64>,
    /// Posts served earlier in this session.
    pub served_ids: Vec<i64>,
    /// Only in-network candidates (Phoenix retrieval off).
    pub in_network_only: bool,
    /// A request for more posts below the current feed.
    pub is_bottom_request: bool,
    /// Impression bloom filters.
    pub bloom_filter_entries: Vec<BloomFilterEntry>,
    /// "⟨random u64⟩-⟨user_id⟩".
    pub request_id: String,
    /// Posts to return (RESULT_SIZE unless the request asks fewer).
    pub result_size: usize,
    /// Return per-stage counts and timings with the feed.
    pub debug: bool,
    /// Hydrated: follows, blocks, mutes, keywords, subscriptions.
    pub user_features: UserFeatures,
    /// Hydrated: the viewer's engagement history (None if hydration failed).
    pub user_action_sequence: Option<std::sync::Arc<UserActionSequence>>,
}

impl ScoredPostsQuery {
    /// The request id format of spec §2.1.
    pub fn make_request_id(random: u64, user_id: i64) -> String {
        format!("{random}-{user_id}")
    }
}

impl PipelineQuery for ScoredPostsQuery {
    fn request_id(&self) -> &str {
        &self.request_id
    }
    fn result_size(&self) -> usize {
        self.result_size
    }
}
