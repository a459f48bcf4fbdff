//! The released artifacts as our models: the config `run_pipeline.py`
//! builds (`build_model_config`), the parameters of `model_params.npz`
//! under the same reference names, and the unified embedding table behind
//! the published hash as the model's hash tables.
//!
//! What the script fixes, we fix too: `num_kv_heads = num_heads`,
//! widening 2, `attn_output_multiplier` 0.125 whatever the key size, the
//! candidate tower's MLP on, and for the ranker the May 2026 blocks (post
//! age at the config's granularity, the dwell MLP at the width its
//! parameters have, an 8-wide continuous head) with no IP hashes and
//! absolute RoPE. History length, candidate slots and actions come from the
//! retrieval config for both models, as in the script. The forward dtype is
//! the caller's (the script runs in bf16).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::error::ArtifactError;
use super::layout::{ModelArtifacts, ModelRole};
use crate::config::{FpropDtype, ModelConfig, ModelKind, PhoenixConfig};
use crate::error::{EngineError, Result};
use crate::hash_embed::{HashTable, HashTables};
use crate::weights::{PhoenixWeights, model_prefix};

/// Haiku parameters the script's models create but never read.
const UNUSED_PARAMS: [&str; 1] = ["~/log_temperature"];

/// Width of the released ranker's continuous head.
const CONTINUOUS_ACTIONS: usize = 8;

fn artifact(e: ArtifactError) -> EngineError {
    EngineError::Weights {
        path: String::new(),
        message: e.to_string(),
    }
}

/// The model config of `model` as the script builds it; `shape_from` is the
/// retrieval config (history length, candidate slots, actions).
pub fn model_config(
    model: &mut ModelArtifacts,
    shape_from: &super::ArtifactConfig,
    dtype: FpropDtype,
) -> Result<ModelConfig> {
    let c = &model.config;
    let kind = match model.role {
        ModelRole::Ranker => ModelKind::Ranker,
        ModelRole::Retrieval => ModelKind::Retrieval,
    };
    let mut json = serde_json::json!({
        "emb_size": c.emb_size, "key_size": c.key_size,
        "num_q_heads": c.num_heads, "num_kv_heads": c.num_heads,
        "num_layers": c.num_layers, "widening_factor": 2.0,
        "attn_output_multiplier": 0.125,
        "history_seq_len": shape_from.history_seq_len,
        "candidate_seq_len": shape_from.candidate_seq_len,
        "num_actions": shape_from.num_actions,
        "product_surface_vocab_size": c.product_surface_vocab_size,
        "num_user_hashes": c.num_user_hashes, "num_item_hashes": c.num_item_hashes,
        "num_author_hashes": c.num_author_hashes,
        "fprop_dtype": match dtype { FpropDtype::F32 => "float32", FpropDtype::Bf16 => "bfloat16" },
        "model_kind": match kind { ModelKind::Ranker => "ranker", ModelKind::Retrieval => "retrieval" },
    });
    if kind == ModelKind::Ranker {
        let name = format!("{}/history_dwell_time_proj1", model_prefix(kind));
        let (_, shape) = model.model_params.describe(&name).map_err(artifact)?;
        let hidden = match shape.as_slice() {
            [1, h] if *h > 0 => *h,
            other => {
                return Err(EngineError::Weights {
                    path: model.model_params.path().display().to_string(),
                    message: format!("tensor '{name}' has shape {other:?}, expected [1, H]"),
                });
            }
        };
        json["post_age_granularity_mins"] = c.post_age_granularity_mins.into();
        json["num_continuous_actions"] = CONTINUOUS_ACTIONS.into();
        json["continuous_action_hidden_dim"] = hidden.into();
    }
    let origin = model.dir.join("config.json").display().to_string();
    let raw: PhoenixConfig = serde_json::from_value(json).map_err(|e| EngineError::Config {
        path: origin.clone(),
        message: e.to_string(),
    })?;
    raw.validate().map_err(|message| EngineError::Config {
        path: origin,
        message,
    })
}

