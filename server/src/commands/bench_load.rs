//! The open-loop load driver behind `foryou bench feed` and `foryou bench
//! load`. Requests go out on a fixed schedule (request i at start + i/QPS)
//! whether or not earlier ones have answered, and each latency counts from
//! its scheduled time, so a slow server cannot slow the load down and hide
//! its own queueing (no coordinated omission).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use foryou_proto::v1 as pb;
use foryou_proto::v1::phoenix_ranker_client::PhoenixRankerClient;
use foryou_proto::v1::phoenix_retrieval_client::PhoenixRetrievalClient;
use foryou_proto::v1::scored_posts_service_client::ScoredPostsServiceClient;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tonic::transport::Channel;

/// How one request ended: its status code and the items it returned.
pub type Outcome = (tonic::Code, usize);
/// A request in flight.
pub type Call = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// The figures of one offered rate.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadResult {
    /// Offered requests per second.
    pub offered_qps: f64,
    /// Successful answers per second of measured time.
    pub achieved_qps: f64,
    /// Requests sent in the measured window.
    pub requests: usize,
    /// Failed requests.
    pub errors: usize,
    /// Failed requests by gRPC status.
    pub errors_by_status: BTreeMap<String, usize>,
    /// Latency percentiles of successful requests, ms.
    pub p50_ms: f64,
    /// p90, ms.
    pub p90_ms: f64,
    /// p99, ms.
    pub p99_ms: f64,
    /// Slowest, ms.
    pub max_ms: f64,
    /// Mean items per answer (posts, scores or retrieved posts).
    pub mean_items: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((p / 100.0) * (sorted.len() - 1) as f64).round() as usize]
}

/// Offers `qps` for `warmup + duration` seconds; `call(i)` makes request i.
pub async fn open_loop(
    qps: f64,
    duration: f64,
    warmup: f64,
    mut call: impl FnMut(u64) -> Call,
) -> anyhow::Result<LoadResult> {
    if !(qps > 0.0 && duration > 0.0 && warmup >= 0.0) {
        anyhow::bail!("--qps and --duration must be positive, --warmup not negative");
    }
    let interval = Duration::from_secs_f64(1.0 / qps);
    let warm_n = (warmup * qps).round() as u64;
    let total_n = warm_n + (duration * qps).round() as u64;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Duration, Outcome)>();
    let start = Instant::now() + Duration::from_millis(50);
    for i in 0..total_n {
        let at = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(at.into()).await;
        let (fut, tx) = (call(i), tx.clone());
        let measured = i >= warm_n;
        tokio::spawn(async move {
            let outcome = fut.await;
            if measured {
                let _ = tx.send((at.elapsed(), outcome));
            }
        });
    }
    drop(tx);
    let measure_start = start + interval.mul_f64(warm_n as f64);
    let mut samples = Vec::new();
    while let Some(s) = rx.recv().await {
        samples.push(s);
    }
    let wall = measure_start.elapsed().as_secs_f64().max(1e-9);
    let mut ms: Vec<f64> = samples
        .iter()
        .filter(|(_, (code, _))| *code == tonic::Code::Ok)
        .map(|(d, _)| d.as_secs_f64() * 1e3)
        .collect();
    ms.sort_by(f64::total_cmp);
    let mut errors_by_status = BTreeMap::new();
    for (_, (code, _)) in &samples {
        if *code != tonic::Code::Ok {
            *errors_by_status.entry(format!("{code:?}")).or_insert(0) += 1;
        }
    }
    Ok(LoadResult {
        offered_qps: qps,
        achieved_qps: ms.len() as f64 / wall,
        requests: samples.len(),
        errors: samples.len() - ms.len(),
        errors_by_status,
        p50_ms: percentile(&ms, 50.0),
        p90_ms: percentile(&ms, 90.0),
        p99_ms: percentile(&ms, 99.0),
        max_ms: ms.last().copied().unwrap_or(f64::NAN),
        mean_items: samples.iter().map(|(_, (_, n))| *n).sum::<usize>() as f64
            / samples.len().max(1) as f64,
    })
}

/// What `foryou bench load` calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// GetScoredPosts (the whole pipeline).
    Feed,
    /// PhoenixRanker.Predict.
    Rank,
    /// PhoenixRetrieval.Retrieve.
    Retrieve,
}

/// `foryou bench load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Server address.
    #[arg(long, env = "FORYOU_ADDR", default_value = "http://127.0.0.1:50052")]
    addr: String,
    /// What to call.
    #[arg(long, value_enum, default_value = "feed")]
    target: Target,
    /// Offered rates, requests per second (a saturation curve).
    #[arg(long, value_delimiter = ',', default_value = "10,25,50")]
    qps: Vec<f64>,
    /// Measured seconds per rate.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Warm-up seconds per rate (same load, not recorded).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Viewers are drawn from 1..=USERS.
    #[arg(long, default_value_t = 2000)]
    users: i64,
    /// Rank: candidates per request.
    #[arg(long, default_value_t = 1000)]
    candidates: usize,
    /// Rank and retrieve: history items per request.
    #[arg(long, default_value_t = 32)]
    history: usize,
    /// Retrieve: top-k.
    #[arg(long, default_value_t = 1000)]
    top_k: u32,
    /// RNG seed of the request draw.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Directory for `load_<target>.{json,md}` (none: print only).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn history(rng: &mut ChaCha8Rng, n: usize) -> Vec<pb::HistoryItem> {
    (0..n)
        .map(|_| pb::HistoryItem {
            post_id: rng.random_range(1..i64::MAX / 2),
            author_id: rng.random_range(1..1_000_000),
            actions: (0..19).map(|_| rng.random_bool(0.2)).collect(),
            product_surface: 0,
            timestamp_ms: 0,
        })
        .collect()
}

