//! GPU benchmarks (feature `cuda`): the device's two ceilings (copy
//! bandwidth, bf16 GEMM rate), the attention kernel at the prod shape, the
//! top-k kernel at N = 10M, and the ranker end to end (inputs with
//! embeddings given, and requests by ids as served). Method: untimed warm-up
//! calls first, then each repetition timed with CUDA events on the stream
//! (wall clock where the call includes host work), the median reported, and
//! fresh random inputs rotated so nothing is timed from L2.
//!
//! `gpu-bench [--only ceilings,attention,topk,ranker] [--json PATH]
//!            [--topk-n N] [--ranker DIR]... [--ranker-batch 1,4] [--reps N]
//!            [--attention flash,gemm]`
//!
//! `--attention` names the attention implementations timed side by side,
//! in the attention step and in the ranker end to end (default both).

use std::time::Instant;

use anyhow::{Context, Result, bail};
use foryou_engine::hash_embed::{CandidateItem, HistoryItem};
use foryou_engine::inputs::{CandidateInputs, RecsysInputs, UserInputs};
use foryou_engine::{ComputeDevice, Device, DeviceOptions, FpropDtype, ModelConfig, PhoenixRanker};
use foryou_kernels::AttentionKernel;
use foryou_kernels::cuda::attention_gemm::GemmAttentionScratch;
use foryou_kernels::cuda::gemm::GemmOut;
use foryou_kernels::cuda::timing::median;
use foryou_kernels::cuda::{Gpu, attention::SelfKvGpu};
use foryou_kernels::reference::attention::AttentionShape;
use rayon::prelude::*;
use serde_json::{Value, json};

/// The command line, for `--help`.
const USAGE: &str = "gpu-bench [--only ceilings,attention,topk,ranker] [--json PATH] \
[--topk-n N] [--ranker DIR]... [--ranker-batch 1,4] [--reps N] [--attention flash,gemm]";

/// SplitMix64: fast, seedable, good enough for benchmark data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A random entity id in `1..=below`.
    fn id(&mut self, below: u64) -> i64 {
        i64::try_from(self.next() % below.max(1)).map_or(1, |v| v + 1)
    }
    /// Roughly standard normal (sum of four uniforms, rescaled).
    fn normal(&mut self) -> f32 {
        let u = |x: u64| (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
        let r = self.next();
        let s = u(r) + u(r << 12) + u(r << 24) + u(self.next());
        s * 1.732
    }
}

/// `n` random bf16 values (bits), generated in parallel.
fn random_bf16(n: usize, seed: u64, scale: f32) -> Vec<u16> {
    let mut out = vec![0u16; n];
    out.par_chunks_mut(1 << 20)
        .enumerate()
        .for_each(|(i, chunk)| {
            let mut rng = Rng(seed ^ (i as u64).wrapping_mul(0x2545_f491_4f6c_dd1d));
            for v in chunk {
                *v = half::bf16::from_f32(rng.normal() * scale).to_bits();
            }
        });
    out
}

