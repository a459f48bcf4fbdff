//! §2.6.2: keep iff author_id ≠ 0 and the trimmed text is non-empty (a
//! CoreData failure therefore empties the feed, as in the original).

use async_trait::async_trait;

use crate::pipeline::framework::{ComponentError, Filter, FilterOutput};
use crate::pipeline::home_mixer::{PostCandidate, ScoredPostsQuery};

/// Drops candidates whose core data did not hydrate.
#[derive(Debug, Default)]
pub struct CoreDataHydrationFilter;

#[async_trait]
impl Filter<ScoredPostsQuery, PostCandidate> for CoreDataHydrationFilter {
    async fn filter(
        &self,
        _q: &ScoredPostsQuery,
        candidates: &[PostCandidate],
    ) -> Result<FilterOutput, ComponentError> {
        Ok(FilterOutput::partition(candidates, |c| {
            c.author_id != 0 && !c.tweet_text.trim().is_empty()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn needs_an_author_and_non_blank_text() {
        let mut blank = post(2, 9);
        blank.tweet_text = " \n\t".into();
        let (kept, removed) = run(
            &CoreDataHydrationFilter,
            &query(),
            vec![post(1, 9), blank, post(3, 0)],
        );
        assert_eq!((kept, removed), (vec![1], vec![2, 3]));
    }
}
