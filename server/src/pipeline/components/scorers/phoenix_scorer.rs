//! §2.7 PhoenixScorer → `phoenix_scores`, `prediction_request_id`,
//! `last_scored_at_ms`. Runs only with a user action sequence. One request
//! id and one timestamp per call, shared by all candidates. Retweets are
//! scored as their source post (id and author). Each candidate looks up its
//! (source or own) id in the response: a miss leaves every score None but
//! still sets the id and the timestamp. No sequence: the candidates come
//! back unchanged. A failed call is the scorer's error: the framework then
//! skips it, so the candidates stay unchanged as upstream's silent no-op
//! leaves them (spec §4.3 note 3), but the feed's trace, debug
//! (`ranking_skipped`) and failure counter say so (issue 18).
//!
//! Our ranker returns probabilities (sigmoid of the logits) in head order,
//! so `p[i]` is read directly where upstream takes exp of log-probabilities.
//! `dwell_time` (CONT_DWELL_TIME) is the May 2026 continuous head's dwell
//! prediction (its column 1) when the model has one, else the 19th output.
//! Candidates carry their creation time (from the snowflake id) and the
//! request its impression time, for a May 2026 model's post-age buckets.

use std::sync::Arc;

use async_trait::async_trait;
use foryou_proto::v1 as pb;

use crate::clients::{IdMap, PhoenixRankerClient};
use crate::clock::Clock;
use crate::pipeline::framework::{ComponentError, Scorer};
use crate::pipeline::home_mixer::{Action, PhoenixScores, PostCandidate, ScoredPostsQuery};
use crate::pipeline::util::snowflake::created_ms;

/// Scores candidates with the Phoenix ranker.
#[derive(Debug, Clone)]
pub struct PhoenixScorer {
    client: Arc<dyn PhoenixRankerClient>,
    clock: Arc<dyn Clock>,
}

impl PhoenixScorer {
    /// Over this client.
    pub fn new(client: Arc<dyn PhoenixRankerClient>, clock: Arc<dyn Clock>) -> Self {
        Self { client, clock }
    }
}

/// Column of the continuous head holding the dwell-time prediction.
const CONTINUOUS_DWELL: usize = 1;

/// Probabilities in head order → scores; dwell time from the continuous
/// head when given (May 2026), else the 19th probability.
pub fn scores_from(probabilities: &[f32], continuous: &[f32]) -> PhoenixScores {
    let mut s = PhoenixScores::default();
    for a in Action::ALL {
        if let Some(p) = probabilities.get(a as usize) {
            s.set(a, f64::from(*p));
        }
    }
    s.set_dwell_time(
        continuous
            .get(CONTINUOUS_DWELL)
            .or_else(|| probabilities.get(Action::ALL.len()))
            .map(|v| f64::from(*v)),
    );
    s
}

#[async_trait]
impl Scorer<ScoredPostsQuery, PostCandidate> for PhoenixScorer {
    type Output = RankerFields;

    async fn score(
        &self,
        q: &ScoredPostsQuery,
        candidates: &[PostCandidate],
    ) -> Result<Vec<RankerFields>, ComponentError> {
        let Some(seq) = q.user_action_sequence.as_ref() else {
            // No sequence: every candidate keeps what it has.
            return Ok(candidates
                .iter()
                .map(|c| RankerFields {
                    phoenix_scores: c.phoenix_scores,
                    prediction_request_id: c.prediction_request_id,
                    last_scored_at_ms: c.last_scored_at_ms,
                })
                .collect());
        };
        let request_id: u64 = rand::random();
        let req = pb::PredictRequest {
            user_id: q.user_id,
            history: seq.to_history(),
            candidates: candidates
                .iter()
                .map(|c| pb::RankCandidate {
                    post_id: c.original_tweet_id(),
                    author_id: c.retweeted_user_id.unwrap_or(c.author_id),
                    product_surface: 0,
                    created_at_s: created_ms(c.original_tweet_id()).map_or(0, |ms| ms / 1000),
                })
                .collect(),
            request_id: Some(request_id),
            impression_time_s: self.clock.unix_ms() / 1000,
        };
        let resp = self
            .client
            .predict(req)
            .await
            .map_err(|e| ComponentError::failed(format!("ranker call: {e}")))?;
        let now_ms = self.clock.unix_ms();
        let by_id: IdMap<&pb::CandidateScores> =
            resp.scores.iter().map(|s| (s.post_id, s)).collect();
        Ok(candidates
            .iter()
            .map(|c| RankerFields {
                phoenix_scores: by_id
                    .get(&c.original_tweet_id())
                    .map(|s| scores_from(&s.probabilities, &s.continuous))
                    .unwrap_or_default(),
                prediction_request_id: Some(resp.prediction_request_id),
                last_scored_at_ms: Some(now_ms),
            })
            .collect())
    }

    fn update(&self, c: &mut PostCandidate, scored: RankerFields) {
        c.phoenix_scores = scored.phoenix_scores;
        c.prediction_request_id = scored.prediction_request_id;
        c.last_scored_at_ms = scored.last_scored_at_ms;
    }
}

