//! §2.6.9: with muted keywords, remove a candidate whose text contains a
//! muted phrase (tokenizer and matching: `util::tokenizer`); none ⇒ keep all.
//!
//! The keywords are tokenised here, once per request; a candidate's text
//! was tokenised once per post by CoreDataCandidateHydrator
//! (`tweet_tokens`), so this only matches. A candidate without tokens of
//! its current text has it tokenised now: same decision, slower.

use async_trait::async_trait;

use crate::pipeline::framework::{ComponentError, Filter, FilterOutput};
use crate::pipeline::home_mixer::{PostCandidate, ScoredPostsQuery};
use crate::pipeline::util::tokenizer::MutedPhrases;

/// Drops posts matching the viewer's muted keywords.
#[derive(Debug, Default)]
pub struct MutedKeywordFilter;

#[async_trait]
impl Filter<ScoredPostsQuery, PostCandidate> for MutedKeywordFilter {
    async fn filter(
        &self,
        q: &ScoredPostsQuery,
        candidates: &[PostCandidate],
    ) -> Result<FilterOutput, ComponentError> {
        let muted = MutedPhrases::new(&q.user_features.muted_keywords);
        if muted.is_empty() {
            return Ok(FilterOutput::keep_all(candidates.len()));
        }
        Ok(FilterOutput::partition(candidates, |c| {
            match &c.tweet_tokens {
                Some(tokens) if tokens.is_of(&c.tweet_text) => !muted.matches_tokens(tokens),
                _ => !muted.matches(&c.tweet_text),
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::test_support::*;
    use super::*;
    use crate::pipeline::util::tokenizer::TweetTokens;
    use crate::pipeline::util::tokenizer::tests::{oracle, text_and_keywords};
    use crate::pipeline::util::tweet_token_cache::TweetTokenCache;

    #[test]
    fn removes_posts_with_a_muted_phrase() {
        let mut q = query();
        q.user_features.muted_keywords = vec!["Spoilers".into(), "red wedding".into()];
        let text = |id, t: &str| PostCandidate {
            tweet_text: t.into(),
            ..post(id, 9)
        };
        let (kept, removed) = run(
            &MutedKeywordFilter,
            &q,
            vec![
                text(1, "No #spoilers please"),
                text(2, "the Red  Wedding!"),
                text(3, "a wedding in red"),
            ],
        );
        assert_eq!((kept, removed), (vec![3], vec![1, 2]));
        q.user_features.muted_keywords.clear();
        let (kept, _) = run(&MutedKeywordFilter, &q, vec![text(1, "spoilers")]);
        assert_eq!(kept, vec![1]);
    }

    #[test]
    fn tokens_of_another_text_are_not_used() {
        let mut q = query();
        q.user_features.muted_keywords = vec!["spoilers".into()];
        let stale = |id, tokens_of: &str, t: &str| PostCandidate {
            tweet_text: t.into(),
            tweet_tokens: Some(Arc::new(TweetTokens::new(tokens_of))),
            ..post(id, 9)
        };
        let (kept, removed) = run(
            &MutedKeywordFilter,
            &q,
            vec![
                stale(1, "no spoilers", "all fine"),
                stale(2, "all fine", "spoilers!"),
            ],
        );
        assert_eq!((kept, removed), (vec![1], vec![2]));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Through the hydrator's cache and the filter, several posts per
        /// case: the decisions of tokenising every text on every request.
        #[test]
        fn cached_tokens_keep_and_drop_as_tokenising_per_request(
            cases in proptest::collection::vec(text_and_keywords(), 1..=8),
            keywords_of in 0usize..8,
        ) {
            let cache = TweetTokenCache::new(4);
            let mut q = query();
            q.user_features.muted_keywords = cases[keywords_of % cases.len()].1.clone();
            let posts: Vec<(i64, &str)> = (1..)
                .zip(&cases)
                .map(|(id, (text, _))| (id, text.as_str()))
                .collect();
            let shared: Vec<(i64, Arc<str>)> =
                posts.iter().map(|&(id, text)| (id, text.into())).collect();
            let shared: Vec<(i64, &Arc<str>)> = shared.iter().map(|(id, t)| (*id, t)).collect();
            // Twice: tokens made now, then tokens found in the cache.
            for _ in 0..2 {
                let candidates = shared
                    .iter()
                    .zip(cache.tokens(&shared))
                    .map(|(&(id, text), tokens)| PostCandidate {
                        tweet_text: text.clone(),
                        tweet_tokens: Some(tokens),
                        ..post(id, 9)
                    })
                    .collect();
                let (kept, removed): (Vec<_>, Vec<_>) = posts
                    .iter()
                    .partition(|(_, text)| !oracle::matches(&q.user_features.muted_keywords, text));
                let ids = |v: Vec<&(i64, &str)>| v.iter().map(|(id, _)| *id).collect::<Vec<_>>();
                proptest::prop_assert_eq!(
                    run(&MutedKeywordFilter, &q, candidates),
                    (ids(kept), ids(removed))
                );
            }
        }
    }
}
