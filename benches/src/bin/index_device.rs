//! The live index with its sealed segments on a device (issue 16
//! deliverable 5, `engine/src/index/device_search.rs`) against the CPU's
//! exact f32 scan of the same snapshot: seeded unit vectors (D 128) in
//! micro-batches of 1024, then per batch size and k the search latency
//! (p50/p99) of both, recall@k of the device's answer against the scan,
//! the first search's time (it uploads every sealed segment), the search
//! after a delete (the eligibility bitset is rebuilt and sent), and the
//! device's bytes. Prints a markdown table; `--json FILE` writes it all.
//!
//! `cargo build --release -p foryou-benches --features cuda --bin index-device`
//! `target/release/index-device --device cuda --n 1000000,10000000`
//!
//! `--device twin` runs the kernel's CPU twin instead (a full sort per
//! query: for checking the bench on a machine without a GPU, at small n).

use std::collections::HashSet;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use foryou_benches::index_data::{list, percentile, unit_vector};
use foryou_engine::corpus::{CorpusItem, Hit, Query};
use foryou_engine::index::{
    CpuRowDevice, DeviceSegments, Format, IndexConfig, LiveIndex, NewPost, RowDevice, Snapshot,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

const DIM: usize = 128;
const CHUNK: usize = 1024;
const RECALL_QUERIES: usize = 32;

#[derive(Parser)]
struct Args {
    /// `cuda` (the GPU's top-k kernel, needs the `cuda` feature) or
    /// `twin` (its CPU twin).
    #[arg(long, default_value = "cuda")]
    device: String,
    /// Posts, a comma list (one index built per value).
    #[arg(long, default_value = "1000000")]
    n: String,
    #[arg(long, default_value_t = 65_536)]
    segment_rows: usize,
    /// Queries a call, a comma list.
    #[arg(long, default_value = "1,16")]
    batch: String,
    /// k, a comma list.
    #[arg(long, default_value = "100,1000")]
    k: String,
    #[arg(long, default_value_t = 30)]
    reps: usize,
    #[arg(long)]
    json: Option<String>,
}

fn row_device(name: &str) -> anyhow::Result<Box<dyn RowDevice>> {
    match name {
        "twin" => Ok(Box::new(CpuRowDevice::new())),
        #[cfg(feature = "cuda")]
        "cuda" => {
            let gpu = foryou_kernels::cuda::Gpu::open(0).context("opening cuda:0")?;
            Ok(Box::new(foryou_engine::backend::cuda::GpuRowDevice::new(
                std::sync::Arc::new(gpu),
            )))
        }
        #[cfg(not(feature = "cuda"))]
        "cuda" => bail!("--device cuda: this binary was built without the cuda feature"),
        other => bail!("--device {other}: expected cuda or twin"),
    }
}

/// `n` seeded unit vectors as posts `0..n` in an f32 index.
fn build(config: IndexConfig, n: usize) -> anyhow::Result<LiveIndex> {
    let mut index = LiveIndex::new(config)?;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut rows = Vec::with_capacity(CHUNK * DIM);
    let mut id = 0usize;
    while id < n {
        let m = CHUNK.min(n - id);
        rows.clear();
        for _ in 0..m {
            rows.extend_from_slice(&unit_vector::<DIM>(&mut rng));
        }
        let posts: Vec<NewPost<'_>> = rows
            .chunks_exact(DIM)
            .enumerate()
            .map(|(i, r)| NewPost {
                item: CorpusItem {
                    post_id: (id + i) as i64,
                    author_id: ((id + i) % 1000) as i64,
                },
                created_ms: 0,
                representation: r,
            })
            .collect();
        index.insert(&posts, 0)?;
        id += m;
    }
    Ok(index)
}

fn asks(k: usize, b: usize) -> Vec<Query<'static>> {
    vec![
        Query {
            k,
            ..Default::default()
        };
        b
    ]
}

