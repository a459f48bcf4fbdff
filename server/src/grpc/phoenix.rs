//! `PhoenixRanker` and `PhoenixRetrieval` over gRPC: the engine's blocking
//! calls on the blocking pool, errors as statuses.

use std::sync::Arc;
use std::time::Instant;

use foryou_proto::v1 as pb;
use foryou_proto::v1::phoenix_ranker_server::{PhoenixRanker, PhoenixRankerServer};
use foryou_proto::v1::phoenix_retrieval_server::{PhoenixRetrieval, PhoenixRetrievalServer};
use tonic::codec::CompressionEncoding::{Gzip, Zstd};
use tonic::{Request, Response, Status};

use foryou_engine::EngineError;
use foryou_engine::batcher::{BatchError, BatchModel, Batcher, RankerBatch, RetrieverBatch};

use super::limits::MessageLimits;
use super::status::ServiceError;
use crate::config::EngineArgs;
use crate::phoenix::{EngineFailure, PhoenixEngine, ScoringHealth};

/// Counter: candidates whose ranker token came from the ranker's token
/// cache (`--rank-token-cache`).
pub const TOKEN_CACHE_HITS: &str = "foryou_ranker_token_cache_hits_total";
/// Counter: candidates whose ranker token was built (cache misses).
pub const TOKEN_CACHE_MISSES: &str = "foryou_ranker_token_cache_misses_total";

/// Both Phoenix services over one engine.
///
/// Engine calls run on rayon's pool (one worker per core), so the engine's
/// own parallel loops (gemm splits, norms) run in-pool: a lone request
/// spreads over idle workers, concurrent requests each keep one without
/// cross-thread hand-offs. At most `concurrency` calls are in the pool at
/// once (one per worker by default); the rest wait in line without holding
/// a thread. A caller that gives up while waiting (its deadline or the
/// pipeline's component budget passed) never starts its call, so an
/// overloaded server does not burn CPU on answers nobody will read.
#[derive(Debug, Clone)]
pub struct PhoenixService {
    engine: Arc<PhoenixEngine>,
    permits: Arc<tokio::sync::Semaphore>,
    ranker_batcher: Option<Arc<Batcher<RankerBatch>>>,
    retrieval_batcher: Option<Arc<Batcher<RetrieverBatch>>>,
    scoring: Arc<ScoringHealth>,
}

/// One request through a batcher, its errors as service errors. Dropping
/// the returned future (the caller went away) drops the ticket, and the
/// batcher then skips the request before compute.
async fn batched<M: BatchModel>(
    batcher: &Batcher<M>,
    request: M::Request,
    deadline: Option<Instant>,
) -> Result<M::Response, ServiceError> {
    batcher
        .submit(request, deadline)
        .map_err(batch_error)?
        .await
        .map_err(|_| ServiceError::Internal("batcher stopped".into()))?
        .map_err(batch_error)
}

/// An answer whose scores are all finite; otherwise the engine failed
/// (INTERNAL, counted against the ranker's health): NaN or Inf scores would
/// rank a feed by garbage while every call reported OK.
fn finite(out: pb::PredictResponse) -> Result<pb::PredictResponse, ServiceError> {
    let bad = out
        .scores
        .iter()
        .filter(|s| {
            !s.probabilities
                .iter()
                .chain(&s.continuous)
                .all(|p| p.is_finite())
        })
        .count();
    if bad > 0 {
        return Err(ServiceError::Internal(format!(
            "the engine produced non-finite scores for {bad} of {} candidates",
            out.scores.len()
        )));
    }
    Ok(out)
}

fn batch_error(e: BatchError) -> ServiceError {
    match e {
        BatchError::Overloaded(_) => ServiceError::Overloaded,
        BatchError::DeadlineExceeded(waited) => ServiceError::DeadlineExceeded(format!(
            "deadline passed after {:.1} ms in the batch queue; not computed",
            waited.as_secs_f64() * 1e3
        )),
        other => ServiceError::Internal(other.to_string()),
    }
}

