//! §2.6.5: one pass over a seen set S. A retweet of r is kept iff r ∉ S,
//! then r joins S; an original is always kept and adds its own id. So a
//! retweet placed before its original does not remove the original.

use std::collections::HashSet;

use async_trait::async_trait;

use crate::pipeline::framework::{ComponentError, Filter, FilterOutput};
use crate::pipeline::home_mixer::{PostCandidate, ScoredPostsQuery};

/// Drops retweets of a post already in the list.
#[derive(Debug, Default)]
pub struct RetweetDeduplicationFilter;

#[async_trait]
impl Filter<ScoredPostsQuery, PostCandidate> for RetweetDeduplicationFilter {
    async fn filter(
        &self,
        _q: &ScoredPostsQuery,
        candidates: &[PostCandidate],
    ) -> Result<FilterOutput, ComponentError> {
        let mut seen = HashSet::with_capacity(candidates.len());
        Ok(FilterOutput::partition(candidates, |c| {
            match c.retweeted_tweet_id {
                Some(source) => seen.insert(source),
                None => {
                    seen.insert(c.tweet_id);
                    true
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn first_retweet_wins_and_originals_always_stay() {
        let (kept, removed) = run(
            &RetweetDeduplicationFilter,
            &query(),
            vec![
                retweet(10, 8, 1, 7), // before its original: kept
                post(1, 7),           // original: always kept
                retweet(11, 9, 1, 7), // source already seen: removed
                post(2, 7),
                retweet(12, 9, 2, 7), // original seen first: removed
                retweet(13, 9, 3, 7),
            ],
        );
        assert_eq!((kept, removed), (vec![10, 1, 2, 13], vec![11, 12]));
    }
}
