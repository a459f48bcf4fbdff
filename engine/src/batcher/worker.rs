//! [`Batcher`]: the submit side and the batching thread.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::{
    BATCH_SIZE, BatchError, BatchModel, BatchPolicy, BatchStats, COMPUTE_SECONDS, Job,
    QUEUE_SECONDS, SHED_TOTAL, SharedStats, Ticket,
};

/// A model behind a batching thread and its workers. Dropping the batcher
/// closes the queue; what is left is answered, then the threads exit.
pub struct Batcher<M: BatchModel> {
    tx: Option<Sender<Job<M::Request, M::Response>>>,
    thread: Option<JoinHandle<()>>,
    policy: BatchPolicy,
    stats: SharedStats,
    /// Requests admitted and not yet handed to a worker or answered: those
    /// in the channel plus those the batching thread holds. Admission
    /// checks this, not the channel's length, so a request the batching
    /// thread has picked up still counts against the capacity.
    waiting: Arc<AtomicUsize>,
}

impl<M: BatchModel> std::fmt::Debug for Batcher<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("policy", &self.policy)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<M: BatchModel> Batcher<M> {
    /// Starts the batching thread over `model`.
    pub fn start(model: M, policy: BatchPolicy) -> std::io::Result<Self> {
        let policy = BatchPolicy {
            max_batch_size: policy.max_batch_size.max(1),
            queue_capacity: policy.queue_capacity.max(1),
            workers: policy.workers.max(1),
            ..policy
        };
        // Unbounded: admission is bounded by `waiting` instead.
        let (tx, rx) = crossbeam_channel::unbounded();
        let stats = SharedStats::default();
        let waiting = Arc::new(AtomicUsize::new(0));
        let (s, w) = (stats.clone(), waiting.clone());
        let workers = start_workers(Arc::new(model), policy.workers, &stats)?;
        let thread = std::thread::Builder::new()
            .name("foryou-batcher".into())
            .spawn(move || run(policy, rx, workers, s, w))?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            policy,
            stats,
            waiting,
        })
    }

    /// The policy in force.
    pub fn policy(&self) -> BatchPolicy {
        self.policy
    }

    /// Counters since start.
    pub fn stats(&self) -> &BatchStats {
        &self.stats
    }

    /// Requests admitted and not yet computing or answered.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Queues `request` (to be computed before `deadline`, if given); the
    /// ticket resolves to its answer. When `queue_capacity` requests are
    /// already waiting it is [`BatchError::Overloaded`] at once.
    pub fn submit(
        &self,
        request: M::Request,
        deadline: Option<Instant>,
    ) -> Result<Ticket<M::Response>, BatchError> {
        let bucket = M::bucket(&request);
        let tx = self.tx.as_ref().ok_or(BatchError::Stopped)?;
        let (reply, ticket) = tokio::sync::oneshot::channel();
        let job = Job {
            request,
            bucket,
            enqueued: Instant::now(),
            deadline,
            span: tracing::Span::current(),
            reply,
        };
        let before = self.waiting.fetch_add(1, Ordering::AcqRel);
        if before >= self.policy.queue_capacity {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            metrics::counter!(SHED_TOTAL, "reason" => "overloaded").increment(1);
            return Err(BatchError::Overloaded(before));
        }
        match tx.send(job) {
            Ok(()) => Ok(ticket),
            Err(_) => {
                self.waiting.fetch_sub(1, Ordering::AcqRel);
                Err(BatchError::Stopped)
            }
        }
    }
}

