//! A Phoenix model directory: `DIR/ranker` and `DIR/retrieval`, each in the
//! reference layout (`config.json` + `params.safetensors` with hash tables).
//! `foryou serve` makes a seeded demo pair on first start when `--model` is
//! not given.

use std::path::{Path, PathBuf};

use foryou_engine::fixture::load_model_dir;
use foryou_engine::init::{Preset, preset_config, write_random_model};
use foryou_engine::{ModelKind, PhoenixRanker, PhoenixRetriever};

/// Rows per hash table of the demo models.
pub const DEMO_TABLE_ROWS: usize = 16_384;

/// A model directory that cannot be made or loaded.
#[derive(Debug, thiserror::Error)]
#[error("model {path}: {cause}")]
pub struct ModelError {
    /// The directory at fault.
    pub path: PathBuf,
    /// What went wrong.
    pub cause: String,
}

/// The ranker and the retriever, ready to run.
#[derive(Debug)]
pub struct PhoenixModels {
    /// The ranker.
    pub ranker: PhoenixRanker,
    /// The retriever.
    pub retriever: PhoenixRetriever,
}

fn sub(dir: &Path, kind: ModelKind) -> PathBuf {
    dir.join(match kind {
        ModelKind::Ranker => "ranker",
        ModelKind::Retrieval => "retrieval",
    })
}

/// Where the seeded demo pair lives: under `cache`, or the system temp
/// directory, one directory per seed.
pub fn demo_model_dir(cache: Option<&Path>, seed: u64) -> PathBuf {
    cache
        .map_or_else(std::env::temp_dir, Path::to_path_buf)
        .join(format!("foryou-demo-model-v1-seed{seed}"))
}

/// Writes the demo ranker and retriever (the fixtures' demo shape, seeded
/// random weights) under `dir`, unless each is already there. Returns true
/// if anything was written.
pub fn ensure_demo_models(dir: &Path, seed: u64) -> Result<bool, ModelError> {
    let mut wrote = false;
    for (i, kind) in [ModelKind::Ranker, ModelKind::Retrieval]
        .into_iter()
        .enumerate()
    {
        let path = sub(dir, kind);
        if path.join("config.json").exists() && path.join("params.safetensors").exists() {
            continue;
        }
        let mut cfg = preset_config(Preset::Demo);
        cfg.model_kind = kind;
        write_random_model(
            &path,
            &cfg,
            seed + i as u64,
            DEMO_TABLE_ROWS,
            &mut |_, _| {},
        )
        .map_err(|e| ModelError {
            path: path.clone(),
            cause: e.to_string(),
        })?;
        wrote = true;
    }
    Ok(wrote)
}

/// Loads `dir/ranker` and `dir/retrieval`; both must carry hash tables.
pub fn load_models(dir: &Path) -> Result<PhoenixModels, ModelError> {
    let load = |kind| {
        let path = sub(dir, kind);
        let err = |cause: String| ModelError {
            path: path.clone(),
            cause,
        };
        let (cfg, weights) = load_model_dir(&path).map_err(|e| err(e.to_string()))?;
        if cfg.kind != kind {
            return Err(err(format!(
                "config says {:?}, expected {kind:?}",
                cfg.kind
            )));
        }
        if weights.hash_tables.is_none() {
            return Err(err(
                "params.safetensors has no hash tables; serving needs them to embed ids".into(),
            ));
        }
        Ok((cfg, weights))
    };
    let (rcfg, rw) = load(ModelKind::Ranker)?;
    let (qcfg, qw) = load(ModelKind::Retrieval)?;
    let err = |kind, e: foryou_engine::EngineError| ModelError {
        path: sub(dir, kind),
        cause: e.to_string(),
    };
    let dtype = rcfg.fprop_dtype;
    let ranker = PhoenixRanker::new(rcfg, rw, dtype).map_err(|e| err(ModelKind::Ranker, e))?;
    let dtype = qcfg.fprop_dtype;
    let retriever =
        PhoenixRetriever::new(qcfg, qw, dtype).map_err(|e| err(ModelKind::Retrieval, e))?;
    Ok(PhoenixModels { ranker, retriever })
}
