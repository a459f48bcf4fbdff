//! [`PhoenixEngine`]: the ranker, the retriever and the retrieval corpus
//! behind the `PhoenixRanker` / `PhoenixRetrieval` messages, on whichever
//! device the models were placed (`--device`). It turns wire requests into
//! the engine's requests (validating what the engine cannot: user 0,
//! product surfaces, action counts) and the engine's answers into wire
//! responses. Calls block (they are compute); the gRPC layer
//! (`grpc::phoenix`) runs them on rayon's pool or through a batcher.

use std::sync::Arc;

use foryou_engine::batcher::{BatchModel, RankRequest, RetrieveRequest, RetrieverBatch};
use foryou_engine::hash_embed::{CandidateItem, HistoryItem};
use foryou_engine::{
    Corpus, EngineError, Hit, ModelConfig, PhoenixRanker, PhoenixRetriever, RankerOutput,
};
use foryou_proto::v1 as pb;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineFailure {
    /// The request breaks a rule the server checks (user 0, a surface id
    /// outside the vocabulary, too many action flags).
    #[error("{0}")]
    InvalidArgument(String),
    /// The engine refused the request or failed; bad input is
    /// [`EngineError::Input`].
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The models and the corpus.
#[derive(Debug)]
pub struct PhoenixEngine {
    ranker: Arc<PhoenixRanker>,
    retriever: Arc<PhoenixRetriever>,
    corpus: Arc<Corpus>,
    retrieval: RetrieverBatch,
}

impl PhoenixEngine {
    /// An engine over these models and corpus.
    pub fn new(ranker: PhoenixRanker, retriever: PhoenixRetriever, corpus: Corpus) -> Self {
        let retriever = Arc::new(retriever);
        let corpus = Arc::new(corpus);
        let retrieval = RetrieverBatch::new(retriever.clone(), corpus.clone());
        Self {
            ranker: Arc::new(ranker),
            retriever,
            corpus,
            retrieval,
        }
    }

    /// The retriever (to build a corpus).
    pub fn retriever(&self) -> &PhoenixRetriever {
        &self.retriever
    }

    /// The corpus.
    pub fn corpus(&self) -> &Arc<Corpus> {
        &self.corpus
    }

    /// The ranker (shared with a batcher).
    pub fn ranker(&self) -> &Arc<PhoenixRanker> {
        &self.ranker
    }

    /// Validates a Predict request and turns it into the engine's request;
    /// `None` when there is nothing to score.
    pub fn rank_request(
        &self,
        req: &pb::PredictRequest,
    ) -> Result<Option<RankRequest>, EngineFailure> {
        let cfg = self.ranker.config();
        if req.candidates.is_empty() {
            return Ok(None);
        }
        check_user(req.user_id)?;
        let history = history_items(cfg, &req.history)?;
        let candidates = req
            .candidates
            .iter()
            .map(|c| {
                check_surface(cfg, c.product_surface, "candidates.product_surface")?;
                Ok(CandidateItem {
                    post_id: c.post_id,
                    author_id: c.author_id,
                    product_surface: c.product_surface,
                    created_s: c.created_at_s,
                    impression_s: req.impression_time_s,
                })
            })
            .collect::<Result<Vec<_>, EngineFailure>>()?;
        Ok(Some(RankRequest {
            user_id: req.user_id,
            history,
            candidates,
        }))
    }

    /// The Predict response for `req` from the ranker's output for it
    /// (`None`: nothing was scored).
    pub fn predict_response(
        req: &pb::PredictRequest,
        out: Option<&RankerOutput>,
    ) -> pb::PredictResponse {
        let request_id = req.request_id.unwrap_or_else(rand::random);
        let scores = match out {
            None => Vec::new(),
            Some(out) => {
                let a = out.num_actions;
                req.candidates
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let nc = out.num_continuous;
                        pb::CandidateScores {
                            post_id: c.post_id,
                            probabilities: out.probs[i * a..(i + 1) * a].to_vec(),
                            continuous: out
                                .continuous
                                .get(i * nc..(i + 1) * nc)
                                .map(<[f32]>::to_vec)
                                .unwrap_or_default(),
                        }
                    })
                    .collect()
            }
        };
        pb::PredictResponse {
            scores,
            prediction_request_id: request_id,
        }
    }

    /// Scores every candidate for the user: 19 probabilities each, in
    /// request order (one forward pass, no batching).
    pub fn predict(&self, req: &pb::PredictRequest) -> Result<pb::PredictResponse, EngineFailure> {
        let Some(r) = self.rank_request(req)? else {
            return Ok(Self::predict_response(req, None));
        };
        let out = self.ranker.rank_ids(
            &[(r.user_id, &r.history)],
            &[&r.candidates],
            r.candidates.len(),
            foryou_engine::SERVING_CHUNK,
        )?;
        Ok(Self::predict_response(req, Some(&out)))
    }

    /// The retrieval model over the corpus (shared with a batcher).
    pub fn retrieval(&self) -> &RetrieverBatch {
        &self.retrieval
    }

    /// Validates a Retrieve request and turns it into the engine's request;
    /// `None` when nothing can be returned.
    pub fn retrieve_request(
        &self,
        req: &pb::RetrieveRequest,
    ) -> Result<Option<RetrieveRequest>, EngineFailure> {
        if self.corpus.is_empty() || req.top_k == 0 {
            return Ok(None);
        }
        check_user(req.user_id)?;
        let history = history_items(self.retriever.config(), &req.history)?;
        Ok(Some(RetrieveRequest {
            user_id: req.user_id,
            history,
            k: usize::try_from(req.top_k).unwrap_or(usize::MAX),
            excluded_posts: req.excluded_post_ids.clone(),
            excluded_authors: req.excluded_author_ids.clone(),
        }))
    }

    /// The Retrieve response for the engine's hits.
    pub fn retrieve_response(hits: &[Hit]) -> pb::RetrieveResponse {
        pb::RetrieveResponse {
            posts: hits
                .iter()
                .map(|h| pb::RetrievedPost {
                    post_id: h.post_id,
                    author_id: h.author_id,
                    score: h.score,
                })
                .collect(),
        }
    }

    /// The `top_k` corpus posts nearest the user's representation, skipping
    /// excluded posts and authors; descending score, ties to the older row
    /// (one unbatched call).
    pub fn retrieve(
        &self,
        req: &pb::RetrieveRequest,
    ) -> Result<pb::RetrieveResponse, EngineFailure> {
        let Some(r) = self.retrieve_request(req)? else {
            return Ok(pb::RetrieveResponse::default());
        };
        let hits = self.retrieval.run(vec![r])?.pop().unwrap_or_default();
        Ok(Self::retrieve_response(&hits))
    }
}

