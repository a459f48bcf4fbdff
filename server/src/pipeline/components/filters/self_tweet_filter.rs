//! §2.6.4: remove the viewer's own posts (author_id == viewer); a retweet by
//! someone else of the viewer's post passes.

use async_trait::async_trait;

use crate::pipeline::framework::{ComponentError, Filter, FilterOutput};
use crate::pipeline::home_mixer::{PostCandidate, ScoredPostsQuery};

/// Drops the viewer's own posts.
#[derive(Debug, Default)]
pub struct SelfTweetFilter;

#[async_trait]
impl Filter<ScoredPostsQuery, PostCandidate> for SelfTweetFilter {
    async fn filter(
        &self,
        q: &ScoredPostsQuery,
        candidates: &[PostCandidate],
    ) -> Result<FilterOutput, ComponentError> {
        Ok(FilterOutput::partition(candidates, |c| {
            c.author_id != q.user_id
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn removes_own_posts_but_not_others_retweets_of_them() {
        let (kept, removed) = run(
            &SelfTweetFilter,
            &query(),
            vec![post(1, VIEWER), retweet(2, 9, 1, VIEWER), post(3, 9)],
        );
        assert_eq!((kept, removed), (vec![2, 3], vec![1]));
    }
}
