//! `foryou bench hostile`: the hostile requests of issue 18 against a
//! running `foryou serve` (embedded Thunder and Phoenix), each kind sent
//! `--rounds` times from `--concurrency` tasks at once, while a prober asks
//! the health service every 50 ms. Prints one markdown row per kind (the
//! statuses it got, its p50/max answer time) and the health probes'
//! latency; exits non-zero when a goal is missed (an answer over 1 s, a
//! health answer over 100 ms or missing, an unexpected status).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::Args;
use foryou_proto::v1 as pb;
use foryou_proto::v1::in_network_posts_service_client::InNetworkPostsServiceClient;
use foryou_proto::v1::phoenix_ranker_client::PhoenixRankerClient;
use foryou_proto::v1::phoenix_retrieval_client::PhoenixRetrievalClient;
use foryou_proto::v1::scored_posts_service_client::ScoredPostsServiceClient;
use tonic::codec::CompressionEncoding::Gzip;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// `foryou bench hostile`.
#[derive(Debug, Args)]
pub struct HostileArgs {
    /// Server address (a `foryou serve` with its embedded Thunder and
    /// Phoenix).
    #[arg(long, env = "FORYOU_ADDR", default_value = "http://127.0.0.1:50052")]
    addr: String,
    /// Requests of each kind.
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    /// Requests of a kind in flight at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
}

/// Each hostile request must be answered within this.
const ANSWER_GOAL: Duration = Duration::from_secs(1);
/// The health service must answer within this throughout.
const HEALTH_GOAL: Duration = Duration::from_millis(100);

/// One kind of hostile request.
#[derive(Debug, Clone, Copy)]
enum Kind {
    BloomHugeK,
    BloomsAtLimits,
    GzipBomb,
    PredictMillion,
    PredictOverLimit,
    RetrieveHugeTopK,
    ViewerZero,
    IngestExtremeTimes,
    IngestDescendingDeletes,
}

const KINDS: [Kind; 9] = [
    Kind::BloomHugeK,
    Kind::BloomsAtLimits,
    Kind::GzipBomb,
    Kind::PredictMillion,
    Kind::PredictOverLimit,
    Kind::RetrieveHugeTopK,
    Kind::ViewerZero,
    Kind::IngestExtremeTimes,
    Kind::IngestDescendingDeletes,
];

impl Kind {
    /// The table's name for it.
    fn name(self) -> &'static str {
        match self {
            Kind::BloomHugeK => "bloom k = 2^32-1, all bits set",
            Kind::BloomsAtLimits => "8 bloom filters at the limits (8 Mbit, k = 64, all set)",
            Kind::GzipBomb => "gzip bomb: 24 MiB feed request in ~24 KiB",
            Kind::PredictMillion => "Predict with 1,000,000 candidates (~20 MB)",
            Kind::PredictOverLimit => "Predict with 10,001 candidates",
            Kind::RetrieveHugeTopK => "Retrieve top_k 2^32-1",
            Kind::ViewerZero => "feed of viewer 0",
            Kind::IngestExtremeTimes => "IngestEvents: created_at i64::MIN and i64::MAX",
            Kind::IngestDescendingDeletes => "IngestEvents: 100,000 deletes, descending ids",
        }
    }

    /// The statuses it may get.
    fn expect(self) -> &'static [tonic::Code] {
        use tonic::Code::*;
        match self {
            Kind::BloomsAtLimits | Kind::IngestExtremeTimes | Kind::IngestDescendingDeletes => {
                &[Ok]
            }
            Kind::GzipBomb => &[ResourceExhausted],
            // tonic: OUT_OF_RANGE for a message over the limit as sent.
            Kind::PredictMillion => &[OutOfRange, ResourceExhausted],
            Kind::BloomHugeK
            | Kind::PredictOverLimit
            | Kind::RetrieveHugeTopK
            | Kind::ViewerZero => &[InvalidArgument],
        }
    }
}

