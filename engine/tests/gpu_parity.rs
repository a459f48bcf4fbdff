//! The GPU ranker (feature `cuda`) against the reference fixtures and
//! against the CPU fast path. Skipped where no GPU is usable, unless
//! FORYOU_REQUIRE_GPU=1 (set by `benches/gpu/run.sh` on the device).
//! The GPU computes in bf16 whatever the config says, so every set is held
//! to the bf16 tolerance: max |d logit| <= 5e-2.
#![cfg(feature = "cuda")]

mod common;

use common::*;
use foryou_engine::fixture::{EvalOptions, eval_dir_with_inputs};
use std::path::{Path, PathBuf};

use foryou_engine::backend::{AttentionKernel, TablePlacement};
use foryou_engine::hash_embed::{CandidateItem, HistoryItem};
use foryou_engine::tensor_io::OutTensor;
use foryou_engine::{ComputeDevice, Device, DeviceOptions, FpropDtype};

fn gpu_usable() -> bool {
    match foryou_kernels::cuda::libraries_present().and_then(|()| {
        foryou_kernels::cuda::Gpu::open(0)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }) {
        Ok(()) => true,
        Err(why) => {
            assert!(
                std::env::var_os("FORYOU_REQUIRE_GPU").is_none(),
                "FORYOU_REQUIRE_GPU is set but {why}"
            );
            eprintln!("skipped: {why}");
            false
        }
    }
}

/// `cuda:0`, opened (every kernel compiled) once per call.
fn cuda0() -> Device {
    cuda0_with(AttentionKernel::Flash)
}

/// `cuda:0` with the given attention implementation.
fn cuda0_with(attention: AttentionKernel) -> Device {
    let options = DeviceOptions {
        gpu_attention: attention,
        ..DeviceOptions::default()
    };
    Device::open(ComputeDevice::Cuda(0), options).expect("cuda:0")
}

/// Our outputs for a fixture set on `cuda:0`, and the reference's file.
fn eval_on_gpu(dir: &Path, attention: AttentionKernel) -> (Vec<OutTensor>, PathBuf) {
    let opts = EvalOptions {
        device: ComputeDevice::Cuda(0),
        device_options: DeviceOptions {
            gpu_attention: attention,
            ..DeviceOptions::default()
        },
        ..EvalOptions::default()
    };
    let inputs = dir.join("inputs.safetensors");
    let outs = eval_dir_with_inputs(dir, &inputs, &opts).expect("gpu eval");
    (outs, dir.join("outputs.safetensors"))
}

#[test]
fn every_ranker_fixture_matches_on_the_gpu() {
    ranker_fixtures_match(AttentionKernel::Flash);
}

/// The GEMM attention path's tests carry `gemm_attention` in their names:
/// `benches/gpu/run.sh` runs them in a process of their own.
#[test]
fn gemm_attention_every_ranker_fixture_matches_on_the_gpu() {
    ranker_fixtures_match(AttentionKernel::Gemm);
}

/// Every ranker fixture (January sets and the May 2026 ones) through
/// `kernel`'s attention, against the reference outputs.
fn ranker_fixtures_match(kernel: AttentionKernel) {
    if !gpu_usable() {
        return;
    }
    let mut checked = 0;
    for dir in fixture_sets().into_iter().chain(sets_in(&fixtures_v2())) {
        let config = std::fs::read_to_string(dir.join("config.json")).expect("config");
        if !config.contains("\"ranker\"") {
            continue;
        }
        let (outs, outputs) = eval_on_gpu(&dir, kernel);
        let (_, want) = expected(&outputs, "logits");
        let dl = max_abs_diff(&out_f32(find(&outs, "logits")), &want);
        let (_, want_p) = expected(&outputs, "probs");
        let dp = max_abs_diff(&out_f32(find(&outs, "probs")), &want_p);
        eprintln!(
            "{} on gpu ({kernel:?} attention): max|dlogit| {dl:.3e} max|dprob| {dp:.3e}",
            dir.display()
        );
        assert!(dl <= 5e-2, "{}: logits off by {dl}", dir.display());
        assert!(dp <= 2.5e-2, "{}: probs off by {dp}", dir.display());
        if let Some(got) = outs.iter().find(|t| t.name == "continuous_preds") {
            let (_, want_c) = expected(&outputs, "continuous_preds");
            let dc = max_abs_diff(&out_f32(got), &want_c);
            eprintln!("{}: max|dcont| {dc:.3e}", dir.display());
            assert!(
                dc <= 2.5e-2,
                "{}: continuous_preds off by {dc}",
                dir.display()
            );
        }
        checked += 1;
    }
    assert!(checked >= 6, "only {checked} ranker sets found");
}