impl<M: BatchModel> Drop for Batcher<M> {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The compute side: a work channel, a channel of "I am free" tokens, and
/// the worker threads.
struct Workers<M: BatchModel> {
    work: Sender<Vec<Job<M::Request, M::Response>>>,
    free: Receiver<()>,
    free_tx: Sender<()>,
    threads: Vec<JoinHandle<()>>,
}

fn start_workers<M: BatchModel>(
    model: Arc<M>,
    n: usize,
    stats: &SharedStats,
) -> std::io::Result<Workers<M>> {
    let (work, work_rx) = crossbeam_channel::unbounded::<Vec<Job<M::Request, M::Response>>>();
    let (free_tx, free) = crossbeam_channel::unbounded();
    let mut threads = Vec::with_capacity(n);
    for i in 0..n {
        let (model, work_rx, free_tx, stats) = (
            model.clone(),
            work_rx.clone(),
            free_tx.clone(),
            stats.clone(),
        );
        threads.push(
            std::thread::Builder::new()
                .name(format!("foryou-batch-worker-{i}"))
                .spawn(move || {
                    while free_tx.send(()).is_ok() {
                        let Ok(batch) = work_rx.recv() else { return };
                        compute(&*model, batch, &stats);
                    }
                })?,
        );
    }
    Ok(Workers {
        work,
        free,
        free_tx,
        threads,
    })
}

/// The batching thread: forms batches until the queue closes and drains,
/// then lets the workers finish.
fn run<M: BatchModel>(
    policy: BatchPolicy,
    rx: Receiver<Job<M::Request, M::Response>>,
    workers: Workers<M>,
    stats: SharedStats,
    waiting: Arc<AtomicUsize>,
) {
    form_batches(&policy, &rx, &workers, &stats, &waiting);
    let Workers {
        work,
        free,
        free_tx,
        threads,
    } = workers;
    drop(work);
    drop(free_tx);
    drop(free);
    for t in threads {
        let _ = t.join();
    }
}

fn form_batches<M: BatchModel>(
    policy: &BatchPolicy,
    rx: &Receiver<Job<M::Request, M::Response>>,
    workers: &Workers<M>,
    stats: &BatchStats,
    waiting: &AtomicUsize,
) {
    let mut pending: VecDeque<Job<M::Request, M::Response>> = VecDeque::new();
    let mut open = true;
    loop {
        if pending.is_empty() {
            match rx.recv() {
                Ok(job) => pending.push_back(job),
                Err(_) => return,
            }
        }
        // Form the next batch only once a worker can take it.
        if workers.free.recv().is_err() {
            return;
        }
        // Top up from the queue without waiting.
        while let Ok(job) = rx.try_recv() {
            pending.push_back(job);
        }
        drop_dead(&mut pending, stats, waiting);
        let Some(first) = pending.front() else {
            let _ = workers.free_tx.send(()); // the worker is still free
            continue;
        };
        let bucket = first.bucket;
        let wait_until = first.enqueued + policy.max_queue_delay;
        // Wait for company only while a full batch of this bucket cannot form.
        while open && same_bucket(&pending, bucket) < policy.max_batch_size {
            let now = Instant::now();
            if now >= wait_until {
                break;
            }
            match rx.recv_timeout(wait_until - now) {
                Ok(job) => pending.push_back(job),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => open = false,
            }
        }
        drop_dead(&mut pending, stats, waiting);
        let batch = take_batch(&mut pending, bucket, policy.max_batch_size);
        waiting.fetch_sub(batch.len(), Ordering::AcqRel);
        if batch.is_empty() {
            let _ = workers.free_tx.send(());
        } else if workers.work.send(batch).is_err() {
            return;
        }
        if !open && pending.is_empty() {
            return;
        }
    }
}

fn same_bucket<Req, Resp>(pending: &VecDeque<Job<Req, Resp>>, bucket: u64) -> usize {
    pending.iter().filter(|j| j.bucket == bucket).count()
}

/// Drops requests whose caller has gone; answers expired ones.
fn drop_dead<Req, Resp>(
    pending: &mut VecDeque<Job<Req, Resp>>,
    stats: &BatchStats,
    waiting: &AtomicUsize,
) {
    let now = Instant::now();
    let before = pending.len();
    pending.retain_mut(|j| {
        if j.reply.is_closed() {
            stats.cancelled.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(SHED_TOTAL, "reason" => "cancelled").increment(1);
            return false;
        }
        true
    });
    let mut kept = VecDeque::with_capacity(pending.len());
    for j in pending.drain(..) {
        if j.deadline.is_some_and(|d| d <= now) {
            stats.expired.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(SHED_TOTAL, "reason" => "deadline").increment(1);
            let waited = now - j.enqueued;
            let _ = j.reply.send(Err(BatchError::DeadlineExceeded(waited)));
        } else {
            kept.push_back(j);
        }
    }
    *pending = kept;
    waiting.fetch_sub(before - pending.len(), Ordering::AcqRel);
}

/// Removes up to `max` requests of `bucket`, oldest first; others keep
/// their order.
fn take_batch<Req, Resp>(
    pending: &mut VecDeque<Job<Req, Resp>>,
    bucket: u64,
    max: usize,
) -> Vec<Job<Req, Resp>> {
    let mut batch = Vec::new();
    let mut rest = VecDeque::with_capacity(pending.len());
    for j in pending.drain(..) {
        if j.bucket == bucket && batch.len() < max {
            batch.push(j);
        } else {
            rest.push_back(j);
        }
    }
    *pending = rest;
    batch
}

fn compute<M: BatchModel>(model: &M, batch: Vec<Job<M::Request, M::Response>>, stats: &BatchStats) {
    let started = Instant::now();
    let n = batch.len();
    let span = tracing::debug_span!("batch", size = n);
    let mut requests = Vec::with_capacity(n);
    let mut replies = Vec::with_capacity(n);
    for j in batch {
        let queued = started - j.enqueued;
        metrics::histogram!(QUEUE_SECONDS).record(queued.as_secs_f64());
        span.follows_from(&j.span);
        j.span.in_scope(|| {
            tracing::debug!(queue_ms = queued.as_secs_f64() * 1e3, batch = n, "batched")
        });
        requests.push(j.request);
        replies.push(j.reply);
    }
    let out = span.in_scope(|| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model.run(requests)))
    });
    metrics::histogram!(COMPUTE_SECONDS).record(started.elapsed().as_secs_f64());
    metrics::histogram!(BATCH_SIZE).record(n as f64);
    stats.batches.fetch_add(1, Ordering::Relaxed);
    stats.computed.fetch_add(n as u64, Ordering::Relaxed);
    stats.max_batch.fetch_max(n as u64, Ordering::Relaxed);
    match out {
        Ok(Ok(answers)) if answers.len() == n => {
            for (reply, a) in replies.into_iter().zip(answers) {
                let _ = reply.send(Ok(a));
            }
        }
        Ok(Ok(answers)) => {
            let e = BatchError::Answers {
                got: answers.len(),
                want: n,
            };
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
        Ok(Err(e)) => {
            let e = std::sync::Arc::new(e);
            for reply in replies {
                let _ = reply.send(Err(BatchError::Model(e.clone())));
            }
        }
        Err(_) => {
            for reply in replies {
                let _ = reply.send(Err(BatchError::Panicked));
            }
        }
    }
}
