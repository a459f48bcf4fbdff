//! §2.5 SubscriptionHydrator (TES): `subscription_author_id` for
//! subscriber-only posts.

use std::sync::Arc;

use async_trait::async_trait;

use crate::clients::TweetEntityClient;
use crate::pipeline::framework::{ComponentError, Hydrator};
use crate::pipeline::home_mixer::{PostCandidate, ScoredPostsQuery};

/// Sets `subscription_author_id`.
#[derive(Debug, Clone)]
pub struct SubscriptionHydrator {
    client: Arc<dyn TweetEntityClient>,
}

impl SubscriptionHydrator {
    /// Over this client.
    pub fn new(client: Arc<dyn TweetEntityClient>) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Hydrator<ScoredPostsQuery, PostCandidate> for SubscriptionHydrator {
    /// `subscription_author_id`.
    type Output = Option<i64>;

    async fn hydrate(
        &self,
        _q: &ScoredPostsQuery,
        candidates: &[PostCandidate],
    ) -> Result<Vec<Option<i64>>, ComponentError> {
        let ids: Vec<i64> = candidates.iter().map(|c| c.tweet_id).collect();
        let subs = self
            .client
            .subscription_author_ids(&ids)
            .await
            .map_err(|e| ComponentError::failed(e.to_string()))?;
        Ok(candidates
            .iter()
            .map(|c| subs.get(&c.tweet_id).copied())
            .collect())
    }

    fn update(&self, c: &mut PostCandidate, author: Option<i64>) {
        c.subscription_author_id = author;
    }
}
