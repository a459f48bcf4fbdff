//! The user profile service (upstream: Gizmoduck).

use async_trait::async_trait;

use super::{ClientError, IdMap};

/// What the feed shows of an account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserProfile {
    /// Handle (shared: every candidate of the author carries it).
    pub screen_name: std::sync::Arc<str>,
    /// Followers.
    pub followers_count: i64,
}

/// Batch profile lookups; unknown ids are absent from the map.
#[async_trait]
pub trait GizmoduckClient: Send + Sync + std::fmt::Debug {
    /// Profiles by user id.
    async fn users(&self, ids: &[i64]) -> Result<IdMap<UserProfile>, ClientError>;
}
