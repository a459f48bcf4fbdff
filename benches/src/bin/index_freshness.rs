//! Freshness and search-under-ingest of the live retrieval index, over real
//! gRPC against an in-process `foryou phoenix serve` (demo model, CPU):
//!
//! 1. **Preload**: `--preload` posts streamed in with `IngestEvents` as
//!    fast as the server takes them; the time until the last one is
//!    returned by `Retrieve` gives the rebuild rate.
//! 2. **Idle**: `Retrieve` (top_k 1000, as the home mixer asks) latency,
//!    one call at a time, while a prober polls `Retrieve` every
//!    `--probe-poll-ms`: half the calls before the ingest phase, half
//!    after it, pooled, so the idle index has on average the size the
//!    index has during the ingest phase (it grows by `rate · seconds`).
//! 3. **Under ingest**: the same, while `--rate` events/s stream in (one
//!    `IngestEvents` call of `rate / 10` events every 100 ms, each holding
//!    one probe post). Freshness of a probe: from its call's
//!    acknowledgment to the first prober `Retrieve` that returns it.
//!
//! The ingest client runs on its own runtime and connection at nice 10:
//! in production the producer is another machine, so its own cost
//! (building and encoding events) is kept from competing with the
//! server; the server's side of the ingest (decoding, encoding the
//! posts, publishing) is measured in full.
//!
//! A post is only returned when it ranks in the prober's top_k (10 000),
//! so probe posts are drawn from the top 0.1 % of `--probe-pool` random
//! posts by their score for the prober's user (same model, same user
//! tower as the server's): they outrank 99 % of the index. Filler posts
//! are random ids. Prints a markdown table; `--json FILE` writes it all.
//!
//! `cargo build --release -p foryou-benches --bin index-freshness`
//! `target/release/index-freshness [--preload 1000000] [--rate 5000]
//! [--seconds 30] [--format f32|bf16|int8] [--searches 300] [--json FILE]`

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use foryou_engine::{CorpusItem, Device, encode_posts};
use foryou_proto::v1 as pb;
use foryou_proto::v1::in_network_event::EventVariant;
use foryou_proto::v1::in_network_posts_service_client::InNetworkPostsServiceClient;
use foryou_proto::v1::phoenix_retrieval_client::PhoenixRetrievalClient;
use foryou_server::config::PhoenixServeConfig;
use foryou_server::phoenix::{demo_model_dir, ensure_demo_models, load_models};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::Mutex;
use tonic::transport::Channel;

/// The prober's user (no history).
const PROBE_USER: i64 = 424_242;
/// The prober's depth (the largest Retrieve top_k).
const PROBE_K: u32 = 10_000;
/// The searches' depth (PHOENIX_MAX_RESULTS).
const SEARCH_K: u32 = 1_000;
/// Events per preload call.
const PRELOAD_CALL: usize = 10_000;

#[derive(Parser)]
struct Args {
    /// Posts in the index before measuring.
    #[arg(long, default_value_t = 1_000_000)]
    preload: usize,
    /// Events per second during the ingest phase.
    #[arg(long, default_value_t = 5_000)]
    rate: usize,
    /// Length of the ingest phase, seconds.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Live index format: f32, bf16 or int8.
    #[arg(long, default_value = "f32")]
    format: String,
    /// Timed searches per phase.
    #[arg(long, default_value_t = 300)]
    searches: usize,
    /// Prober poll interval, ms.
    #[arg(long, default_value_t = 20)]
    probe_poll_ms: u64,
    /// Random posts scored to find probe posts.
    #[arg(long, default_value_t = 400_000)]
    probe_pool: usize,
    /// Write every figure here.
    #[arg(long)]
    json: Option<String>,
}

/// Wraps the server's flags for parsing.
#[derive(Parser)]
struct ServerFlags {
    #[command(flatten)]
    cfg: PhoenixServeConfig,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let cache = dir.path().join("models");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let cfg = ServerFlags::try_parse_from([
        "phoenix",
        "--listen",
        &addr.to_string(),
        "--users",
        "50",
        "--seed",
        "42",
        "--model-cache",
        cache.to_str().context("utf-8 temp path")?,
        "--index-format",
        &args.format,
    ])?
    .cfg;

    // The probe posts, by the server's own model.
    let model_dir = demo_model_dir(Some(&cache), 42);
    ensure_demo_models(&model_dir, 42)?;
    let models = load_models(&model_dir, &Device::cpu())?;
    let t = Instant::now();
    let probes = probe_posts(&models.retriever, args.probe_pool)?;
    eprintln!(
        "{} probe posts from {} scored in {:.1} s",
        probes.len(),
        args.probe_pool,
        t.elapsed().as_secs_f64()
    );
    drop(models);

    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = server_rt.spawn(foryou_server::roles::phoenix::run_phoenix(cfg, async {
        let _ = stop_rx.await;
    }));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let ingest_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .on_thread_start(lower_priority)
        .enable_all()
        .build()?;
    let report = rt.block_on(measure(&args, addr, probes, ingest_rt.handle().clone()))?;
    let _ = stop_tx.send(());
    server_rt.block_on(server)??;
    print!("{}", report.markdown(&args));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report.json(&args))?)?;
    }
    Ok(())
}

