//! The visibility-filtering service (upstream: VF): per-post safety
//! verdicts for a viewer at a safety level.

use async_trait::async_trait;

use super::{ClientError, IdMap};

/// Which rules apply (spec §2.8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SafetyLevel {
    /// In-network posts.
    TimelineHome,
    /// Out-of-network recommendations (stricter).
    TimelineHomeRecommendations,
}

/// Who is looking (spec §2.1 VF viewer context).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewerContext {
    /// The viewer.
    pub user_id: i64,
    /// Client application.
    pub client_app_id: i32,
    /// Country code.
    pub country_code: String,
    /// Language code.
    pub language_code: String,
}

/// What a safety result asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SafetyAction {
    /// Remove the post.
    Drop,
    /// Show it behind an interstitial.
    Interstitial,
    /// Show it with a label.
    Label,
}

/// A verdict on a post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VisibilityReason {
    /// A safety result: a reason and an action.
    Safety {
        /// Why (e.g. "spam").
        reason: String,
        /// What to do.
        action: SafetyAction,
    },
    /// Any other verdict (always dropped by VFFilter).
    Other(String),
}

impl VisibilityReason {
    /// The text returned in `ScoredPost.visibility_reason`.
    pub fn describe(&self) -> String {
        match self {
            Self::Safety { reason, action } => {
                let a = match action {
                    SafetyAction::Drop => "drop",
                    SafetyAction::Interstitial => "interstitial",
                    SafetyAction::Label => "label",
                };
                format!("{reason}:{a}")
            }
            Self::Other(s) => s.clone(),
        }
    }
}

/// Checks posts for a viewer; posts with no verdict are absent.
#[async_trait]
pub trait VisibilityClient: Send + Sync + std::fmt::Debug {
    /// Verdicts by post id.
    async fn check(
        &self,
        viewer: &ViewerContext,
        level: SafetyLevel,
        ids: &[i64],
    ) -> Result<IdMap<VisibilityReason>, ClientError>;
}
