//! The post entity service (upstream: TES): core data, media and
//! subscription ids of posts, looked up in batches.

use async_trait::async_trait;

use super::{ClientError, IdMap};

/// Core data of a post.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoreData {
    /// Displayed text (shared with the post store that answers it).
    pub text: std::sync::Arc<str>,
    /// For a retweet: the source post.
    pub retweeted_tweet_id: Option<i64>,
    /// For a retweet: the source's author.
    pub retweeted_user_id: Option<i64>,
    /// For a reply: the parent post.
    pub in_reply_to_tweet_id: Option<i64>,
}

/// One media entity of a post.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaEntity {
    /// Video length, ms, when the entity is a video.
    pub video_duration_ms: Option<i32>,
}

/// Batch lookups by post id; ids the service does not know are absent
/// from the maps.
#[async_trait]
pub trait TweetEntityClient: Send + Sync + std::fmt::Debug {
    /// Core data by post id.
    async fn core_data(&self, ids: &[i64]) -> Result<IdMap<CoreData>, ClientError>;
    /// Media entities by post id, in display order.
    async fn media(&self, ids: &[i64]) -> Result<IdMap<Vec<MediaEntity>>, ClientError>;
    /// For subscriber-only posts: the author one must subscribe to.
    async fn subscription_author_ids(&self, ids: &[i64]) -> Result<IdMap<i64>, ClientError>;
}
