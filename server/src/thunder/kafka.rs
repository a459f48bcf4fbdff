//! Kafka ingestion (feature `kafka`): the serving listener of spec §3.7 over
//! rdkafka, with our fixes for a store that must lose nothing. Events go to
//! an [`EventSink`]: the Thunder store, or `phoenix serve`'s retrieval index.
//!
//! - The topic's partitions are split over `threads` OS threads
//!   (`consumer_plan::split_partitions`); each owns a `BaseConsumer` with a
//!   manual assignment, so compute never runs on the async runtime.
//! - Messages are buffered and applied in batches of `batch_size` (and when
//!   the partition goes idle, so a pause never strands events; upstream
//!   waits for a full batch). After catch-up each apply holds one of
//!   `apply_permits` permits, leaving CPU for requests.
//! - After a batch is applied its offsets are committed under `group`;
//!   nothing is committed before it is in the store. Where reading starts is
//!   `consumer_plan::resume_offset`: a fresh store rebuilds from the earliest
//!   offset within retention, a restarted consumer resumes from the commit.
//! - Catch-up: the high watermarks seen at start are the target; when every
//!   partition has applied up to its target the `caught_up` watch turns true
//!   (once, never lost, and partitions no thread reads are not waited on).
//! - Malformed payloads are counted, logged with partition and offset, and
//!   skipped. Poll errors are logged and counted; the thread sleeps 100 ms.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::sync::watch;

use super::consumer_plan::{BlockingSemaphore, CatchUp, resume_offset, split_partitions};
use super::event_sink::EventSink;
use super::events::{PostEvent, count_malformed};
use super::metrics as m;

/// Broker calls at start (metadata, watermarks, commits) wait this long.
const META_TIMEOUT: Duration = Duration::from_secs(10);
/// One poll waits at most this long; also the stop latency.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);

/// Kafka ingestion settings.
#[derive(Debug, Clone)]
pub struct KafkaIngestConfig {
    /// Bootstrap brokers, `host:port,...`.
    pub brokers: String,
    /// Topic of `InNetworkEvent` payloads.
    pub topic: String,
    /// Consumer group under which offsets are committed.
    pub group: String,
    /// Consumer threads.
    pub threads: usize,
    /// Messages per applied batch.
    pub batch_size: usize,
    /// Concurrent applies after catch-up.
    pub apply_permits: usize,
    /// Consumer-lag gauge interval.
    pub lag_interval: Duration,
    /// Extra librdkafka properties (e.g. `session.timeout.ms`).
    pub extra: Vec<(String, String)>,
}

/// A start-up failure (a running consumer never stops on errors).
#[derive(Debug, thiserror::Error)]
pub enum KafkaIngestError {
    /// A librdkafka call failed.
    #[error("kafka {what}: {cause}")]
    Kafka {
        /// What was being done.
        what: String,
        /// The client error.
        cause: KafkaError,
    },
    /// The topic is missing or has no partitions.
    #[error("kafka topic {0:?} not found or has no partitions")]
    NoTopic(String),
    /// A consumer thread could not be started or panicked.
    #[error("kafka consumer thread: {0}")]
    Thread(String),
}

fn kafka_err(what: impl Into<String>) -> impl FnOnce(KafkaError) -> KafkaIngestError {
    let what = what.into();
    move |cause| KafkaIngestError::Kafka { what, cause }
}

/// State shared by the consumer threads.
struct Shared {
    cfg: KafkaIngestConfig,
    sink: Arc<dyn EventSink>,
    catch_up: CatchUp,
    caught_up: watch::Sender<bool>,
    permits: BlockingSemaphore,
    stop: AtomicBool,
}

/// A running consumer. Dropping it without [`KafkaIngest::stop`] leaves the
/// threads running until the process exits.
pub struct KafkaIngest {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    caught_up: watch::Receiver<bool>,
}

impl std::fmt::Debug for KafkaIngest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaIngest")
            .field("topic", &self.shared.cfg.topic)
            .field("threads", &self.threads.len())
            .finish()
    }
}

fn client_config(cfg: &KafkaIngestConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers)
        .set("group.id", &cfg.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("max.partition.fetch.bytes", (100 << 20).to_string());
    for (k, v) in &cfg.extra {
        c.set(k, v);
    }
    c
}

