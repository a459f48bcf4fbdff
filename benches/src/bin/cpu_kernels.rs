//! The CPU stack's matrix products at the mid shape's layer sizes: f32
//! through the `gemm` crate against bf16 on AMX tiles, interleaved rep by
//! rep with fresh inputs each rep. Prints a markdown table of medians
//! (ms and GFLOP/s) and the AMX/f32 speed-up.
//!
//! Run: `CANDLE_NUM_THREADS=2 cargo run --release -p foryou-benches --bin cpu-kernels`

use std::time::Instant;

use foryou_benches::median;
use foryou_engine::FpropDtype;
use foryou_engine::cpu::amx;
use foryou_engine::cpu::matmul::Weight;
use foryou_engine::numerics::Precision;
use rand::{RngExt, SeedableRng};

fn main() -> anyhow::Result<()> {
    if !amx::available() {
        anyhow::bail!("this CPU offers no AMX bf16; nothing to compare");
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut random =
        |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect() };
    // (name, rows, K, N): the mid shape (D 512, F 688, 8+2+2 heads of 64) at
    // batch 1 (257 context tokens) and batch 8 (2048 candidate tokens).
    let shapes = [
        ("q|k|v, 257 rows", 257, 512, 768),
        ("gelu|lin, 257 rows", 257, 512, 1376),
        ("down, 257 rows", 257, 688, 512),
        ("q|k|v, 2048 rows", 2048, 512, 768),
        ("gelu|lin, 2048 rows", 2048, 512, 1376),
        ("down, 2048 rows", 2048, 688, 512),
    ];
    let reps = 31;
    println!(
        "CPU matrix products, threads: {}, {reps} reps each, interleaved, medians\n",
        candle_core_threads()
    );
    println!("| product | f32 gemm ms | f32 GFLOP/s | AMX bf16 ms | AMX GFLOP/s | speed-up |");
    println!("|---|---|---|---|---|---|");
    for (name, m, k, n) in shapes {
        let w = random(k * n);
        let f32w = Weight::new(w.clone(), k, n, Precision(FpropDtype::F32), false);
        let bf16w = Weight::new(w, k, n, Precision(FpropDtype::Bf16), true);
        let mut out = vec![0f32; m * n];
        let (mut tf, mut ta) = (Vec::new(), Vec::new());
        for rep in 0..reps + 3 {
            let x = random(m * k);
            let t = Instant::now();
            f32w.apply(&x, m, &mut out);
            let df = t.elapsed().as_secs_f64();
            let t = Instant::now();
            bf16w.apply(&x, m, &mut out);
            let da = t.elapsed().as_secs_f64();
            if rep >= 3 {
                tf.push(df);
                ta.push(da);
            }
        }
        let (f, a) = (median(&mut tf), median(&mut ta));
        let flop = 2.0 * (m * k * n) as f64;
        println!(
            "| {name} | {:.3} | {:.0} | {:.3} | {:.0} | {:.2}x |",
            f * 1e3,
            flop / f / 1e9,
            a * 1e3,
            flop / a / 1e9,
            f / a
        );
    }
    Ok(())
}

fn candle_core_threads() -> String {
    std::env::var("CANDLE_NUM_THREADS").unwrap_or_else(|_| "default (rayon)".into())
}