/// The weights of `model` for `cfg`: every parameter of `model_params.npz`
/// (checked by name and shape), and the unified table behind the published
/// hash as the hash tables.
pub fn model_weights(model: &mut ModelArtifacts, cfg: &ModelConfig) -> Result<PhoenixWeights> {
    let path = model.model_params.path().to_path_buf();
    let names: Vec<String> = model.model_params.names().to_vec();
    let mut shapes = BTreeMap::new();
    for name in names {
        let (_, shape) = model.model_params.describe(&name).map_err(artifact)?;
        shapes.insert(name, shape);
    }
    let params = &mut model.model_params;
    let mut weights = PhoenixWeights::from_params(cfg, &path, &shapes, &UNUSED_PARAMS, |name| {
        Ok(params.f32(name).map_err(artifact)?.data)
    })?;
    let table = model.unified_table().map_err(artifact)?;
    weights.hash_tables = Some(HashTables::unified(
        HashTable {
            rows: table.rows,
            dim: table.dim,
            data: table.data,
        },
        Arc::new(model.hash.clone()),
    ));
    Ok(weights)
}

/// Both models of an artifact directory at `root`, in `dtype`.
pub fn load_pair(
    root: &Path,
    dtype: FpropDtype,
) -> Result<((ModelConfig, PhoenixWeights), (ModelConfig, PhoenixWeights))> {
    let mut dir = super::ArtifactDir::open(root).map_err(artifact)?;
    let shape = dir.retrieval.config.clone();
    let rcfg = model_config(&mut dir.retrieval, &shape, dtype)?;
    let rw = model_weights(&mut dir.retrieval, &rcfg)?;
    let kcfg = model_config(&mut dir.ranker, &shape, dtype)?;
    let kw = model_weights(&mut dir.ranker, &kcfg)?;
    Ok(((rcfg, rw), (kcfg, kw)))
}

/// Whether `dir` looks like a released artifact directory (both models
/// with `model_params.npz`).
pub fn is_artifact_dir(dir: &Path) -> bool {
    ["retrieval", "ranker"]
        .iter()
        .all(|m| dir.join(m).join("model_params.npz").is_file())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash_embed::EntityKind;

    fn root() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/phoenix-v2/v2_artifacts")
    }

    #[test]
    fn the_fixture_loads_as_the_scripts_models() -> Result<()> {
        assert!(is_artifact_dir(&root()));
        let ((rcfg, rw), (kcfg, kw)) = load_pair(&root(), FpropDtype::Bf16)?;
        assert_eq!(
            (rcfg.kind, kcfg.kind),
            (ModelKind::Retrieval, ModelKind::Ranker)
        );
        assert_eq!((rcfg.history_seq_len, kcfg.history_seq_len), (31, 31));
        assert_eq!(kcfg.num_layers, 3);
        assert_eq!(kcfg.attn_output_multiplier, 0.125);
        assert_eq!(kcfg.post_age.map(|a| a.vocab), Some(82));
        assert_eq!(
            kcfg.continuous.map(|c| (c.num_actions, c.hidden)),
            Some((8, 64))
        );
        assert!(rcfg.candidate_tower_projection && rcfg.post_age.is_none());
        // The tables are the unified table; rows come from the published hash.
        let tables = kw.hash_tables.as_ref().expect("tables");
        assert_eq!(tables.user.rows, 65 + 2500 + 4000 + 3500);
        let rtables = rw.hash_tables.as_ref().expect("tables");
        assert_eq!(rtables.post.rows, 65 + 2000 + 5000 + 3000);
        let cands = tables.candidate_hashes(
            &kcfg,
            &[&[crate::hash_embed::CandidateItem {
                post_id: 2051554276497449130,
                author_id: 5,
                ..Default::default()
            }]],
            1,
        )?;
        let hash = crate::artifacts::ArtifactDir::open(root())
            .map_err(artifact)?
            .ranker
            .hash;
        assert_eq!(
            cands.post_hashes,
            hash.rows(EntityKind::Post, 2051554276497449130)
        );
        Ok(())
    }
}