/// Runs the hostile bench; an error when a goal is missed.
pub async fn run(args: HostileArgs) -> anyhow::Result<()> {
    let channel = super::bench_load::connect(&args.addr).await?;
    wait_serving(&channel).await?;
    let stop = tokio::sync::watch::Sender::new(false);
    // The prober has a thread, a runtime and a connection of its own: the
    // hostile senders' own encoding (gzip of 24 MiB, 20 MB messages) must
    // not delay it, or the client's stalls would be blamed on the server.
    let prober = {
        let (addr, stop) = (args.addr.clone(), stop.subscribe());
        std::thread::spawn(move || -> anyhow::Result<HealthLog> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let ch = super::bench_load::connect(&addr).await?;
                Ok(probe_health(ch, stop).await)
            })
        })
    };
    println!("| request | sent | statuses | p50 ms | max ms |\n|---|---|---|---|---|");
    let mut missed = Vec::new();
    for kind in KINDS {
        let mut tasks = tokio::task::JoinSet::new();
        let mut times = Vec::new();
        let mut codes: BTreeMap<String, usize> = BTreeMap::new();
        for round in 0..args.rounds {
            if tasks.len() >= args.concurrency.max(1)
                && let Some(Ok(r)) = tasks.join_next().await
            {
                record(r, &mut times, &mut codes);
            }
            let ch = channel.clone();
            tasks.spawn(async move {
                let t = Instant::now();
                let code = send(kind, round, ch).await;
                (t.elapsed(), code)
            });
        }
        while let Some(r) = tasks.join_next().await {
            if let Ok(r) = r {
                record(r, &mut times, &mut codes);
            }
        }
        times.sort();
        let p50 = times.get(times.len() / 2).copied().unwrap_or_default();
        let max = times.last().copied().unwrap_or_default();
        let statuses = codes
            .iter()
            .map(|(c, n)| format!("{n} {c}"))
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "| {} | {} | {statuses} | {:.1} | {:.1} |",
            kind.name(),
            times.len(),
            p50.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );
        if max > ANSWER_GOAL {
            missed.push(format!("{}: slowest answer {max:?}", kind.name()));
        }
        let expected: Vec<String> = kind.expect().iter().map(|c| format!("{c:?}")).collect();
        if let Some(c) = codes.keys().find(|c| !expected.contains(c)) {
            missed.push(format!("{}: got {c}, expected {expected:?}", kind.name()));
        }
    }
    stop.send_replace(true);
    let health = prober
        .join()
        .map_err(|_| anyhow::anyhow!("the health prober panicked"))??;
    let mut h = health.latencies.clone();
    h.sort();
    let hmax = h.last().copied().unwrap_or_default();
    println!(
        "\nhealth probes every 50 ms throughout: {} answered SERVING, {} not; p50 {:.2} ms, max {:.2} ms",
        h.len(),
        health.failed,
        h.get(h.len() / 2)
            .copied()
            .unwrap_or_default()
            .as_secs_f64()
            * 1e3,
        hmax.as_secs_f64() * 1e3
    );
    if hmax > HEALTH_GOAL || health.failed > 0 {
        missed.push(format!(
            "health: max {hmax:?}, {} not answered SERVING",
            health.failed
        ));
    }
    if missed.is_empty() {
        println!("\nall goals met: every answer within 1 s, health within 100 ms");
        Ok(())
    } else {
        anyhow::bail!("goals missed:\n  {}", missed.join("\n  "))
    }
}

fn record(
    (took, code): (Duration, tonic::Code),
    times: &mut Vec<Duration>,
    codes: &mut BTreeMap<String, usize>,
) {
    times.push(took);
    *codes.entry(format!("{code:?}")).or_default() += 1;
}

fn code_of<T>(r: Result<T, tonic::Status>) -> tonic::Code {
    r.map_or_else(|s| s.code(), |_| tonic::Code::Ok)
}

fn all_ones(num_bits: u64, num_hashes: u32) -> pb::ImpressionBloomFilterEntry {
    pb::ImpressionBloomFilterEntry {
        bitset: vec![0xff; num_bits.div_ceil(8) as usize],
        num_bits,
        num_hashes,
    }
}

fn candidates(n: usize) -> Vec<pb::RankCandidate> {
    (0..n as i64)
        .map(|i| pb::RankCandidate {
            post_id: 1 + i,
            author_id: 1 + i % 1000,
            ..Default::default()
        })
        .collect()
}

