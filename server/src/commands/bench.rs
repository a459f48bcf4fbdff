//! `foryou bench feed`: an open-loop load generator for GetScoredPosts.
//!
//! Requests are sent on a fixed schedule (request i at start + i/QPS),
//! whether or not earlier ones have answered, and each latency is measured
//! from its scheduled time, so a slow server cannot slow the load down and
//! hide its own queueing (no coordinated omission). Viewers are drawn
//! uniformly from 1..=--users with a seeded RNG.
//!
//! Requests ask for debug, and the report splits the server's own time
//! (mean ms per request) into ranker, retrieval, other stages and the
//! shell outside the stages (see `bench_load::ServerSplit`).

use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use foryou_proto::v1::scored_posts_service_client::ScoredPostsServiceClient;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Benchmarks against a running server.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Open-loop GetScoredPosts load: latency percentiles and achieved QPS.
    Feed(FeedBenchArgs),
    /// Ranker and retriever latency and throughput against batch size.
    Batch(super::bench_batch::BatchBenchArgs),
    /// Open-loop load at several rates against feed, rank or retrieve: a
    /// saturation curve with errors by status.
    Load(super::bench_load::LoadArgs),
    /// The hostile requests of the reliability suite against a running
    /// `foryou serve`, with health probed throughout; fails when an answer
    /// takes over 1 s or health over 100 ms.
    Hostile(super::bench_hostile::HostileArgs),
}

/// `foryou bench feed`.
#[derive(Debug, Args)]
pub struct FeedBenchArgs {
    /// Server address.
    #[arg(long, env = "FORYOU_ADDR", default_value = "http://127.0.0.1:50052")]
    addr: String,
    /// Offered load, requests per second.
    #[arg(long, default_value_t = 50.0)]
    qps: f64,
    /// Measured duration, seconds.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Warm-up before measuring, seconds (same load, not recorded).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Viewers are drawn from 1..=USERS.
    #[arg(long, default_value_t = 2000)]
    users: i64,
    /// RNG seed of the viewer draw.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Each request's deadline (grpc-timeout), ms; 0: none.
    #[arg(long, default_value_t = 0)]
    deadline_ms: u64,
    /// Also write every measured request to this CSV file (send time and
    /// latency in ms, status, degraded, posts), for fault timelines.
    #[arg(long)]
    trace: Option<std::path::PathBuf>,
}

/// Runs a bench subcommand.
pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match cmd {
        BenchCommand::Feed(args) => rt.block_on(feed(args)),
        BenchCommand::Batch(args) => super::bench_batch::run(args),
        BenchCommand::Load(args) => rt.block_on(super::bench_load::run(args)),
        BenchCommand::Hostile(args) => rt.block_on(super::bench_hostile::run(args)),
    }
}

async fn feed(args: FeedBenchArgs) -> anyhow::Result<()> {
    if args.users <= 0 {
        anyhow::bail!("--users must be positive");
    }
    let channel = super::bench_load::connect(&args.addr).await?;
    let client = ScoredPostsServiceClient::new(channel).max_decoding_message_size(128 << 20);
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let users = args.users;
    let deadline = (args.deadline_ms > 0).then(|| Duration::from_millis(args.deadline_ms));
    let r = super::bench_load::open_loop(args.qps, args.duration, args.warmup, move |_| {
        super::bench_load::feed_call(&client, rng.random_range(1..=users), deadline)
    })
    .await?;
    if let Some(path) = &args.trace {
        let mut text = String::from(super::bench_load::TraceRow::CSV_HEADER);
        text.push('\n');
        let mut rows = r.trace.clone();
        rows.sort_by(|a, b| a.sent_ms.total_cmp(&b.sent_ms));
        for row in &rows {
            text.push_str(&row.csv());
            text.push('\n');
        }
        std::fs::write(path, text).with_context(|| format!("--trace {}", path.display()))?;
    }
    if args.json {
        let v = serde_json::json!({
            "addr": args.addr, "offered_qps": args.qps, "duration_s": args.duration,
            "deadline_ms": args.deadline_ms, "errors_by_status": r.errors_by_status,
            "rejected_p99_ms": r.rejected_p99_ms,
            "degraded": r.degraded, "full_qps": r.full_qps,
            "requests": r.requests, "errors": r.errors, "achieved_qps": r.achieved_qps,
            "p50_ms": r.p50_ms, "p90_ms": r.p90_ms, "p99_ms": r.p99_ms, "max_ms": r.max_ms,
            "mean_posts": r.mean_items, "server_split": r.server_split,
            "shell_p50_ms": r.shell_p50_p99_ms.map(|s| s.0),
            "shell_p99_ms": r.shell_p50_p99_ms.map(|s| s.1),
        });
        println!("{v}");
    } else {
        let rows = std::slice::from_ref(&r);
        print!("{}", super::bench_load::table(rows));
        let split = super::bench_load::split_table(rows);
        if !split.is_empty() {
            print!("\n{split}");
        }
    }
    Ok(())
}