/// Makes request `i` of `target`.
fn caller(args: &LoadArgs, channel: Channel) -> impl FnMut(u64) -> Call {
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let (target, users, candidates, hist, top_k) = (
        args.target,
        args.users,
        args.candidates,
        args.history,
        args.top_k,
    );
    let feed = ScoredPostsServiceClient::new(channel.clone()).max_decoding_message_size(128 << 20);
    let rank = PhoenixRankerClient::new(channel.clone()).max_decoding_message_size(128 << 20);
    let retrieve = PhoenixRetrievalClient::new(channel).max_decoding_message_size(128 << 20);
    move |_i| -> Call {
        let user = rng.random_range(1..=users.max(1));
        let code = |s: tonic::Status| (s.code(), 0);
        match target {
            Target::Feed => {
                let mut c = feed.clone();
                Box::pin(async move {
                    let q = pb::ScoredPostsQuery {
                        viewer_id: user,
                        ..Default::default()
                    };
                    c.get_scored_posts(q).await.map_or_else(code, |r| {
                        (tonic::Code::Ok, r.into_inner().scored_posts.len())
                    })
                })
            }
            Target::Rank => {
                let mut c = rank.clone();
                let req = pb::PredictRequest {
                    user_id: user,
                    history: history(&mut rng, hist),
                    candidates: (0..candidates)
                        .map(|_| pb::RankCandidate {
                            post_id: rng.random_range(1..i64::MAX / 2),
                            author_id: rng.random_range(1..1_000_000),
                            product_surface: 0,
                        })
                        .collect(),
                    request_id: None,
                };
                Box::pin(async move {
                    c.predict(req)
                        .await
                        .map_or_else(code, |r| (tonic::Code::Ok, r.into_inner().scores.len()))
                })
            }
            Target::Retrieve => {
                let mut c = retrieve.clone();
                let req = pb::RetrieveRequest {
                    user_id: user,
                    history: history(&mut rng, hist),
                    top_k,
                    ..Default::default()
                };
                Box::pin(async move {
                    c.retrieve(req)
                        .await
                        .map_or_else(code, |r| (tonic::Code::Ok, r.into_inner().posts.len()))
                })
            }
        }
    }
}

/// Connects to `addr`.
pub async fn connect(addr: &str) -> anyhow::Result<Channel> {
    Channel::from_shared(addr.to_owned())
        .with_context(|| format!("bad address {addr:?}"))?
        .connect()
        .await
        .with_context(|| format!("cannot connect to {addr}"))
}

/// The markdown table of a saturation curve.
pub fn table(rows: &[LoadResult]) -> String {
    let mut s = String::from(
        "| offered QPS | achieved QPS | requests | errors | p50 ms | p90 ms | p99 ms | max ms | items |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let errs = if r.errors_by_status.is_empty() {
            "0".to_owned()
        } else {
            r.errors_by_status
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        s.push_str(&format!(
            "| {:.0} | {:.1} | {} | {errs} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
            r.offered_qps,
            r.achieved_qps,
            r.requests,
            r.p50_ms,
            r.p90_ms,
            r.p99_ms,
            r.max_ms,
            r.mean_items
        ));
    }
    s
}

/// Runs `foryou bench load`.
pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    if args.qps.is_empty() || args.qps.iter().any(|q| q.is_nan() || *q <= 0.0) {
        anyhow::bail!("--qps must list positive rates, e.g. 10,25,50");
    }
    let channel = connect(&args.addr).await?;
    let mut rows = Vec::new();
    for &q in &args.qps {
        let r = open_loop(
            q,
            args.duration,
            args.warmup,
            caller(&args, channel.clone()),
        )
        .await?;
        eprintln!(
            "{:?} at {q} QPS: p50 {:.1} ms, p99 {:.1} ms, {:.1} achieved",
            args.target, r.p50_ms, r.p99_ms, r.achieved_qps
        );
        rows.push(r);
    }
    let md = table(&rows);
    print!("{md}");
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let stem = dir.join(format!("load_{:?}", args.target).to_lowercase());
        let json = serde_json::json!({ "addr": args.addr, "target": format!("{:?}", args.target),
            "duration_s": args.duration, "warmup_s": args.warmup, "rates": rows });
        std::fs::write(
            stem.with_extension("json"),
            serde_json::to_string_pretty(&json)?,
        )
        .with_context(|| format!("writing {}", stem.display()))?;
        std::fs::write(stem.with_extension("md"), &md)
            .with_context(|| format!("writing {}", stem.display()))?;
        let curve =
            |f: fn(&LoadResult) -> f64| rows.iter().map(|r| (r.offered_qps, f(r))).collect();
        use super::plot::{Panel, Series};
        let panels = [
            Panel {
                title: "latency",
                x_label: "offered QPS",
                y_label: "ms",
                log_x: false,
                series: vec![
                    Series {
                        name: "p50",
                        points: curve(|r| r.p50_ms),
                    },
                    Series {
                        name: "p99",
                        points: curve(|r| r.p99_ms),
                    },
                ],
            },
            Panel {
                title: "throughput",
                x_label: "offered QPS",
                y_label: "achieved QPS",
                log_x: false,
                series: vec![Series {
                    name: "achieved",
                    points: curve(|r| r.achieved_qps),
                }],
            },
        ];
        std::fs::write(stem.with_extension("svg"), super::plot::svg(&panels))
            .with_context(|| format!("writing {}", stem.display()))?;
        super::plot_png::png(&stem.with_extension("png"), &panels)
            .with_context(|| format!("writing {}.png", stem.display()))?;
    }
    Ok(())
}