#[test]
fn gpu_fast_path_matches_the_cpu_bf16_path_with_padding_and_gqa() {
    fast_path_matches_the_cpu(AttentionKernel::Flash);
}

#[test]
fn gemm_attention_fast_path_matches_the_cpu_bf16_path_with_padding_and_gqa() {
    fast_path_matches_the_cpu(AttentionKernel::Gemm);
}

/// A random bf16 ranker with GQA, row padding and a padded user, on the
/// GPU with `kernel`'s attention against the CPU bf16 path.
fn fast_path_matches_the_cpu(kernel: AttentionKernel) {
    if !gpu_usable() {
        return;
    }
    let mut cfg = small_config(128, 32, 8, 2, 3);
    cfg.fprop_dtype = FpropDtype::Bf16;
    let (_dir, cpu) = random_ranker(&cfg, 11);
    let mut rng = Rng(5);
    // Row padding, a padded user (dense CPU route), 300 candidates.
    let inputs = random_inputs(cpu.config(), &mut rng, 3, 40, 300, 0.2, 0.3);
    let want = cpu.forward(&inputs).expect("cpu");
    let mut gpu = cpu.clone();
    gpu.set_device(&cuda0_with(kernel)).expect("gpu ranker");
    assert_eq!(gpu.device(), ComputeDevice::Cuda(0));
    let got = gpu.forward(&inputs).expect("gpu");
    assert_eq!((got.batch, got.count), (want.batch, want.count));
    let dl = max_abs_diff(&got.logits, &want.logits);
    eprintln!("gpu ({kernel:?} attention) vs cpu bf16: max|dlogit| {dl:.3e}");
    // Each path is within 5e-2 of the reference (the fixture test); two
    // bf16 paths with different summation orders may differ by the sum.
    assert!(dl <= 1e-1, "{kernel:?}: logits off by {dl}");
    assert!(got.logits.iter().all(|x| x.is_finite()));
}

#[test]
fn gpu_may_2026_path_matches_the_cpu_bf16_path() {
    if !gpu_usable() {
        return;
    }
    let mut cfg = small_config(128, 32, 8, 2, 3);
    cfg.fprop_dtype = FpropDtype::Bf16;
    may_2026(&mut cfg, 60, true);
    let (_dir, cpu) = random_ranker(&cfg, 17);
    let mut gpu = cpu.clone();
    gpu.set_device(&cuda0()).expect("gpu ranker");
    let mut rng = Rng(23);
    let inputs = random_inputs(cpu.config(), &mut rng, 3, 40, 300, 0.2, 0.3);
    let want = cpu.forward(&inputs).expect("cpu");
    let got = gpu.forward(&inputs).expect("gpu");
    let dl = max_abs_diff(&got.logits, &want.logits);
    let dc = max_abs_diff(&got.continuous, &want.continuous);
    eprintln!("may 2026 gpu vs cpu bf16: max|dlogit| {dl:.3e} max|dcont| {dc:.3e}");
    assert_eq!(got.continuous.len(), want.continuous.len());
    assert!(dl <= 1e-1, "logits off by {dl}");
    assert!(dc <= 5e-2, "continuous off by {dc}");
}

#[test]
fn without_a_gpu_set_device_says_why_and_the_cpu_path_still_works() {
    if foryou_kernels::cuda::Gpu::open(0).is_ok() {
        return; // a usable GPU: the tests above cover it
    }
    let cfg = small_config(64, 32, 2, 2, 2);
    let (_dir, mut ranker) = random_ranker(&cfg, 3);
    let mut rng = Rng(9);
    let inputs = random_inputs(ranker.config(), &mut rng, 2, 8, 5, 0.2, 0.0);
    let before = ranker.forward(&inputs).expect("cpu forward");
    let why = Device::open(ComputeDevice::Cuda(0), DeviceOptions::default())
        .expect_err("no usable GPU here")
        .to_string();
    assert!(why.contains("unavailable"), "unexpected reason: {why}");
    // The caller falls back to the CPU device; the model keeps working.
    ranker.set_device(&Device::cpu()).expect("cpu");
    assert_eq!(ranker.device(), ComputeDevice::Cpu);
    assert_eq!(ranker.forward(&inputs).expect("still on the cpu"), before);
}

#[test]
fn the_retrieval_fixture_matches_on_the_gpu() {
    retrieval_fixture_matches(AttentionKernel::Flash);
}

