//! §2.6.7: remove a candidate if any related id (the post, its retweet
//! source, its parent) is in seen_ids or may be in any impression bloom
//! filter; replies to seen posts go too.

use std::collections::HashSet;

use async_trait::async_trait;

use crate::pipeline::framework::{ComponentError, Filter, FilterOutput};
use crate::pipeline::home_mixer::{PostCandidate, ScoredPostsQuery};

/// Drops posts the client has already shown.
#[derive(Debug, Default)]
pub struct PreviouslySeenPostsFilter;

#[async_trait]
impl Filter<ScoredPostsQuery, PostCandidate> for PreviouslySeenPostsFilter {
    async fn filter(
        &self,
        q: &ScoredPostsQuery,
        candidates: &[PostCandidate],
    ) -> Result<FilterOutput, ComponentError> {
        let seen: HashSet<i64> = q.seen_ids.iter().copied().collect();
        let blooms = &q.bloom_filter_entries;
        Ok(FilterOutput::partition(candidates, |c| {
            !c.related_ids()
                .any(|id| seen.contains(&id) || blooms.iter().any(|b| b.may_contain(id)))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::pipeline::home_mixer::BloomFilterEntry;

    #[test]
    fn seen_ids_and_blooms_remove_posts_retweets_and_replies() {
        let mut q = query();
        q.seen_ids = vec![100];
        let mut bloom = BloomFilterEntry::new(4096, 4);
        bloom.insert(200);
        q.bloom_filter_entries = vec![bloom];
        let reply = |id, parent| PostCandidate {
            in_reply_to_tweet_id: Some(parent),
            ..post(id, 9)
        };
        let (kept, removed) = run(
            &PreviouslySeenPostsFilter,
            &q,
            vec![
                post(100, 9),          // seen
                retweet(1, 9, 100, 7), // retweet of a seen post
                reply(2, 100),         // reply to a seen post
                post(200, 9),          // in the bloom filter
                retweet(3, 9, 200, 7), // source in the bloom filter
                post(4, 9),
            ],
        );
        assert_eq!(kept, vec![4]);
        assert_eq!(removed, vec![100, 1, 2, 200, 3]);
    }
}
