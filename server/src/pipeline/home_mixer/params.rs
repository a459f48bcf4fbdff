//! Every home-mixer tunable (spec §2.10, values §4.2) in one typed struct.
//! Defaults are the published values the spec marks † and our documented
//! choices elsewhere; a TOML file can override any subset
//! (`Params::from_toml_file`). Unknown keys are errors, so a typo cannot
//! silently leave a default in force.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The weight of each Phoenix head in WeightedScorer (spec §2.7, §4.2 †).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Weights {
    /// FAVORITE_WEIGHT.
    pub favorite: f64,
    /// REPLY_WEIGHT.
    pub reply: f64,
    /// RETWEET_WEIGHT.
    pub retweet: f64,
    /// PHOTO_EXPAND_WEIGHT.
    pub photo_expand: f64,
    /// CLICK_WEIGHT.
    pub click: f64,
    /// PROFILE_CLICK_WEIGHT.
    pub profile_click: f64,
    /// VQV_WEIGHT (applied only to videos longer than MIN_VIDEO_DURATION_MS).
    pub vqv: f64,
    /// SHARE_WEIGHT.
    pub share: f64,
    /// SHARE_VIA_DM_WEIGHT.
    pub share_via_dm: f64,
    /// SHARE_VIA_COPY_LINK_WEIGHT.
    pub share_via_copy_link: f64,
    /// DWELL_WEIGHT.
    pub dwell: f64,
    /// QUOTE_WEIGHT.
    pub quote: f64,
    /// QUOTED_CLICK_WEIGHT.
    pub quoted_click: f64,
    /// CONT_DWELL_TIME_WEIGHT (the continuous dwell-time head).
    pub cont_dwell_time: f64,
    /// FOLLOW_AUTHOR_WEIGHT.
    pub follow_author: f64,
    /// NOT_INTERESTED_WEIGHT (negative).
    pub not_interested: f64,
    /// BLOCK_AUTHOR_WEIGHT (negative).
    pub block_author: f64,
    /// MUTE_AUTHOR_WEIGHT (negative).
    pub mute_author: f64,
    /// REPORT_WEIGHT (negative).
    pub report: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Self {
            favorite: 0.5,
            reply: 5.0,
            retweet: 1.0,
            photo_expand: 0.05,
            click: 0.4,
            profile_click: 0.0,
            vqv: 0.05,
            share: 2.0,
            share_via_dm: 5.0,
            share_via_copy_link: 20.0,
            dwell: 0.0,
            quote: 5.0,
            quoted_click: 0.05,
            cont_dwell_time: 0.004,
            follow_author: 4.0,
            not_interested: -43.2,
            block_author: -31.2,
            mute_author: -58.8,
            report: -234.0,
        }
    }
}

impl Weights {
    /// Every weight, in a fixed order.
    pub fn all(&self) -> [f64; 19] {
        [
            self.favorite,
            self.reply,
            self.retweet,
            self.photo_expand,
            self.click,
            self.profile_click,
            self.vqv,
            self.share,
            self.share_via_dm,
            self.share_via_copy_link,
            self.dwell,
            self.quote,
            self.quoted_click,
            self.cont_dwell_time,
            self.follow_author,
            self.not_interested,
            self.block_author,
            self.mute_author,
            self.report,
        ]
    }

    /// WEIGHTS_SUM: Σ|w| over all weights (derived, so the offset stays
    /// monotone whatever the weights are).
    pub fn weights_sum(&self) -> f64 {
        self.all().iter().map(|w| w.abs()).sum()
    }

    /// NEGATIVE_WEIGHTS_SUM: Σ|w| over the negative weights.
    pub fn negative_weights_sum(&self) -> f64 {
        self.all()
            .iter()
            .filter(|w| **w < 0.0)
            .map(|w| w.abs())
            .sum()
    }
}

