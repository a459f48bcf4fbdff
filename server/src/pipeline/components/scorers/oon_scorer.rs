//! §2.7 OONScorer: score ·= OON_WEIGHT_FACTOR when in_network is
//! Some(false); otherwise unchanged. Runs after diversity, so diversity
//! ranks ignore it.

use async_trait::async_trait;

use crate::pipeline::framework::{ComponentError, Scorer};
use crate::pipeline::home_mixer::{PostCandidate, ScoredPostsQuery};

/// Damps out-of-network scores.
#[derive(Debug, Clone)]
pub struct OonScorer {
    factor: f64,
}

impl OonScorer {
    /// With OON_WEIGHT_FACTOR.
    pub fn new(factor: f64) -> Self {
        Self { factor }
    }
}

#[async_trait]
impl Scorer<ScoredPostsQuery, PostCandidate> for OonScorer {
    /// `score`.
    type Output = Option<f64>;

    async fn score(
        &self,
        _q: &ScoredPostsQuery,
        candidates: &[PostCandidate],
    ) -> Result<Vec<Option<f64>>, ComponentError> {
        Ok(candidates
            .iter()
            .map(|c| match c.in_network {
                Some(false) => c.score.map(|s| s * self.factor),
                _ => c.score,
            })
            .collect())
    }

    fn update(&self, c: &mut PostCandidate, score: Option<f64>) {
        c.score = score;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_out_of_network_is_damped() {
        let c = |n: Option<bool>| PostCandidate {
            in_network: n,
            score: Some(2.0),
            ..PostCandidate::default()
        };
        let out = futures_util::FutureExt::now_or_never(OonScorer::new(0.75).score(
            &ScoredPostsQuery::default(),
            &[c(Some(false)), c(Some(true)), c(None)],
        ))
        .expect("ready")
        .expect("ok");
        let s: Vec<Option<f64>> = out;
        assert_eq!(s, vec![Some(1.5), Some(2.0), Some(2.0)]);
    }
}