struct Args {
    only: Vec<String>,
    json: Option<String>,
    topk_n: usize,
    rankers: Vec<String>,
    ranker_batch: Vec<usize>,
    reps: usize,
    attention: Vec<AttentionKernel>,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        only: vec![
            "ceilings".into(),
            "attention".into(),
            "topk".into(),
            "ranker".into(),
        ],
        json: None,
        topk_n: 10_000_000,
        rankers: Vec::new(),
        ranker_batch: vec![1, 4],
        reps: 20,
        attention: vec![AttentionKernel::Flash, AttentionKernel::Gemm],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--only" => a.only = val()?.split(',').map(str::to_owned).collect(),
            "--json" => a.json = Some(val()?),
            "--topk-n" => a.topk_n = val()?.parse().context("--topk-n")?,
            "--ranker" => a.rankers.push(val()?),
            "--ranker-batch" => {
                a.ranker_batch = val()?
                    .split(',')
                    .map(|s| s.parse().context("--ranker-batch"))
                    .collect::<Result<_>>()?
            }
            "--reps" => a.reps = val()?.parse().context("--reps")?,
            "--attention" => {
                a.attention = val()?
                    .split(',')
                    .map(|s| s.parse().map_err(anyhow::Error::msg))
                    .collect::<Result<_>>()
                    .context("--attention")?
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

fn ceilings(g: &Gpu, reps: usize) -> Result<Value> {
    let n = 1usize << 29; // 1 GiB of u16 each way
    let src = g.upload(&random_bf16(n, 1, 1.0))?;
    let mut dst = g.zeros::<u16>(n)?;
    let t = g.time_ms(2, reps, |_| Ok(g.stream().memcpy_dtod(&src, &mut dst)?))?;
    let copy_ms = median(&t);
    let copy_gbs = (2 * n * 2) as f64 / (f64::from(copy_ms) * 1e-3) / 1e9;
    drop((src, dst));
    let m = 8192;
    let sets: Vec<_> = (0..2)
        .map(|i| {
            Ok((
                g.upload(&random_bf16(m * m, 10 + i, 1.0))?,
                g.upload(&random_bf16(m * m, 20 + i, 0.01))?,
            ))
        })
        .collect::<Result<_>>()?;
    let mut y = g.zeros::<u16>(m * m)?;
    let t = g.time_ms(2, reps, |i| {
        let (x, w) = &sets[i % 2];
        g.gemm_bf16(m, m, m, x, 0, w, GemmOut::Bf16(&mut y), 0, m)
    })?;
    let gemm_ms = median(&t);
    let tflops = 2.0 * (m as f64).powi(3) / (f64::from(gemm_ms) * 1e-3) / 1e12;
    println!(
        "ceilings: copy {copy_gbs:.0} GB/s (read + write), bf16 GEMM 8192^3 {tflops:.0} TFLOP/s"
    );
    Ok(
        json!({"copy_gb_per_s": copy_gbs, "copy_ms_2gib": copy_ms, "gemm_bf16_tflops": tflops, "gemm_ms": gemm_ms}),
    )
}

fn attention(
    g: &Gpu,
    reps: usize,
    gemm_tflops: Option<f64>,
    kernels: &[AttentionKernel],
) -> Result<Vec<Value>> {
    let mut rows = Vec::new();
    // (label, B, T, S, causal)
    for (label, b, t, s, causal) in [
        ("prod candidates", 1, 1400, 1025, false),
        ("prod context (causal)", 1, 1025, 1025, true),
        ("prod candidates, batch 8", 8, 1400, 1025, false),
    ] {
        let shape = AttentionShape {
            batch: b,
            queries: t,
            context: s,
            q_heads: 20,
            kv_heads: 4,
            head_dim: 128,
            causal,
            mult: 1.0 / 128f32.sqrt(),
            cap: 30.0,
            round_logits: true,
        };
        // Rotate among input sets several times the L2 in total.
        let per_set = 2 * (shape.q_len() + 2 * shape.kv_len() + 2 * shape.self_kv_len());
        let nsets = (200_000_000 / per_set).clamp(2, 16);
        let sets: Vec<_> = (0..nsets as u64)
            .map(|i| {
                Ok((
                    g.upload(&random_bf16(shape.q_len(), 100 + i, 1.0))?,
                    g.upload(&random_bf16(shape.kv_len(), 200 + i, 1.0))?,
                    g.upload(&random_bf16(shape.kv_len(), 300 + i, 1.0))?,
                    g.upload(&random_bf16(shape.self_kv_len(), 400 + i, 1.0))?,
                    g.upload(&random_bf16(shape.self_kv_len(), 500 + i, 1.0))?,
                ))
            })
            .collect::<Result<_>>()?;
        let valid = g.upload(&vec![1u8; b * s])?;
        let cand_valid = g.upload(&vec![1u8; b * t])?;
        let mut out = g.zeros::<u16>(shape.q_len())?;
        let mut scratch = GemmAttentionScratch::default();
        let mut flash_ms = None;
        for &kernel in kernels {
            let times = g.time_ms(3, reps, |i| {
                let (q, k, v, ks, vs) = &sets[i % sets.len()];
                let sk = (!causal).then_some(SelfKvGpu {
                    k: ks,
                    v: vs,
                    valid: Some(&cand_valid),
                });
                g.attention_with(kernel, &shape, q, k, v, &valid, sk, &mut out, &mut scratch)
            })?;
            let ms = median(&times);
            let flops = shape.flops(!causal);
            let tflops = flops / (f64::from(ms) * 1e-3) / 1e12;
            let pct = gemm_tflops.map(|p| 100.0 * tflops / p);
            if kernel == AttentionKernel::Flash {
                flash_ms = Some(ms);
            }
            let vs_flash = flash_ms.map(|f| f64::from(f) / f64::from(ms));
            println!(
                "attention {label} ({kernel:?}): {ms:.4} ms, {tflops:.1} TFLOP/s useful ({:.1}% of measured GEMM rate){}",
                pct.unwrap_or(f64::NAN),
                match (kernel, vs_flash) {
                    (AttentionKernel::Gemm, Some(r)) => format!(", {r:.2}x the flash kernel"),
                    _ => String::new(),
                }
            );
            rows.push(json!({
                "label": label, "kernel": format!("{kernel:?}"), "batch": b, "queries": t,
                "context": s, "q_heads": 20, "kv_heads": 4, "head_dim": 128, "causal": causal,
                "median_ms": ms, "useful_gflop": flops / 1e9, "tflops": tflops,
                "pct_of_measured_gemm": pct, "speedup_vs_flash": vs_flash, "reps": reps,
                "input_sets": nsets,
            }));
        }
    }
    Ok(rows)
}

fn topk(g: &Gpu, n: usize, reps: usize, copy_gbs: Option<f64>) -> Result<Vec<Value>> {
    let d = 128;
    let t0 = Instant::now();
    let corpus = g.upload_corpus(&random_bf16(n * d, 7, 0.1), d, None)?;
    println!(
        "top-k corpus {n} x {d} uploaded in {:.1} s",
        t0.elapsed().as_secs_f32()
    );
    let bytes = (n * d * 2) as f64;
    let floor_ms = copy_gbs.map(|bw| bytes / (bw * 1e9) * 1e3);
    let mut rows = Vec::new();
    let mut rng = Rng(99);
    for (b, k) in [
        (1, 100),
        (8, 100),
        (64, 100),
        (64, 1000),
        (8, 16384),
        (64, 16384),
    ] {
        let mut times = Vec::new();
        let reps = if k > 1000 { reps.min(5) } else { reps };
        for i in 0..reps + 2 {
            let q: Vec<f32> = (0..b * d).map(|_| rng.normal()).collect();
            let t = Instant::now();
            let res = g.top_k(&corpus, &q, k)?;
            let ms = t.elapsed().as_secs_f32() * 1e3;
            if res.len() != b || res.iter().any(|r| r.len() != k) {
                bail!("top-k returned the wrong shape");
            }
            if i >= 2 {
                times.push(ms);
            }
        }
        let ms = median(&times);
        let gbs = bytes / (f64::from(ms) * 1e-3) / 1e9;
        let pct = copy_gbs.map(|bw| 100.0 * gbs / bw);
        println!(
            "top-k B {b} k {k}: {ms:.3} ms (corpus at {gbs:.0} GB/s, {:.0}% of copy bandwidth)",
            pct.unwrap_or(f64::NAN)
        );
        rows.push(json!({
            "n": n, "dim": d, "batch": b, "k": k, "median_ms": ms, "corpus_gb_per_s": gbs,
            "pct_of_copy_bandwidth": pct, "floor_ms": floor_ms, "reps": times.len(),
            "timed": "wall clock of the whole call (query upload, kernels, host threshold checks, download)",
        }));
    }
    Ok(rows)
}

fn random_inputs(cfg: &ModelConfig, b: usize, s: usize, c: usize, rng: &mut Rng) -> RecsysInputs {
    let d = cfg.emb_size;
    let (hu, hi, ha, a, v) = (
        cfg.num_user_hashes,
        cfg.num_item_hashes,
        cfg.num_author_hashes,
        cfg.num_actions,
        cfg.product_surface_vocab_size,
    );
    let mut hashes =
        |n: usize| -> Vec<i64> { (0..n).map(|_| 1 + (rng.next() % 99_999) as i64).collect() };
    let (uh, hph, hah, cph, cah) = (
        hashes(b * hu),
        hashes(b * s * hi),
        hashes(b * s * ha),
        hashes(b * c * hi),
        hashes(b * c * ha),
    );
    let mut normal = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal()).collect() };
    let (ue, hpe, hae, cpe, cae) = (
        normal(b * hu * d),
        normal(b * s * hi * d),
        normal(b * s * ha * d),
        normal(b * c * hi * d),
        normal(b * c * ha * d),
    );
    let acts: Vec<f32> = (0..b * s * a)
        .map(|i| f32::from(u8::from(i % 3 == 0)))
        .collect();
    let surf = |n: usize| -> Vec<i64> { (0..n).map(|i| (i % v) as i64).collect() };
    RecsysInputs {
        user: UserInputs {
            batch: b,
            history_len: s,
            user_hashes: uh,
            history_post_hashes: hph,
            history_author_hashes: hah,
            history_actions: acts,
            history_product_surface: surf(b * s),
            user_embeddings: ue,
            history_post_embeddings: hpe,
            history_author_embeddings: hae,
            history_dwell: Vec::new(),
            user_ip_embeddings: Vec::new(),
        },
        candidates: CandidateInputs {
            batch: b,
            count: c,
            post_hashes: cph,
            author_hashes: cah,
            product_surface: surf(b * c),
            post_embeddings: cpe,
            author_embeddings: cae,
            post_age_buckets: Vec::new(),
        },
    }
}