impl KafkaIngest {
    /// Reads the topic's layout, works out each partition's start offset and
    /// catch-up target, and starts the consumer threads.
    pub fn start(
        cfg: KafkaIngestConfig,
        sink: Arc<dyn EventSink>,
    ) -> Result<Self, KafkaIngestError> {
        let probe: BaseConsumer = client_config(&cfg)
            .create()
            .map_err(kafka_err("create consumer"))?;
        let meta = probe
            .fetch_metadata(Some(&cfg.topic), META_TIMEOUT)
            .map_err(kafka_err(format!("metadata of {}", cfg.topic)))?;
        let n = meta
            .topics()
            .iter()
            .find(|t| t.name() == cfg.topic && t.error().is_none())
            .map_or(0, |t| t.partitions().len());
        let n = i32::try_from(n).unwrap_or(i32::MAX);
        if n == 0 {
            return Err(KafkaIngestError::NoTopic(cfg.topic.clone()));
        }
        let mut all = TopicPartitionList::new();
        for p in 0..n {
            all.add_partition(&cfg.topic, p);
        }
        let committed = probe
            .committed_offsets(all.clone(), META_TIMEOUT)
            .map_err(kafka_err("read committed offsets"))?;
        let retention_ms = sink.retention_s().saturating_mul(1000);
        let since_ms = sink.clock().unix_s().saturating_mul(1000) - retention_ms;
        let mut by_time = TopicPartitionList::new();
        for p in 0..n {
            by_time
                .add_partition_offset(&cfg.topic, p, Offset::Offset(since_ms))
                .map_err(kafka_err("build time query"))?;
        }
        let by_time = probe.offsets_for_times(by_time, META_TIMEOUT).ok();
        let (mut starts, mut targets) = (HashMap::new(), HashMap::new());
        for p in 0..n {
            let (low, high) = probe
                .fetch_watermarks(&cfg.topic, p, META_TIMEOUT)
                .map_err(kafka_err(format!("watermarks of partition {p}")))?;
            let retention_start = match by_time
                .as_ref()
                .and_then(|t| t.find_partition(&cfg.topic, p))
                .map(|e| e.offset())
            {
                Some(Offset::Offset(o)) => o.max(low),
                Some(Offset::End) => high,
                _ => low,
            };
            let committed = match committed.find_partition(&cfg.topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => Some(o),
                _ => None,
            };
            let applied = sink.position(&cfg.topic, p);
            let start = resume_offset(committed, applied, retention_start).clamp(low, high);
            tracing::info!(
                topic = %cfg.topic, partition = p, low, high, ?committed, ?applied, start,
                "kafka partition plan"
            );
            starts.insert(p, start);
            targets.insert(p, high);
        }
        let (tx, rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            catch_up: CatchUp::new(targets, &starts),
            caught_up: tx,
            permits: BlockingSemaphore::new(cfg.apply_permits),
            stop: AtomicBool::new(false),
            sink,
            cfg,
        });
        if shared.catch_up.check() {
            shared.caught_up.send_replace(true);
        }
        let mut threads = Vec::new();
        for (t, range) in split_partitions(n, shared.cfg.threads)
            .into_iter()
            .enumerate()
        {
            let mut tpl = TopicPartitionList::new();
            for p in range.clone() {
                tpl.add_partition_offset(&shared.cfg.topic, p, Offset::Offset(starts[&p]))
                    .map_err(kafka_err("build assignment"))?;
            }
            let consumer: BaseConsumer = client_config(&shared.cfg)
                .create()
                .map_err(kafka_err("create consumer"))?;
            consumer
                .assign(&tpl)
                .map_err(kafka_err(format!("assign partitions {range:?}")))?;
            let next: HashMap<i32, i64> = range.clone().map(|p| (p, starts[&p])).collect();
            let shared = shared.clone();
            let handle = std::thread::Builder::new()
                .name(format!("thunder-kafka-{t}"))
                .spawn(move || ConsumerThread::new(shared, consumer, range, next).run())
                .map_err(|e| KafkaIngestError::Thread(e.to_string()))?;
            threads.push(handle);
        }
        Ok(Self {
            shared,
            threads,
            caught_up: rx,
        })
    }

    /// Turns true once every partition has been applied up to the high
    /// watermark seen at start.
    pub fn caught_up(&self) -> watch::Receiver<bool> {
        self.caught_up.clone()
    }

    /// Stops the threads (within one poll) and waits for them. Buffered but
    /// unapplied events are dropped; they were not committed, so the next
    /// start reads them again.
    pub fn stop(self) -> Result<(), KafkaIngestError> {
        self.shared.stop.store(true, Ordering::SeqCst);
        let mut result = Ok(());
        for h in self.threads {
            if h.join().is_err() {
                result = Err(KafkaIngestError::Thread(
                    "a consumer thread panicked".into(),
                ));
            }
        }
        result
    }
}

/// One consumer thread's loop state.
struct ConsumerThread {
    shared: Arc<Shared>,
    consumer: BaseConsumer,
    partitions: Range<i32>,
    /// Next offset per partition (consumed, applied once the buffer is).
    next: HashMap<i32, i64>,
    /// Partitions with consumed but unapplied messages.
    dirty: HashSet<i32>,
    buffer: Vec<PostEvent>,
    last_lag: Instant,
}

