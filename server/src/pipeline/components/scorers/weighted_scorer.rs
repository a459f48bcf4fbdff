//! §2.7 WeightedScorer: combined = Σ weight·(probability or 0) over the 19
//! heads, VQV counted only for videos strictly longer than
//! MIN_VIDEO_DURATION_MS; then the negative-score offset:
//! - max(x, 0) if WEIGHTS_SUM = 0;
//! - (x + NEGATIVE_WEIGHTS_SUM) / WEIGHTS_SUM · NEGATIVE_SCORES_OFFSET if x < 0;
//! - x + NEGATIVE_SCORES_OFFSET otherwise;
//!
//! then normalize_score (identity, our choice). Without Phoenix scores every
//! candidate ties at NEGATIVE_SCORES_OFFSET.

use async_trait::async_trait;

use crate::pipeline::framework::{ComponentError, Scorer};
use crate::pipeline::home_mixer::{Action, Params, PostCandidate, ScoredPostsQuery, Weights};

/// Sets `weighted_score`.
#[derive(Debug, Clone)]
pub struct WeightedScorer {
    weights: Weights,
    min_video_duration_ms: i32,
    offset: f64,
    weights_sum: f64,
    negative_weights_sum: f64,
}

impl WeightedScorer {
    /// From the params' weights, video threshold and offset.
    pub fn new(p: &Params) -> Self {
        Self {
            weights: p.weights,
            min_video_duration_ms: p.min_video_duration_ms,
            offset: p.negative_scores_offset,
            weights_sum: p.weights.weights_sum(),
            negative_weights_sum: p.weights.negative_weights_sum(),
        }
    }

    fn weight(&self, a: Action, video_eligible: bool) -> f64 {
        let w = &self.weights;
        match a {
            Action::Favorite => w.favorite,
            Action::Reply => w.reply,
            Action::Retweet => w.retweet,
            Action::PhotoExpand => w.photo_expand,
            Action::Click => w.click,
            Action::ProfileClick => w.profile_click,
            Action::Vqv if video_eligible => w.vqv,
            Action::Vqv => 0.0,
            Action::Share => w.share,
            Action::ShareViaDm => w.share_via_dm,
            Action::ShareViaCopyLink => w.share_via_copy_link,
            Action::Dwell => w.dwell,
            Action::Quote => w.quote,
            Action::QuotedClick => w.quoted_click,
            Action::FollowAuthor => w.follow_author,
            Action::NotInterested => w.not_interested,
            Action::BlockAuthor => w.block_author,
            Action::MuteAuthor => w.mute_author,
            Action::Report => w.report,
        }
    }

    /// The weighted sum before the offset.
    pub fn combined(&self, c: &PostCandidate) -> f64 {
        let video = c
            .video_duration_ms
            .is_some_and(|d| d > self.min_video_duration_ms);
        let s = &c.phoenix_scores;
        Action::ALL
            .iter()
            .map(|&a| self.weight(a, video) * s.get(a).unwrap_or(0.0))
            .sum::<f64>()
            + self.weights.cont_dwell_time * s.dwell_time().unwrap_or(0.0)
    }

    /// The offset of spec §2.7 (monotone in `x`).
    pub fn offset(&self, x: f64) -> f64 {
        if self.weights_sum == 0.0 {
            x.max(0.0)
        } else if x < 0.0 {
            (x + self.negative_weights_sum) / self.weights_sum * self.offset
        } else {
            x + self.offset
        }
    }
}

#[async_trait]
impl Scorer<ScoredPostsQuery, PostCandidate> for WeightedScorer {
    /// `weighted_score`.
    type Output = f64;

    async fn score(
        &self,
        _q: &ScoredPostsQuery,
        candidates: &[PostCandidate],
    ) -> Result<Vec<f64>, ComponentError> {
        Ok(candidates
            .iter()
            .map(|c| self.offset(self.combined(c)))
            .collect())
    }

    fn update(&self, c: &mut PostCandidate, weighted: f64) {
        c.weighted_score = Some(weighted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scorer() -> WeightedScorer {
        WeightedScorer::new(&Params::default())
    }

    fn with(actions: &[(Action, f64)], video_ms: Option<i32>) -> PostCandidate {
        let mut c = PostCandidate {
            video_duration_ms: video_ms,
            ..PostCandidate::default()
        };
        for &(a, p) in actions {
            c.phoenix_scores.set(a, p);
        }
        c
    }

    #[test]
    fn positive_sums_are_shifted_by_the_offset() {
        let s = scorer();
        // Scores are kept at the ranker's f32 precision: exact binary
        // fractions keep the sum exact.
        let c = with(&[(Action::Favorite, 0.375), (Action::Reply, 0.125)], None);
        assert!((s.combined(&c) - (0.5 * 0.375 + 5.0 * 0.125)).abs() < 1e-12);
        assert!((s.offset(0.7) - 0.701).abs() < 1e-12);
    }

    #[test]
    fn negative_sums_map_below_the_offset_monotonically() {
        let s = scorer();
        // (x + 367.2) / 410.254 · 0.001
        let got = s.offset(-100.0);
        assert!((got - (267.2 / 410.254 * 0.001)).abs() < 1e-15);
        assert!(s.offset(-200.0) < got && got < s.offset(0.0));
        assert_eq!(s.offset(0.0), 0.001);
    }

    #[test]
    fn zero_weights_clamp_at_zero() {
        let p = Params {
            weights: Weights {
                favorite: 0.0,
                reply: 0.0,
                retweet: 0.0,
                photo_expand: 0.0,
                click: 0.0,
                profile_click: 0.0,
                vqv: 0.0,
                share: 0.0,
                share_via_dm: 0.0,
                share_via_copy_link: 0.0,
                dwell: 0.0,
                quote: 0.0,
                quoted_click: 0.0,
                cont_dwell_time: 0.0,
                follow_author: 0.0,
                not_interested: 0.0,
                block_author: 0.0,
                mute_author: 0.0,
                report: 0.0,
            },
            ..Params::default()
        };
        let s = WeightedScorer::new(&p);
        assert_eq!(s.offset(-3.0), 0.0);
        assert_eq!(s.offset(2.0), 2.0);
    }

    #[test]
    fn vqv_counts_only_for_videos_strictly_longer_than_the_minimum() {
        let s = scorer();
        let vqv = |ms| s.combined(&with(&[(Action::Vqv, 1.0)], ms));
        assert_eq!(vqv(None), 0.0);
        assert_eq!(vqv(Some(10_000)), 0.0, "equal is not longer");
        assert_eq!(vqv(Some(10_001)), 0.05);
    }

    #[test]
    fn dwell_time_uses_the_continuous_weight() {
        let s = scorer();
        let mut c = PostCandidate::default();
        c.phoenix_scores.set_dwell_time(Some(10.0));
        assert!((s.combined(&c) - 0.04).abs() < 1e-12);
    }

    #[test]
    fn unscored_candidates_tie_at_the_offset() {
        let s = scorer();
        let out = futures_util::FutureExt::now_or_never(s.score(
            &ScoredPostsQuery::default(),
            &[PostCandidate::default(), PostCandidate::default()],
        ))
        .expect("ready")
        .expect("ok");
        assert!(out.iter().all(|&w| w == 0.001));
    }
}
