//! The user action sequence service (upstream: the UAS thrift fetcher): a
//! user's raw engagement events, oldest first.

use async_trait::async_trait;

use super::ClientError;

/// One raw engagement event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawAction {
    /// The engaged post.
    pub post_id: i64,
    /// Its author.
    pub author_id: i64,
    /// Action flags, bit i = Phoenix action i.
    pub actions: u32,
    /// When the post was shown, unix ms.
    pub impressed_ms: i64,
    /// Product surface id.
    pub surface: u32,
}

/// Fetches a user's raw action sequence.
#[async_trait]
pub trait UserActionSequenceClient: Send + Sync + std::fmt::Debug {
    /// Every recorded event of `user_id`, oldest first.
    async fn fetch(&self, user_id: i64) -> Result<Vec<RawAction>, ClientError>;
}