#[test]
fn gemm_attention_the_retrieval_fixture_matches_on_the_gpu() {
    retrieval_fixture_matches(AttentionKernel::Gemm);
}

/// The retrieval fixture (user tower, causal attention, and top-k) with
/// `kernel`'s attention.
fn retrieval_fixture_matches(kernel: AttentionKernel) {
    if !gpu_usable() {
        return;
    }
    let dir = fixtures().join("retrieval_demo_f32");
    let (outs, outputs) = eval_on_gpu(&dir, kernel);
    let (_, want_rep) = expected(&outputs, "user_representation");
    let drep = max_abs_diff(&out_f32(find(&outs, "user_representation")), &want_rep);
    let (shape, want_idx) = expected(&outputs, "top_k_indices");
    let got_idx = out_f32(find(&outs, "top_k_indices"));
    // bf16 scores may reorder near-ties: compare as sets per row.
    let k = shape[1];
    let mut shared = 0;
    for (g, w) in got_idx.chunks(k).zip(want_idx.chunks(k)) {
        shared += g.iter().filter(|i| w.contains(i)).count();
    }
    let recall = shared as f64 / want_idx.len() as f64;
    eprintln!(
        "retrieval on gpu ({kernel:?} attention): max|drep| {drep:.3e}, top-k recall {recall:.3}"
    );
    assert!(drep <= 2e-2, "user representation off by {drep}");
    assert!(recall >= 0.9, "top-k recall {recall}");
}

/// Viewers given by ids: `n` viewers (viewer 0 of id 0, a padding user that
/// takes the dense route), histories of different lengths, candidate lists
/// of different lengths.
/// Viewers (id, history) and their candidate lists.
type IdRequests = (Vec<(i64, Vec<HistoryItem>)>, Vec<Vec<CandidateItem>>);

fn id_requests(n: i64) -> IdRequests {
    let users = (0..n)
        .map(|u| {
            let history = (0..3 + 2 * u)
                .map(|i| HistoryItem {
                    post_id: 100 * u + i + 1,
                    author_id: 1 + (u + i) % 13,
                    actions: u64::try_from((i * 7 + u) % 5).expect("small"),
                    product_surface: (i % 16) as u32,
                    ..Default::default()
                })
                .collect();
            (if u == 0 { 0 } else { 40 + u }, history)
        })
        .collect();
    let cands = (0..n)
        .map(|u| {
            (0..20 + 17 * u)
                .map(|i| CandidateItem {
                    post_id: 9_000 + 50 * u + i,
                    author_id: 1 + i % 11,
                    product_surface: ((u + i) % 16) as u32,
                    ..Default::default()
                })
                .collect()
        })
        .collect();
    (users, cands)
}

#[test]
fn ranking_by_ids_gathers_on_the_device_with_the_host_paths_numbers() {
    if !gpu_usable() {
        return;
    }
    let mut cfg = small_config(128, 32, 8, 2, 3);
    cfg.fprop_dtype = FpropDtype::Bf16;
    let (_dir, cpu) = random_ranker(&cfg, 13);
    let mut gpu = cpu.clone();
    gpu.set_device(&cuda0()).expect("gpu ranker");
    assert_eq!(gpu.table_placement(), TablePlacement::Device);
    let (users, cands) = id_requests(4);
    let users: Vec<_> = users.iter().map(|(u, h)| (*u, h.as_slice())).collect();
    let cands: Vec<_> = cands.iter().map(|c| c.as_slice()).collect();
    let width = 80;
    let by_ids = gpu.rank_ids(&users, &cands, width, 4096).expect("by ids");
    // The same requests with rows gathered on the host, on the same GPU:
    // the device tables hold the very bf16 values the host path uploads.
    let tables = cpu.hash_tables().expect("tables");
    let inputs = foryou_engine::inputs::RecsysInputs {
        user: tables
            .user_inputs(cpu.config(), &users, cpu.config().history_seq_len)
            .expect("user"),
        candidates: tables
            .candidate_inputs(cpu.config(), &cands, width)
            .expect("candidates"),
    };
    let host = gpu.forward(&inputs).expect("host rows");
    assert_eq!((by_ids.batch, by_ids.count), (4, width));
    assert!(by_ids.logits.iter().all(|x| x.is_finite()));
    assert_eq!(by_ids.logits, host.logits, "device gather vs host gather");
    eprintln!("rank_ids on gpu: bit-equal to host-gathered rows");
}

