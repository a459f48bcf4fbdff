//! The retrieval index's writer thread: it owns the [`LiveIndex`], takes
//! the post stream's batches from a bounded channel, runs the candidate
//! tower over new posts in micro-batches and publishes them, applies
//! deletes first (they cost no encoding, so they are searchable-gone
//! before the batch's creates are encoded), moves the expiry clock on an
//! idle tick, and records the metrics. Searches never wait for it: they
//! read the snapshot it last published.
//!
//! The writer and its encoder run at a lower priority ([`WRITER_NICE`]):
//! the candidate tower runs on the writer's own one-thread rayon pool (its
//! matmuls would otherwise fan out over the pool that serves searches), so
//! under ingest a search competes with one low-priority thread, which the
//! scheduler preempts (`benches/results/index_freshness_*`).
//!
//! A micro-batch is whatever queued while the previous one ran, up to
//! [`ENCODE_BATCH`] posts: under a light stream each batch is encoded at
//! once; under a heavy one, batches grow and the tower runs on larger
//! (cheaper per post) inputs.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use foryou_engine::index::{DeviceSegments, IndexStats, LiveIndex, NewPost};
use foryou_engine::{CorpusItem, PhoenixRetriever, encode_posts};

use super::index_metrics as m;
use crate::clock::Clock;

/// Most posts encoded in one micro-batch.
pub const ENCODE_BATCH: usize = 2048;

/// How often an idle writer moves the expiry clock.
pub const IDLE_TICK: Duration = Duration::from_millis(500);

/// The writer thread's nice value (Linux): searches and requests preempt
/// the encoder, which only delays freshness by a few milliseconds.
pub const WRITER_NICE: i32 = 10;

/// Lowers the calling thread's scheduling priority to [`WRITER_NICE`].
pub(super) fn lower_priority() {
    crate::roles::priority::set_thread_nice(WRITER_NICE);
}

/// A new post as the index takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexedPost {
    /// The post and its author.
    pub item: CorpusItem,
    /// Creation time, epoch milliseconds.
    pub created_ms: i64,
}

/// What the ingest side sends the writer.
#[derive(Debug)]
pub(super) enum WriterMsg {
    /// One batch of the post stream.
    Posts {
        creates: Vec<IndexedPost>,
        deletes: Vec<i64>,
        sent: Instant,
    },
    /// Answer once everything sent before is published.
    Flush(Sender<()>),
    /// Tests: the writer panics, as a bug in it would.
    #[cfg(test)]
    Crash,
}

/// The writer's state (moved into its thread).
pub(super) struct IndexWriter {
    pub index: LiveIndex,
    pub retriever: Arc<PhoenixRetriever>,
    pub clock: Arc<dyn Clock>,
    /// Posts created further ahead of the clock are refused (as Thunder).
    pub max_future_skew_ms: i64,
    /// The latest stats, for [`super::LiveRetrieval::stats`].
    pub stats: Arc<Mutex<IndexStats>>,
    /// The stats at the last metrics update (counters record deltas).
    pub last: IndexStats,
    /// One low-priority thread for the candidate tower's ops.
    pub pool: rayon::ThreadPool,
    /// Where searches hold the sealed segments, when on a device (its
    /// counters are recorded with the index's).
    pub device: Option<Arc<DeviceSegments>>,
}

/// The encoder's pool: one thread at [`WRITER_NICE`].
pub(super) fn encoder_pool() -> Result<rayon::ThreadPool, rayon::ThreadPoolBuildError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .thread_name(|_| "index-encoder".into())
        .start_handler(|_| lower_priority())
        .build()
}

