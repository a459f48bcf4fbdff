//! Dynamic request batching in front of a model (DESIGN.md §5): callers
//! submit single requests, one batching thread groups them and runs the
//! model once per batch.
//!
//! * **Queue**: a crossbeam channel with admission bounded by a count of
//!   the requests waiting (in the channel or held by the batching thread).
//!   A full queue rejects at once with [`BatchError::Overloaded`]; nothing
//!   waits to get in.
//! * **Forming a batch**: the oldest waiting request opens it; requests of
//!   the same shape bucket join until `max_batch_size`, or until
//!   `max_queue_delay` has passed since the oldest one was queued (the
//!   thread waits only while a full batch cannot be formed). Requests of
//!   other buckets keep their place for the next batch.
//! * **Before compute**: a request whose caller has gone is dropped; one
//!   past its deadline is answered [`BatchError::DeadlineExceeded`] and never
//!   computed.
//! * **Results** go back through one oneshot channel per request; a model
//!   error or panic fails that batch's requests, not the thread.
//! * **Tracing**: a request carries its caller's span; the batch's compute
//!   span follows from each of them, so a request can be followed from the
//!   gRPC handler through the queue to the engine call.
//! * **Metrics**: queue time, batch size, compute time, padding share
//!   (histograms); shed requests by reason (counter).

pub mod ranker;
pub mod retriever;
mod worker;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::EngineError;

pub use ranker::{RankRequest, RankerBatch, candidate_bucket};
pub use retriever::{RetrieveRequest, RetrieverBatch};
pub use worker::Batcher;

/// Queue time of a request (enqueue to compute start), seconds.
pub const QUEUE_SECONDS: &str = "foryou_batcher_queue_seconds";
/// Requests per computed batch.
pub const BATCH_SIZE: &str = "foryou_batcher_batch_size";
/// Model time per batch, seconds.
pub const COMPUTE_SECONDS: &str = "foryou_batcher_compute_seconds";
/// Share of a ranker batch's candidate slots that are padding (0 to 1).
pub const PADDING_RATIO: &str = "foryou_batcher_padding_ratio";
/// Requests answered without compute, by reason.
pub const SHED_TOTAL: &str = "foryou_batcher_shed_total";

/// Batching policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Most requests per batch (at least 1).
    pub max_batch_size: usize,
    /// Longest a request waits for company once it is the oldest in line.
    pub max_queue_delay: Duration,
    /// Requests that may wait at once; one more is rejected.
    pub queue_capacity: usize,
    /// Threads computing batches at once (at least 1).
    pub workers: usize,
}

impl Default for BatchPolicy {
    fn default() -> Self {
        Self {
            max_batch_size: 8,
            max_queue_delay: Duration::from_millis(2),
            queue_capacity: 1024,
            workers: 1,
        }
    }
}

/// Why a request got no result.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BatchError {
    /// The queue was full when it was submitted.
    #[error("batcher queue full ({0} waiting), retry later")]
    Overloaded(usize),
    /// Its deadline passed before compute started.
    #[error("deadline passed after {0:?} in the queue")]
    DeadlineExceeded(Duration),
    /// The model failed on its batch (the engine's error, shared by the
    /// batch's requests).
    #[error("model failed: {0}")]
    Model(#[source] Arc<EngineError>),
    /// The model returned a different number of answers than requests.
    #[error("model returned {got} answers for {want} requests")]
    Answers {
        /// Answers returned.
        got: usize,
        /// Requests in the batch.
        want: usize,
    },
    /// The model panicked on the batch.
    #[error("model panicked")]
    Panicked,
    /// The batcher has stopped.
    #[error("batcher stopped")]
    Stopped,
}

/// What the batcher runs: a model that takes a batch of requests of one
/// shape bucket and answers each, in order. Workers share it, hence `&self`.
pub trait BatchModel: Send + Sync + 'static {
    /// One caller's request.
    type Request: Send + 'static;
    /// One caller's answer.
    type Response: Send + 'static;
    /// Requests with equal keys may share a batch (e.g. history and
    /// candidate lengths rounded up to a few sizes).
    fn bucket(request: &Self::Request) -> u64 {
        let _ = request;
        0
    }
    /// Runs one batch; must return one answer per request, in order.
    fn run(&self, batch: Vec<Self::Request>) -> Result<Vec<Self::Response>, EngineError>;
}

/// The receiving end of one submitted request.
pub type Ticket<R> = tokio::sync::oneshot::Receiver<Result<R, BatchError>>;

/// A queued request.
pub(crate) struct Job<Req, Resp> {
    pub(crate) request: Req,
    pub(crate) bucket: u64,
    pub(crate) enqueued: Instant,
    pub(crate) deadline: Option<Instant>,
    /// The caller's span at submission.
    pub(crate) span: tracing::Span,
    pub(crate) reply: tokio::sync::oneshot::Sender<Result<Resp, BatchError>>,
}

/// Counts kept for tests and `Debug` (the metrics facade has the rest).
#[derive(Debug, Default)]
pub struct BatchStats {
    /// Batches computed.
    pub batches: std::sync::atomic::AtomicU64,
    /// Requests computed.
    pub computed: std::sync::atomic::AtomicU64,
    /// Requests dropped because their caller had gone.
    pub cancelled: std::sync::atomic::AtomicU64,
    /// Requests answered DeadlineExceeded.
    pub expired: std::sync::atomic::AtomicU64,
    /// Largest batch so far.
    pub max_batch: std::sync::atomic::AtomicU64,
}

pub(crate) type SharedStats = Arc<BatchStats>;