/// The ranker's fields of one candidate.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RankerFields {
    /// The per-action probabilities.
    pub phoenix_scores: PhoenixScores,
    /// The Predict call's id.
    pub prediction_request_id: Option<u64>,
    /// When it was scored.
    pub last_scored_at_ms: Option<i64>,
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::clients::ClientError;
    use crate::clock::ManualClock;
    use crate::pipeline::components::filters::test_support::{post, query, retweet};
    use crate::pipeline::home_mixer::UserActionSequence;

    /// Answers every candidate but post 99 with p[i] = post_id/1000 + i/100.
    #[derive(Debug, Default)]
    struct FakeRanker {
        seen: Mutex<Vec<(i64, i64)>>,
        /// (created_at_s, impression_time_s) per candidate.
        times: Mutex<Vec<(i64, i64)>>,
        fail: bool,
    }

    #[async_trait]
    impl PhoenixRankerClient for FakeRanker {
        async fn predict(
            &self,
            req: pb::PredictRequest,
        ) -> Result<pb::PredictResponse, ClientError> {
            if self.fail {
                return Err(ClientError::new("phoenix", "down"));
            }
            *self.seen.lock().expect("lock") = req
                .candidates
                .iter()
                .map(|c| (c.post_id, c.author_id))
                .collect();
            *self.times.lock().expect("lock") = req
                .candidates
                .iter()
                .map(|c| (c.created_at_s, req.impression_time_s))
                .collect();
            Ok(pb::PredictResponse {
                scores: req
                    .candidates
                    .iter()
                    .filter(|c| c.post_id != 99)
                    .map(|c| pb::CandidateScores {
                        post_id: c.post_id,
                        probabilities: (0..19)
                            .map(|i| c.post_id as f32 / 1000.0 + i as f32 / 100.0)
                            .collect(),
                        // Post 10 as from a May 2026 model: a continuous head.
                        continuous: if c.post_id == 10 {
                            vec![0.9, 0.75, 0.1]
                        } else {
                            Vec::new()
                        },
                    })
                    .collect(),
                prediction_request_id: 77,
            })
        }
    }

    fn q_with_seq() -> ScoredPostsQuery {
        ScoredPostsQuery {
            user_action_sequence: Some(Arc::new(UserActionSequence::default())),
            ..query()
        }
    }

    /// Candidates `c` as the framework leaves them after the scorer.
    fn score(s: &PhoenixScorer, q: &ScoredPostsQuery, c: &[PostCandidate]) -> Vec<PostCandidate> {
        let out = futures_util::FutureExt::now_or_never(s.score(q, c))
            .expect("no waiting")
            .expect("never fails");
        assert_eq!(out.len(), c.len());
        let mut c = c.to_vec();
        for (c, o) in c.iter_mut().zip(out) {
            s.update(c, o);
        }
        c
    }

    #[test]
    fn retweets_are_scored_as_their_source_and_misses_keep_id_and_time() {
        let ranker = Arc::new(FakeRanker::default());
        let s = PhoenixScorer::new(ranker.clone(), Arc::new(ManualClock::new(5)));
        let cands = vec![post(10, 1), retweet(11, 2, 20, 3), post(99, 4)];
        let out = score(&s, &q_with_seq(), &cands);
        assert_eq!(
            *ranker.seen.lock().expect("lock"),
            vec![(10, 1), (20, 3), (99, 4)],
            "the retweet is sent as its source post and author"
        );
        assert!((out[0].phoenix_scores.get(Action::Favorite).expect("set") - 0.010).abs() < 1e-6);
        assert!((out[1].phoenix_scores.get(Action::Reply).expect("set") - 0.030).abs() < 1e-6);
        assert!((out[1].phoenix_scores.dwell_time().expect("set") - 0.200).abs() < 1e-6);
        // With a continuous head, dwell time is its column 1.
        assert!((out[0].phoenix_scores.dwell_time().expect("set") - 0.75).abs() < 1e-6);
        assert_eq!(out[2].phoenix_scores, PhoenixScores::default(), "a miss");
        for c in &out {
            assert_eq!(c.prediction_request_id, Some(77));
            assert_eq!(c.last_scored_at_ms, Some(5_000));
        }
    }

    #[test]
    fn candidates_carry_their_snowflake_creation_time_and_the_impression_time() {
        let ranker = Arc::new(FakeRanker::default());
        let s = PhoenixScorer::new(ranker.clone(), Arc::new(ManualClock::new(1_800_000_000)));
        let id = crate::pipeline::util::snowflake::id_at(1_799_999_000_999) + 7;
        score(&s, &q_with_seq(), &[post(id, 1), post(10, 2)]);
        assert_eq!(
            *ranker.times.lock().expect("lock"),
            vec![
                (1_799_999_000, 1_800_000_000),
                // A small id's snowflake time is the Twitter epoch.
                (1_288_834_974, 1_800_000_000)
            ]
        );
    }

    #[test]
    fn no_sequence_is_a_no_op_and_a_failed_call_is_the_scorers_error() {
        let cands = vec![post(10, 1)];
        let ok = PhoenixScorer::new(
            Arc::new(FakeRanker::default()),
            Arc::new(ManualClock::new(5)),
        );
        assert_eq!(score(&ok, &query(), &cands), cands);
        let failing = PhoenixScorer::new(
            Arc::new(FakeRanker {
                fail: true,
                ..FakeRanker::default()
            }),
            Arc::new(ManualClock::new(5)),
        );
        let err = futures_util::FutureExt::now_or_never(failing.score(&q_with_seq(), &cands))
            .expect("no waiting")
            .expect_err("a failed call fails the scorer (the framework skips it)");
        assert!(err.to_string().contains("ranker call: "), "{err}");
        assert!(err.to_string().contains("down"), "{err}");
    }
}