impl IndexWriter {
    /// Serves `rx` until every sender is gone.
    pub fn run(mut self, rx: Receiver<WriterMsg>) {
        lower_priority();
        self.record();
        loop {
            match rx.recv_timeout(IDLE_TICK) {
                Ok(first) => self.step(first, &rx),
                Err(RecvTimeoutError::Timeout) => {
                    self.index.advance(self.clock.unix_ms());
                    self.record();
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Gathers `first` and what queued behind it (up to [`ENCODE_BATCH`]
    /// posts), applies the deletes, encodes and inserts the creates,
    /// then answers any flush among them.
    fn step(&mut self, first: WriterMsg, rx: &Receiver<WriterMsg>) {
        let mut creates = Vec::new();
        let mut deletes = Vec::new();
        let mut sent = Vec::new();
        let mut flushes = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                WriterMsg::Posts {
                    creates: c,
                    deletes: d,
                    sent: at,
                } => {
                    creates.extend(c);
                    deletes.extend(d);
                    sent.push(at);
                }
                WriterMsg::Flush(done) => flushes.push(done),
                #[cfg(test)]
                WriterMsg::Crash => panic!("test: the index writer crashes"),
            }
            if creates.len() < ENCODE_BATCH {
                next = rx.try_recv().ok();
            }
        }
        let now_ms = self.clock.unix_ms();
        if !deletes.is_empty() {
            self.index.delete(&deletes, now_ms);
        }
        for chunk in creates.chunks(ENCODE_BATCH) {
            self.insert(chunk, now_ms);
        }
        if creates.is_empty() && deletes.is_empty() {
            self.index.advance(now_ms);
        }
        for at in sent {
            metrics::histogram!(m::ENCODE_LAG).record(at.elapsed().as_secs_f64());
        }
        self.record();
        for done in flushes {
            let _ = done.send(()); // the flusher may have given up waiting
        }
    }

    /// Encodes `posts` (those not from the future) and inserts them.
    fn insert(&mut self, posts: &[IndexedPost], now_ms: i64) {
        let newest = now_ms.saturating_add(self.max_future_skew_ms);
        let (posts, future): (Vec<IndexedPost>, Vec<IndexedPost>) =
            posts.iter().partition(|p| p.created_ms <= newest);
        offered("in_future", future.len());
        if posts.is_empty() {
            return;
        }
        let items: Vec<CorpusItem> = posts.iter().map(|p| p.item).collect();
        let t = Instant::now();
        let retriever = &self.retriever;
        let reps = match self.pool.install(|| encode_posts(retriever, &items)) {
            Ok(reps) => reps,
            Err(e) => {
                tracing::error!(posts = items.len(), error = %e, "index encoder failed; posts dropped");
                metrics::counter!(m::ENCODE_FAILURES).increment(items.len() as u64);
                return;
            }
        };
        metrics::histogram!(m::ENCODE_DURATION).record(t.elapsed().as_secs_f64());
        metrics::counter!(m::ENCODED).increment(items.len() as u64);
        let dim = self.index.config().dim;
        let (valid, invalid): (Vec<NewPost<'_>>, Vec<NewPost<'_>>) = posts
            .iter()
            .zip(reps.chunks(dim.max(1)))
            .map(|(p, rep)| NewPost {
                item: p.item,
                created_ms: p.created_ms,
                representation: rep,
            })
            .partition(|p| p.validate(dim).is_ok());
        if let Some(bad) = invalid.first() {
            let why = bad.validate(dim).err().map(|e| e.to_string());
            tracing::warn!(posts = invalid.len(), first = ?why, "posts with unusable representations dropped");
            offered("invalid", invalid.len());
        }
        match self.index.insert(&valid, now_ms) {
            Ok(r) => {
                offered("inserted", r.inserted);
                offered("duplicate", r.duplicates);
                offered("deleted_before", r.deleted_before_insert);
                offered("expired", r.expired_on_insert);
            }
            // Unreachable after the validation above; kept loud.
            Err(e) => tracing::error!(error = %e, "index insert refused a validated batch"),
        }
    }

    /// Publishes the stats to the handle and the metrics.
    fn record(&mut self) {
        let s = self.index.stats();
        metrics::gauge!(m::POSTS).set(s.posts as f64);
        metrics::gauge!(m::SEGMENTS).set(s.segments as f64);
        metrics::gauge!(m::OPEN_ROWS).set(s.open_rows as f64);
        metrics::gauge!(m::TOMBSTONES).set(s.tombstones as f64);
        metrics::gauge!(m::BYTES).set(s.bytes as f64);
        metrics::gauge!(m::BYTES_PER_POST).set(s.bytes_per_post());
        let last = &self.last;
        metrics::counter!(m::DELETED).increment(s.deleted.saturating_sub(last.deleted));
        metrics::counter!(m::EXPIRED).increment(s.expired.saturating_sub(last.expired));
        metrics::counter!(m::EVICTIONS).increment(s.evictions.saturating_sub(last.evictions));
        // The index writer does not wait for a search's device call to
        // record; a busy arena is recorded at the next step.
        if let Some(d) = self.device.as_ref().and_then(|d| d.try_stats()) {
            metrics::gauge!(m::DEVICE_ROWS).set(d.rows as f64);
            metrics::gauge!(m::DEVICE_BYTES).set(d.device_bytes as f64);
            metrics::counter!(m::DEVICE_UPLOADS).absolute(d.segment_uploads);
            metrics::counter!(m::DEVICE_REPACKS).absolute(d.repacks);
            metrics::counter!(m::DEVICE_CPU_FALLBACKS).absolute(d.cpu_fallbacks);
            metrics::counter!(m::DEVICE_ERRORS).absolute(d.device_errors);
        }
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner) = s.clone();
        self.last = s;
    }
}

/// Counts `n` offered posts under `outcome`.
pub(super) fn offered(outcome: &'static str, n: usize) {
    if n > 0 {
        metrics::counter!(m::POSTS_OFFERED, "outcome" => outcome).increment(n as u64);
    }
}
