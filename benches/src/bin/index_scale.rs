//! The live index (`foryou_engine::index`, issue 16) at scale: seeded
//! random unit vectors (D 128) inserted in micro-batches, for each
//! format; then search latency (p50/p99) at each batch size and k, recall@k
//! against the exact f32 scan (the f32 format, which equals one exact f32
//! scan: `index::tests`), memory (bytes per post and total) and the insert
//! rate. Prints a markdown table; `--json FILE` writes every timing.
//!
//! `cargo build --release -p foryou-benches --bin index-scale`
//! `target/release/index-scale [--n 1000000] [--batch 1,16] [--k 100,1000]
//! [--reps 100] [--formats f32,bf16,int8,int8+bf16,int8+f32] [--json FILE]`
//!
//! A variant `FORMAT+f32` (`FORMAT+bf16`) keeps f32 (bf16) copies of the
//! rows and re-scores from them (`Rescore::F32Rows`, `Bf16Rows`). The f32
//! variant runs first whatever the order given: its results are the
//! recall reference.

use std::collections::HashSet;
use std::time::Instant;

use anyhow::{Context, bail};
use foryou_benches::index_data::{list, percentile, unit_vector};
use foryou_engine::corpus::{CorpusItem, Query};
use foryou_engine::index::{Format, IndexConfig, LiveIndex, NewPost, Rescore};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Width of the representations (the retriever's emb_size at prod shape).
const DIM: usize = 128;
/// Posts generated (and inserted) per chunk; also the insert micro-batch.
const CHUNK: usize = 1024;
/// Queries whose results are compared with the f32 reference.
const RECALL_QUERIES: usize = 64;

struct Args {
    n: usize,
    batch: Vec<usize>,
    k: Vec<usize>,
    reps: usize,
    variants: Vec<(Format, Rescore)>,
    json: Option<String>,
}

fn variant(v: &str) -> anyhow::Result<(Format, Rescore)> {
    let (f, rescore) = if let Some(f) = v.strip_suffix("+f32") {
        (f, Rescore::F32Rows)
    } else if let Some(f) = v.strip_suffix("+bf16") {
        (f, Rescore::Bf16Rows)
    } else {
        (v, Rescore::Stored)
    };
    let format = match f {
        "f32" => Format::F32,
        "bf16" => Format::Bf16,
        "int8" => Format::Int8,
        other => bail!("--formats {other}: expected f32, bf16, int8 (optionally +f32 or +bf16)"),
    };
    Ok((format, rescore))
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        n: 1_000_000,
        batch: vec![1, 16],
        k: vec![100, 1000],
        reps: 100,
        variants: ["f32", "bf16", "int8", "int8+bf16", "int8+f32"]
            .iter()
            .map(|v| variant(v))
            .collect::<anyhow::Result<_>>()?,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--n" => a.n = value.parse().context("--n")?,
            "--batch" => a.batch = list("--batch", &value)?,
            "--k" => a.k = list("--k", &value)?,
            "--reps" => a.reps = value.parse().context("--reps")?,
            "--formats" => {
                a.variants = value
                    .split(',')
                    .map(variant)
                    .collect::<anyhow::Result<_>>()?
            }
            "--json" => a.json = Some(value),
            other => bail!("unknown flag {other}"),
        }
    }
    // The f32 reference first.
    a.variants.retain(|v| *v != (Format::F32, Rescore::Stored));
    a.variants.insert(0, (Format::F32, Rescore::Stored));
    Ok(a)
}

/// `n` unit vectors of width `DIM` from `seed` (Box-Muller normals,
/// normalised), row-major.
fn unit_vectors(seed: u64, n: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n * DIM);
    for _ in 0..n {
        out.extend(unit_vector::<DIM>(&mut rng));
    }
    out
}

