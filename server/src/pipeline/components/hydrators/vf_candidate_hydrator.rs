//! §2.8.2 VFCandidateHydrator (post-selection): in-network candidates are
//! checked at TimelineHome, all others at TimelineHomeRecommendations; both
//! calls run at once with the viewer context, and an empty group makes no
//! call. `visibility_reason` = the verdict or None. If either call fails the
//! hydrator fails, so the framework skips it and nothing is dropped
//! (fail-open, spec §4.3 note 2).

use std::sync::Arc;

use async_trait::async_trait;

use crate::clients::{
    ClientError, IdMap, SafetyLevel, ViewerContext, VisibilityClient, VisibilityReason,
};
use crate::pipeline::framework::{ComponentError, Hydrator};
use crate::pipeline::home_mixer::{PostCandidate, ScoredPostsQuery};

/// Sets `visibility_reason`.
#[derive(Debug, Clone)]
pub struct VfCandidateHydrator {
    client: Arc<dyn VisibilityClient>,
}

impl VfCandidateHydrator {
    /// Over this client.
    pub fn new(client: Arc<dyn VisibilityClient>) -> Self {
        Self { client }
    }

    async fn check(
        &self,
        viewer: &ViewerContext,
        level: SafetyLevel,
        ids: &[i64],
    ) -> Result<IdMap<VisibilityReason>, ClientError> {
        if ids.is_empty() {
            return Ok(IdMap::default());
        }
        self.client.check(viewer, level, ids).await
    }
}

#[async_trait]
impl Hydrator<ScoredPostsQuery, PostCandidate> for VfCandidateHydrator {
    /// `visibility_reason`.
    type Output = Option<VisibilityReason>;

    fn name(&self) -> &'static str {
        "VFCandidateHydrator"
    }

    async fn hydrate(
        &self,
        q: &ScoredPostsQuery,
        candidates: &[PostCandidate],
    ) -> Result<Vec<Option<VisibilityReason>>, ComponentError> {
        let viewer = ViewerContext {
            user_id: q.user_id,
            client_app_id: q.client_app_id,
            country_code: q.country_code.clone(),
            language_code: q.language_code.clone(),
        };
        let (inn, oon): (Vec<&PostCandidate>, Vec<&PostCandidate>) =
            candidates.iter().partition(|c| c.in_network == Some(true));
        let inn: Vec<i64> = inn.iter().map(|c| c.tweet_id).collect();
        let oon: Vec<i64> = oon.iter().map(|c| c.tweet_id).collect();
        let (home, recs) = futures_util::join!(
            self.check(&viewer, SafetyLevel::TimelineHome, &inn),
            self.check(&viewer, SafetyLevel::TimelineHomeRecommendations, &oon),
        );
        let home = home.map_err(|e| ComponentError::failed(e.to_string()))?;
        let recs = recs.map_err(|e| ComponentError::failed(e.to_string()))?;
        Ok(candidates
            .iter()
            .map(|c| {
                let verdicts = if c.in_network == Some(true) {
                    &home
                } else {
                    &recs
                };
                verdicts.get(&c.tweet_id).cloned()
            })
            .collect())
    }

    fn update(&self, c: &mut PostCandidate, reason: Option<VisibilityReason>) {
        c.visibility_reason = reason;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::clients::SafetyAction;
    use crate::pipeline::components::filters::test_support::{post, query};

    /// Records the calls; fails at one level if asked.
    #[derive(Debug, Default)]
    struct Recorder {
        calls: Mutex<Vec<(SafetyLevel, Vec<i64>)>>,
        fail: Option<SafetyLevel>,
    }

    #[async_trait]
    impl VisibilityClient for Recorder {
        async fn check(
            &self,
            _v: &ViewerContext,
            level: SafetyLevel,
            ids: &[i64],
        ) -> Result<IdMap<VisibilityReason>, ClientError> {
            self.calls.lock().expect("lock").push((level, ids.to_vec()));
            if self.fail == Some(level) {
                return Err(ClientError::new("vf", "down"));
            }
            Ok(ids
                .iter()
                .filter(|id| *id % 2 == 0)
                .map(|id| {
                    let action = if level == SafetyLevel::TimelineHome {
                        SafetyAction::Label
                    } else {
                        SafetyAction::Drop
                    };
                    (
                        *id,
                        VisibilityReason::Safety {
                            reason: "r".into(),
                            action,
                        },
                    )
                })
                .collect())
        }
    }

    fn cands() -> Vec<PostCandidate> {
        let mut v = vec![post(1, 5), post(2, 5), post(3, 6), post(4, 6)];
        v[0].in_network = Some(true);
        v[1].in_network = Some(true);
        v[2].in_network = Some(false); // None and false both go to recommendations
        v
    }

    #[test]
    fn in_network_at_timeline_home_others_at_recommendations() {
        let rec = Arc::new(Recorder::default());
        let h = VfCandidateHydrator::new(rec.clone());
        let out = futures_util::FutureExt::now_or_never(h.hydrate(&query(), &cands()))
            .expect("no waiting")
            .expect("ok");
        let mut calls = rec.calls.lock().expect("lock").clone();
        calls.sort_by_key(|(l, _)| *l == SafetyLevel::TimelineHomeRecommendations);
        assert_eq!(
            calls,
            vec![
                (SafetyLevel::TimelineHome, vec![1, 2]),
                (SafetyLevel::TimelineHomeRecommendations, vec![3, 4]),
            ]
        );
        let reasons: Vec<Option<SafetyAction>> = out
            .iter()
            .map(|reason| match reason {
                Some(VisibilityReason::Safety { action, .. }) => Some(*action),
                _ => None,
            })
            .collect();
        assert_eq!(
            reasons,
            vec![
                None,
                Some(SafetyAction::Label),
                None,
                Some(SafetyAction::Drop)
            ]
        );
    }

    #[test]
    fn an_empty_group_makes_no_call_and_either_failure_fails_the_hydrator() {
        let rec = Arc::new(Recorder::default());
        let h = VfCandidateHydrator::new(rec.clone());
        let only_in: Vec<PostCandidate> = cands().into_iter().take(2).collect();
        futures_util::FutureExt::now_or_never(h.hydrate(&query(), &only_in))
            .expect("no waiting")
            .expect("ok");
        assert_eq!(rec.calls.lock().expect("lock").len(), 1);

        let failing = VfCandidateHydrator::new(Arc::new(Recorder {
            fail: Some(SafetyLevel::TimelineHomeRecommendations),
            ..Recorder::default()
        }));
        let r = futures_util::FutureExt::now_or_never(failing.hydrate(&query(), &cands()))
            .expect("no waiting");
        assert!(r.is_err(), "a failed call fails the whole hydrator");
    }
}
