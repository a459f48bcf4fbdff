//! Process configuration: clap structs with environment fallbacks
//! (`FORYOU_…`). Each doc comment is the `--help` text: unit, default and
//! when to change it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::clients::BreakerPolicy;
use crate::thunder::ThunderParams;

/// `foryou thunder`: the Thunder role alone.
#[derive(Debug, Clone, Args)]
pub struct ThunderConfig {
    /// gRPC listen address (GetInNetworkPosts, IngestEvents, health, reflection).
    #[arg(long, env = "FORYOU_THUNDER_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Prometheus `/metrics` listen address; "off" disables it.
    #[arg(
        long,
        env = "FORYOU_THUNDER_METRICS_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub metrics_listen: MetricsListen,
    /// How long posts are kept, seconds (default 2 days, the feed's horizon).
    #[arg(long, env = "FORYOU_THUNDER_RETENTION_S", default_value_t = 172_800)]
    pub retention_s: i64,
    /// Per-request scan budget, milliseconds; past it the request returns what
    /// it has (0 = none). Raise it for very large following lists.
    #[arg(long, env = "FORYOU_THUNDER_REQUEST_TIMEOUT_MS", default_value_t = 100)]
    pub request_timeout_ms: u64,
    /// Requests served at once; the next gets RESOURCE_EXHAUSTED at once.
    #[arg(
        long,
        env = "FORYOU_THUNDER_MAX_CONCURRENT_REQUESTS",
        default_value_t = 256
    )]
    pub max_concurrent_requests: usize,
    /// Largest gRPC message sent, and the ceiling of any request, bytes
    /// (128 MiB).
    #[arg(long, env = "FORYOU_MAX_MESSAGE_BYTES", default_value_t = 128 << 20)]
    pub max_message_bytes: usize,
    /// Largest request message decoded, bytes after decompression (default
    /// per service, sized to its largest valid request:
    /// `server/src/grpc/limits.rs`); larger is RESOURCE_EXHAUSTED.
    #[arg(long, env = "FORYOU_MAX_REQUEST_BYTES")]
    pub max_request_bytes: Option<usize>,
    /// Events applied per blocking call of an IngestEvents stream.
    #[arg(long, env = "FORYOU_THUNDER_INGEST_BATCH", default_value_t = 1000)]
    pub ingest_batch: usize,
    /// Load this event file (length-delimited InNetworkEvent) before serving,
    /// instead of the synthetic demo stream.
    #[arg(long, env = "FORYOU_THUNDER_EVENTS")]
    pub events: Option<PathBuf>,
    /// Load the posts of this world file (`foryou world generate`) before
    /// serving; the store's clock then runs from the world's `now_ms`, as
    /// in `foryou serve --world`.
    #[arg(long, env = "FORYOU_WORLD", conflicts_with = "events")]
    pub world: Option<PathBuf>,
    /// Authors of the synthetic demo stream loaded when neither --events nor
    /// --kafka-brokers is given (0 = start empty).
    #[arg(long, env = "FORYOU_THUNDER_DEMO_AUTHORS", default_value_t = 1000)]
    pub demo_authors: u32,
    /// Posts per author of the demo stream.
    #[arg(
        long,
        env = "FORYOU_THUNDER_DEMO_POSTS_PER_AUTHOR",
        default_value_t = 50
    )]
    pub demo_posts_per_author: u32,
    /// Seed of the demo stream.
    #[arg(long, env = "FORYOU_SEED", default_value_t = 42)]
    pub seed: u64,
    /// Kafka options (feature `kafka`).
    #[command(flatten)]
    pub kafka: KafkaConfig,
    /// TLS and the write token of the listener.
    #[command(flatten)]
    pub security: crate::security::ServerSecurity,
}

