//! The impression store: posts a user has already been shown, kept by the
//! server. Ours: upstream relies on the client's `seen_ids` and bloom
//! filters only; GetScoredPosts adds these ids to the request's.

use async_trait::async_trait;

use super::ClientError;

/// Looks up a user's impressions.
#[async_trait]
pub trait ImpressionStore: Send + Sync + std::fmt::Debug {
    /// Post ids `user_id` has seen.
    async fn seen_ids(&self, user_id: i64) -> Result<Vec<i64>, ClientError>;
}
