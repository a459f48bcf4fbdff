//! §2.3 UserFeaturesQueryHydrator → `user_features`: one lookup by user id;
//! an absent value gives empty lists; an error fails the hydrator (the lists
//! stay empty, so Thunder gets no follows and no block, mute or keyword
//! applies).

use std::sync::Arc;

use async_trait::async_trait;

use crate::clients::UserFeaturesClient;
use crate::pipeline::framework::{ComponentError, QueryHydrator};
use crate::pipeline::home_mixer::ScoredPostsQuery;

/// Hydrates follows, blocks, mutes, muted keywords and subscriptions.
#[derive(Debug, Clone)]
pub struct UserFeaturesQueryHydrator {
    client: Arc<dyn UserFeaturesClient>,
}

impl UserFeaturesQueryHydrator {
    /// Over this client.
    pub fn new(client: Arc<dyn UserFeaturesClient>) -> Self {
        Self { client }
    }
}

#[async_trait]
impl QueryHydrator<ScoredPostsQuery> for UserFeaturesQueryHydrator {
    async fn hydrate(&self, q: &ScoredPostsQuery) -> Result<ScoredPostsQuery, ComponentError> {
        let features = self
            .client
            .user_features(q.user_id)
            .await
            .map_err(|e| ComponentError::failed(e.to_string()))?
            .unwrap_or_default();
        Ok(ScoredPostsQuery {
            user_features: features,
            ..ScoredPostsQuery::default()
        })
    }

    fn update(&self, q: &mut ScoredPostsQuery, hydrated: ScoredPostsQuery) {
        q.user_features = hydrated.user_features;
    }
}
