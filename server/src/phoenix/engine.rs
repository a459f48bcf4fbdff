//! [`PhoenixEngine`]: the ranker, the retriever and the retrieval corpus
//! (the live index, [`LiveRetrieval`], or an immutable [`Corpus`]) behind
//! the `PhoenixRanker` / `PhoenixRetrieval` messages, on whichever device
//! the models were placed (`--device`). It turns wire requests into
//! the engine's requests (validating what the engine cannot: user 0,
//! product surfaces, action counts) and the engine's answers into wire
//! responses. Calls block (they are compute); the gRPC layer
//! (`grpc::phoenix`) runs them on rayon's pool or through a batcher.
//!
//! Request sizes are bounded (ours, spec §4.4): candidates
//! ([`MAX_PREDICT_CANDIDATES`]), history ([`max_history_items`]), `top_k`
//! ([`MAX_RETRIEVE_TOP_K`]) and each excluded-id list
//! ([`MAX_EXCLUDED_IDS`]). Without them the only bound was the 128 MiB
//! message limit: a Predict with 1 M candidates cost 26 s of CPU and
//! +2.1 GB (issue 18). Over a limit is INVALID_ARGUMENT naming it. Only the
//! newest `history_seq_len` history items are converted: the model reads
//! no others.

use std::sync::Arc;

use foryou_engine::batcher::{BatchModel, RankRequest, RetrieveRequest, RetrieverBatch};
use foryou_engine::hash_embed::{CandidateItem, HistoryItem};
use foryou_engine::{
    Corpus, EngineError, Hit, ModelConfig, PhoenixRanker, PhoenixRetriever, PostSearch,
    RankerOutput,
};
use foryou_proto::v1 as pb;

use super::LiveRetrieval;

/// Most candidates one Predict may score. The home mixer sends at most
/// PHOENIX_MAX_RESULTS + THUNDER_MAX_RESULTS = 2 200; cost grows linearly
/// with the count (1 M candidates: 26 s of CPU, +2.1 GB), so 10 000 keeps
/// ~4.5× headroom at about a hundredth of that.
pub const MAX_PREDICT_CANDIDATES: usize = 10_000;

/// History items accepted per slot of the model's history (S =
/// `history_seq_len`). The model reads only the newest S; the rest is
/// decoded and dropped, and this bounds that waste.
pub const HISTORY_ITEMS_PER_SLOT: usize = 10;

/// The history limit whatever S: the home mixer sends up to
/// UAS_MAX_SEQUENCE_LENGTH (1 024) items to every model, so a model with a
/// short history (the demo's S is 32) must still take them; 4× headroom.
pub const MIN_HISTORY_LIMIT: usize = 4096;

/// Largest Retrieve `top_k`. The home mixer asks PHOENIX_MAX_RESULTS
/// (1 000). The GPU top-k kernel returns at most 16 384 per call
/// (`MAX_K` in `kernels/src/cuda/topk.rs`; a test pins this below it), so
/// every accepted k can stay on the kernel; the search asks k plus the
/// excluded rows, so heavy exclusions may still fall back to the CPU.
pub const MAX_RETRIEVE_TOP_K: u32 = 10_000;

/// Most ids in `excluded_post_ids`, and in `excluded_author_ids`. The home
/// mixer excludes the viewer's follows and the viewer (PhoenixSource cuts
/// the list to fit); X caps most accounts at 5 000 follows, so 100 000
/// admits any real list while bounding the exclusion set (one hash lookup
/// per id).
pub const MAX_EXCLUDED_IDS: usize = 100_000;