/// Kafka ingestion options.
#[derive(Debug, Clone, Args)]
pub struct KafkaConfig {
    /// Bootstrap brokers (host:port,...); turns Kafka ingestion on.
    #[arg(long, env = "FORYOU_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    /// Topic of InNetworkEvent protobufs.
    #[arg(long, env = "FORYOU_KAFKA_TOPIC", default_value = "in-network-events")]
    pub kafka_topic: String,
    /// Consumer group id: offsets are committed under it after each applied
    /// batch (default: `foryou-thunder` for Thunder, `foryou-phoenix` for
    /// `phoenix serve`).
    #[arg(long, env = "FORYOU_KAFKA_GROUP")]
    pub kafka_group: Option<String>,
    /// Consumer threads; partitions are split evenly across them.
    #[arg(long, env = "FORYOU_KAFKA_THREADS", default_value_t = 4)]
    pub kafka_threads: usize,
    /// Messages per applied batch.
    #[arg(long, env = "FORYOU_KAFKA_BATCH_SIZE", default_value_t = 1000)]
    pub kafka_batch_size: usize,
    /// Batches applied at once after catch-up, leaving CPU for serving.
    #[arg(long, env = "FORYOU_KAFKA_APPLY_PERMITS", default_value_t = 3)]
    pub kafka_apply_permits: usize,
    /// Consumer-lag gauge interval, seconds.
    #[arg(long, env = "FORYOU_KAFKA_LAG_INTERVAL_S", default_value_t = 60)]
    pub kafka_lag_interval_s: u64,
}

#[cfg(feature = "kafka")]
impl KafkaConfig {
    /// The consumer's settings, if `--kafka-brokers` was given; the group
    /// is `--kafka-group` or the role's `default_group`.
    pub fn ingest_config(
        &self,
        default_group: &str,
    ) -> Option<crate::thunder::kafka::KafkaIngestConfig> {
        Some(crate::thunder::kafka::KafkaIngestConfig {
            brokers: self.kafka_brokers.clone()?,
            topic: self.kafka_topic.clone(),
            group: self
                .kafka_group
                .clone()
                .unwrap_or_else(|| default_group.to_owned()),
            threads: self.kafka_threads,
            batch_size: self.kafka_batch_size,
            apply_permits: self.kafka_apply_permits,
            lag_interval: std::time::Duration::from_secs(self.kafka_lag_interval_s.max(1)),
            extra: Vec::new(),
        })
    }
}

/// A listen address or "off".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsListen(pub Option<SocketAddr>);

impl std::str::FromStr for MetricsListen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(Self(None));
        }
        s.parse()
            .map(|a| Self(Some(a)))
            .map_err(|e| format!("expected host:port or \"off\", got {s:?}: {e}"))
    }
}

impl ThunderConfig {
    /// The store and service parameters these flags select.
    pub fn params(&self) -> ThunderParams {
        ThunderParams {
            retention_s: self.retention_s,
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            max_concurrent_requests: self.max_concurrent_requests.max(1),
            ..ThunderParams::default()
        }
    }
}

