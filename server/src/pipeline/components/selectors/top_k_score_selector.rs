//! §2.8.1 TopKScoreSelector: descending by score (None = −∞, stable), keep
//! TOP_K_CANDIDATES_TO_SELECT.

use crate::pipeline::framework::Selector;
use crate::pipeline::home_mixer::{PostCandidate, ScoredPostsQuery};

/// Keeps the `k` best-scored candidates.
#[derive(Debug, Clone)]
pub struct TopKScoreSelector {
    k: usize,
}

impl TopKScoreSelector {
    /// Keeps `k`.
    pub fn new(k: usize) -> Self {
        Self { k }
    }
}

impl Selector<ScoredPostsQuery, PostCandidate> for TopKScoreSelector {
    fn score(&self, c: &PostCandidate) -> f64 {
        c.score.unwrap_or(f64::NEG_INFINITY)
    }

    fn size(&self) -> Option<usize> {
        Some(self.k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_top_k_with_none_last_and_ties_stable() {
        let c = |id, s| PostCandidate {
            tweet_id: id,
            score: s,
            ..PostCandidate::default()
        };
        let out = TopKScoreSelector::new(3).select(
            &ScoredPostsQuery::default(),
            vec![
                c(1, None),
                c(2, Some(0.5)),
                c(3, Some(0.9)),
                c(4, Some(0.5)),
            ],
        );
        let ids: Vec<i64> = out.iter().map(|c| c.tweet_id).collect();
        assert_eq!(ids, vec![3, 2, 4]);
    }
}