/// `b` random viewers given by ids: `s` history items and `c` candidates each.
fn id_requests(b: usize, s: usize, c: usize, rng: &mut Rng) -> IdRequests {
    let users = (0..b)
        .map(|_| {
            let history = (0..s)
                .map(|_| HistoryItem {
                    post_id: rng.id(10_000_000),
                    author_id: rng.id(1_000_000),
                    actions: rng.next() & 0x7ffff,
                    product_surface: (rng.next() % 4) as u32,
                    ..Default::default()
                })
                .collect();
            (rng.id(1_000_000_000), history)
        })
        .collect();
    let cands = (0..b)
        .map(|_| {
            (0..c)
                .map(|_| CandidateItem {
                    post_id: rng.id(10_000_000),
                    author_id: rng.id(1_000_000),
                    product_surface: (rng.next() % 4) as u32,
                    ..Default::default()
                })
                .collect()
        })
        .collect();
    (users, cands)
}

/// Viewers (id, history) and their candidate lists.
type IdRequests = (Vec<(i64, Vec<HistoryItem>)>, Vec<Vec<CandidateItem>>);

/// Medians of the GPU phase split over a run.
#[derive(Default)]
struct PhaseLog {
    times: Vec<f32>,
    host: Vec<f32>,
    upload: Vec<f32>,
    gctx: Vec<f32>,
    gcand: Vec<f32>,
}