#[test]
fn retrieval_by_ids_gathers_on_the_device_with_the_host_paths_numbers() {
    if !gpu_usable() {
        return;
    }
    let mut cfg = small_config(128, 32, 8, 2, 2);
    cfg.model_kind = foryou_engine::ModelKind::Retrieval;
    let dir = tempfile::tempdir().expect("tempdir");
    foryou_engine::init::write_random_model(dir.path(), &cfg, 21, 64, &mut |_, _| {})
        .expect("model");
    let (mcfg, weights) = foryou_engine::fixture::load_model_dir(dir.path()).expect("load");
    let mut r =
        foryou_engine::PhoenixRetriever::new(mcfg, weights, FpropDtype::Bf16).expect("retriever");
    r.set_device(&cuda0()).expect("gpu retriever");
    let (users, _) = id_requests(4);
    // Valid users only: a padding user sends the whole batch to the host.
    let users: Vec<_> = users[1..].iter().map(|(u, h)| (*u, h.as_slice())).collect();
    let by_ids = r.represent_ids(&users).expect("by ids");
    let host = r
        .user_representation(
            &r.hash_tables()
                .expect("tables")
                .user_inputs(r.config(), &users, r.config().history_seq_len)
                .expect("inputs"),
        )
        .expect("host rows");
    assert_eq!(by_ids, host, "device gather vs host gather");
}

/// The live index with its sealed segments in a GPU arena answers as the
/// CPU's scan of the same snapshot: the same posts (bf16 selection with
/// the re-scoring margin), the same scores (re-scored on the host), before
/// and after deletes, with author exclusions.
#[test]
fn live_index_sealed_segments_on_the_gpu_answer_as_the_cpu_scan() {
    use foryou_engine::backend::cuda::GpuRowDevice;
    use foryou_engine::corpus::{CorpusItem, Query};
    use foryou_engine::index::{DeviceSegments, Format, IndexConfig, LiveIndex, NewPost};
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};
    if !gpu_usable() {
        return;
    }
    let d = 128;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut unit = || {
        let v: Vec<f32> = (0..d).map(|_| StandardNormal.sample(&mut rng)).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect::<Vec<f32>>()
    };
    let rows: Vec<Vec<f32>> = (0..40_000).map(|_| unit()).collect();
    let queries: Vec<f32> = (0..8).flat_map(|_| unit()).collect();
    let config = IndexConfig {
        segment_rows: 4_096,
        ..IndexConfig::new(d, Format::F32)
    };
    let mut index = LiveIndex::new(config.clone()).expect("config");
    for (c, chunk) in rows.chunks(1000).enumerate() {
        let posts: Vec<NewPost<'_>> = chunk
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let id = (c * 1000 + i) as i64;
                NewPost {
                    item: CorpusItem {
                        post_id: id,
                        author_id: id % 11,
                    },
                    created_ms: 0,
                    representation: r,
                }
            })
            .collect();
        index.insert(&posts, 0).expect("posts");
    }
    let gpu = std::sync::Arc::new(foryou_kernels::cuda::Gpu::open(0).expect("cuda:0"));
    let dev = DeviceSegments::new(Box::new(GpuRowDevice::new(gpu)), &config);
    let check = |snap: &foryou_engine::index::Snapshot, k: usize, excluded: &[i64]| {
        let qs = vec![
            Query {
                k,
                excluded_authors: excluded,
                ..Default::default()
            };
            8
        ];
        let got = dev.search(snap, &queries, &qs).expect("device search");
        let want = snap.search(&queries, &qs).expect("cpu search");
        for (g, w) in got.iter().zip(&want) {
            let gi: Vec<i64> = g.iter().map(|h| h.post_id).collect();
            let wi: Vec<i64> = w.iter().map(|h| h.post_id).collect();
            assert_eq!(gi, wi, "k {k}");
            for (x, y) in g.iter().zip(w) {
                assert!((x.score - y.score).abs() <= 1e-5, "{x:?} vs {y:?}");
            }
        }
        eprintln!("live index on the gpu k {k} excluded {excluded:?}: same posts as the cpu scan");
    };
    let snap = index.snapshot();
    for k in [10, 100, 1000, 5000] {
        check(&snap, k, &[]);
    }
    check(&snap, 100, &[3, 4]);
    let best: Vec<i64> = snap
        .search(
            &queries[..d],
            &[Query {
                k: 50,
                ..Default::default()
            }],
        )
        .expect("search")[0]
        .iter()
        .map(|h| h.post_id)
        .collect();
    index.delete(&best, 0);
    check(&index.snapshot(), 100, &[]);
    let s = dev.stats();
    assert_eq!(s.segments, 9, "{s:?}");
    assert!(s.mask_uploads >= 2, "{s:?}");
}