impl From<EngineFailure> for ServiceError {
    /// Requests the server or the engine refuses are INVALID_ARGUMENT; an
    /// engine that fails is INTERNAL (with the engine's message).
    fn from(e: EngineFailure) -> Self {
        match e {
            EngineFailure::Engine(EngineError::Input(m)) => ServiceError::InvalidArgument(m),
            EngineFailure::Engine(other) => ServiceError::Internal(other.to_string()),
            refused @ (EngineFailure::InvalidArgument(_)
            | EngineFailure::TooMany { .. }
            | EngineFailure::TopK(_)) => ServiceError::InvalidArgument(refused.to_string()),
        }
    }
}

impl PhoenixService {
    /// Services over `engine`, one call at a time per rayon worker.
    pub fn new(engine: Arc<PhoenixEngine>) -> Self {
        Self::with_concurrency(engine, rayon::current_num_threads())
    }

    /// Services over `engine` running at most `n` calls at once.
    pub fn with_concurrency(engine: Arc<PhoenixEngine>, n: usize) -> Self {
        Self {
            engine,
            permits: Arc::new(tokio::sync::Semaphore::new(n.max(1))),
            ranker_batcher: None,
            retrieval_batcher: None,
            scoring: Arc::new(ScoringHealth::default()),
        }
    }

    /// Services over `engine` with the batching `args` ask for: Predict
    /// and/or Retrieve through a dynamic batcher (one batching thread;
    /// requests of the same bucket share a forward pass).
    pub fn from_args(engine: Arc<PhoenixEngine>, args: &EngineArgs) -> std::io::Result<Self> {
        let mut s = Self::new(engine);
        if let Some(policy) = args.rank_batching(s.engine.ranker().device()) {
            let model = RankerBatch::new(s.engine.ranker().clone());
            let t = Instant::now();
            match model.warm_up(&args.rank_warm_buckets) {
                Ok(buckets) => tracing::info!(
                    ?buckets,
                    ms = t.elapsed().as_secs_f64() * 1e3,
                    "ranker buckets warmed"
                ),
                Err(e) => tracing::warn!(error = %e, "ranker warm-up failed; serving cold"),
            }
            s.ranker_batcher = Some(Arc::new(Batcher::start(model, policy)?));
        }
        if let Some(policy) = args.retrieve_batching(s.engine.retriever().device()) {
            let model = s.engine.retrieval().clone();
            s.retrieval_batcher = Some(Arc::new(Batcher::start(model, policy)?));
        }
        Ok(s)
    }

