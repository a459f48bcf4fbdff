//! §2.6.9: with muted keywords, remove a candidate whose text contains a
//! muted phrase (tokenizer and matching: `util::tokenizer`); none ⇒ keep all.

use async_trait::async_trait;

use super::partition;
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
        candidates: Vec<PostCandidate>,
    ) -> Result<FilterOutput<PostCandidate>, ComponentError> {
        let muted = MutedPhrases::new(&q.user_features.muted_keywords);
        if muted.is_empty() {
            return Ok(FilterOutput {
                kept: candidates,
                removed: Vec::new(),
            });
        }
        Ok(partition(candidates, |c| !muted.matches(&c.tweet_text)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

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
}
