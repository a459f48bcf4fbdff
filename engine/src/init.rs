//! Seeded random weights in the reference layout (`foryou phoenix init`).
//!
//! The reference's own initialiser sets every parameter to zero, which makes
//! every output trivial, so we use the fixtures' recipe instead: RMSNorm gains
//! `1 + 0.1 N(0,1)`, the product-surface table `N(0,1)`, every other matrix
//! `N(0,1) / sqrt(fan_in)` (unit-variance in, unit-variance out), and hash
//! tables `N(0,1)` with a zero row 0 (padding). Logits then have a standard
//! deviation near 1.
//!
//! Values are drawn in blocks of 2^20 elements, each from a ChaCha8 stream
//! seeded by (seed, tensor name, block index): the file is the same for the
//! same seed whatever the thread count, blocks are drawn in parallel, and the
//! file is written block by block, so even multi-gigabyte models never sit
//! in memory whole.

use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use safetensors::tensor::Dtype;

use crate::config::{CandidatePositions, FpropDtype, ModelKind, PhoenixConfig, ffn_size};
use crate::error::{EngineError, Result};
use crate::tensor_io::{StreamingWriter, TensorSpec};
use crate::weights::{HASH_TABLE_NAMES, ParamInit, param_specs};

/// Model shapes `foryou phoenix init` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// The fixtures' demo ranker: D 128, 2 layers, 2/2 heads of 64, S 32, C 8.
    Demo,
    /// Production-like ranker: D 2560, 8 layers, 20/4 heads of 128, S 1024, C 1400.
    ProdLike,
    /// The mid benchmark shape: D 512, 4 layers, 8/2 heads of 64, S 256, C 256.
    Mid,
}

impl std::str::FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "demo" => Ok(Self::Demo),
            "prod-like" => Ok(Self::ProdLike),
            "mid" => Ok(Self::Mid),
            other => Err(format!(
                "unknown preset '{other}', expected demo, mid or prod-like"
            )),
        }
    }
}

/// The config of a preset (ranker).
pub fn preset_config(preset: Preset) -> PhoenixConfig {
    // (D, K, Hq, Hkv, layers, widening, S, C, dtype)
    let (d, k, hq, hkv, layers, widening, s, c, dtype) = match preset {
        Preset::Demo => (128, 64, 2, 2, 2, 2.0, 32, 8, FpropDtype::F32),
        Preset::Mid => (512, 64, 8, 2, 4, 2.0, 256, 256, FpropDtype::F32),
        Preset::ProdLike => (2560, 128, 20, 4, 8, 2.0, 1024, 1400, FpropDtype::Bf16),
    };
    let json = serde_json::json!({
        "emb_size": d,
        "key_size": k,
        "num_q_heads": hq,
        "num_kv_heads": hkv,
        "num_layers": layers,
        "widening_factor": widening,
        "attn_output_multiplier": 1.0 / (k as f64).sqrt(),
        "history_seq_len": s,
        "candidate_seq_len": c,
        "num_actions": 19,
        "product_surface_vocab_size": 16,
        "num_user_hashes": 2,
        "num_item_hashes": 2,
        "num_author_hashes": 2,
    });
    let mut cfg: PhoenixConfig =
        serde_json::from_value(json).expect("preset literal matches PhoenixConfig's fields");
    cfg.fprop_dtype = dtype;
    cfg.ffn_size = Some(ffn_size(d, widening));
    cfg.model_kind = ModelKind::Ranker;
    cfg.candidate_positions = CandidatePositions::Absolute;
    cfg.action_names = Some(ACTION_NAMES.iter().map(|s| s.to_string()).collect());
    cfg
}

/// The 19 Phoenix actions in logit order.
pub const ACTION_NAMES: [&str; 19] = [
    "favorite_score",
    "reply_score",
    "repost_score",
    "photo_expand_score",
    "click_score",
    "profile_click_score",
    "vqv_score",
    "share_score",
    "share_via_dm_score",
    "share_via_copy_link_score",
    "dwell_score",
    "quote_score",
    "quoted_click_score",
    "follow_author_score",
    "not_interested_score",
    "block_author_score",
    "mute_author_score",
    "report_score",
    "dwell_time",
];