/// `foryou serve`: every role in one process over a demo or loaded world.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// gRPC listen address: GetScoredPosts, GetInNetworkPosts, the Phoenix
    /// services, health and reflection.
    #[arg(long, env = "FORYOU_LISTEN", default_value = "127.0.0.1:50052")]
    pub listen: SocketAddr,
    /// Prometheus `/metrics` listen address; "off" disables it.
    #[arg(long, env = "FORYOU_METRICS_LISTEN", default_value = "127.0.0.1:9090")]
    pub metrics_listen: MetricsListen,
    /// Load this world file (JSON Lines, see `foryou world generate`)
    /// instead of generating the demo world.
    #[arg(long, env = "FORYOU_WORLD")]
    pub world: Option<PathBuf>,
    /// Seed of the demo world and demo model.
    #[arg(long, env = "FORYOU_SEED", default_value_t = 42)]
    pub seed: u64,
    /// Users of the demo world.
    #[arg(long, env = "FORYOU_WORLD_USERS", default_value_t = 2000)]
    pub users: usize,
    /// Mean posts per user of the demo world (over 48 h).
    #[arg(long, env = "FORYOU_WORLD_POSTS_PER_USER", default_value_t = 8.0)]
    pub posts_per_user: f64,
    /// Mean accounts followed per user of the demo world.
    #[arg(long, env = "FORYOU_WORLD_FOLLOWS", default_value_t = 40.0)]
    pub follows: f64,
    /// Use a remote Thunder (e.g. http://10.0.0.5:50051) instead of the
    /// embedded store.
    #[arg(long, env = "FORYOU_THUNDER_ADDR")]
    pub thunder_addr: Option<String>,
    /// Use a remote Phoenix (`foryou phoenix serve`) instead of the embedded
    /// engine; no model is loaded here then.
    #[arg(long, env = "FORYOU_PHOENIX_ADDR")]
    pub phoenix_addr: Option<String>,
    /// Timeout of each call to a remote Thunder or Phoenix, milliseconds.
    #[arg(long, env = "FORYOU_CLIENT_TIMEOUT_MS", default_value_t = 1000)]
    pub client_timeout_ms: u64,
    /// Consecutive failed calls (timed out, unreachable, transport or
    /// server fault) after which the circuit breaker of a remote Thunder or
    /// Phoenix service opens: its calls then fail at once, sending nothing,
    /// for --breaker-cooldown-ms. 0 never opens it. Default 5: a hung
    /// backend costs five calls' timeouts before requests stop waiting on
    /// it, while a stray timeout or a dropped connection does not cut off a
    /// healthy one. Lower it when a slow backend hurts more than a missing
    /// source.
    #[arg(long, env = "FORYOU_BREAKER_FAILURES", default_value_t = 5)]
    pub breaker_failures: u32,
    /// How often an open circuit breaker probes its backend, milliseconds:
    /// a background task sends one small real request (a one-candidate
    /// Predict, a one-author Thunder query) every cool-down and closes the
    /// breaker when it is answered; callers fail at once meanwhile and are
    /// never the probe. Default 250: a backend that returns is used again
    /// within ~0.25 s plus one probe, and one that stays down costs four
    /// tiny requests a second.
    #[arg(long, env = "FORYOU_BREAKER_COOLDOWN_MS", default_value_t = 250)]
    pub breaker_cooldown_ms: u64,
    /// Home-mixer tunables: a TOML file overriding any of the defaults.
    #[arg(long, env = "FORYOU_PARAMS")]
    pub params: Option<PathBuf>,
    /// Largest gRPC message sent, and the ceiling of any request, bytes
    /// (128 MiB).
    #[arg(long, env = "FORYOU_MAX_MESSAGE_BYTES", default_value_t = 128 << 20)]
    pub max_message_bytes: usize,
    /// Largest request message decoded, bytes after decompression (default
    /// per service, sized to its largest valid request:
    /// `server/src/grpc/limits.rs`); larger is RESOURCE_EXHAUSTED.
    #[arg(long, env = "FORYOU_MAX_REQUEST_BYTES")]
    pub max_request_bytes: Option<usize>,
    /// Embedded Thunder and the retrieval index: how long posts are kept,
    /// seconds.
    #[arg(long, env = "FORYOU_THUNDER_RETENTION_S", default_value_t = 172_800)]
    pub retention_s: i64,
    /// The deployment environment; `prod` turns on the request-info side
    /// effect (spec §2.9).
    #[arg(long, env = "APP_ENV")]
    pub app_env: Option<String>,
    /// The embedded Phoenix engine (unused with --phoenix-addr).
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Most GetScoredPosts calls running at once; one more is
    /// RESOURCE_EXHAUSTED at once. With a latency target it is the
    /// ceiling of the adaptive bound (default: 32 per core, at least 64).
    #[arg(long, env = "FORYOU_MAX_IN_FLIGHT")]
    pub max_in_flight: Option<usize>,
    /// Latency the adaptive in-flight bound steers to, ms: calls finishing
    /// later shrink the bound, calls on time grow it (a call with a shorter
    /// grpc-timeout aims at 60 % of it). 0: a fixed bound at
    /// --max-in-flight. Default 300 with the ranker in this process, 0
    /// with --phoenix-addr.
    #[arg(long, env = "FORYOU_ADMISSION_TARGET_MS")]
    pub admission_target_ms: Option<u64>,
    /// Reject at once a call whose grpc-timeout is shorter than the moving
    /// average of recent calls' latency (`false` to serve every admitted
    /// call whatever its deadline).
    #[arg(
        long,
        env = "FORYOU_DEADLINE_ADMISSION",
        default_value = "true",
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub deadline_admission: bool,
    /// TLS and the write token of the listener.
    #[command(flatten)]
    pub security: crate::security::ServerSecurity,
    /// TLS to a remote Thunder or Phoenix given as `https://`.
    #[command(flatten)]
    pub remote_tls: crate::security::ClientSecurity,
}

