//! §2.6.10: remove a candidate whose author_id is blocked or muted by the
//! viewer (only the author: not the retweeted user nor the reply parent).

use std::collections::HashSet;

use async_trait::async_trait;

use crate::pipeline::framework::{ComponentError, Filter, FilterOutput};
use crate::pipeline::home_mixer::{PostCandidate, ScoredPostsQuery};

/// Drops posts by blocked or muted authors.
#[derive(Debug, Default)]
pub struct AuthorSocialgraphFilter;

#[async_trait]
impl Filter<ScoredPostsQuery, PostCandidate> for AuthorSocialgraphFilter {
    async fn filter(
        &self,
        q: &ScoredPostsQuery,
        candidates: &[PostCandidate],
    ) -> Result<FilterOutput, ComponentError> {
        let f = &q.user_features;
        let excluded: HashSet<i64> = f
            .blocked_user_ids
            .iter()
            .chain(&f.muted_user_ids)
            .copied()
            .collect();
        Ok(FilterOutput::partition(candidates, |c| {
            !excluded.contains(&c.author_id)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn removes_blocked_and_muted_authors_only() {
        let mut q = query();
        q.user_features.blocked_user_ids = vec![7];
        q.user_features.muted_user_ids = vec![8];
        let (kept, removed) = run(
            &AuthorSocialgraphFilter,
            &q,
            vec![post(1, 7), post(2, 8), retweet(3, 9, 50, 7), post(4, 9)],
        );
        assert_eq!((kept, removed), (vec![3, 4], vec![1, 2]));
    }
}