/// Sorted per-call ms of `reps` searches of `b` queries by `search`.
fn time(
    queries: &[f32],
    b: usize,
    k: usize,
    reps: usize,
    mut search: impl FnMut(&[f32], &[Query<'_>]) -> anyhow::Result<Vec<Vec<Hit>>>,
) -> anyhow::Result<Vec<f64>> {
    let qs = asks(k, b);
    let mut out = Vec::with_capacity(reps);
    for r in 0..reps + 2 {
        let off = (r * b * DIM) % (queries.len() - b * DIM + 1);
        let t = Instant::now();
        let hits = search(&queries[off..off + b * DIM], &qs)?;
        std::hint::black_box(hits);
        if r >= 2 {
            out.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    out.sort_by(f64::total_cmp);
    Ok(out)
}

fn recall(truth: &[Vec<Hit>], got: &[Vec<Hit>]) -> f64 {
    let (mut found, mut wanted) = (0usize, 0usize);
    for (t, g) in truth.iter().zip(got) {
        let t: HashSet<i64> = t.iter().map(|h| h.post_id).collect();
        found += g.iter().filter(|h| t.contains(&h.post_id)).count();
        wanted += t.len();
    }
    found as f64 / wanted.max(1) as f64
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let (ns, batch, ks): (Vec<usize>, Vec<usize>, Vec<usize>) = (
        list("--n", &a.n)?,
        list("--batch", &a.batch)?,
        list("--k", &a.k)?,
    );
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let queries: Vec<f32> = (0..RECALL_QUERIES.max(16 * 8))
        .flat_map(|_| unit_vector::<DIM>(&mut rng))
        .collect();
    println!(
        "device {}, D {DIM}, segment_rows {}",
        a.device, a.segment_rows
    );
    println!(
        "| n | B | k | cpu p50 ms | cpu p99 ms | device p50 ms | device p99 ms | speed-up p50 | recall@k |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    let mut setups = Vec::new();
    for &n in &ns {
        let config = IndexConfig {
            segment_rows: a.segment_rows,
            capacity: n.max(1),
            ..IndexConfig::new(DIM, Format::F32)
        };
        let t = Instant::now();
        let mut index = build(config.clone(), n)?;
        let build_s = t.elapsed().as_secs_f64();
        let dev = DeviceSegments::new(row_device(&a.device)?, &config);
        let snap: std::sync::Arc<Snapshot> = index.snapshot();
        // The first search uploads every sealed segment.
        let t = Instant::now();
        dev.search(&snap, &queries[..DIM], &asks(100, 1))?;
        let first_ms = t.elapsed().as_secs_f64() * 1e3;
        for &k in &ks {
            let qs = asks(k, RECALL_QUERIES);
            let q = &queries[..RECALL_QUERIES * DIM];
            let truth = snap.search(q, &qs)?;
            let got = dev.search(&snap, q, &qs)?;
            let rec = recall(&truth, &got);
            for &b in &batch {
                let tc = time(&queries, b, k, a.reps, |q, qs| Ok(snap.search(q, qs)?))?;
                let td = time(
                    &queries,
                    b,
                    k,
                    a.reps,
                    |q, qs| Ok(dev.search(&snap, q, qs)?),
                )?;
                let (c50, c99, d50, d99) = (
                    percentile(&tc, 0.5),
                    percentile(&tc, 0.99),
                    percentile(&td, 0.5),
                    percentile(&td, 0.99),
                );
                println!(
                    "| {n} | {b} | {k} | {c50:.2} | {c99:.2} | {d50:.2} | {d99:.2} | {:.2}x | {rec:.4} |",
                    c50 / d50
                );
                rows.push(json!({
                    "n": n, "b": b, "k": k, "cpu_ms": tc, "device_ms": td,
                    "cpu_p50_ms": c50, "device_p50_ms": d50, "recall": rec,
                }));
            }
        }
        // A delete: the next search rebuilds and sends the bitset.
        index.delete(&[0, 1, 2], 0);
        let after = index.snapshot();
        let t = Instant::now();
        dev.search(&after, &queries[..DIM], &asks(100, 1))?;
        let after_delete_ms = t.elapsed().as_secs_f64() * 1e3;
        let stats = dev.stats();
        println!(
            "n {n}: built in {build_s:.1} s; first search (uploads) {first_ms:.1} ms; \
             search after a delete {after_delete_ms:.2} ms; device {:.1} MB for {} rows in {} segments",
            stats.device_bytes as f64 / 1e6,
            stats.rows,
            stats.segments
        );
        setups.push(json!({
            "n": n, "build_s": build_s, "first_search_ms": first_ms,
            "search_after_delete_ms": after_delete_ms, "device_bytes": stats.device_bytes,
            "device_rows": stats.rows, "segments": stats.segments, "repacks": stats.repacks,
            "mask_uploads": stats.mask_uploads, "cpu_fallbacks": stats.cpu_fallbacks,
        }));
    }
    if let Some(path) = &a.json {
        let doc = json!({
            "device": a.device, "dim": DIM, "segment_rows": a.segment_rows, "reps": a.reps,
            "rows": rows, "setups": setups,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?).context("--json")?;
    }
    Ok(())
}
