//! Ranker latency at serving shape: one viewer (full history), C candidates
//! scored in one call, the way PhoenixScorer calls it. Prints a markdown
//! table: median and p90 ms per call and µs per candidate, for the demo
//! shape at C = 250, 1000, 2000.
//!
//! Run: `CANDLE_NUM_THREADS=1 cargo run --release -p foryou-benches --bin ranker-serving`
//! (one thread per op, as `foryou serve` runs it).

use std::time::Instant;

use foryou_benches::bench_ranker;
use foryou_engine::FpropDtype;
use foryou_engine::hash_embed::{CandidateItem, HistoryItem};
use foryou_engine::init::Preset;
use foryou_engine::inputs::RecsysInputs;

fn main() -> anyhow::Result<()> {
    let (_dir, ranker) = bench_ranker(Preset::Demo, FpropDtype::F32)?;
    let cfg = ranker.config().clone();
    let tables = ranker
        .hash_tables()
        .ok_or_else(|| anyhow::anyhow!("no hash tables"))?;
    let history: Vec<HistoryItem> = (0..)
        .take(cfg.history_seq_len)
        .map(|i: i64| HistoryItem {
            post_id: 1 + i,
            author_id: 1 + i % 97,
            actions: 1 << (i % 19),
            product_surface: 0,
            ..Default::default()
        })
        .collect();
    let reps = 15;
    println!(
        "Ranker, demo shape, one viewer, threads per op: {}\n",
        std::env::var("CANDLE_NUM_THREADS").unwrap_or_else(|_| "default".into())
    );
    println!("| candidates | median ms | p90 ms | µs / candidate |");
    println!("|---|---|---|---|");
    for c in [250usize, 1000, 2000] {
        let mut times = Vec::with_capacity(reps);
        for r in (0..).take(reps + 2) {
            // Fresh candidate ids every call (no warm caches of one request).
            let cands: Vec<CandidateItem> = (0..)
                .take(c)
                .map(|i: i64| CandidateItem {
                    post_id: 10_000_000 + r * 100_000 + i,
                    author_id: 1 + (r * 7 + i) % 991,
                    product_surface: 0,
                    ..Default::default()
                })
                .collect();
            let inputs = RecsysInputs {
                user: tables.user_inputs(&cfg, &[(42, &history)], cfg.history_seq_len)?,
                candidates: tables.candidate_inputs(&cfg, &[&cands], cands.len())?,
            };
            let t = Instant::now();
            let out = ranker.forward_chunked(&inputs, 512)?;
            let dt = t.elapsed().as_secs_f64() * 1e3;
            assert_eq!(out.count, c);
            if r >= 2 {
                times.push(dt);
            }
        }
        times.sort_by(f64::total_cmp);
        let med = times[times.len() / 2];
        let p90 = times[(times.len() * 9) / 10];
        println!(
            "| {c} | {med:.2} | {p90:.2} | {:.1} |",
            med * 1e3 / c as f64
        );
    }
    Ok(())
}