/// Random posts in the top 0.1 % by score for [`PROBE_USER`].
fn probe_posts(
    retriever: &foryou_engine::PhoenixRetriever,
    pool: usize,
) -> anyhow::Result<Vec<CorpusItem>> {
    let user = retriever.represent_ids(&[(PROBE_USER, &[])])?;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let items: Vec<CorpusItem> = (0..pool)
        .map(|_| CorpusItem {
            post_id: 3_000_000_000_000 + rng.random_range(0..1_000_000_000_000i64),
            author_id: rng.random_range(1..1_000_000i64),
        })
        .collect();
    let reps = encode_posts(retriever, &items)?;
    let dim = user.len();
    let mut scored: Vec<(f32, CorpusItem)> = items
        .into_iter()
        .zip(reps.chunks(dim))
        .map(|(item, r)| (r.iter().zip(&user).map(|(a, b)| a * b).sum(), item))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.truncate(pool / 1000);
    Ok(scored.into_iter().map(|(_, item)| item).collect())
}

/// A create event for a post created `age_s` before the world's now
/// (`now_s`).
fn create(item: CorpusItem, created_s: i64) -> pb::InNetworkEvent {
    pb::InNetworkEvent {
        event_variant: Some(EventVariant::TweetCreateEvent(pb::TweetCreateEvent {
            post_id: item.post_id,
            author_id: item.author_id,
            created_at: created_s,
            ..Default::default()
        })),
    }
}

fn filler(rng: &mut ChaCha8Rng, next_id: &mut i64) -> CorpusItem {
    *next_id += 1;
    CorpusItem {
        post_id: *next_id,
        author_id: rng.random_range(1..1_000_000i64),
    }
}

async fn retrieve(c: &Channel, user: i64, k: u32) -> anyhow::Result<Vec<i64>> {
    Ok(PhoenixRetrievalClient::new(c.clone())
        .retrieve(pb::RetrieveRequest {
            user_id: user,
            top_k: k,
            ..Default::default()
        })
        .await?
        .into_inner()
        .posts
        .into_iter()
        .map(|p| p.post_id)
        .collect())
}

async fn ingest(c: &Channel, events: Vec<pb::InNetworkEvent>) -> anyhow::Result<()> {
    InNetworkPostsServiceClient::new(c.clone())
        .ingest_events(tokio_stream::iter(events))
        .await?;
    Ok(())
}

/// Probes handed in, waiting to be seen: (post id, acknowledged at).
type Pending = Arc<Mutex<Vec<(i64, Instant)>>>;

#[derive(Default, serde::Serialize)]
struct Report {
    preload_posts: usize,
    preload_s: f64,
    idle_ms: Vec<f64>,
    ingest_ms: Vec<f64>,
    freshness_ms: Vec<f64>,
    probes_unseen: usize,
    events_sent: usize,
    ingest_s: f64,
}

async fn connect(addr: SocketAddr) -> anyhow::Result<Channel> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Ok(c) = Channel::from_shared(format!("http://{addr}"))?
            .connect()
            .await
        {
            let mut h = tonic_health::pb::health_client::HealthClient::new(c.clone());
            let s = h
                .check(tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                })
                .await;
            if s.is_ok_and(|s| s.into_inner().status == 1) {
                return Ok(c);
            }
        }
        if Instant::now() > deadline {
            bail!("the server never became SERVING");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sequential searches for varied users; latencies in ms.
async fn searches(c: &Channel, n: usize) -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        retrieve(c, 1 + i as i64, SEARCH_K).await?;
        out.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(out)
}