impl ServeConfig {
    /// The circuit-breaker policy of the remote Thunder and Phoenix clients.
    pub fn breaker(&self) -> BreakerPolicy {
        BreakerPolicy {
            failures: self.breaker_failures,
            cooldown: Duration::from_millis(self.breaker_cooldown_ms),
        }
    }
}

/// `foryou phoenix serve`: the ranker and retriever alone, for a home mixer
/// started with `--phoenix-addr`.
#[derive(Debug, Clone, Args)]
pub struct PhoenixServeConfig {
    /// gRPC listen address (PhoenixRanker, PhoenixRetrieval, health, reflection).
    #[arg(long, env = "FORYOU_PHOENIX_LISTEN", default_value = "127.0.0.1:50053")]
    pub listen: SocketAddr,
    /// The world whose recent posts fill the retrieval index at start
    /// (default: the seeded demo world, as `foryou serve` makes it).
    #[arg(long, env = "FORYOU_WORLD")]
    pub world: Option<PathBuf>,
    /// Seed of the demo world and model.
    #[arg(long, env = "FORYOU_SEED", default_value_t = 42)]
    pub seed: u64,
    /// Users of the demo world.
    #[arg(long, env = "FORYOU_WORLD_USERS", default_value_t = 2000)]
    pub users: usize,
    /// Largest gRPC message sent, and the ceiling of any request, bytes
    /// (128 MiB).
    #[arg(long, env = "FORYOU_MAX_MESSAGE_BYTES", default_value_t = 128 << 20)]
    pub max_message_bytes: usize,
    /// Largest request message decoded, bytes after decompression (default
    /// per service, sized to its largest valid request:
    /// `server/src/grpc/limits.rs`); larger is RESOURCE_EXHAUSTED.
    #[arg(long, env = "FORYOU_MAX_REQUEST_BYTES")]
    pub max_request_bytes: Option<usize>,
    /// How long the retrieval index keeps a post, seconds (default 2 days,
    /// Thunder's retention).
    #[arg(long, env = "FORYOU_RETENTION_S", default_value_t = 172_800)]
    pub retention_s: i64,
    /// Prometheus `/metrics` listen address; "off" (default) disables it.
    #[arg(long, env = "FORYOU_PHOENIX_METRICS_LISTEN", default_value = "off")]
    pub metrics_listen: MetricsListen,
    /// The post topic as the retrieval index's source (`--kafka-brokers`;
    /// binaries built with `--features kafka`): the index is rebuilt from
    /// the topic within retention instead of the world, and health stays
    /// NOT_SERVING until the consumer has caught up and the index holds
    /// what it read.
    #[command(flatten)]
    pub kafka: KafkaConfig,
    /// The engine.
    #[command(flatten)]
    pub engine: EngineArgs,
    /// TLS and the write token of the listener.
    #[command(flatten)]
    pub security: crate::security::ServerSecurity,
}

