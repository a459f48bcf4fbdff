//! The open-loop load driver behind `foryou bench feed` and `foryou bench
//! load`. Requests go out on a fixed schedule (request i at start + i/QPS)
//! whether or not earlier ones have answered, and each latency counts from
//! its scheduled time, so a slow server cannot slow the load down and hide
//! its own queueing (no coordinated omission).
//!
//! Feed requests ask for debug, so each answer carries the server's own
//! split of its time (`stage_ms`, see `grpc::scored_posts`); every rate
//! reports the mean split next to the client-side percentiles. Debug adds
//! the per-post probabilities and the debug map to each answer, a few kB.

use std::collections::{BTreeMap, HashMap};
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
use foryou_server::grpc::scored_posts::{OUTSIDE_STAGES_KEY, TOTAL_KEY, stage_key};
use foryou_server::pipeline::components::scorers::PhoenixScorer;
use foryou_server::pipeline::components::sources::PhoenixSource;
use foryou_server::pipeline::framework::{Stage, short_type_name};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tonic::transport::Channel;

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// Its status code.
    pub code: tonic::Code,
    /// The items it returned (posts, scores or retrieved posts).
    pub items: usize,
    /// The server's split of its time (feed answers with debug only).
    pub split: Option<ServerSplit>,
    /// An OK feed whose pipeline skipped a failed component (its debug
    /// counts a `failed/...` stage), e.g. unranked when the ranker shed it.
    pub degraded: bool,
}

impl Outcome {
    /// A successful answer with `items` items.
    pub fn ok(items: usize) -> Self {
        Self {
            code: tonic::Code::Ok,
            items,
            split: None,
            degraded: false,
        }
    }

    /// A failed request.
    pub fn failed(status: &tonic::Status) -> Self {
        Self {
            code: status.code(),
            items: 0,
            split: None,
            degraded: false,
        }
    }
}

/// A request in flight.
pub type Call = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// Where the home mixer says a GetScoredPosts request's time went, ms, from
/// its debug `stage_ms`. The four parts add up to `total_ms`:
/// - `ranker_ms`: the PhoenixScorer call (batcher queue and model);
/// - `retrieval_ms`: the PhoenixSource call; sources run concurrently, so
///   a slower ThunderSource shows up in `other_stages_ms`;
/// - `other_stages_ms`: the rest of the time in stages (the server's
///   `total − outside_stages`, less the two above);
/// - `outside_ms`: the server's `outside_stages`, the shell around the
///   component calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct ServerSplit {
    /// Ranker, ms.
    pub ranker_ms: f64,
    /// Retrieval, ms.
    pub retrieval_ms: f64,
    /// Every other stage, ms.
    pub other_stages_ms: f64,
    /// Outside the stages, ms.
    pub outside_ms: f64,
    /// The server's total, ms.
    pub total_ms: f64,
}

impl ServerSplit {
    /// The split of one debug answer; `None` without `total` and
    /// `outside_stages` (a server that does not report them).
    pub fn from_stage_ms(stage_ms: &HashMap<String, f64>) -> Option<Self> {
        let total_ms = *stage_ms.get(TOTAL_KEY)?;
        let outside_ms = *stage_ms.get(OUTSIDE_STAGES_KEY)?;
        let component = |stage: Stage, name: &str| {
            stage_ms
                .get(&stage_key(stage, name))
                .copied()
                .unwrap_or(0.0)
        };
        let ranker_ms = component(
            Stage::Scorer,
            short_type_name(std::any::type_name::<PhoenixScorer>()),
        );
        let retrieval_ms = component(
            Stage::Source,
            short_type_name(std::any::type_name::<PhoenixSource>()),
        );
        Some(Self {
            ranker_ms,
            retrieval_ms,
            other_stages_ms: (total_ms - outside_ms - ranker_ms - retrieval_ms).max(0.0),
            outside_ms,
            total_ms,
        })
    }

    /// Time in the shell around the ML calls: the other stages and the
    /// time outside stages, ms.
    pub fn shell_ms(&self) -> f64 {
        self.other_stages_ms + self.outside_ms
    }

