//! §2.9 CacheRequestInfoSideEffect: when APP_ENV is "prod" and the request
//! is not in-network-only, stores (viewer, final post ids); errors are
//! ignored. `foryou serve` reads APP_ENV from the environment.

use std::sync::Arc;

use async_trait::async_trait;

use crate::clients::RequestInfoStore;
use crate::pipeline::framework::{ComponentError, SideEffect, SideEffectInput};
use crate::pipeline::home_mixer::{PostCandidate, ScoredPostsQuery};

/// Records what was served.
#[derive(Debug, Clone)]
pub struct CacheRequestInfoSideEffect {
    store: Arc<dyn RequestInfoStore>,
    prod: bool,
}

impl CacheRequestInfoSideEffect {
    /// Over this store; `app_env` is the APP_ENV value.
    pub fn new(store: Arc<dyn RequestInfoStore>, app_env: Option<&str>) -> Self {
        Self {
            store,
            prod: app_env == Some("prod"),
        }
    }
}

#[async_trait]
impl SideEffect<ScoredPostsQuery, PostCandidate> for CacheRequestInfoSideEffect {
    fn enable(&self, q: Arc<ScoredPostsQuery>) -> bool {
        self.prod && !q.in_network_only
    }

    async fn run(
        &self,
        input: Arc<SideEffectInput<ScoredPostsQuery, PostCandidate>>,
    ) -> Result<(), ComponentError> {
        let ids = input
            .selected_candidates
            .iter()
            .map(|c| c.tweet_id)
            .collect();
        self.store
            .store(input.query.user_id, ids)
            .await
            .map_err(|e| ComponentError::failed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::InMemoryRequestInfo;
    use crate::pipeline::components::filters::test_support::{post, query};

    #[test]
    fn enabled_only_in_prod_for_full_requests_and_stores_the_final_ids() {
        let store = Arc::new(InMemoryRequestInfo::default());
        let prod = CacheRequestInfoSideEffect::new(store.clone(), Some("prod"));
        let dev = CacheRequestInfoSideEffect::new(store.clone(), Some("dev"));
        let q = Arc::new(query());
        let inn = Arc::new(ScoredPostsQuery {
            in_network_only: true,
            ..query()
        });
        assert!(prod.enable(q.clone()));
        assert!(!prod.enable(inn));
        assert!(!dev.enable(q.clone()));
        let input = Arc::new(SideEffectInput {
            query: q,
            selected_candidates: vec![post(5, 2), post(3, 2)],
        });
        futures_util::FutureExt::now_or_never(prod.run(input))
            .expect("no waiting")
            .expect("stored");
        assert_eq!(store.last(query().user_id), Some(vec![5, 3]));
    }
}