/// The Phoenix engine's flags, shared by `foryou serve` and `foryou
/// phoenix serve`: the model, threading and dynamic batching.
#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
    /// Model directory holding `ranker/` and `retrieval/`: our layout
    /// (config.json + params.safetensors with hash tables) or X's released
    /// artifacts (model_params.npz + embedding_tables.npz, published hash). Default: a seeded demo pair, written on first start
    /// under --model-cache.
    #[arg(long, env = "FORYOU_MODEL")]
    pub model: Option<PathBuf>,
    /// Retrieval corpus of precomputed candidate representations (an npz
    /// with `post_ids`, `author_ids`, `candidate_representations` [N, D] and
    /// `topics`, as X's released `sports_corpus.npz`) instead of encoding
    /// the world's recent posts at start. Posts outside the world have no
    /// text or author data, so the feed's hydrators and filters drop them.
    #[arg(long, env = "FORYOU_CORPUS")]
    pub corpus: Option<PathBuf>,
    /// Where the demo model is kept between starts (default: the system temp
    /// directory).
    #[arg(long, env = "FORYOU_MODEL_CACHE")]
    pub model_cache: Option<PathBuf>,
    /// Where the ranker and the retriever run: `cpu` or `cuda[:N]`. The
    /// device is opened once and shared by both. A GPU that cannot be used
    /// (build without the `cuda` feature, no driver, no device, a model
    /// shape it has no kernel for) is reported once and both run on the CPU.
    #[arg(long, env = "FORYOU_DEVICE", default_value = "cpu")]
    pub device: foryou_engine::ComputeDevice,
    /// bf16 products of the CPU engine on Intel AMX tiles when the CPU has
    /// them (`false`, `0` or `off`: the gemm crate's AVX-512/AVX2 kernels;
    /// for comparing the two).
    #[arg(
        long,
        env = "FORYOU_CPU_AMX",
        default_value = "true",
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub cpu_amx: bool,
    /// Where the hash tables live with a GPU device: `auto` (on the device
    /// when they fit with a quarter of its memory, at least 4 GiB, left
    /// free; a request then uploads only hashes) or `host` (rows gathered
    /// and uploaded per request; for tables larger than the device).
    #[arg(long, env = "FORYOU_GPU_TABLES", default_value = "auto")]
    pub gpu_tables: foryou_engine::backend::GpuTables,
    /// The attention implementation with a GPU device: `flash` (one fused
    /// kernel) or `gemm` (two cuBLAS GEMMs around a row softmax; the
    /// score matrix goes through device memory). Same contract, same
    /// tests; `benches/gpu/run.sh` times both at the prod shape.
    #[arg(long, env = "FORYOU_GPU_ATTENTION", default_value = "flash")]
    pub gpu_attention: foryou_engine::backend::AttentionKernel,
    /// Threads per engine op (0: all physical cores). 1 is fastest when
    /// requests run concurrently; raise it for one-at-a-time latency on a
    /// big host.
    #[arg(long, env = "FORYOU_ENGINE_THREADS", default_value_t = 1)]
    pub engine_threads: usize,
    /// Dynamic batching of ranker calls: most requests per forward pass
    /// (0: bypass the batcher, each call runs alone on rayon's pool).
    /// Default by device. CPU: 1, one call per core at a time: a CPU forward
    /// pass is compute-bound, so batches buy little in process and nothing
    /// under load (batches up to 2 served no more, up to 16 a third less),
    /// while the batcher's bounded queue, deadlines and cancellation keep
    /// latency bounded past saturation (`benches/load_batching.sh`). GPU:
    /// 32, one batch at a time; on an H200 a prod-like batch of 16 served
    /// 1.45x the requests/s of single requests (`benches/results/gpu_h200_*.md`).
    #[arg(long, env = "FORYOU_RANK_BATCH_MAX")]
    pub rank_batch_max: Option<usize>,
    /// Dynamic batching: longest a ranker call waits for company, ms. 0
    /// waits for nobody: a batch forms from what queued while every worker
    /// was busy, so a lone call on an idle server starts at once.
    #[arg(long, env = "FORYOU_RANK_BATCH_DELAY_MS", default_value_t = 0)]
    pub rank_batch_delay_ms: u64,
    /// With ranker batching on: candidate counts whose buckets are warmed
    /// at start (one forward pass each, before serving), comma separated.
    #[arg(
        long,
        env = "FORYOU_RANK_WARM_BUCKETS",
        value_delimiter = ',',
        default_value = "8,64,1024,2048"
    )]
    pub rank_warm_buckets: Vec<usize>,
    /// Candidate tokens the ranker keeps between requests (0: none): a
    /// token depends on the candidate alone (its hash rows, product
    /// surface and post-age bucket through the projection), so a post
    /// ranked again skips its gather and projection; the same scores
    /// either way. Used where tokens are built on the host (the CPU).
    /// `D x 4` bytes each: 100 000 at D 128 are 51 MB at most.
    #[arg(long, env = "FORYOU_RANK_TOKEN_CACHE", default_value_t = 100_000)]
    pub rank_token_cache: usize,
    /// Dynamic batching of retrieval calls: most requests per batch (0:
    /// bypass the batcher). Default by device, as for the ranker: 1 on the
    /// CPU, 64 on a GPU (a batch of users shares one pass over the corpus).
    #[arg(long, env = "FORYOU_RETRIEVE_BATCH_MAX")]
    pub retrieve_batch_max: Option<usize>,
    /// Dynamic batching: longest a retrieval call waits for company, ms.
    #[arg(long, env = "FORYOU_RETRIEVE_BATCH_DELAY_MS", default_value_t = 0)]
    pub retrieve_batch_delay_ms: u64,
    /// With batching on: most calls waiting in each batcher's queue; one
    /// more is answered RESOURCE_EXHAUSTED at once. It bounds the wait of
    /// an admitted call to about `queue / (batch x workers)` forward passes,
    /// so past saturation the server sheds load at once instead of queueing
    /// for seconds. Default: 4 full batches per worker, at least 16 (16 on a
    /// 2-core CPU, 128 on a GPU).
    #[arg(long, env = "FORYOU_BATCH_QUEUE_MAX")]
    pub batch_queue_max: Option<usize>,
    /// The retrieval index.
    #[command(flatten)]
    pub index: crate::phoenix::index_args::IndexArgs,
}