impl PhaseLog {
    fn push(&mut self, ms: f32, r: &PhoenixRanker) {
        self.times.push(ms);
        if let Some(p) = r.last_phases() {
            self.host.push(p.host_ms);
            self.upload.push(p.upload_ms);
            self.gctx.push(p.device_context_ms);
            self.gcand.push(p.device_candidates_ms);
        }
    }

    /// Prints and returns the medians under `path` (how inputs arrived).
    fn report(&self, head: &str, path: &str, b: usize) -> Value {
        let ms = median(&self.times);
        let (hms, ums) = (median(&self.host), median(&self.upload));
        let (gc, gk) = (median(&self.gctx), median(&self.gcand));
        println!(
            "{head} [{path}]: p50 {ms:.2} ms, {:.1} requests/s (host inputs {hms:.2} ms, uploads {ums:.2} ms, device + rest {:.2} ms; GPU timeline context {gc:.2} ms, candidates {gk:.2} ms)",
            b as f32 / ms * 1e3,
            ms - hms - ums
        );
        json!({
            "p50_ms": ms, "requests_per_s": b as f32 / ms * 1e3, "host_inputs_ms_p50": hms,
            "uploads_ms_p50": ums, "device_and_rest_ms": ms - hms - ums,
            "gpu_timeline_context_ms": gc, "gpu_timeline_candidates_ms": gk, "all_ms": self.times,
        })
    }
}