    /// p50 and p99 of the shell over `splits`; `None` when empty.
    pub fn shell_percentiles(splits: &[ServerSplit]) -> Option<(f64, f64)> {
        let mut shell: Vec<f64> = splits.iter().map(Self::shell_ms).collect();
        shell.sort_by(f64::total_cmp);
        (!shell.is_empty()).then(|| (percentile(&shell, 50.0), percentile(&shell, 99.0)))
    }

    /// The mean of `splits`; `None` when empty.
    pub fn mean(splits: &[ServerSplit]) -> Option<Self> {
        if splits.is_empty() {
            return None;
        }
        let n = splits.len() as f64;
        let mean = |f: fn(&ServerSplit) -> f64| splits.iter().map(f).sum::<f64>() / n;
        Some(Self {
            ranker_ms: mean(|s| s.ranker_ms),
            retrieval_ms: mean(|s| s.retrieval_ms),
            other_stages_ms: mean(|s| s.other_stages_ms),
            outside_ms: mean(|s| s.outside_ms),
            total_ms: mean(|s| s.total_ms),
        })
    }
}

/// A debug GetScoredPosts for `viewer` (with a grpc-timeout of `deadline`
/// when given), its outcome carrying the split.
pub fn feed_call(
    client: &ScoredPostsServiceClient<Channel>,
    viewer: i64,
    deadline: Option<Duration>,
) -> Call {
    let mut c = client.clone();
    Box::pin(async move {
        let mut q = tonic::Request::new(pb::ScoredPostsQuery {
            viewer_id: viewer,
            debug: true,
            ..Default::default()
        });
        if let Some(d) = deadline {
            q.set_timeout(d);
        }
        match c.get_scored_posts(q).await {
            Ok(r) => {
                let r = r.into_inner();
                Outcome {
                    split: r
                        .debug
                        .as_ref()
                        .and_then(|d| ServerSplit::from_stage_ms(&d.stage_ms)),
                    degraded: r
                        .debug
                        .as_ref()
                        .is_some_and(|d| d.stage_counts.keys().any(|k| k.starts_with("failed/"))),
                    ..Outcome::ok(r.scored_posts.len())
                }
            }
            Err(s) => Outcome::failed(&s),
        }
    })
}

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
    /// OK feeds whose pipeline skipped a failed component (unranked,
    /// without a source): answered, but not the full feed.
    pub degraded: usize,
    /// Full (not degraded) OK answers per second of measured time.
    pub full_qps: f64,
    /// p99 latency of the requests answered RESOURCE_EXHAUSTED (shed by
    /// admission control), ms; NaN when none were.
    pub rejected_p99_ms: f64,
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
    /// Mean server split of the successful answers that carried one (feed
    /// only).
    pub server_split: Option<ServerSplit>,
    /// The shell (other stages + outside stages, the issue-19 goal) of
    /// those answers, p50 and p99, ms (feed only).
    pub shell_p50_p99_ms: Option<(f64, f64)>,
    /// Every measured request, in the order answers arrived (written by
    /// `--trace`, not in the JSON).
    #[serde(skip)]
    pub trace: Vec<TraceRow>,
}

/// One measured request of an open-loop run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraceRow {
    /// When it was sent, ms after the measured window opened.
    pub sent_ms: f64,
    /// When it was sent, unix ms (to line up with outside events).
    pub sent_unix_ms: f64,
    /// Its latency, ms.
    pub latency_ms: f64,
    /// Its status.
    pub code: tonic::Code,
    /// An OK answer with a failed component in its debug.
    pub degraded: bool,
    /// Items it returned.
    pub items: usize,
}

impl TraceRow {
    /// The CSV header of [`Self::csv`].
    pub const CSV_HEADER: &str = "sent_ms,sent_unix_ms,latency_ms,code,degraded,items";

