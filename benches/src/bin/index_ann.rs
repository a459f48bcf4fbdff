//! Approximate search of the live index (`IndexConfig::ann`, issue 16
//! deliverable 4) against the exact f32 scan of the same run: seeded unit
//! vectors (D 128) inserted in micro-batches of 1024 into an f32 index
//! and an f32 index with graphs on its sealed segments; then search
//! latency (p50/p99) per batch size and k, recall@k of the graphs against
//! the exact scan, memory, and the insert rate (graph builds at seal
//! included). Prints a markdown table; `--json FILE` writes every timing.
//!
//! `cargo build --release -p foryou-benches --bin index-ann`
//! `target/release/index-ann [--n 1000000] [--data uniform|clustered]
//! [--segment-rows 65536] [--method hnsw|ivf] [--ef 128] [--m 16]
//! [--lists 0] [--probes 16] [--batch 1,16] [--k 100,1000] [--reps 50]
//! [--json FILE]` (`--lists`/`--probes` after `--method ivf`; lists 0:
//! the square root of the segment's rows)
//!
//! `uniform`: i.i.d. unit vectors (no neighbourhood structure: the worst
//! case of any graph index). `clustered`: `normalise(c + 0.7 u)` around
//! 4096 random centres `c` (`u` a random unit vector), queries drawn the
//! same way. Graphs are built on rayon's threads (`parallel_build`).

use std::collections::HashSet;
use std::time::Instant;

use anyhow::{Context, bail};
use foryou_benches::index_data::{list, normalise, percentile, unit_vector};
use foryou_engine::corpus::{CorpusItem, Hit, Query};
use foryou_engine::index::{
    AnnConfig, AnnMethod, DEFAULT_IVF_PROBES, Format, IndexConfig, LiveIndex, NewPost, Snapshot,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

const DIM: usize = 128;
const CHUNK: usize = 1024;
const RECALL_QUERIES: usize = 64;
const CENTRES: usize = 4096;

struct Args {
    n: usize,
    clustered: bool,
    segment_rows: usize,
    ef: usize,
    m: usize,
    /// `hnsw` or `ivf`.
    method: AnnMethod,
    batch: Vec<usize>,
    k: Vec<usize>,
    reps: usize,
    json: Option<String>,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        n: 1_000_000,
        clustered: false,
        segment_rows: 65_536,
        ef: 128,
        m: 16,
        method: AnnMethod::Hnsw,
        batch: vec![1, 16],
        k: vec![100, 1000],
        reps: 50,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--n" => a.n = value.parse().context("--n")?,
            "--data" => {
                a.clustered = match value.as_str() {
                    "uniform" => false,
                    "clustered" => true,
                    other => bail!("--data {other}: expected uniform or clustered"),
                }
            }
            "--segment-rows" => a.segment_rows = value.parse().context("--segment-rows")?,
            "--ef" => a.ef = value.parse().context("--ef")?,
            "--m" => a.m = value.parse().context("--m")?,
            "--method" => {
                a.method = match value.as_str() {
                    "hnsw" => AnnMethod::Hnsw,
                    "ivf" => AnnMethod::Ivf {
                        lists: 0,
                        probes: DEFAULT_IVF_PROBES,
                    },
                    other => bail!("--method {other}: expected hnsw or ivf"),
                }
            }
            "--lists" | "--probes" => {
                let n: usize = value.parse().with_context(|| flag.clone())?;
                let AnnMethod::Ivf { lists, probes } = &mut a.method else {
                    bail!("{flag} needs --method ivf before it");
                };
                *if flag == "--lists" { lists } else { probes } = n;
            }
            "--batch" => a.batch = list("--batch", &value)?,
            "--k" => a.k = list("--k", &value)?,
            "--reps" => a.reps = value.parse().context("--reps")?,
            "--json" => a.json = Some(value),
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

/// Draws vectors of the chosen distribution.
struct Data {
    rng: ChaCha8Rng,
    centres: Vec<[f32; DIM]>,
}

impl Data {
    fn new(seed: u64, clustered: bool) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let centres = if clustered {
            (0..CENTRES).map(|_| unit_vector::<DIM>(&mut rng)).collect()
        } else {
            Vec::new()
        };
        Self { rng, centres }
    }

    /// Draws around the same centres with a fresh noise stream.
    fn reseeded(&self, seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            centres: self.centres.clone(),
        }
    }

    fn fill(&mut self, n: usize, out: &mut Vec<f32>) {
        out.clear();
        for _ in 0..n {
            let mut v = unit_vector::<DIM>(&mut self.rng);
            if !self.centres.is_empty() {
                let c = &self.centres[self.rng.random_range(0..self.centres.len())];
                v.iter_mut().zip(c).for_each(|(x, c)| *x = c + 0.7 * *x);
                normalise(&mut v);
            }
            out.extend_from_slice(&v);
        }
    }
}

/// Inserts `n` posts from `seed` into a new index of `config`; returns it
/// and the seconds spent inside `insert`.
fn build(config: IndexConfig, a: &Args, seed: u64) -> anyhow::Result<(LiveIndex, f64)> {
    let mut index = LiveIndex::new(config)?;
    let mut data = Data::new(seed, a.clustered);
    let mut rows = Vec::new();
    let mut inside = 0.0;
    let mut id = 0i64;
    while (id as usize) < a.n {
        let m = CHUNK.min(a.n - id as usize);
        data.fill(m, &mut rows);
        let posts: Vec<NewPost<'_>> = rows
            .chunks_exact(DIM)
            .enumerate()
            .map(|(i, r)| NewPost {
                item: CorpusItem {
                    post_id: id + i as i64,
                    author_id: 0,
                },
                created_ms: 0,
                representation: r,
            })
            .collect();
        let t = Instant::now();
        index.insert(&posts, 0)?;
        inside += t.elapsed().as_secs_f64();
        id += m as i64;
    }
    Ok((index, inside))
}