impl ConsumerThread {
    fn new(
        shared: Arc<Shared>,
        consumer: BaseConsumer,
        partitions: Range<i32>,
        next: HashMap<i32, i64>,
    ) -> Self {
        let batch = shared.cfg.batch_size.max(1);
        Self {
            shared,
            consumer,
            partitions,
            next,
            dirty: HashSet::new(),
            buffer: Vec::with_capacity(batch),
            last_lag: Instant::now(),
        }
    }

    fn run(mut self) {
        let min_video = self.shared.sink.min_video_duration_ms();
        let batch = self.shared.cfg.batch_size.max(1);
        while !self.shared.stop.load(Ordering::SeqCst) {
            match self.consumer.poll(POLL_TIMEOUT) {
                None => {
                    self.apply();
                    self.check_idle_positions();
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "kafka poll error");
                    metrics::counter!(m::POLL_ERRORS).increment(1);
                    std::thread::sleep(Duration::from_millis(100));
                }
                Some(Ok(msg)) => {
                    let (p, off) = (msg.partition(), msg.offset());
                    match msg.payload().map(|b| PostEvent::decode(b, min_video)) {
                        Some(Ok(ev)) => self.buffer.push(ev),
                        Some(Err(e)) => {
                            count_malformed();
                            tracing::warn!(partition = p, offset = off, error = %e, "skipping malformed event");
                        }
                        None => {
                            count_malformed();
                            tracing::warn!(
                                partition = p,
                                offset = off,
                                "skipping message without payload"
                            );
                        }
                    }
                    self.next.insert(p, off + 1);
                    self.dirty.insert(p);
                    if self.buffer.len() >= batch {
                        self.apply();
                    }
                }
            }
            if self.last_lag.elapsed() >= self.shared.cfg.lag_interval {
                self.publish_lag();
                self.last_lag = Instant::now();
            }
        }
    }

    /// Applies the buffer, records and commits the offsets, marks catch-up.
    fn apply(&mut self) {
        if self.dirty.is_empty() {
            return;
        }
        let sh = &self.shared;
        let events = std::mem::take(&mut self.buffer);
        if !events.is_empty() {
            let _permit = sh.catch_up.is_caught_up().then(|| sh.permits.acquire());
            sh.sink.apply(events);
        }
        let mut tpl = TopicPartitionList::new();
        for p in self.dirty.drain() {
            let next = self.next[&p];
            sh.sink.record_position(&sh.cfg.topic, p, next);
            if let Err(e) = tpl.add_partition_offset(&sh.cfg.topic, p, Offset::Offset(next)) {
                tracing::warn!(partition = p, error = %e, "cannot build commit");
            }
            if sh.catch_up.mark(p, next) {
                tracing::info!(topic = %sh.cfg.topic, "kafka consumer caught up");
                sh.caught_up.send_replace(true);
            }
        }
        // A failed commit is retried by the next one (offsets only grow);
        // until then a restart re-reads a little, which changes nothing.
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Sync) {
            tracing::warn!(error = %e, "kafka offset commit failed");
        }
    }

    /// On an idle poll, a partition whose fetch position passed its target
    /// (e.g. over control records) is caught up too.
    fn check_idle_positions(&self) {
        if self.shared.catch_up.is_caught_up() {
            return;
        }
        for p in self.partitions.clone() {
            let next = self.next[&p];
            if self.shared.catch_up.target(p).is_some_and(|t| next >= t)
                && self.shared.catch_up.mark(p, next)
            {
                tracing::info!(topic = %self.shared.cfg.topic, "kafka consumer caught up");
                self.shared.caught_up.send_replace(true);
            }
        }
        let Ok(pos) = self.consumer.position() else {
            return;
        };
        for e in pos.elements() {
            // The application position (last polled + 1): on an idle poll
            // everything polled has just been applied.
            if let Offset::Offset(o) = e.offset()
                && self.shared.catch_up.mark(e.partition(), o)
            {
                tracing::info!(topic = %self.shared.cfg.topic, "kafka consumer caught up");
                self.shared.caught_up.send_replace(true);
            }
        }
    }

    fn publish_lag(&self) {
        let topic = &self.shared.cfg.topic;
        for p in self.partitions.clone() {
            if let Ok((_, high)) = self.consumer.fetch_watermarks(topic, p, POLL_TIMEOUT * 10) {
                let lag = (high - self.next[&p]).max(0);
                metrics::gauge!(m::CONSUMER_LAG, "topic" => topic.clone(), "partition" => p.to_string())
                    .set(lag as f64);
            }
        }
    }
}