impl EngineArgs {
    /// How the engine may use its device.
    pub fn device_options(&self) -> foryou_engine::DeviceOptions {
        foryou_engine::DeviceOptions {
            cpu_amx: self.cpu_amx,
            gpu_tables: self.gpu_tables,
            gpu_attention: self.gpu_attention,
        }
    }

    /// The ranker batching policy for a ranker running on `device` (`None`: off).
    pub fn rank_batching(
        &self,
        device: foryou_engine::ComputeDevice,
    ) -> Option<foryou_engine::batcher::BatchPolicy> {
        batch_policy(
            self.rank_batch_max,
            32,
            self.rank_batch_delay_ms,
            self.batch_queue_max,
            device,
        )
    }

    /// The retrieval batching policy for a retriever on `device` (`None`: off).
    pub fn retrieve_batching(
        &self,
        device: foryou_engine::ComputeDevice,
    ) -> Option<foryou_engine::batcher::BatchPolicy> {
        batch_policy(
            self.retrieve_batch_max,
            64,
            self.retrieve_batch_delay_ms,
            self.batch_queue_max,
            device,
        )
    }
}

/// A batching policy (`None` when the batch size is 0). The size is the
/// flag's, else 1 on the CPU and `gpu_default` on a GPU; one worker per core
/// on the CPU, one on a GPU, whose forward passes run one at a time anyway;
/// the queue holds the flag's count, else 4 full batches per worker (at
/// least 16).
fn batch_policy(
    flag: Option<usize>,
    gpu_default: usize,
    delay_ms: u64,
    queue: Option<usize>,
    device: foryou_engine::ComputeDevice,
) -> Option<foryou_engine::batcher::BatchPolicy> {
    let (max, workers) = match device {
        foryou_engine::ComputeDevice::Cpu => (
            flag.unwrap_or(1),
            std::thread::available_parallelism().map_or(1, usize::from),
        ),
        foryou_engine::ComputeDevice::Cuda(_) => (flag.unwrap_or(gpu_default), 1),
    };
    (max > 0).then(|| foryou_engine::batcher::BatchPolicy {
        max_batch_size: max,
        max_queue_delay: Duration::from_millis(delay_ms),
        queue_capacity: queue.unwrap_or((4 * max * workers).max(16)).max(1),
        workers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use foryou_engine::ComputeDevice;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        engine: EngineArgs,
    }

    fn args(flags: &[&str]) -> EngineArgs {
        let mut argv = vec!["test"];
        argv.extend_from_slice(flags);
        Wrap::try_parse_from(argv).expect("valid flags").engine
    }

    #[derive(Parser)]
    struct ServeWrap {
        #[command(flatten)]
        serve: ServeConfig,
    }

    #[test]
    fn breaker_flags_default_to_five_failures_and_a_quarter_second_cooldown() {
        let d = ServeWrap::try_parse_from(["test"])
            .expect("defaults")
            .serve
            .breaker();
        assert_eq!(d, BreakerPolicy::default());
        assert_eq!((d.failures, d.cooldown), (5, Duration::from_millis(250)));
        let set = ServeWrap::try_parse_from([
            "test",
            "--breaker-failures",
            "0",
            "--breaker-cooldown-ms",
            "2000",
        ])
        .expect("valid flags")
        .serve
        .breaker();
        assert_eq!(
            (set.failures, set.cooldown),
            (0, Duration::from_millis(2000))
        );
    }

    #[test]
    fn device_options_come_from_flags_not_the_library() {
        use foryou_engine::backend::GpuTables;
        let d = args(&[]).device_options();
        assert_eq!((d.cpu_amx, d.gpu_tables), (true, GpuTables::Auto));
        let d = args(&["--cpu-amx", "0", "--gpu-tables", "host"]).device_options();
        assert_eq!((d.cpu_amx, d.gpu_tables), (false, GpuTables::Host));
        let d = args(&["--cpu-amx", "off"]).device_options();
        assert!(!d.cpu_amx);
        use foryou_engine::backend::AttentionKernel;
        assert_eq!(
            args(&[]).device_options().gpu_attention,
            AttentionKernel::Flash
        );
        let d = args(&["--gpu-attention", "gemm"]).device_options();
        assert_eq!(d.gpu_attention, AttentionKernel::Gemm);
        let bad = Wrap::try_parse_from(["test", "--gpu-attention", "fast"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(bad.contains("expected flash or gemm"), "{bad}");
        let mut argv = vec!["test", "--gpu-tables", "device"];
        let err = Wrap::try_parse_from(argv.drain(..))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("expected auto or host"), "{err}");
    }

    #[test]
    fn batching_defaults_follow_the_device_and_flags_override_them() {
        let none = args(&[]);
        let cpu = none
            .rank_batching(ComputeDevice::Cpu)
            .expect("on by default");
        assert_eq!(cpu.max_batch_size, 1);
        assert_eq!(cpu.queue_capacity, (4 * cpu.workers).max(16));
        let cpu = none
            .retrieve_batching(ComputeDevice::Cpu)
            .expect("on by default");
        assert_eq!(cpu.max_batch_size, 1);
        let gpu = none
            .rank_batching(ComputeDevice::Cuda(0))
            .expect("on by default on a GPU");
        assert_eq!((gpu.max_batch_size, gpu.workers), (32, 1));
        assert_eq!(gpu.queue_capacity, 128);
        let gpu = none
            .retrieve_batching(ComputeDevice::Cuda(0))
            .expect("on by default on a GPU");
        assert_eq!(gpu.max_batch_size, 64);

        let off = args(&["--rank-batch-max", "0", "--retrieve-batch-max", "0"]);
        assert!(off.rank_batching(ComputeDevice::Cuda(0)).is_none());
        assert!(off.retrieve_batching(ComputeDevice::Cuda(0)).is_none());
        let on = args(&["--rank-batch-max", "8", "--rank-batch-delay-ms", "3"]);
        let cpu = on.rank_batching(ComputeDevice::Cpu).expect("asked for");
        assert_eq!(cpu.max_batch_size, 8);
        assert_eq!(cpu.max_queue_delay, Duration::from_millis(3));
        assert!(cpu.workers >= 1);
        assert_eq!(cpu.queue_capacity, (4 * 8 * cpu.workers).max(16));
        let bounded = args(&["--rank-batch-max", "2", "--batch-queue-max", "16"]);
        let cpu = bounded
            .rank_batching(ComputeDevice::Cpu)
            .expect("asked for");
        assert_eq!((cpu.max_batch_size, cpu.queue_capacity), (2, 16));
    }
}