fn label(format: Format, rescore: Rescore) -> String {
    let f = format!("{format:?}").to_lowercase();
    match rescore {
        Rescore::Stored => f,
        Rescore::F32Rows => format!("{f} + f32 rows"),
        Rescore::Bf16Rows => format!("{f} + bf16 rows"),
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Builds the index for one variant: chunks generated in parallel, each
/// inserted as one micro-batch; returns the index and the seconds spent in
/// `insert` alone.
fn build(n: usize, format: Format, rescore: Rescore) -> anyhow::Result<(LiveIndex, f64)> {
    let cfg = IndexConfig {
        rescore,
        capacity: n.max(1),
        ..IndexConfig::new(DIM, format)
    };
    let mut index = LiveIndex::new(cfg)?;
    let chunks = n.div_ceil(CHUNK);
    let mut insert_s = 0.0;
    // Generate 64 chunks at a time in parallel, insert them in order.
    for wave in (0..chunks).collect::<Vec<_>>().chunks(64) {
        let reps: Vec<(usize, Vec<f32>)> = wave
            .par_iter()
            .map(|&c| {
                let rows = CHUNK.min(n - c * CHUNK);
                (c, unit_vectors(1000 + c as u64, rows))
            })
            .collect();
        for (c, reps) in &reps {
            let posts: Vec<NewPost<'_>> = reps
                .chunks_exact(DIM)
                .enumerate()
                .map(|(i, rep)| {
                    let id = (c * CHUNK + i) as i64;
                    NewPost {
                        item: CorpusItem {
                            post_id: id,
                            author_id: id % 100_003,
                        },
                        created_ms: 0,
                        representation: rep,
                    }
                })
                .collect();
            let t = Instant::now();
            index.insert(&posts, 0)?;
            insert_s += t.elapsed().as_secs_f64();
        }
    }
    Ok((index, insert_s))
}

fn main() -> anyhow::Result<()> {
    let a = args()?;
    let threads = rayon::current_num_threads();
    println!(
        "device: {} ({threads} rayon threads); n {}, D {DIM}, micro-batch {CHUNK}, {} timed searches a row\n",
        cpu_model(),
        a.n,
        a.reps
    );
    let pool = unit_vectors(
        7,
        RECALL_QUERIES.max(a.batch.iter().copied().max().unwrap_or(1)) * 4,
    );
    let pool_n = pool.len() / DIM;
    let mut truth: Vec<(usize, Vec<HashSet<i64>>)> = Vec::new();
    let mut f32_p50 = std::collections::HashMap::new();
    let mut md = String::from(
        "| format | B | k | p50 ms | p99 ms | scan GB/s (p50) | vs f32 p50 | recall@k | bytes/post | total MB | insert posts/s |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut json = Vec::new();
    for &(format, rescore) in &a.variants {
        let name = label(format, rescore);
        let (index, insert_s) = build(a.n, format, rescore)?;
        let stats = index.stats();
        let snap = index.snapshot();
        let insert_rate = a.n as f64 / insert_s;
        let bytes_per_post = stats.bytes_per_post();
        let scanned_bytes = a.n as f64 * format.row_bytes(DIM) as f64;
        eprintln!(
            "{name}: built {} posts in {insert_s:.1} s of inserts; {} segments; {:.1} bytes/post",
            stats.posts, stats.segments, bytes_per_post
        );
        // Recall (and the f32 reference) over the recall queries.
        let mut recall = std::collections::HashMap::new();
        for &k in &a.k {
            let mut got: Vec<HashSet<i64>> = Vec::with_capacity(RECALL_QUERIES);
            for q in pool[..RECALL_QUERIES * DIM].chunks(16 * DIM) {
                let qs = vec![
                    Query {
                        k,
                        ..Default::default()
                    };
                    q.len() / DIM
                ];
                for hits in snap.search(q, &qs)? {
                    got.push(hits.iter().map(|h| h.post_id).collect());
                }
            }
            if format == Format::F32 {
                truth.push((k, got.clone()));
            }
            let want = &truth
                .iter()
                .find(|(tk, _)| *tk == k)
                .context("the f32 reference runs first")?
                .1;
            let found: usize = got
                .iter()
                .zip(want)
                .map(|(g, w)| g.intersection(w).count())
                .sum();
            let total: usize = want.iter().map(HashSet::len).sum();
            recall.insert(k, found as f64 / total.max(1) as f64);
        }
        for &b in &a.batch {
            for &k in &a.k {
                let qs = vec![
                    Query {
                        k,
                        ..Default::default()
                    };
                    b
                ];
                let mut times = Vec::with_capacity(a.reps);
                for r in 0..a.reps + 2 {
                    let start = (r * b) % (pool_n - b + 1);
                    let q = &pool[start * DIM..(start + b) * DIM];
                    let t = Instant::now();
                    let hits = snap.search(q, &qs)?;
                    let ms = t.elapsed().as_secs_f64() * 1e3;
                    if hits.iter().any(|h| h.len() != k.min(a.n)) {
                        bail!("{name}: a search returned fewer than {k} posts");
                    }
                    if r >= 2 {
                        times.push(ms); // two warm-up calls
                    }
                }
                let mut sorted = times.clone();
                sorted.sort_by(f64::total_cmp);
                let (p50, p99) = (percentile(&sorted, 0.5), percentile(&sorted, 0.99));
                if format == Format::F32 {
                    f32_p50.insert((b, k), p50);
                }
                let speedup = f32_p50.get(&(b, k)).map_or(f64::NAN, |f| f / p50);
                let gbs = scanned_bytes / (p50 / 1e3) / 1e9;
                let rc = recall.get(&k).copied().unwrap_or(f64::NAN);
                md.push_str(&format!(
                    "| {name} | {b} | {k} | {p50:.2} | {p99:.2} | {gbs:.1} | {speedup:.2}x | {rc:.4} | {bytes_per_post:.1} | {:.0} | {insert_rate:.0} |\n",
                    stats.bytes as f64 / 1e6
                ));
                json.push(serde_json::json!({
                    "format": name, "n": a.n, "dim": DIM, "batch": b, "k": k,
                    "search_ms": times, "p50_ms": p50, "p99_ms": p99,
                    "scan_gb_per_s": gbs, "speedup_vs_f32_p50": speedup,
                    "recall_at_k": rc, "recall_queries": RECALL_QUERIES,
                    "bytes_per_post": bytes_per_post, "bytes": stats.bytes,
                    "segments": stats.segments, "insert_posts_per_s": insert_rate,
                    "insert_micro_batch": CHUNK, "threads": threads,
                }));
            }
        }
        drop(snap);
        drop(index);
    }
    print!("{md}");
    if let Some(path) = a.json {
        std::fs::write(&path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {path}"))?;
    }
    Ok(())
}