async fn measure(
    args: &Args,
    addr: SocketAddr,
    mut probes: Vec<CorpusItem>,
    ingest_rt: tokio::runtime::Handle,
) -> anyhow::Result<Report> {
    let c = connect(addr).await?;
    let mut report = Report::default();
    // World time of the server ≈ wall time (the demo world starts now).
    let now_s = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    };
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut next_id = 1_000_000_000_000i64;

    // 1. Preload, the last post a probe.
    let sentinel = probes.pop().context("no probe posts")?;
    let t = Instant::now();
    let mut left = args.preload;
    while left > 0 {
        let n = left.min(PRELOAD_CALL);
        left -= n;
        let base = now_s();
        let mut events: Vec<_> = (0..n)
            .map(|_| {
                let age = rng.random_range(60..40 * 3600);
                create(filler(&mut rng, &mut next_id), base - age)
            })
            .collect();
        if left == 0 {
            events.push(create(sentinel, base));
        }
        ingest(&c, events).await?;
    }
    while !retrieve(&c, PROBE_USER, PROBE_K)
        .await?
        .contains(&sentinel.post_id)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    report.preload_posts = args.preload;
    report.preload_s = t.elapsed().as_secs_f64();
    eprintln!(
        "preloaded {} posts in {:.1} s",
        args.preload, report.preload_s
    );

    // The prober: polls for pending probes in both phases.
    let pending: Pending = Arc::default();
    let seen = Arc::new(Mutex::new(Vec::<f64>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let prober = {
        let (c, pending, seen, stop) = (c.clone(), pending.clone(), seen.clone(), stop.clone());
        let poll = Duration::from_millis(args.probe_poll_ms);
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let ids = retrieve(&c, PROBE_USER, PROBE_K).await.unwrap_or_default();
                let at = Instant::now();
                let mut p = pending.lock().await;
                let mut s = seen.lock().await;
                p.retain(|(id, acked)| {
                    let found = ids.contains(id);
                    if found {
                        s.push(at.saturating_duration_since(*acked).as_secs_f64() * 1e3);
                    }
                    !found
                });
                drop((p, s));
                tokio::time::sleep(poll).await;
            }
        })
    };

    // 2. Idle searches (the first half).
    report.idle_ms = searches(&c, args.searches / 2).await?;

    // 3. Searches under ingest.
    let ingest_stop = Arc::new(AtomicBool::new(false));
    let ingester = {
        let (pending, stop) = (pending.clone(), ingest_stop.clone());
        let per_tick = (args.rate / 10).max(1);
        let seconds = args.seconds;
        ingest_rt.spawn(async move {
            let c = connect(addr).await?;
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            let t = Instant::now();
            let mut sent = 0usize;
            while t.elapsed() < Duration::from_secs(seconds) && !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let base = now_s();
                let mut events: Vec<_> = (1..per_tick)
                    .map(|_| create(filler(&mut rng, &mut next_id), base))
                    .collect();
                let probe = probes.pop();
                if let Some(p) = probe {
                    events.push(create(p, base));
                }
                sent += events.len();
                ingest(&c, events).await?;
                if let Some(p) = probe {
                    pending.lock().await.push((p.post_id, Instant::now()));
                }
            }
            anyhow::Ok((sent, t.elapsed().as_secs_f64()))
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await; // reach the steady rate
    report.ingest_ms = searches(&c, args.searches).await?;
    let (sent, secs) = ingester.await??;
    report.events_sent = sent;
    report.ingest_s = secs;
    // The second half of the idle searches, on the grown index.
    tokio::time::sleep(Duration::from_secs(2)).await;
    report
        .idle_ms
        .extend(searches(&c, args.searches - args.searches / 2).await?);
    // Let the last probes surface.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pending.lock().await.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    prober.await?;
    report.probes_unseen = pending.lock().await.len();
    report.freshness_ms = std::mem::take(&mut *seen.lock().await);
    Ok(report)
}

/// The `q`-quantile of unsorted `v`.
fn percentile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    foryou_benches::index_data::percentile(&s, q)
}

impl Report {
    fn markdown(&self, args: &Args) -> String {
        let (i50, i99) = (
            percentile(&self.idle_ms, 0.5),
            percentile(&self.idle_ms, 0.99),
        );
        let (g50, g99) = (
            percentile(&self.ingest_ms, 0.5),
            percentile(&self.ingest_ms, 0.99),
        );
        let mut s = String::new();
        s += &format!(
            "Preload: {} posts searchable in {:.1} s ({:.0} posts/s through IngestEvents, encoder and index)\n\n",
            self.preload_posts,
            self.preload_s,
            self.preload_posts as f64 / self.preload_s
        );
        s += &format!(
            "Ingest phase: {} events in {:.1} s ({:.0} events/s)\n\n",
            self.events_sent,
            self.ingest_s,
            self.events_sent as f64 / self.ingest_s
        );
        s += "| format | Retrieve k=1000 | p50 ms | p99 ms |\n|---|---|---:|---:|\n";
        s += &format!("| {} | idle | {i50:.2} | {i99:.2} |\n", args.format);
        s += &format!(
            "| {} | under {} events/s | {g50:.2} | {g99:.2} |\n",
            args.format, args.rate
        );
        s += &format!(
            "\nUnder ingest / idle: p50 {:.2}x, p99 {:.2}x\n\n",
            g50 / i50,
            g99 / i99
        );
        s += &format!(
            "Freshness (ack → returned by Retrieve), {} probes ({} never seen): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms\n",
            self.freshness_ms.len(),
            self.probes_unseen,
            percentile(&self.freshness_ms, 0.5),
            percentile(&self.freshness_ms, 0.99),
            percentile(&self.freshness_ms, 1.0)
        );
        s
    }

    fn json(&self, args: &Args) -> serde_json::Value {
        serde_json::json!({
            "format": args.format,
            "rate": args.rate,
            "preload": self.preload_posts,
            "seconds": args.seconds,
            "report": self,
        })
    }
}

/// Nice 10 for the calling thread (the ingest client's runtime).
fn lower_priority() {
    foryou_server::roles::priority::set_thread_nice(10);
}
