//! §2.3 UserActionSeqQueryHydrator → `user_action_sequence`:
//! fetch the raw events (error or none ⇒ fail); keep-original filter (keeps
//! everything, §4.2); aggregate consecutive events on the same post within
//! UAS_WINDOW_TIME_MS (union of flags, earliest impression); drop aggregates
//! with no flags; keep the last UAS_MAX_SEQUENCE_LENGTH (empty ⇒ fail);
//! build the sequence with its metadata and an all-false NEW_EVENT mask.

use std::sync::Arc;

use async_trait::async_trait;

use crate::clients::{RawAction, UserActionSequenceClient};
use crate::clock::Clock;
use crate::pipeline::framework::{ComponentError, QueryHydrator};
use crate::pipeline::home_mixer::{AggregatedAction, Params, ScoredPostsQuery, UserActionSequence};

/// Name recorded as the sequence's aggregation provider.
pub const AGGREGATOR_NAME: &str = "DefaultAggregator";

/// Hydrates the viewer's engagement history.
#[derive(Debug, Clone)]
pub struct UserActionSeqQueryHydrator {
    client: Arc<dyn UserActionSequenceClient>,
    clock: Arc<dyn Clock>,
    window_ms: i64,
    max_len: usize,
}

impl UserActionSeqQueryHydrator {
    /// Over this client, with the params' window and length.
    pub fn new(
        client: Arc<dyn UserActionSequenceClient>,
        clock: Arc<dyn Clock>,
        p: &Params,
    ) -> Self {
        Self {
            client,
            clock,
            window_ms: p.uas_window_time_ms,
            max_len: p.uas_max_sequence_length,
        }
    }
}

/// Merges consecutive events on the same post whose impressions lie within
/// `window_ms` of the aggregate's first one (union of flags, earliest time),
/// then drops aggregates without flags.
pub fn aggregate(raw: &[RawAction], window_ms: i64) -> Vec<AggregatedAction> {
    let mut out: Vec<AggregatedAction> = Vec::new();
    for r in raw {
        if let Some(last) = out.last_mut()
            && last.post_id == r.post_id
            && (r.impressed_ms - last.impressed_ms).abs() <= window_ms
        {
            last.actions |= r.actions;
            last.impressed_ms = last.impressed_ms.min(r.impressed_ms);
            continue;
        }
        out.push(AggregatedAction {
            post_id: r.post_id,
            author_id: r.author_id,
            actions: r.actions,
            impressed_ms: r.impressed_ms,
            surface: r.surface,
        });
    }
    out.retain(|a| a.actions != 0);
    out
}

#[async_trait]
impl QueryHydrator<ScoredPostsQuery> for UserActionSeqQueryHydrator {
    async fn hydrate(&self, q: &ScoredPostsQuery) -> Result<ScoredPostsQuery, ComponentError> {
        let raw = self
            .client
            .fetch(q.user_id)
            .await
            .map_err(|e| ComponentError::failed(e.to_string()))?;
        if raw.is_empty() {
            return Err(ComponentError::failed(format!(
                "no user actions for user {}",
                q.user_id
            )));
        }
        let mut actions = aggregate(&raw, self.window_ms);
        let drop = actions.len().saturating_sub(self.max_len);
        actions.drain(..drop);
        if actions.is_empty() {
            return Err(ComponentError::failed(format!(
                "no actions left after aggregation for user {}",
                q.user_id
            )));
        }
        let seq = UserActionSequence {
            user_id: q.user_id,
            first_sequence_time_ms: actions.first().map_or(0, |a| a.impressed_ms),
            last_sequence_time_ms: actions.last().map_or(0, |a| a.impressed_ms),
            aggregation_provider: AGGREGATOR_NAME,
            aggregation_time_ms: self.clock.unix_ms(),
            new_event_mask: vec![false; actions.len()],
            actions,
        };
        Ok(ScoredPostsQuery {
            user_action_sequence: Some(Arc::new(seq)),
            ..ScoredPostsQuery::default()
        })
    }

