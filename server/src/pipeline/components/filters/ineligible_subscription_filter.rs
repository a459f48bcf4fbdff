//! §2.6.6: a subscriber-only post (subscription_author_id set) is kept only
//! if the viewer subscribes to that author.

use std::collections::HashSet;

use async_trait::async_trait;

use crate::pipeline::framework::{ComponentError, Filter, FilterOutput};
use crate::pipeline::home_mixer::{PostCandidate, ScoredPostsQuery};

/// Drops subscriber-only posts the viewer has no subscription for.
#[derive(Debug, Default)]
pub struct IneligibleSubscriptionFilter;

#[async_trait]
impl Filter<ScoredPostsQuery, PostCandidate> for IneligibleSubscriptionFilter {
    async fn filter(
        &self,
        q: &ScoredPostsQuery,
        candidates: &[PostCandidate],
    ) -> Result<FilterOutput, ComponentError> {
        let subscribed: HashSet<i64> = q
            .user_features
            .subscribed_user_ids
            .iter()
            .copied()
            .collect();
        Ok(FilterOutput::partition(candidates, |c| {
            c.subscription_author_id
                .is_none_or(|a| subscribed.contains(&a))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn subscriber_only_posts_need_a_subscription() {
        let mut q = query();
        q.user_features.subscribed_user_ids = vec![7];
        let sub = |id, a| PostCandidate {
            subscription_author_id: Some(a),
            ..post(id, a)
        };
        let (kept, removed) = run(
            &IneligibleSubscriptionFilter,
            &q,
            vec![post(1, 9), sub(2, 7), sub(3, 8)],
        );
        assert_eq!((kept, removed), (vec![1, 2], vec![3]));
    }
}
