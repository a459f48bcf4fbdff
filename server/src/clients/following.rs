//! Who a user follows: Thunder's fallback when a debug request carries no
//! following list (spec §3.6 step 2; upstream asks Strato).

use std::collections::HashMap;

/// A failed lookup, with the backend's message.
#[derive(Debug, thiserror::Error)]
#[error("following lookup for user {user_id} failed: {message}")]
pub struct LookupError {
    /// The user looked up.
    pub user_id: i64,
    /// What went wrong.
    pub message: String,
}

/// The accounts a user follows. Blocking; callers run it off the runtime.
pub trait FollowingLookup: Send + Sync + std::fmt::Debug {
    /// At most `limit` accounts `user_id` follows.
    fn following(&self, user_id: i64, limit: usize) -> Result<Vec<i64>, LookupError>;
}

/// A follow graph held in memory.
#[derive(Debug, Default, Clone)]
pub struct InMemoryFollowing {
    follows: HashMap<i64, Vec<i64>>,
}

impl InMemoryFollowing {
    /// A graph from (user, followed accounts) pairs.
    pub fn new(follows: HashMap<i64, Vec<i64>>) -> Self {
        Self { follows }
    }
}

impl FollowingLookup for InMemoryFollowing {
    fn following(&self, user_id: i64, limit: usize) -> Result<Vec<i64>, LookupError> {
        Ok(self
            .follows
            .get(&user_id)
            .map(|f| f.iter().take(limit).copied().collect())
            .unwrap_or_default())
    }
}
