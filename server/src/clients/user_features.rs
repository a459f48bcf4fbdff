//! The user-features store (upstream: a Strato column): keywords, blocks,
//! mutes, follows and subscriptions of a viewer.

use async_trait::async_trait;

use super::ClientError;
use crate::pipeline::home_mixer::UserFeatures;

/// Looks up a viewer's features.
#[async_trait]
pub trait UserFeaturesClient: Send + Sync + std::fmt::Debug {
    /// The features of `user_id`; `None` when the store has no value.
    async fn user_features(&self, user_id: i64) -> Result<Option<UserFeatures>, ClientError>;
}
