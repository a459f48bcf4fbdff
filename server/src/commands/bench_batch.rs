//! `foryou bench batch`: ranker and retriever latency and throughput
//! against batch size, in process (no transport), on fresh random requests
//! for every call. Prints a markdown table and writes JSON, markdown and an
//! SVG plot (latency and throughput against batch size).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use foryou_engine::corpus::Query;
use foryou_engine::fixture::load_model_dir;
use foryou_engine::hash_embed::{CandidateItem, HistoryItem};
use foryou_engine::{Corpus, CorpusItem, Device, ModelKind, PhoenixRanker, PhoenixRetriever};
use foryou_server::phoenix::{demo_model_dir, ensure_demo_models, load_models};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `foryou bench batch`.
#[derive(Debug, Args)]
pub struct BatchBenchArgs {
    /// Model directory: a pair (`ranker/` + `retrieval/`) to time both, or
    /// one model (`config.json` + `params.safetensors`, as `foryou phoenix
    /// init` writes it) to time that stage alone; default: the seeded demo
    /// pair.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Where the demo model is kept (default: the system temp directory).
    #[arg(long)]
    model_cache: Option<PathBuf>,
    /// Where the ranker and the retriever run: `cpu` or `cuda[:N]`. A GPU
    /// that cannot be used is an error here.
    #[arg(long, default_value = "cpu")]
    device: foryou_engine::ComputeDevice,
    /// Batch sizes.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32,64")]
    batch: Vec<usize>,
    /// History items per request (default: the model's history length; as
    /// when serving, the model keeps the last `history_seq_len` of them).
    #[arg(long)]
    history: Option<usize>,
    /// Candidates per request (default: the model's).
    #[arg(long)]
    candidates: Option<usize>,
    /// Requests per batch size (at least 5 batches are timed).
    #[arg(long, default_value_t = 64)]
    requests: usize,
    /// Retrieval corpus size (random posts, encoded once).
    #[arg(long, default_value_t = 100_000)]
    corpus: usize,
    /// Retrieval top-k.
    #[arg(long, default_value_t = 1000)]
    top_k: usize,
    /// Output directory for `batch_cpu_<date>.{json,md}` (none: print only).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// One batch size's figures.
struct Row {
    stage: &'static str,
    batch: usize,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    requests_per_s: f64,
    candidates_per_s: f64,
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    sorted[(((sorted.len() - 1) as f64) * q).round() as usize]
}

fn history(rng: &mut ChaCha8Rng, s: usize) -> Vec<HistoryItem> {
    (0..s)
        .map(|_| HistoryItem {
            post_id: rng.random_range(1..i64::MAX / 2),
            author_id: rng.random_range(1..1_000_000),
            actions: rng.random_range(1..1 << 18),
            product_surface: 0,
            ..HistoryItem::default()
        })
        .collect()
}

fn candidates(rng: &mut ChaCha8Rng, c: usize) -> Vec<CandidateItem> {
    (0..c)
        .map(|_| CandidateItem {
            post_id: rng.random_range(1..i64::MAX / 2),
            author_id: rng.random_range(1..1_000_000),
            product_surface: 0,
            ..CandidateItem::default()
        })
        .collect()
}

/// Times `calls` closures of `b` requests each; one warm-up call first.
fn time_batches(
    stage: &'static str,
    b: usize,
    per_request_candidates: usize,
    calls: usize,
    mut call: impl FnMut() -> anyhow::Result<f64>,
) -> anyhow::Result<Row> {
    call()?;
    let mut ms: Vec<f64> = (0..calls).map(|_| call()).collect::<anyhow::Result<_>>()?;
    ms.sort_by(f64::total_cmp);
    let p50 = pct(&ms, 0.5);
    Ok(Row {
        stage,
        batch: b,
        p50_ms: p50,
        p90_ms: pct(&ms, 0.9),
        p99_ms: pct(&ms, 0.99),
        requests_per_s: b as f64 / (p50 / 1e3),
        candidates_per_s: (b * per_request_candidates) as f64 / (p50 / 1e3),
    })
}

fn rank_rows(
    ranker: &PhoenixRanker,
    args: &BatchBenchArgs,
    rng: &mut ChaCha8Rng,
) -> anyhow::Result<Vec<Row>> {
    let cfg = ranker.config().clone();
    ranker.hash_tables().context("ranker has no hash tables")?;
    let (s, c) = (
        args.history.unwrap_or(cfg.history_seq_len),
        args.candidates.unwrap_or(cfg.candidate_seq_len),
    );
    let mut rows = Vec::new();
    let bar = indicatif::ProgressBar::new(args.batch.len() as u64);
    for &b in &args.batch {
        let calls = (args.requests / b.max(1)).max(5);
        rows.push(time_batches("ranker", b, c, calls, || {
            let hs: Vec<Vec<HistoryItem>> = (0..b).map(|_| history(rng, s)).collect();
            let cs: Vec<Vec<CandidateItem>> = (0..b).map(|_| candidates(rng, c)).collect();
            let users: Vec<(i64, &[HistoryItem])> =
                (1..).zip(&hs).map(|(id, h)| (id, h.as_slice())).collect();
            let cand_rows: Vec<&[CandidateItem]> = cs.iter().map(Vec::as_slice).collect();
            // Timed as served: hashing and the rows' gather (on the host,
            // or on the device when the tables live there) included.
            let t = Instant::now();
            ranker.rank_ids(&users, &cand_rows, c, foryou_engine::SERVING_CHUNK)?;
            Ok(t.elapsed().as_secs_f64() * 1e3)
        })?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(rows)
}

fn retrieve_rows(
    retriever: &PhoenixRetriever,
    args: &BatchBenchArgs,
    rng: &mut ChaCha8Rng,
) -> anyhow::Result<Vec<Row>> {
    let cfg = retriever.config().clone();
    retriever
        .hash_tables()
        .context("retriever has no hash tables")?;
    let posts: Vec<CorpusItem> = (1..)
        .take(args.corpus)
        .map(|post_id| CorpusItem {
            post_id,
            author_id: rng.random_range(1..100_000),
        })
        .collect();
    let corpus = Corpus::build(retriever, posts)?;
    let s = args.history.unwrap_or(cfg.history_seq_len);
    let mut rows = Vec::new();
    for &b in &args.batch {
        let calls = (args.requests / b.max(1)).max(5);
        rows.push(time_batches("retriever", b, args.corpus, calls, || {
            let hs: Vec<Vec<HistoryItem>> = (0..b).map(|_| history(rng, s)).collect();
            let users: Vec<(i64, &[HistoryItem])> =
                (1..).zip(&hs).map(|(id, h)| (id, h.as_slice())).collect();
            let queries = vec![
                Query {
                    k: args.top_k,
                    ..Query::default()
                };
                b
            ];
            // Timed as served: the user tower and one search of the batch.
            let t = Instant::now();
            let rep = retriever.represent_ids(&users)?;
            corpus.search(retriever, &rep, &queries)?;
            Ok(t.elapsed().as_secs_f64() * 1e3)
        })?);
    }
    Ok(rows)
}

/// Runs `foryou bench batch`.
pub fn run(args: BatchBenchArgs) -> anyhow::Result<()> {
    if args.batch.is_empty() || args.batch.contains(&0) {
        anyhow::bail!("--batch must list positive sizes, e.g. 1,2,4,8");
    }
    let dir = match &args.model {
        Some(d) => d.clone(),
        None => {
            let d = demo_model_dir(args.model_cache.as_deref(), 42);
            ensure_demo_models(&d, 42)?;
            d
        }
    };
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let rows = if dir.join("config.json").exists() {
        one_model_rows(&dir, &args, &mut rng)?
    } else {
        let models = load_models(&dir, &open(&args)?)?;
        let mut rows = rank_rows(&models.ranker, &args, &mut rng)?;
        rows.extend(retrieve_rows(&models.retriever, &args, &mut rng)?);
        rows
    };
    let md = markdown(&rows, &args, &dir);
    print!("{md}");
    if let Some(out) = &args.out {
        write_outputs(out, &rows, &md, args.device)?;
    }
    Ok(())
}

/// `--device`, opened; a GPU that cannot be used is an error here.
fn open(args: &BatchBenchArgs) -> anyhow::Result<Device> {
    Device::open(args.device, foryou_engine::DeviceOptions::default())
        .with_context(|| format!("--device {}", args.device))
}

/// Times the one model in `dir` (a ranker or a retriever).
fn one_model_rows(
    dir: &Path,
    args: &BatchBenchArgs,
    rng: &mut ChaCha8Rng,
) -> anyhow::Result<Vec<Row>> {
    let (cfg, weights) =
        load_model_dir(dir).with_context(|| format!("loading the model in {}", dir.display()))?;
    let dtype = cfg.fprop_dtype;
    match cfg.kind {
        ModelKind::Ranker => {
            let ranker = PhoenixRanker::on(&open(args)?, cfg, weights, dtype)
                .with_context(|| format!("building the ranker in {}", dir.display()))?;
            rank_rows(&ranker, args, rng)
        }
        ModelKind::Retrieval => {
            let retriever = PhoenixRetriever::on(&open(args)?, cfg, weights, dtype)
                .with_context(|| format!("building the retriever in {}", dir.display()))?;
            retrieve_rows(&retriever, args, rng)
        }
    }
}

fn markdown(rows: &[Row], args: &BatchBenchArgs, dir: &Path) -> String {
    let mut s = format!(
        "# Ranker and retriever against batch size\n\nCommand: `foryou bench batch --batch {}` · model: {} · device: {} · threads per op: {} · corpus {} · top-k {}\n\n",
        args.batch
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        dir.display(),
        args.device,
        std::env::var("CANDLE_NUM_THREADS").unwrap_or_else(|_| "default".into()),
        args.corpus,
        args.top_k
    );
    s.push_str("| stage | batch | p50 ms | p90 ms | p99 ms | requests/s | candidates/s |\n|---|---|---|---|---|---|---|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.1} | {:.0} |\n",
            r.stage, r.batch, r.p50_ms, r.p90_ms, r.p99_ms, r.requests_per_s, r.candidates_per_s
        ));
    }
    s
}

fn write_outputs(
    out: &Path,
    rows: &[Row],
    md: &str,
    device: foryou_engine::ComputeDevice,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let json: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "stage": r.stage, "batch": r.batch, "p50_ms": r.p50_ms, "p90_ms": r.p90_ms,
                "p99_ms": r.p99_ms, "requests_per_s": r.requests_per_s,
                "candidates_per_s": r.candidates_per_s,
            })
        })
        .collect();
    let date = std::process::Command::new("date")
        .arg("+%F")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "undated".to_owned(), |d| d.trim().to_owned());
    let device = device.to_string().replace(':', "");
    let base = out.join(format!("batch_{device}_{date}"));
    std::fs::write(
        base.with_extension("json"),
        serde_json::to_string_pretty(&json)?,
    )
    .with_context(|| format!("writing {}", base.display()))?;
    std::fs::write(base.with_extension("md"), md)
        .with_context(|| format!("writing {}", base.display()))?;
    let chart = |title, y_label, f: fn(&Row) -> f64| super::plot::Panel {
        title,
        x_label: "batch size",
        y_label,
        log_x: true,
        series: ["ranker", "retriever"]
            .into_iter()
            .map(|stage| super::plot::Series {
                name: stage,
                points: rows
                    .iter()
                    .filter(|r| r.stage == stage)
                    .map(|r| (r.batch as f64, f(r)))
                    .collect(),
            })
            .collect(),
    };
    let panels = [
        chart("p50 latency", "ms", |r| r.p50_ms),
        chart("throughput", "requests / s", |r| r.requests_per_s),
    ];
    std::fs::write(base.with_extension("svg"), super::plot::svg(&panels))
        .with_context(|| format!("writing {}", base.display()))?;
    super::plot_png::png(&base.with_extension("png"), &panels)
        .with_context(|| format!("writing {}.png", base.display()))?;
    Ok(())
}