/// Per-call times (ms, sorted) of `reps` searches of `b` queries.
fn time(
    s: &Snapshot,
    queries: &[f32],
    b: usize,
    k: usize,
    reps: usize,
) -> anyhow::Result<Vec<f64>> {
    let qs = vec![
        Query {
            k,
            ..Default::default()
        };
        b
    ];
    let mut out = Vec::with_capacity(reps);
    for r in 0..reps + 2 {
        let off = (r * b * DIM) % (queries.len() - b * DIM + 1);
        let q = &queries[off..off + b * DIM];
        let t = Instant::now();
        let hits = s.search(q, &qs)?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        std::hint::black_box(hits);
        if r >= 2 {
            out.push(ms);
        }
    }
    out.sort_by(f64::total_cmp);
    Ok(out)
}

fn hits(s: &Snapshot, queries: &[f32], k: usize) -> anyhow::Result<Vec<Vec<Hit>>> {
    let qs = vec![
        Query {
            k,
            ..Default::default()
        };
        RECALL_QUERIES
    ];
    Ok(s.search(&queries[..RECALL_QUERIES * DIM], &qs)?)
}

fn main() -> anyhow::Result<()> {
    let a = args()?;
    rayon::ThreadPoolBuilder::new().build_global().ok();
    let exact_cfg = IndexConfig {
        segment_rows: a.segment_rows,
        capacity: a.n.max(1),
        ..IndexConfig::new(DIM, Format::F32)
    };
    let ann_cfg = IndexConfig {
        ann: Some(AnnConfig {
            method: a.method,
            connectivity: a.m,
            expansion_search: a.ef,
            parallel_build: true,
            ..AnnConfig::default()
        }),
        ..exact_cfg.clone()
    };
    let (exact, exact_s) = build(exact_cfg, &a, 1)?;
    eprintln!("exact built in {exact_s:.1} s");
    let (ann, ann_s) = build(ann_cfg, &a, 1)?;
    eprintln!("ann built in {ann_s:.1} s");
    let mut queries = Vec::new();
    // Around the corpus's own centres (seed 1), as a user's query lands
    // near posts like the ones it engages with; other centres would make
    // every query an outlier with no neighbourhood in the corpus.
    Data::new(1, a.clustered)
        .reseeded(2)
        .fill(RECALL_QUERIES.max(16 * 8), &mut queries);
    let (es, as_) = (exact.snapshot(), ann.snapshot());
    let data = if a.clustered { "clustered" } else { "uniform" };
    let method = match a.method {
        AnnMethod::Hnsw => format!("hnsw M {} ef {}", a.m, a.ef),
        AnnMethod::Ivf { lists, probes } => {
            format!("ivf lists {lists} (0: segment_rows / 16) probes {probes}")
        }
    };
    println!(
        "n {} {data} segment_rows {} {method}: {} sealed segments, open rows {}",
        a.n,
        a.segment_rows,
        ann.stats().segments,
        ann.stats().open_rows
    );
    println!(
        "| index | B | k | p50 ms | p99 ms | vs f32 p50 | recall@k | bytes/post | total MB | insert posts/s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let ann_name = match a.method {
        AnnMethod::Hnsw => "f32 + hnsw",
        AnnMethod::Ivf { .. } => "f32 + ivf",
    };
    let mut rows = Vec::new();
    for &k in &a.k {
        let truth = hits(&es, &queries, k)?;
        let got = hits(&as_, &queries, k)?;
        let (mut found, mut wanted) = (0usize, 0usize);
        for (t, g) in truth.iter().zip(&got) {
            let t: HashSet<i64> = t.iter().map(|h| h.post_id).collect();
            found += g.iter().filter(|h| t.contains(&h.post_id)).count();
            wanted += t.len();
        }
        let recall = found as f64 / wanted.max(1) as f64;
        for &b in &a.batch {
            let te = time(&es, &queries, b, k, a.reps)?;
            let ta = time(&as_, &queries, b, k, a.reps)?;
            for (name, t, idx, secs, rec) in [
                ("f32 scan", &te, &exact, exact_s, 1.0),
                (ann_name, &ta, &ann, ann_s, recall),
            ] {
                let (p50, p99) = (percentile(t, 0.5), percentile(t, 0.99));
                let bytes = idx.bytes();
                let line = json!({
                    "index": name, "data": data, "n": a.n, "b": b, "k": k,
                    "p50_ms": p50, "p99_ms": p99, "vs_f32_p50": percentile(&te, 0.5) / p50,
                    "recall": rec, "bytes_per_post": bytes as f64 / a.n as f64,
                    "total_mb": bytes as f64 / 1e6, "insert_posts_per_s": a.n as f64 / secs,
                    "times_ms": t,
                });
                println!(
                    "| {name} | {b} | {k} | {p50:.2} | {p99:.2} | {:.2}x | {rec:.4} | {:.1} | {:.0} | {:.0} |",
                    percentile(&te, 0.5) / p50,
                    bytes as f64 / a.n as f64,
                    bytes as f64 / 1e6,
                    a.n as f64 / secs
                );
                rows.push(line);
            }
        }
    }
    if let Some(path) = &a.json {
        let doc = json!({
            "n": a.n, "data": data, "segment_rows": a.segment_rows, "m": a.m, "ef": a.ef,
            "method": method,
            "reps": a.reps, "rows": rows,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
    }
    Ok(())
}
