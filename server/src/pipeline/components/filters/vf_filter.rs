//! §2.8.3 VFFilter (post-selection): drops a candidate whose verdict is a
//! safety result with the Drop action, or any non-safety verdict; keeps no
//! verdict and the other safety actions (labels, interstitials), which are
//! returned with the post.

use async_trait::async_trait;

use crate::clients::{SafetyAction, VisibilityReason};
use crate::pipeline::framework::{ComponentError, Filter, FilterOutput};
use crate::pipeline::home_mixer::{PostCandidate, ScoredPostsQuery};

/// Removes what visibility filtering says to drop.
#[derive(Debug, Clone, Copy, Default)]
pub struct VfFilter;

/// True when the verdict removes the post.
pub fn drops(reason: Option<&VisibilityReason>) -> bool {
    match reason {
        None => false,
        Some(VisibilityReason::Safety { action, .. }) => *action == SafetyAction::Drop,
        Some(VisibilityReason::Other(_)) => true,
    }
}

#[async_trait]
impl Filter<ScoredPostsQuery, PostCandidate> for VfFilter {
    fn name(&self) -> &'static str {
        "VFFilter"
    }

    async fn filter(
        &self,
        _q: &ScoredPostsQuery,
        candidates: &[PostCandidate],
    ) -> Result<FilterOutput, ComponentError> {
        Ok(FilterOutput::partition(candidates, |c| {
            !drops(c.visibility_reason.as_ref())
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::components::filters::test_support::{post, query, run};

    #[test]
    fn drops_drop_actions_and_non_safety_verdicts_only() {
        let safety = |action| {
            Some(VisibilityReason::Safety {
                reason: "x".into(),
                action,
            })
        };
        let reasons = [
            None,
            safety(SafetyAction::Drop),
            safety(SafetyAction::Interstitial),
            safety(SafetyAction::Label),
            Some(VisibilityReason::Other("deleted".into())),
        ];
        let cands = reasons
            .into_iter()
            .enumerate()
            .map(|(i, r)| PostCandidate {
                visibility_reason: r,
                ..post(i as i64 + 1, 9)
            })
            .collect();
        let (kept, removed) = run(&VfFilter, &query(), cands);
        assert_eq!(kept, vec![1, 3, 4]);
        assert_eq!(removed, vec![2, 5]);
    }
}