    fn update(&self, q: &mut ScoredPostsQuery, hydrated: ScoredPostsQuery) {
        q.user_action_sequence = hydrated.user_action_sequence;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::ClientError;
    use crate::clock::ManualClock;
    use crate::pipeline::components::filters::test_support::query;

    fn raw(post: i64, actions: u32, at: i64) -> RawAction {
        RawAction {
            post_id: post,
            author_id: post * 10,
            actions,
            impressed_ms: at,
            surface: 1,
        }
    }

    #[test]
    fn merges_consecutive_same_post_events_within_the_window_and_drops_empty() {
        let got = aggregate(
            &[
                raw(1, 0b001, 1_000),
                raw(1, 0b010, 1_500), // merged: same post, within 1 s
                raw(2, 0, 2_000),     // no flags: dropped
                raw(1, 0b100, 9_000), // same post, outside the window: new
                raw(3, 0b1, 9_100),
                raw(3, 0b1, 9_200),
            ],
            1_000,
        );
        let v: Vec<(i64, u32, i64)> = got
            .iter()
            .map(|a| (a.post_id, a.actions, a.impressed_ms))
            .collect();
        assert_eq!(
            v,
            vec![(1, 0b011, 1_000), (1, 0b100, 9_000), (3, 0b1, 9_100)]
        );
    }

    #[test]
    fn events_on_another_post_in_between_are_not_merged() {
        let got = aggregate(&[raw(1, 1, 0), raw(2, 1, 10), raw(1, 2, 20)], 1_000);
        assert_eq!(got.len(), 3);
    }

    #[derive(Debug)]
    struct Fixed(Result<Vec<RawAction>, ClientError>);
    #[async_trait]
    impl UserActionSequenceClient for Fixed {
        async fn fetch(&self, _: i64) -> Result<Vec<RawAction>, ClientError> {
            self.0.clone()
        }
    }

    fn hydrator(
        r: Result<Vec<RawAction>, ClientError>,
        max_len: usize,
    ) -> UserActionSeqQueryHydrator {
        let p = Params {
            uas_max_sequence_length: max_len,
            ..Params::default()
        };
        UserActionSeqQueryHydrator::new(Arc::new(Fixed(r)), Arc::new(ManualClock::new(1_000)), &p)
    }

    fn run(h: &UserActionSeqQueryHydrator) -> Result<ScoredPostsQuery, ComponentError> {
        futures_util::FutureExt::now_or_never(h.hydrate(&query())).expect("no waiting")
    }

    #[test]
    fn keeps_the_last_n_actions_with_metadata_and_an_all_false_mask() {
        let events: Vec<RawAction> = (1..=5).map(|i| raw(i, 1, i * 1_000_000)).collect();
        let q = run(&hydrator(Ok(events), 3)).expect("hydrated");
        let seq = q.user_action_sequence.expect("sequence set");
        let ids: Vec<i64> = seq.actions.iter().map(|a| a.post_id).collect();
        assert_eq!(ids, vec![3, 4, 5], "the oldest are dropped");
        assert_eq!(seq.first_sequence_time_ms, 3_000_000);
        assert_eq!(seq.last_sequence_time_ms, 5_000_000);
        assert_eq!(seq.new_event_mask, vec![false; 3]);
        assert_eq!(seq.aggregation_time_ms, 1_000_000);
        assert_eq!(seq.aggregation_provider, AGGREGATOR_NAME);
    }

    #[test]
    fn no_actions_an_error_or_only_empty_aggregates_fail() {
        assert!(run(&hydrator(Ok(vec![]), 10)).is_err());
        assert!(run(&hydrator(Err(ClientError::new("uas", "down")), 10)).is_err());
        assert!(run(&hydrator(Ok(vec![raw(1, 0, 5)]), 10)).is_err());
    }
}