/// The most history items a request to a model with this config may carry:
/// [`HISTORY_ITEMS_PER_SLOT`] × S, and at least [`MIN_HISTORY_LIMIT`].
pub fn max_history_items(cfg: &ModelConfig) -> usize {
    cfg.history_seq_len
        .saturating_mul(HISTORY_ITEMS_PER_SLOT)
        .max(MIN_HISTORY_LIMIT)
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineFailure {
    /// The request breaks a rule the server checks (user 0, a surface id
    /// outside the vocabulary, too many action flags).
    #[error("{0}")]
    InvalidArgument(String),
    /// A request list longer than its limit.
    #[error("{field} has {count} entries; the limit is {limit}")]
    TooMany {
        /// The request field.
        field: &'static str,
        /// Its length.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// `top_k` above [`MAX_RETRIEVE_TOP_K`].
    #[error("top_k is {0}; the limit is {MAX_RETRIEVE_TOP_K}")]
    TopK(u32),
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
    corpus: Arc<dyn PostSearch>,
    live: Option<Arc<LiveRetrieval>>,
    retrieval: RetrieverBatch,
}

impl PhoenixEngine {
    /// An engine over these models and an immutable corpus.
    pub fn new(ranker: PhoenixRanker, retriever: PhoenixRetriever, corpus: Corpus) -> Self {
        Self::over(
            Arc::new(ranker),
            Arc::new(retriever),
            Arc::new(corpus),
            None,
        )
    }

    /// An engine whose retrieval searches `live`'s index (the retriever
    /// must be the one `live` encodes with).
    pub fn live(
        ranker: Arc<PhoenixRanker>,
        retriever: Arc<PhoenixRetriever>,
        live: Arc<LiveRetrieval>,
    ) -> Self {
        let reader = Arc::new(live.reader());
        Self::over(ranker, retriever, reader, Some(live))
    }

    fn over(
        ranker: Arc<PhoenixRanker>,
        retriever: Arc<PhoenixRetriever>,
        corpus: Arc<dyn PostSearch>,
        live: Option<Arc<LiveRetrieval>>,
    ) -> Self {
        let retrieval = RetrieverBatch::new(retriever.clone(), corpus.clone());
        Self {
            ranker,
            retriever,
            corpus,
            live,
            retrieval,
        }
    }

    /// The retriever (to build a corpus).
    pub fn retriever(&self) -> &PhoenixRetriever {
        &self.retriever
    }

    /// What retrieval searches.
    pub fn corpus(&self) -> &Arc<dyn PostSearch> {
        &self.corpus
    }

    /// The live index, when retrieval follows the post stream.
    pub fn live_retrieval(&self) -> Option<&Arc<LiveRetrieval>> {
        self.live.as_ref()
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
        at_most("candidates", req.candidates.len(), MAX_PREDICT_CANDIDATES)?;
        at_most("history", req.history.len(), max_history_items(cfg))?;
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
        let cfg = self.retriever.config();
        if req.top_k > MAX_RETRIEVE_TOP_K {
            return Err(EngineFailure::TopK(req.top_k));
        }
        at_most("history", req.history.len(), max_history_items(cfg))?;
        at_most(
            "excluded_post_ids",
            req.excluded_post_ids.len(),
            MAX_EXCLUDED_IDS,
        )?;
        at_most(
            "excluded_author_ids",
            req.excluded_author_ids.len(),
            MAX_EXCLUDED_IDS,
        )?;
        if self.corpus.is_empty() || req.top_k == 0 {
            return Ok(None);
        }
        check_user(req.user_id)?;
        let history = history_items(cfg, &req.history)?;
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

/// `count` entries of `field` against `limit`.
fn at_most(field: &'static str, count: usize, limit: usize) -> Result<(), EngineFailure> {
    if count > limit {
        return Err(EngineFailure::TooMany {
            field,
            count,
            limit,
        });
    }
    Ok(())
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

/// Wire history → engine history (action flags to a bitmask), the newest
/// `history_seq_len` items only: the model reads no others, so older items
/// are neither converted nor checked.
fn history_items(
    cfg: &ModelConfig,
    h: &[pb::HistoryItem],
) -> Result<Vec<HistoryItem>, EngineFailure> {
    h[h.len().saturating_sub(cfg.history_seq_len)..]
        .iter()
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
