//! §2.7 AuthorDiversityScorer: walk candidates by weighted_score descending
//! (None last, stable); the k-th post of an author (k = 0 for its best; a
//! retweet's author is the retweeter) gets
//! score = weighted_score · ((1 − FLOOR) · DECAY^k + FLOOR). None stays None.
//! Scores go back to the candidates' own positions.

use async_trait::async_trait;

use crate::clients::IdMap;
use crate::pipeline::framework::{ComponentError, Scorer};
use crate::pipeline::home_mixer::{PostCandidate, ScoredPostsQuery};

/// Sets `score` from `weighted_score`, damping an author's later posts.
#[derive(Debug, Clone)]
pub struct AuthorDiversityScorer {
    decay: f64,
    floor: f64,
}

impl AuthorDiversityScorer {
    /// With AUTHOR_DIVERSITY_DECAY and AUTHOR_DIVERSITY_FLOOR.
    pub fn new(decay: f64, floor: f64) -> Self {
        Self { decay, floor }
    }

    fn multiplier(&self, k: i32) -> f64 {
        (1.0 - self.floor) * self.decay.powi(k) + self.floor
    }
}

#[async_trait]
impl Scorer<ScoredPostsQuery, PostCandidate> for AuthorDiversityScorer {
    /// `score`.
    type Output = Option<f64>;

    async fn score(
        &self,
        _q: &ScoredPostsQuery,
        candidates: &[PostCandidate],
    ) -> Result<Vec<Option<f64>>, ComponentError> {
        let key = |c: &PostCandidate| c.weighted_score.unwrap_or(f64::NEG_INFINITY);
        let mut order: Vec<usize> = (0..candidates.len()).collect();
        order.sort_by(|&a, &b| key(&candidates[b]).total_cmp(&key(&candidates[a])));
        let mut seen: IdMap<i32> = IdMap::default();
        let mut out = vec![None; candidates.len()];
        for i in order {
            let c = &candidates[i];
            let k = seen.entry(c.author_id).or_insert(0);
            out[i] = c.weighted_score.map(|w| w * self.multiplier(*k));
            *k = k.saturating_add(1);
        }
        Ok(out)
    }

    fn update(&self, c: &mut PostCandidate, score: Option<f64>) {
        c.score = score;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(author: i64, w: Option<f64>) -> PostCandidate {
        PostCandidate {
            author_id: author,
            weighted_score: w,
            ..PostCandidate::default()
        }
    }

    #[test]
    fn later_posts_of_an_author_decay_by_rank_not_position() {
        let s = AuthorDiversityScorer::new(0.5, 0.25);
        let cs = [
            cand(7, Some(1.0)), // author 7's second best: k = 1
            cand(8, Some(3.0)),
            cand(7, Some(2.0)), // author 7's best: k = 0
            cand(7, Some(0.5)), // k = 2
            cand(7, None),
        ];
        let out = futures_util::FutureExt::now_or_never(s.score(&ScoredPostsQuery::default(), &cs))
            .expect("ready")
            .expect("ok");
        let scores: Vec<Option<f64>> = out;
        assert_eq!(
            scores,
            vec![
                Some(1.0 * (0.75 * 0.5 + 0.25)),
                Some(3.0),
                Some(2.0),
                Some(0.5 * (0.75 * 0.25 + 0.25)),
                None
            ]
        );
    }
}