    /// One CSV line (no newline).
    pub fn csv(&self) -> String {
        format!(
            "{:.3},{:.1},{:.3},{:?},{},{}",
            self.sent_ms,
            self.sent_unix_ms,
            self.latency_ms,
            self.code,
            self.degraded as u8,
            self.items
        )
    }
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
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Duration, Duration, Outcome)>();
    let start = Instant::now() + Duration::from_millis(50);
    let measure_start = start + interval.mul_f64(warm_n as f64);
    let unix_now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3);
    let measure_start_unix_ms = unix_now_ms
        + measure_start
            .saturating_duration_since(Instant::now())
            .as_secs_f64()
            * 1e3;
    for i in 0..total_n {
        let at = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(at.into()).await;
        let (fut, tx) = (call(i), tx.clone());
        let measured = i >= warm_n;
        tokio::spawn(async move {
            let outcome = fut.await;
            if measured {
                let _ = tx.send((at - measure_start, at.elapsed(), outcome));
            }
        });
    }
    drop(tx);
    let mut samples = Vec::new();
    let mut trace = Vec::new();
    while let Some((sent, latency, outcome)) = rx.recv().await {
        trace.push(TraceRow {
            sent_ms: sent.as_secs_f64() * 1e3,
            sent_unix_ms: measure_start_unix_ms + sent.as_secs_f64() * 1e3,
            latency_ms: latency.as_secs_f64() * 1e3,
            code: outcome.code,
            degraded: outcome.degraded,
            items: outcome.items,
        });
        samples.push((latency, outcome));
    }
    let wall = measure_start.elapsed().as_secs_f64().max(1e-9);
    let ok = |o: &Outcome| o.code == tonic::Code::Ok;
    let mut ms: Vec<f64> = samples
        .iter()
        .filter(|(_, o)| ok(o))
        .map(|(d, _)| d.as_secs_f64() * 1e3)
        .collect();
    ms.sort_by(f64::total_cmp);
    let mut errors_by_status = BTreeMap::new();
    for (_, o) in &samples {
        if !ok(o) {
            *errors_by_status.entry(format!("{:?}", o.code)).or_insert(0) += 1;
        }
    }
    let degraded = samples.iter().filter(|(_, o)| ok(o) && o.degraded).count();
    let mut rejected: Vec<f64> = samples
        .iter()
        .filter(|(_, o)| o.code == tonic::Code::ResourceExhausted)
        .map(|(d, _)| d.as_secs_f64() * 1e3)
        .collect();
    rejected.sort_by(f64::total_cmp);
    let splits: Vec<ServerSplit> = samples
        .iter()
        .filter(|(_, o)| ok(o))
        .filter_map(|(_, o)| o.split)
        .collect();
    Ok(LoadResult {
        offered_qps: qps,
        achieved_qps: ms.len() as f64 / wall,
        requests: samples.len(),
        errors: samples.len() - ms.len(),
        errors_by_status,
        rejected_p99_ms: percentile(&rejected, 99.0),
        degraded,
        full_qps: (ms.len() - degraded) as f64 / wall,
        p50_ms: percentile(&ms, 50.0),
        p90_ms: percentile(&ms, 90.0),
        p99_ms: percentile(&ms, 99.0),
        max_ms: ms.last().copied().unwrap_or(f64::NAN),
        mean_items: samples.iter().map(|(_, o)| o.items).sum::<usize>() as f64
            / samples.len().max(1) as f64,
        server_split: ServerSplit::mean(&splits),
        shell_p50_p99_ms: ServerSplit::shell_percentiles(&splits),
        trace,
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
            dwell_s: rng.random_range(0.0..60.0),
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
        let code = |s: tonic::Status| Outcome::failed(&s);
        match target {
            Target::Feed => feed_call(&feed, user, None),
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
                            created_at_s: 0,
                        })
                        .collect(),
                    request_id: None,
                    impression_time_s: 0,
                };
                Box::pin(async move {
                    c.predict(req)
                        .await
                        .map_or_else(code, |r| Outcome::ok(r.into_inner().scores.len()))
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
                        .map_or_else(code, |r| Outcome::ok(r.into_inner().posts.len()))
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

/// The markdown table of the server's mean split per rate (feed rows
/// only; empty when no row has one).
pub fn split_table(rows: &[LoadResult]) -> String {
    let with_split: Vec<(f64, ServerSplit, (f64, f64))> = rows
        .iter()
        .filter_map(|r| Some((r.offered_qps, r.server_split?, r.shell_p50_p99_ms?)))
        .collect();
    if with_split.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "server split, mean ms per request (shell = other + outside stages):\n\n| offered QPS | ranker | retrieval | other stages | outside stages | server total | shell p50 | shell p99 |\n|---|---|---|---|---|---|---|---|\n",
    );
    for (qps, x, (p50, p99)) in with_split {
        s.push_str(&format!(
            "| {qps:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {p50:.2} | {p99:.2} |\n",
            x.ranker_ms, x.retrieval_ms, x.other_stages_ms, x.outside_ms, x.total_ms
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
    let split = split_table(&rows);
    let md = if split.is_empty() {
        table(&rows)
    } else {
        format!("{}\n{split}", table(&rows))
    };
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
        let mut panels = vec![
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
        if rows.iter().any(|r| r.server_split.is_some()) {
            let part = |f: fn(&ServerSplit) -> f64| {
                rows.iter()
                    .filter_map(|r| Some((r.offered_qps, f(&r.server_split?))))
                    .collect()
            };
            panels.push(Panel {
                title: "server split (mean)",
                x_label: "offered QPS",
                y_label: "ms",
                log_x: false,
                series: vec![
                    Series {
                        name: "ranker",
                        points: part(|x| x.ranker_ms),
                    },
                    Series {
                        name: "retrieval",
                        points: part(|x| x.retrieval_ms),
                    },
                    Series {
                        name: "other stages",
                        points: part(|x| x.other_stages_ms),
                    },
                    Series {
                        name: "outside",
                        points: part(|x| x.outside_ms),
                    },
                ],
            });
        }
        std::fs::write(stem.with_extension("svg"), super::plot::svg(&panels))
            .with_context(|| format!("writing {}", stem.display()))?;
        super::plot_png::png(&stem.with_extension("png"), &panels)
            .with_context(|| format!("writing {}.png", stem.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_adds_up_to_the_server_total() {
        let stage_ms: HashMap<String, f64> = [
            (TOTAL_KEY, 20.0),
            (OUTSIDE_STAGES_KEY, 3.0),
            ("Scorer/PhoenixScorer", 8.0),
            ("Source/PhoenixSource", 5.0),
            ("Source/ThunderSource", 2.0),
            ("Filter/AgeFilter", 1.0),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let x = ServerSplit::from_stage_ms(&stage_ms).expect("total and outside present");
        assert_eq!(
            x,
            ServerSplit {
                ranker_ms: 8.0,
                retrieval_ms: 5.0,
                other_stages_ms: 4.0,
                outside_ms: 3.0,
                total_ms: 20.0,
            }
        );
        let mean = ServerSplit::mean(&[x, ServerSplit::default()]).expect("two splits");
        assert_eq!(mean.total_ms, 10.0);
        assert_eq!(
            mean.ranker_ms + mean.retrieval_ms + mean.other_stages_ms + mean.outside_ms,
            mean.total_ms
        );
        assert_eq!(ServerSplit::mean(&[]), None);
        // The shell's percentiles: other stages + outside, per answer.
        let shell = |other, outside| ServerSplit {
            other_stages_ms: other,
            outside_ms: outside,
            ..ServerSplit::default()
        };
        let splits: Vec<_> = (1..=100).map(|i| shell(f64::from(i), 0.5)).collect();
        assert_eq!(ServerSplit::shell_percentiles(&splits), Some((51.5, 99.5)));
        assert_eq!(ServerSplit::shell_percentiles(&[]), None);
    }

    #[test]
    fn an_answer_without_total_or_outside_has_no_split() {
        let only_stages: HashMap<String, f64> =
            HashMap::from([("Scorer/PhoenixScorer".to_owned(), 8.0)]);
        assert_eq!(ServerSplit::from_stage_ms(&only_stages), None);
        assert!(split_table(&[]).is_empty());
    }
}
