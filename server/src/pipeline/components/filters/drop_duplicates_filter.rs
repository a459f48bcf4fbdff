//! §2.6.1: keep the first candidate of each tweet_id (the Phoenix copy,
//! sourced first, beats the Thunder copy).

use std::collections::HashSet;

use async_trait::async_trait;

use crate::pipeline::framework::{ComponentError, Filter, FilterOutput};
use crate::pipeline::home_mixer::{PostCandidate, ScoredPostsQuery};

/// Drops repeated tweet ids.
#[derive(Debug, Default)]
pub struct DropDuplicatesFilter;

#[async_trait]
impl Filter<ScoredPostsQuery, PostCandidate> for DropDuplicatesFilter {
    async fn filter(
        &self,
        _q: &ScoredPostsQuery,
        candidates: &[PostCandidate],
    ) -> Result<FilterOutput, ComponentError> {
        let mut seen = HashSet::with_capacity(candidates.len());
        Ok(FilterOutput::partition(candidates, |c| {
            seen.insert(c.tweet_id)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn keeps_the_first_copy() {
        let mut first = post(5, 9);
        first.ancestors = std::sync::Arc::from([]); // the Phoenix copy
        let mut second = post(5, 9);
        second.ancestors = std::sync::Arc::from([4]);
        let input = vec![first.clone(), post(6, 9), second];
        let out =
            futures_util::FutureExt::now_or_never(DropDuplicatesFilter.filter(&query(), &input))
                .expect("ready")
                .expect("ok");
        assert_eq!((&*out.kept, &*out.removed), (&[0, 1][..], &[2][..]));
        let (kept, removed) = out.apply(input);
        assert_eq!(ids(&kept), vec![5, 6]);
        assert_eq!(kept[0], first);
        assert_eq!(ids(&removed), vec![5]);
    }
}