    /// Runs `f` on the engine on rayon's pool, once a permit is free; a
    /// panic becomes an internal error.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&PhoenixEngine) -> Result<T, EngineFailure> + Send + 'static,
    ) -> Result<T, ServiceError> {
        let engine = self.engine.clone();
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| ServiceError::Internal(format!("phoenix permits: {e}")))?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        rayon::spawn(move || {
            let _permit = permit;
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&engine)));
            let _ = tx.send(out);
        });
        match rx.await {
            Ok(Ok(result)) => result.map_err(ServiceError::from),
            Ok(Err(_)) => Err(ServiceError::Internal("phoenix worker panicked".into())),
            Err(_) => Err(ServiceError::Internal("phoenix worker stopped".into())),
        }
    }

    /// Whether the ranker can score, from the answers so far.
    pub fn scoring_health(&self) -> &Arc<ScoringHealth> {
        &self.scoring
    }

    /// Scores a one-candidate request (a probe of the ranker) and records
    /// its outcome once: a success only when it is scored (every answer's
    /// scores are checked finite).
    pub async fn probe(&self) -> Result<(), ServiceError> {
        let req = pb::PredictRequest {
            user_id: 1,
            candidates: vec![pb::RankCandidate {
                post_id: 1,
                author_id: 1,
                product_surface: 0,
                created_at_s: 0,
            }],
            ..Default::default()
        };
        let out =
            self.predict_unrecorded(req, None)
                .await
                .and_then(|out| match out.scores.first() {
                    Some(_) => Ok(()),
                    None => Err(ServiceError::Internal("the probe got no score".into())),
                });
        self.record(&out);
        out
    }

    /// Predict without the transport; a call not started by `deadline` is
    /// answered DEADLINE_EXCEEDED without compute. Engine failures and
    /// successes go to [`Self::scoring_health`].
    pub async fn predict_inner(
        &self,
        req: pb::PredictRequest,
        deadline: Option<Instant>,
    ) -> Result<pb::PredictResponse, ServiceError> {
        let out = self.predict_unrecorded(req, deadline).await;
        self.record(&out);
        out
    }

    /// An answer counts for the ranker's health; a refused, shed or late
    /// call says nothing about the model.
    fn record<T>(&self, out: &Result<T, ServiceError>) {
        match out {
            Ok(_) => self.scoring.record_success(),
            Err(ServiceError::Internal(why)) => self.scoring.record_failure(why),
            Err(_) => {}
        }
    }

    async fn predict_unrecorded(
        &self,
        req: pb::PredictRequest,
        deadline: Option<Instant>,
    ) -> Result<pb::PredictResponse, ServiceError> {
        let out = match &self.ranker_batcher {
            None => self.blocking(move |e| e.predict(&req)).await?,
            Some(batcher) => match self.engine.rank_request(&req)? {
                None => PhoenixEngine::predict_response(&req, None),
                Some(rank) => {
                    let out = batched(batcher, rank, deadline).await?;
                    PhoenixEngine::predict_response(&req, Some(&out))
                }
            },
        };
        if let Some((hits, misses)) = self.engine.ranker().token_cache_counts() {
            metrics::counter!(TOKEN_CACHE_HITS).absolute(hits);
            metrics::counter!(TOKEN_CACHE_MISSES).absolute(misses);
        }
        finite(out)
    }

    /// Retrieve without the transport; `deadline` as for
    /// [`Self::predict_inner`].
    pub async fn retrieve_inner(
        &self,
        req: pb::RetrieveRequest,
        deadline: Option<Instant>,
    ) -> Result<pb::RetrieveResponse, ServiceError> {
        let Some(batcher) = &self.retrieval_batcher else {
            return self.blocking(move |e| e.retrieve(&req)).await;
        };
        let Some(r) = self.engine.retrieve_request(&req)? else {
            return Ok(pb::RetrieveResponse::default());
        };
        let hits = batched(batcher, r, deadline).await?;
        Ok(PhoenixEngine::retrieve_response(&hits))
    }

    /// The two tonic services with compression and message limits.
    pub fn into_servers(
        self,
        limits: MessageLimits,
    ) -> (PhoenixRankerServer<Self>, PhoenixRetrievalServer<Self>) {
        let ranker = PhoenixRankerServer::new(self.clone())
            .accept_compressed(Gzip)
            .accept_compressed(Zstd)
            .send_compressed(Zstd)
            .send_compressed(Gzip)
            .max_decoding_message_size(limits.request_bytes)
            .max_encoding_message_size(limits.response_bytes);
        let retrieval = PhoenixRetrievalServer::new(self)
            .accept_compressed(Gzip)
            .accept_compressed(Zstd)
            .send_compressed(Zstd)
            .send_compressed(Gzip)
            .max_decoding_message_size(limits.request_bytes)
            .max_encoding_message_size(limits.response_bytes);
        (ranker, retrieval)
    }
}

#[tonic::async_trait]
impl PhoenixRanker for PhoenixService {
    async fn predict(
        &self,
        request: Request<pb::PredictRequest>,
    ) -> Result<Response<pb::PredictResponse>, Status> {
        let deadline = super::deadline::of_request(&request);
        Ok(Response::new(
            self.predict_inner(request.into_inner(), deadline).await?,
        ))
    }
}

