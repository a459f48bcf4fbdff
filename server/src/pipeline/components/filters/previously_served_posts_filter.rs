//! §2.6.8: on bottom requests only, remove a candidate if any related id is
//! in served_ids (no bloom filters here).

use std::collections::HashSet;

use async_trait::async_trait;

use crate::pipeline::framework::{ComponentError, Filter, FilterOutput};
use crate::pipeline::home_mixer::{PostCandidate, ScoredPostsQuery};

/// Drops posts served earlier in the session when paging down.
#[derive(Debug, Default)]
pub struct PreviouslyServedPostsFilter;

#[async_trait]
impl Filter<ScoredPostsQuery, PostCandidate> for PreviouslyServedPostsFilter {
    fn enable(&self, q: &ScoredPostsQuery) -> bool {
        q.is_bottom_request
    }

    async fn filter(
        &self,
        q: &ScoredPostsQuery,
        candidates: &[PostCandidate],
    ) -> Result<FilterOutput, ComponentError> {
        let served: HashSet<i64> = q.served_ids.iter().copied().collect();
        Ok(FilterOutput::partition(candidates, |c| {
            !c.related_ids().any(|id| served.contains(&id))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn removes_served_posts_only_on_bottom_requests() {
        let mut q = query();
        q.served_ids = vec![5];
        assert!(!PreviouslyServedPostsFilter.enable(&q));
        q.is_bottom_request = true;
        assert!(PreviouslyServedPostsFilter.enable(&q));
        let (kept, removed) = run(
            &PreviouslyServedPostsFilter,
            &q,
            vec![post(5, 9), retweet(6, 9, 5, 7), post(7, 9)],
        );
        assert_eq!((kept, removed), (vec![7], vec![5, 6]));
    }
}
