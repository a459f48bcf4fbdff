//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use foryou_engine::tensor_io::{OutTensor, SafetensorsFile};

/// Root of the copied reference fixtures.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/phoenix-reference")
}

/// The May 2026 (v2) fixture sets' directory.
pub fn fixtures_v2() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/phoenix-v2")
}

/// Every fixture set directory (those holding a config.json), sorted.
pub fn fixture_sets() -> Vec<PathBuf> {
    sets_in(&fixtures())
}

/// Every set directory under `root` with a config.json and an inputs
/// file, sorted.
pub fn sets_in(root: &Path) -> Vec<PathBuf> {
    let mut sets: Vec<PathBuf> = std::fs::read_dir(root)
        .expect("fixture dir exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.join("config.json").exists() && p.join("inputs.safetensors").exists())
        .collect();
    sets.sort();
    sets
}

/// Decodes one of our output tensors as f32.
pub fn out_f32(t: &OutTensor) -> Vec<f32> {
    t.values_f64().into_iter().map(|v| v as f32).collect()
}

/// Finds an output tensor by name.
pub fn find<'a>(outs: &'a [OutTensor], name: &str) -> &'a OutTensor {
    outs.iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("output '{name}' missing"))
}

/// Largest absolute difference; panics on a length mismatch.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Reads an expected tensor from a fixture outputs file as f32 with its shape.
pub fn expected(path: &Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let f = SafetensorsFile::open(path).expect("open outputs");
    if let Ok(t) = f.read_f32(name, None) {
        return (t.shape, t.data);
    }
    let t = f.read_int(name, None).expect("int tensor");
    (t.shape, t.data.into_iter().map(|v| v as f32).collect())
}

use foryou_engine::PhoenixConfig;
use foryou_engine::init::write_random_model;
use foryou_engine::inputs::{CandidateInputs, RecsysInputs, UserInputs};
use foryou_engine::{ModelConfig, PhoenixRanker};

/// A small deterministic generator for test inputs (SplitMix64 + Box-Muller).
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    pub fn normal(&mut self) -> f32 {
        let u1 = self.uniform().max(1e-7);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn chance(&mut self, p: f32) -> bool {
        self.uniform() < p
    }
}

/// A ranker config of the given shape (widening 2, 19 actions, 2 hashes each).
pub fn small_config(d: usize, k: usize, hq: usize, hkv: usize, layers: usize) -> PhoenixConfig {
    serde_json::from_value(serde_json::json!({
        "emb_size": d, "key_size": k, "num_q_heads": hq, "num_kv_heads": hkv,
        "num_layers": layers, "widening_factor": 2.0,
        "attn_output_multiplier": 1.0 / (k as f64).sqrt(),
        "history_seq_len": 8, "candidate_seq_len": 4, "num_actions": 19,
        "product_surface_vocab_size": 16, "num_user_hashes": 2,
        "num_item_hashes": 2, "num_author_hashes": 2
    }))
    .expect("valid config literal")
}

/// Turns on every May 2026 ranker feature of `cfg`: post-age buckets of
/// `granularity` minutes, the dwell block (log or linear normalisation),
/// two IP hashes, right-anchored RoPE and an 8-wide continuous head.
pub fn may_2026(cfg: &mut PhoenixConfig, granularity: u32, use_log: bool) {
    cfg.post_age_granularity_mins = Some(granularity);
    cfg.num_continuous_actions = Some(8);
    cfg.continuous_action_hidden_dim = Some(16);
    cfg.continuous_norm_scale = Some(30.0);
    cfg.continuous_norm_use_log = Some(use_log);
    cfg.num_ip_hashes = 2;
    cfg.right_anchored_rope = true;
}

/// Writes random weights for `cfg` into a temp dir and loads a ranker.
pub fn random_ranker(cfg: &PhoenixConfig, seed: u64) -> (tempfile::TempDir, PhoenixRanker) {
    let dir = tempfile::tempdir().expect("tempdir");
    write_random_model(dir.path(), cfg, seed, 64, &mut |_, _| {}).expect("write model");
    let (mcfg, weights) = foryou_engine::fixture::load_model_dir(dir.path()).expect("load");
    let ranker = PhoenixRanker::new(mcfg, weights, cfg.fprop_dtype).expect("ranker");
    (dir, ranker)
}

/// Random inputs: padding with probability `pad` per slot, padded rows carry
/// random non-zero embeddings (so a masking mistake shows), users padded with
/// probability `user_pad`.
pub fn random_inputs(
    cfg: &ModelConfig,
    rng: &mut Rng,
    b: usize,
    s: usize,
    c: usize,
    pad: f32,
    user_pad: f32,
) -> RecsysInputs {
    let d = cfg.emb_size;
    let (hu, hi, ha, a) = (
        cfg.num_user_hashes,
        cfg.num_item_hashes,
        cfg.num_author_hashes,
        cfg.num_actions,
    );
    let hashes = |n: usize, k: usize, rng: &mut Rng, p: f32| -> Vec<i64> {
        (0..n)
            .flat_map(|_| {
                let valid = !rng.chance(p);
                (0..k)
                    .map(|_| {
                        if valid {
                            1 + rng.below(99_999) as i64
                        } else {
                            0
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let user_hashes = hashes(b, hu, rng, user_pad);
    let history_post_hashes = hashes(b * s, hi, rng, pad);
    let history_author_hashes = hashes(b * s, ha, rng, 0.0);
    let post_hashes = hashes(b * c, hi, rng, pad);
    let author_hashes = hashes(b * c, ha, rng, 0.0);
    let normals = |n: usize, rng: &mut Rng| -> Vec<f32> { (0..n).map(|_| rng.normal()).collect() };
    let user = UserInputs {
        batch: b,
        history_len: s,
        user_hashes,
        history_post_hashes,
        history_author_hashes,
        history_actions: (0..b * s * a)
            .map(|_| f32::from(u8::from(rng.chance(0.3))))
            .collect(),
        history_product_surface: (0..b * s).map(|_| rng.below(16) as i64).collect(),
        user_embeddings: normals(b * hu * d, rng),
        history_post_embeddings: normals(b * s * hi * d, rng),
        history_author_embeddings: normals(b * s * ha * d, rng),
        // May 2026 inputs, when the model reads them: dwell seconds past
        // both ends of the normalisation range, IP embeddings.
        history_dwell: match cfg.continuous {
            Some(_) => (0..b * s).map(|_| rng.normal() * 40.0 + 10.0).collect(),
            None => Vec::new(),
        },
        user_ip_embeddings: normals(b * cfg.num_ip_hashes * d, rng),
    };
    let candidates = CandidateInputs {
        batch: b,
        count: c,
        post_hashes,
        author_hashes,
        product_surface: (0..b * c).map(|_| rng.below(16) as i64).collect(),
        post_embeddings: normals(b * c * hi * d, rng),
        author_embeddings: normals(b * c * ha * d, rng),
        post_age_buckets: match cfg.post_age {
            Some(age) => (0..b * c).map(|_| rng.below(age.vocab) as i64).collect(),
            None => Vec::new(),
        },
    };
    RecsysInputs { user, candidates }
}