#[tonic::async_trait]
impl PhoenixRetrieval for PhoenixService {
    async fn retrieve(
        &self,
        request: Request<pb::RetrieveRequest>,
    ) -> Result<Response<pb::RetrieveResponse>, Status> {
        let deadline = super::deadline::of_request(&request);
        Ok(Response::new(
            self.retrieve_inner(request.into_inner(), deadline).await?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use foryou_engine::{Corpus, CorpusItem};

    use super::*;
    use crate::phoenix::engine::{
        MAX_EXCLUDED_IDS, MAX_PREDICT_CANDIDATES, MAX_RETRIEVE_TOP_K, MIN_HISTORY_LIMIT,
    };

    /// Corpus posts of the test engine.
    const CORPUS: i64 = 20;

    /// Demo-shaped models (S 32) with 64-row hash tables, and a corpus of
    /// [`CORPUS`] posts by 4 authors.
    fn service() -> PhoenixService {
        let models = crate::phoenix::models::small_demo_models();
        let dim = models.retriever.config().emb_size;
        let items = (1..=CORPUS)
            .map(|i| CorpusItem {
                post_id: 100 + i,
                author_id: i % 4,
            })
            .collect();
        let reps = (0..CORPUS as usize * dim)
            .map(|i| (i % 7) as f32 * 0.1)
            .collect();
        let corpus = Corpus::from_representations(items, reps, dim).expect("corpus");
        let engine = PhoenixEngine::new(models.ranker, models.retriever, corpus);
        PhoenixService::new(Arc::new(engine))
    }

    fn candidates(n: usize) -> Vec<pb::RankCandidate> {
        (1..=n as i64)
            .map(|i| pb::RankCandidate {
                post_id: 1000 + i,
                author_id: i % 97,
                product_surface: 1,
                created_at_s: 0,
            })
            .collect()
    }

    fn history(n: usize, product_surface: u32) -> Vec<pb::HistoryItem> {
        (1..=n as i64)
            .map(|i| pb::HistoryItem {
                post_id: 50 + i,
                author_id: i % 13,
                actions: vec![true],
                product_surface,
                ..Default::default()
            })
            .collect()
    }

    /// The INVALID_ARGUMENT message of a refused call.
    fn refused<T: std::fmt::Debug>(r: Result<T, ServiceError>) -> String {
        match r {
            Err(e) => {
                let status = tonic::Status::from(e);
                assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
                status.message().to_owned()
            }
            Ok(v) => panic!("expected INVALID_ARGUMENT, got {v:?}"),
        }
    }

    #[tokio::test]
    async fn predict_over_the_candidate_limit_is_invalid_argument_and_at_it_is_scored() {
        let svc = service();
        let ask = |n| pb::PredictRequest {
            user_id: 42,
            history: history(5, 1),
            candidates: candidates(n),
            ..Default::default()
        };
        let m = refused(
            svc.predict_inner(ask(MAX_PREDICT_CANDIDATES + 1), None)
                .await,
        );
        assert_eq!(
            m,
            format!(
                "candidates has {} entries; the limit is {MAX_PREDICT_CANDIDATES}",
                MAX_PREDICT_CANDIDATES + 1
            )
        );
        let scored = svc
            .predict_inner(ask(MAX_PREDICT_CANDIDATES), None)
            .await
            .expect("at the limit");
        assert_eq!(scored.scores.len(), MAX_PREDICT_CANDIDATES);
    }

    #[tokio::test]
    async fn history_over_its_limit_is_invalid_argument_and_only_the_newest_s_items_are_read() {
        let svc = service();
        let ask = |history| pb::PredictRequest {
            user_id: 42,
            history,
            candidates: candidates(3),
            request_id: Some(7),
            ..Default::default()
        };
        // Demo models: S = 32, so the limit is the floor.
        let m = refused(
            svc.predict_inner(ask(history(MIN_HISTORY_LIMIT + 1, 1)), None)
                .await,
        );
        assert!(
            m.starts_with("history has 4097 entries; the limit is 4096"),
            "{m}"
        );
        let retrieve = pb::RetrieveRequest {
            user_id: 42,
            history: history(MIN_HISTORY_LIMIT + 1, 1),
            top_k: 5,
            ..Default::default()
        };
        let m = refused(svc.retrieve_inner(retrieve, None).await);
        assert!(m.contains("history") && m.contains("4096"), "{m}");
        // At the limit: accepted, and items older than the newest 32 are
        // not even read (their surface 99 is outside the vocabulary).
        let mut long = history(MIN_HISTORY_LIMIT - 32, 99);
        let newest = history(32, 1);
        long.extend(newest.iter().cloned());
        let at_limit = svc
            .predict_inner(ask(long), None)
            .await
            .expect("at the limit");
        let only_newest = svc.predict_inner(ask(newest), None).await.expect("32");
        assert_eq!(at_limit, only_newest);
    }

    #[tokio::test]
    async fn retrieve_top_k_over_its_limit_is_invalid_argument_and_at_it_returns_the_corpus() {
        let svc = service();
        let ask = |top_k| pb::RetrieveRequest {
            user_id: 42,
            history: history(5, 1),
            top_k,
            ..Default::default()
        };
        let m = refused(svc.retrieve_inner(ask(MAX_RETRIEVE_TOP_K + 1), None).await);
        assert_eq!(m, "top_k is 10001; the limit is 10000");
        let m = refused(svc.retrieve_inner(ask(u32::MAX), None).await);
        assert!(m.contains("4294967295") && m.contains("10000"), "{m}");
        let all = svc
            .retrieve_inner(ask(MAX_RETRIEVE_TOP_K), None)
            .await
            .expect("at the limit");
        assert_eq!(all.posts.len(), CORPUS as usize);
    }

    #[tokio::test]
    async fn retrieve_excluded_id_lists_over_their_limit_are_invalid_argument_and_at_it_pass() {
        let svc = service();
        let ids = |n: usize| (1..=n as i64).collect::<Vec<_>>();
        for field in ["excluded_post_ids", "excluded_author_ids"] {
            let ask = |n| {
                let mut r = pb::RetrieveRequest {
                    user_id: 42,
                    history: history(5, 1),
                    top_k: 5,
                    ..Default::default()
                };
                match field {
                    "excluded_post_ids" => r.excluded_post_ids = ids(n),
                    _ => r.excluded_author_ids = ids(n),
                }
                r
            };
            let m = refused(svc.retrieve_inner(ask(MAX_EXCLUDED_IDS + 1), None).await);
            assert_eq!(
                m,
                format!(
                    "{field} has {} entries; the limit is {MAX_EXCLUDED_IDS}",
                    MAX_EXCLUDED_IDS + 1
                )
            );
            let ok = svc.retrieve_inner(ask(MAX_EXCLUDED_IDS), None).await;
            assert!(ok.is_ok(), "{field} at the limit: {ok:?}");
        }
    }

    #[test]
    fn retrieve_top_k_limit_fits_the_gpu_top_k_kernel() {
        // Read from the source: the kernel crate builds only with `cuda`.
        let src = include_str!("../../../kernels/src/cuda/topk.rs");
        let max_k: u32 = src
            .lines()
            .find_map(|l| l.strip_prefix("pub const MAX_K: usize = "))
            .and_then(|v| v.trim_end_matches(';').parse().ok())
            .expect("kernels/src/cuda/topk.rs declares MAX_K");
        assert!(
            MAX_RETRIEVE_TOP_K <= max_k,
            "MAX_RETRIEVE_TOP_K {MAX_RETRIEVE_TOP_K} > the kernel's MAX_K {max_k}"
        );
    }

    #[test]
    fn batcher_errors_become_the_statuses_callers_expect() {
        let code = |e| tonic::Status::from(batch_error(e)).code();
        assert_eq!(
            code(BatchError::Overloaded(3)),
            tonic::Code::ResourceExhausted
        );
        assert_eq!(
            code(BatchError::DeadlineExceeded(
                std::time::Duration::from_millis(5)
            )),
            tonic::Code::DeadlineExceeded
        );
        let failed = BatchError::Model(Arc::new(EngineError::Input("x".into())));
        assert_eq!(code(failed), tonic::Code::Internal);
        assert_eq!(code(BatchError::Panicked), tonic::Code::Internal);
    }

    #[test]
    fn an_answer_with_a_non_finite_score_is_an_engine_failure() {
        let scores = |p: f32, c: f32| pb::CandidateScores {
            post_id: 1,
            probabilities: vec![0.5, p],
            continuous: vec![c],
        };
        let answer = |s: Vec<pb::CandidateScores>| pb::PredictResponse {
            scores: s,
            prediction_request_id: 9,
        };
        let ok = finite(answer(vec![scores(0.1, 2.0), scores(0.2, -1.0)])).expect("finite");
        assert_eq!(ok.scores.len(), 2, "a finite answer passes unchanged");
        // INTERNAL is what the ranker's health counts: three such answers in
        // a row (FAILURES_TO_UNABLE) and the ranker reports it cannot score.
        let service = service();
        for (p, c) in [
            (f32::NAN, 0.0),
            (0.1, f32::INFINITY),
            (f32::NEG_INFINITY, 0.0),
        ] {
            assert!(service.scoring_health().is_able());
            let e = finite(answer(vec![scores(0.1, 0.0), scores(p, c)]))
                .expect_err("a non-finite score");
            assert!(
                matches!(&e, ServiceError::Internal(m) if m.contains("1 of 2 candidates")),
                "{e}"
            );
            service.record(&Err::<(), _>(e));
        }
        assert!(!service.scoring_health().is_able());
    }
}