/// The ranker end to end at each batch size, two ways in alternating
/// calls: inputs with embeddings given (`forward`: host gather, bf16
/// conversion and upload of the rows) and requests given by ids
/// (`rank_ids`, the serving path: with the tables resident only hashes go
/// up and the device gathers the rows).
fn ranker(
    dir: &str,
    batches: &[usize],
    reps: usize,
    attention: AttentionKernel,
) -> Result<Vec<Value>> {
    let (cfg, weights) = foryou_engine::fixture::load_model_dir(std::path::Path::new(dir))
        .with_context(|| format!("loading {dir}"))?;
    let (s, c) = (cfg.history_seq_len, cfg.candidate_seq_len);
    let options = DeviceOptions {
        gpu_attention: attention,
        ..DeviceOptions::default()
    };
    let device = Device::open(ComputeDevice::Cuda(0), options)?;
    let r = PhoenixRanker::on(&device, cfg.clone(), weights, FpropDtype::Bf16)?;
    let placement = format!("{:?}", r.table_placement());
    println!("ranker {dir}: hash-table rows gathered on {placement}");
    let has_tables = r.hash_tables().is_some();
    let mut rng = Rng(5);
    let mut rows = Vec::new();
    for &b in batches {
        let sets: Vec<_> = (0..3)
            .map(|_| random_inputs(&cfg, b, s, c, &mut rng))
            .collect();
        let id_sets: Vec<IdRequests> = (0..3).map(|_| id_requests(b, s, c, &mut rng)).collect();
        let by_ids = |i: usize| -> Result<foryou_engine::RankerOutput> {
            let (users, cands) = &id_sets[i % id_sets.len()];
            let users: Vec<_> = users.iter().map(|(u, h)| (*u, h.as_slice())).collect();
            let cands: Vec<_> = cands.iter().map(|x| x.as_slice()).collect();
            Ok(r.rank_ids(&users, &cands, c, foryou_engine::SERVING_CHUNK)?)
        };
        for (i, set) in sets.iter().take(2).enumerate() {
            r.forward(set)?; // warm-up (workspace, cuBLAS heuristics)
            if has_tables {
                by_ids(i)?;
            }
        }
        let (mut given, mut ids) = (PhaseLog::default(), PhaseLog::default());
        for i in 0..reps {
            let t = Instant::now();
            let out = r.forward(&sets[i % sets.len()])?;
            given.push(t.elapsed().as_secs_f32() * 1e3, &r);
            if out.logits.iter().any(|x| !x.is_finite()) {
                bail!("non-finite logits");
            }
            if has_tables {
                let t = Instant::now();
                let out = by_ids(i)?;
                ids.push(t.elapsed().as_secs_f32() * 1e3, &r);
                if out.logits.iter().any(|x| !x.is_finite()) {
                    bail!("non-finite logits (by ids)");
                }
            }
        }
        let head = format!("ranker {dir} B {b} (S {s}, C {c}, {attention:?} attention)");
        let mut row = json!({
            "model": dir, "emb_size": cfg.emb_size, "layers": cfg.num_layers, "history": s,
            "candidates": c, "batch": b, "table_placement": placement,
            "attention": format!("{attention:?}"),
            "embeddings_given": given.report(&head, "embeddings given", b),
            "timed": "wall clock of PhoenixRanker::forward (host input assembly, uploads, device, download, sigmoid) and of PhoenixRanker::rank_ids (hashing too), alternating",
        });
        if has_tables {
            row["by_ids"] = ids.report(&head, "by ids", b);
            let ratio = median(&given.times) / median(&ids.times);
            println!("{head}: by ids {ratio:.2}x the speed of embeddings given");
            row["by_ids_speedup"] = json!(ratio);
        }
        rows.push(row);
    }
    Ok(rows)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let g = Gpu::open(0).context("opening cuda:0")?;
    println!("device {} ({}, {} SMs)", g.name(), g.arch(), g.sm_count());
    let on = |w: &str| args.only.iter().any(|o| o == w);
    let mut report = json!({"device": g.name(), "arch": g.arch(), "sms": g.sm_count()});
    let mut copy = None;
    let mut gemm = None;
    if on("ceilings") {
        let c = ceilings(&g, args.reps)?;
        copy = c["copy_gb_per_s"].as_f64();
        gemm = c["gemm_bf16_tflops"].as_f64();
        report["ceilings"] = c;
    }
    if on("attention") {
        report["attention"] = json!(attention(&g, args.reps, gemm, &args.attention)?);
    }
    if on("topk") {
        report["topk"] = json!(topk(&g, args.topk_n, args.reps, copy)?);
    }
    if on("ranker") {
        let mut all = Vec::new();
        for dir in &args.rankers {
            for &kernel in &args.attention {
                all.extend(ranker(dir, &args.ranker_batch, args.reps, kernel)?);
            }
        }
        report["ranker"] = json!(all);
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {path}"))?;
    }
    Ok(())
}