/// Sends one request of `kind`; its status.
async fn send(kind: Kind, round: usize, ch: Channel) -> tonic::Code {
    let feed = || {
        ScoredPostsServiceClient::new(ch.clone())
            .max_encoding_message_size(usize::MAX)
            .max_decoding_message_size(usize::MAX)
    };
    let ranker = || PhoenixRankerClient::new(ch.clone()).max_encoding_message_size(usize::MAX);
    let viewer = 1 + round as i64 % 100;
    match kind {
        Kind::BloomHugeK => code_of(
            feed()
                .get_scored_posts(pb::ScoredPostsQuery {
                    viewer_id: viewer,
                    bloom_filter_entries: vec![all_ones(4096, u32::MAX)],
                    ..Default::default()
                })
                .await,
        ),
        Kind::BloomsAtLimits => code_of(
            feed()
                .get_scored_posts(pb::ScoredPostsQuery {
                    viewer_id: viewer,
                    bloom_filter_entries: vec![all_ones(1 << 23, 64); 8],
                    ..Default::default()
                })
                .await,
        ),
        Kind::GzipBomb => code_of(
            feed()
                .send_compressed(Gzip)
                .get_scored_posts(pb::ScoredPostsQuery {
                    viewer_id: viewer,
                    bloom_filter_entries: vec![pb::ImpressionBloomFilterEntry {
                        bitset: vec![0; 24 << 20],
                        num_bits: 64,
                        num_hashes: 1,
                    }],
                    ..Default::default()
                })
                .await,
        ),
        Kind::PredictMillion => code_of(
            ranker()
                .predict(pb::PredictRequest {
                    user_id: viewer,
                    candidates: candidates(1_000_000),
                    ..Default::default()
                })
                .await,
        ),
        Kind::PredictOverLimit => code_of(
            ranker()
                .predict(pb::PredictRequest {
                    user_id: viewer,
                    candidates: candidates(10_001),
                    ..Default::default()
                })
                .await,
        ),
        Kind::RetrieveHugeTopK => code_of(
            PhoenixRetrievalClient::new(ch)
                .retrieve(pb::RetrieveRequest {
                    user_id: viewer,
                    top_k: u32::MAX,
                    ..Default::default()
                })
                .await,
        ),
        Kind::ViewerZero => code_of(
            feed()
                .get_scored_posts(pb::ScoredPostsQuery::default())
                .await,
        ),
        Kind::IngestExtremeTimes => {
            let events = [i64::MIN, i64::MAX].map(|created_at| pb::InNetworkEvent {
                event_variant: Some(pb::in_network_event::EventVariant::TweetCreateEvent(
                    pb::TweetCreateEvent {
                        post_id: 1_000_000 + round as i64,
                        author_id: 7,
                        created_at,
                        ..Default::default()
                    },
                )),
            });
            let stream = tokio_stream::iter(events);
            code_of(
                InNetworkPostsServiceClient::new(ch)
                    .ingest_events(stream)
                    .await,
            )
        }
        Kind::IngestDescendingDeletes => {
            let base = 10_000_000 * (1 + round as i64);
            let events = (0..100_000i64).rev().map(move |i| pb::InNetworkEvent {
                event_variant: Some(pb::in_network_event::EventVariant::TweetDeleteEvent(
                    pb::TweetDeleteEvent {
                        post_id: base + i,
                        deleted_at: 0,
                    },
                )),
            });
            let stream = tokio_stream::iter(events);
            code_of(
                InNetworkPostsServiceClient::new(ch)
                    .ingest_events(stream)
                    .await,
            )
        }
    }
}

struct HealthLog {
    latencies: Vec<Duration>,
    failed: usize,
}

/// Waits (at most a minute) until the server reports SERVING: feeds may
/// answer before, while the retrieval index is still being rebuilt.
async fn wait_serving(ch: &Channel) -> anyhow::Result<()> {
    let mut client = HealthClient::new(ch.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ask = client.check(HealthCheckRequest {
            service: String::new(),
        });
        if let Ok(r) = ask.await
            && r.get_ref().status == 1
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("the server did not report SERVING within a minute");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asks the whole server's health every 50 ms until `stop`.
async fn probe_health(ch: Channel, stop: tokio::sync::watch::Receiver<bool>) -> HealthLog {
    let mut log = HealthLog {
        latencies: Vec::new(),
        failed: 0,
    };
    let mut client = HealthClient::new(ch);
    while !*stop.borrow() {
        let t = Instant::now();
        let ask = client.check(HealthCheckRequest {
            service: String::new(),
        });
        match tokio::time::timeout(Duration::from_secs(1), ask).await {
            Ok(Ok(r)) if r.get_ref().status == 1 => log.latencies.push(t.elapsed()),
            _ => log.failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    log
}