fn check_user(user_id: i64) -> Result<(), EngineFailure> {
    if user_id == 0 {
        return Err(EngineFailure::InvalidArgument(
            "user_id must be specified".into(),
        ));
    }
    Ok(())
}

fn check_surface(cfg: &ModelConfig, s: u32, field: &str) -> Result<(), EngineFailure> {
    if s as usize >= cfg.product_surface_vocab_size {
        return Err(EngineFailure::InvalidArgument(format!(
            "{field} {s} is outside the vocabulary [0, {})",
            cfg.product_surface_vocab_size
        )));
    }
    Ok(())
}

/// Wire history → engine history (action flags to a bitmask).
fn history_items(
    cfg: &ModelConfig,
    h: &[pb::HistoryItem],
) -> Result<Vec<HistoryItem>, EngineFailure> {
    h.iter()
        .map(|item| {
            check_surface(cfg, item.product_surface, "history.product_surface")?;
            if item.actions.len() > cfg.num_actions {
                return Err(EngineFailure::InvalidArgument(format!(
                    "history item of post {} has {} action flags; the model has {}",
                    item.post_id,
                    item.actions.len(),
                    cfg.num_actions
                )));
            }
            let actions = item
                .actions
                .iter()
                .enumerate()
                .fold(0u64, |m, (i, &on)| m | (u64::from(on) << i));
            if !item.dwell_s.is_finite() {
                return Err(EngineFailure::InvalidArgument(format!(
                    "history item of post {} has dwell_s {}, expected a finite number of seconds",
                    item.post_id, item.dwell_s
                )));
            }
            Ok(HistoryItem {
                post_id: item.post_id,
                author_id: item.author_id,
                dwell_s: item.dwell_s,
                actions,
                product_surface: item.product_surface,
            })
        })
        .collect()
}