/// The home-mixer tunables.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// MAX_POST_AGE, seconds (AgeFilter).
    pub max_post_age_s: u64,
    /// UAS_WINDOW_TIME_MS: actions on one post closer than this aggregate.
    pub uas_window_time_ms: i64,
    /// UAS_MAX_SEQUENCE_LENGTH: history actions kept (the newest).
    pub uas_max_sequence_length: usize,
    /// PHOENIX_MAX_RESULTS: out-of-network candidates retrieved.
    pub phoenix_max_results: usize,
    /// THUNDER_MAX_RESULTS: in-network candidates asked of Thunder.
    pub thunder_max_results: usize,
    /// The 19 head weights.
    pub weights: Weights,
    /// MIN_VIDEO_DURATION_MS: VQV counts only for longer videos.
    pub min_video_duration_ms: i32,
    /// NEGATIVE_SCORES_OFFSET.
    pub negative_scores_offset: f64,
    /// AUTHOR_DIVERSITY_DECAY.
    pub author_diversity_decay: f64,
    /// AUTHOR_DIVERSITY_FLOOR.
    pub author_diversity_floor: f64,
    /// OON_WEIGHT_FACTOR: out-of-network score multiplier.
    pub oon_weight_factor: f64,
    /// TOP_K_CANDIDATES_TO_SELECT.
    pub top_k_candidates_to_select: usize,
    /// RESULT_SIZE: posts returned.
    pub result_size: usize,
    /// MAX_GRPC_MESSAGE_SIZE, bytes.
    pub max_grpc_message_size: usize,
    /// Our addition: per-component time budget, ms (0 = none). Generous by
    /// default: it guards against a stuck dependency, not a slow model.
    pub component_budget_ms: u64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            max_post_age_s: 172_800,
            uas_window_time_ms: 300_000,
            uas_max_sequence_length: 1024,
            phoenix_max_results: 1000,
            thunder_max_results: 1200,
            weights: Weights::default(),
            min_video_duration_ms: 10_000,
            negative_scores_offset: 0.001,
            author_diversity_decay: 0.5,
            author_diversity_floor: 0.25,
            oon_weight_factor: 0.75,
            top_k_candidates_to_select: 50,
            result_size: 35,
            max_grpc_message_size: 128 << 20,
            component_budget_ms: 2_000,
        }
    }
}

/// A params file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    /// The file could not be read.
    #[error("cannot read params file {path}: {cause}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// The file is not valid TOML for [`Params`] (the message names the key).
    #[error("params file {path}: {cause}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why, with line and key.
        cause: toml::de::Error,
    },
    /// A value is outside its range.
    #[error("params file {path}: {field} = {value} is invalid: {why}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key.
        field: &'static str,
        /// The value, printed.
        value: String,
        /// What is expected.
        why: &'static str,
    },
}

impl Params {
    /// Defaults overridden by the keys present in `path`.
    pub fn from_toml_file(path: &Path) -> Result<Self, ParamsError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ParamsError::Read {
            path: path.to_owned(),
            cause,
        })?;
        Self::from_toml_str(&text, path)
    }

    /// Defaults overridden by the keys in `text` (`path` names it in errors).
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Self, ParamsError> {
        let p: Params = toml::from_str(text).map_err(|cause| ParamsError::Parse {
            path: path.to_owned(),
            cause,
        })?;
        let invalid = |field, value: f64, why| ParamsError::Invalid {
            path: path.to_owned(),
            field,
            value: value.to_string(),
            why,
        };
        for (field, v) in [
            ("author_diversity_decay", p.author_diversity_decay),
            ("author_diversity_floor", p.author_diversity_floor),
            ("oon_weight_factor", p.oon_weight_factor),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(invalid(field, v, "expected a number in [0, 1]"));
            }
        }
        if !p.negative_scores_offset.is_finite() || p.negative_scores_offset < 0.0 {
            return Err(invalid(
                "negative_scores_offset",
                p.negative_scores_offset,
                "expected a finite number ≥ 0",
            ));
        }
        if p.weights.all().iter().any(|w| !w.is_finite()) {
            return Err(invalid("weights", f64::NAN, "every weight must be finite"));
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_sums_follow_from_the_weights() {
        let w = Weights::default();
        assert!((w.negative_weights_sum() - 367.2).abs() < 1e-9);
        assert!((w.weights_sum() - 410.254).abs() < 1e-9);
    }

    #[test]
    fn toml_overrides_only_the_keys_it_names() {
        let p = Params::from_toml_str(
            "result_size = 10\n[weights]\nreply = 7.5\n",
            Path::new("p.toml"),
        )
        .expect("valid");
        assert_eq!(p.result_size, 10);
        assert_eq!(p.weights.reply, 7.5);
        assert_eq!(p.weights.favorite, 0.5);
        assert_eq!(p.top_k_candidates_to_select, 50);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors_naming_the_key() {
        let e = Params::from_toml_str("result_sise = 10\n", Path::new("p.toml")).expect_err("typo");
        assert!(e.to_string().contains("result_sise"), "{e}");
        let e = Params::from_toml_str("oon_weight_factor = 1.5\n", Path::new("p.toml"))
            .expect_err("range");
        assert!(e.to_string().contains("oon_weight_factor"), "{e}");
        assert!(e.to_string().contains("p.toml"), "{e}");
    }
}