const BLOCK: usize = 1 << 20;

/// FNV-1a of a name, to give every tensor its own stream.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One block of a tensor's values (`len` elements starting at `block * BLOCK`).
fn draw_block(
    seed: u64,
    name: &str,
    block: usize,
    len: usize,
    init: ParamInit,
    fan_in: usize,
    row_len: usize,
) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(
        seed ^ name_hash(name) ^ (block as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
    );
    let start = block * BLOCK;
    (0..len)
        .map(|_| {
            let z: f32 = StandardNormal.sample(&mut rng);
            match init {
                ParamInit::NormScale => 1.0 + 0.1 * z,
                ParamInit::Normal => z,
                ParamInit::FanIn => z / (fan_in as f32).sqrt(),
            }
        })
        .enumerate()
        // Hash tables: row 0 is padding and stays zero (row_len > 0 marks a table).
        .map(|(i, v)| {
            if row_len > 0 && start + i < row_len {
                0.0
            } else {
                v
            }
        })
        .collect()
}

/// What [`write_random_model`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteSummary {
    /// Tensors in the file.
    pub tensors: usize,
    /// Bytes of tensor data.
    pub bytes: u64,
}

/// Writes `dir/config.json` and `dir/params.safetensors` with seeded random
/// weights (plus hash tables of `table_rows` rows). `progress(done, total)`
/// is called with bytes of tensor data as blocks are written.
pub fn write_random_model(
    dir: &Path,
    cfg: &PhoenixConfig,
    seed: u64,
    table_rows: usize,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<WriteSummary> {
    let model = cfg.validate().map_err(|message| EngineError::Config {
        path: "<preset>".into(),
        message,
    })?;
    if table_rows < 2 {
        return Err(EngineError::Input(format!(
            "table rows {table_rows} must be at least 2"
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
    let text = serde_json::to_string_pretty(cfg).map_err(|e| EngineError::Config {
        path: dir.join("config.json").display().to_string(),
        message: e.to_string(),
    })?;
    std::fs::write(dir.join("config.json"), text)
        .map_err(|e| EngineError::io(dir.join("config.json"), e))?;

    // (spec, init, fan_in, row_len of a hash table or 0)
    let mut plan: Vec<(TensorSpec, ParamInit, usize, usize)> = param_specs(&model)
        .into_iter()
        .map(|p| {
            let fan_in = p.shape[0];
            let spec = TensorSpec {
                name: p.name,
                dtype: Dtype::F32,
                shape: p.shape,
            };
            (spec, p.init, fan_in, 0)
        })
        .collect();
    for name in HASH_TABLE_NAMES {
        let spec = TensorSpec {
            name: name.to_string(),
            dtype: Dtype::F32,
            shape: vec![table_rows, model.emb_size],
        };
        plan.push((spec, ParamInit::Normal, 1, model.emb_size));
    }
    let specs: Vec<TensorSpec> = plan.iter().map(|p| p.0.clone()).collect();
    let total: u64 = specs.iter().map(|s| s.byte_len() as u64).sum();
    let path = dir.join("params.safetensors");
    let mut writer = StreamingWriter::create(&path, &specs)?;
    let mut done = 0u64;
    progress(0, total);
    let threads = rayon::current_num_threads().max(1);
    for (spec, init, fan_in, row_len) in &plan {
        let n: usize = spec.shape.iter().product();
        let blocks = n.div_ceil(BLOCK);
        // Draw `threads` blocks at a time in parallel, write them in order.
        for group in (0..blocks).collect::<Vec<_>>().chunks(threads) {
            let drawn: Vec<Vec<f32>> = group
                .par_iter()
                .map(|&blk| {
                    let len = BLOCK.min(n - blk * BLOCK);
                    draw_block(seed, &spec.name, blk, len, *init, *fan_in, *row_len)
                })
                .collect();
            for block in drawn {
                writer.write_f32(&block)?;
                done += block.len() as u64 * 4;
                progress(done, total);
            }
        }
    }
    writer.finish()?;
    Ok(WriteSummary {
        tensors: specs.len(),
        bytes: total,
    })
}
