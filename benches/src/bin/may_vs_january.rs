//! The fast CPU ranker with every May 2026 input on (post-age buckets, the
//! dwell block, two IP embeddings, right-anchored RoPE, the continuous
//! head) against the January 2026 model at the same shape, in the same
//! process: alternating rounds, fresh inputs every call, medians and the
//! ratio May / January per batch size and dtype. Prints a markdown table;
//! `--json FILE` writes every timing.
//!
//! `cargo run --release -p foryou-benches --bin may-vs-january -- [--preset mid]
//! [--batch 1,4] [--rounds 3] [--calls 5] [--json FILE]`

use std::time::Instant;

use anyhow::{Context, bail};
use foryou_benches::{full_batch, median};
use foryou_engine::fixture::load_model_dir;
use foryou_engine::init::{Preset, preset_config, write_random_model};
use foryou_engine::inputs::RecsysInputs;
use foryou_engine::{FpropDtype, PhoenixConfig, PhoenixRanker};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

struct Args {
    preset: Preset,
    batch: Vec<usize>,
    rounds: usize,
    calls: usize,
    json: Option<String>,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        preset: Preset::Mid,
        batch: vec![1, 4],
        rounds: 3,
        calls: 5,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--preset" => {
                a.preset = match value()?.as_str() {
                    "demo" => Preset::Demo,
                    "mid" => Preset::Mid,
                    "prod-like" => Preset::ProdLike,
                    other => bail!("--preset {other}: expected demo, mid or prod-like"),
                }
            }
            "--batch" => {
                a.batch = value()?
                    .split(',')
                    .map(|b| b.parse().with_context(|| format!("--batch {b}")))
                    .collect::<anyhow::Result<_>>()?
            }
            "--rounds" => a.rounds = value()?.parse().context("--rounds")?,
            "--calls" => a.calls = value()?.parse().context("--calls")?,
            "--json" => a.json = Some(value()?),
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

/// A ranker with seeded random weights for `cfg` in `dtype`.
fn ranker(
    cfg: &PhoenixConfig,
    dtype: FpropDtype,
) -> anyhow::Result<(tempfile::TempDir, PhoenixRanker)> {
    let dir = tempfile::tempdir()?;
    write_random_model(dir.path(), cfg, 7, 4096, &mut |_, _| {})?;
    let (mcfg, weights) = load_model_dir(dir.path())?;
    Ok((dir, PhoenixRanker::new(mcfg, weights, dtype)?))
}

/// `full_batch` with the May inputs filled when the model reads them:
/// dwell seconds, post-age buckets, IP embeddings.
fn batch(r: &PhoenixRanker, b: usize, rng: &mut ChaCha8Rng) -> anyhow::Result<RecsysInputs> {
    let mut x = full_batch(r, b)?;
    let cfg = r.config();
    if cfg.continuous.is_some() {
        let n = x.user.batch * x.user.history_len;
        x.user.history_dwell = (0..n).map(|_| rng.random_range(0.0..60.0)).collect();
        let ip = b * cfg.num_ip_hashes * cfg.emb_size;
        x.user.user_ip_embeddings = (0..ip).map(|_| rng.random_range(-1.0..1.0)).collect();
    }
    if let Some(age) = cfg.post_age {
        let n = x.candidates.batch * x.candidates.count;
        let p = i64::try_from(age.vocab)?;
        x.candidates.post_age_buckets = (0..n).map(|_| rng.random_range(0..p)).collect();
    }
    // Fresh post embeddings per call, as `full_batch` repeats its ids.
    for v in &mut x.candidates.post_embeddings {
        *v += rng.random_range(-1e-3..1e-3);
    }
    Ok(x)
}

fn main() -> anyhow::Result<()> {
    let a = args()?;
    let january = preset_config(a.preset);
    let mut may = january.clone();
    may.post_age_granularity_mins = Some(60);
    may.num_continuous_actions = Some(8);
    may.continuous_action_hidden_dim = Some(64);
    may.continuous_norm_scale = Some(30.0);
    may.num_ip_hashes = 2;
    may.right_anchored_rope = true;
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut md = String::from(
        "| dtype | batch | January p50 ms | May p50 ms | May / January | per-round ratios |\n|---|---|---|---|---|---|\n",
    );
    let mut json = Vec::new();
    for dtype in [FpropDtype::F32, FpropDtype::Bf16] {
        let (_dj, jan) = ranker(&january, dtype)?;
        let (_dm, mayr) = ranker(&may, dtype)?;
        for &b in &a.batch {
            let (mut tj, mut tm, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
            // One warm-up call each (buffers, page faults).
            jan.forward(&batch(&jan, b, &mut rng)?)?;
            mayr.forward(&batch(&mayr, b, &mut rng)?)?;
            for _ in 0..a.rounds {
                let (mut rj, mut rm) = (Vec::new(), Vec::new());
                for _ in 0..a.calls {
                    for (model, times) in [(&jan, &mut rj), (&mayr, &mut rm)] {
                        let x = batch(model, b, &mut rng)?;
                        let t = Instant::now();
                        let out = model.forward(&x)?;
                        times.push(t.elapsed().as_secs_f64() * 1e3);
                        if out.logits.iter().any(|v| !v.is_finite()) {
                            bail!("non-finite logits");
                        }
                    }
                }
                ratios.push(median(&mut rm.clone()) / median(&mut rj.clone()));
                tj.extend(rj);
                tm.extend(rm);
            }
            let (mj, mm) = (median(&mut tj.clone()), median(&mut tm.clone()));
            let per_round: Vec<String> = ratios.iter().map(|r| format!("{r:.3}")).collect();
            md.push_str(&format!(
                "| {dtype:?} | {b} | {mj:.2} | {mm:.2} | **{:.3}** | {} |\n",
                mm / mj,
                per_round.join(" ")
            ));
            json.push(serde_json::json!({
                "dtype": format!("{dtype:?}"), "batch": b, "january_ms": tj, "may_ms": tm,
                "january_p50_ms": mj, "may_p50_ms": mm, "ratio": mm / mj, "round_ratios": ratios,
            }));
        }
    }
    print!("{md}");
    if let Some(path) = a.json {
        std::fs::write(&path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {path}"))?;
    }
    Ok(())
}
