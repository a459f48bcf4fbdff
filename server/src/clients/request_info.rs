//! Where CacheRequestInfoSideEffect writes (upstream: a Strato column whose
//! reader is not in the release).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::ClientError;

/// Stores the ids served to a user.
#[async_trait]
pub trait RequestInfoStore: Send + Sync + std::fmt::Debug {
    /// Records that `post_ids` were served to `user_id`.
    async fn store(&self, user_id: i64, post_ids: Vec<i64>) -> Result<(), ClientError>;
}

/// Keeps the last served list per user in memory.
#[derive(Debug, Default)]
pub struct InMemoryRequestInfo {
    served: Mutex<HashMap<i64, Vec<i64>>>,
}

impl InMemoryRequestInfo {
    /// The last list stored for `user_id`.
    pub fn last(&self, user_id: i64) -> Option<Vec<i64>> {
        let m = self.served.lock().unwrap_or_else(|p| p.into_inner());
        m.get(&user_id).cloned()
    }
}

#[async_trait]
impl RequestInfoStore for InMemoryRequestInfo {
    async fn store(&self, user_id: i64, post_ids: Vec<i64>) -> Result<(), ClientError> {
        let mut m = self.served.lock().unwrap_or_else(|p| p.into_inner());
        m.insert(user_id, post_ids);
        Ok(())
    }
}
