//! A Phoenix model directory: `DIR/ranker` and `DIR/retrieval`, each in the
//! reference layout (`config.json` + `params.safetensors` with hash tables).
//! `foryou serve` makes a seeded demo pair on first start when `--model` is
//! not given.

use std::path::{Path, PathBuf};

use foryou_engine::fixture::load_model_dir;
use foryou_engine::init::{Preset, preset_config, write_random_model};
use foryou_engine::{Device, EngineError, ModelKind, PhoenixRanker, PhoenixRetriever};

/// Rows per hash table of the demo models.
pub const DEMO_TABLE_ROWS: usize = 16_384;

/// A model directory that cannot be made or loaded.
#[derive(Debug, thiserror::Error)]
#[error("model {path}: {cause}")]
pub struct ModelError {
    /// The directory at fault.
    pub path: PathBuf,
    /// What went wrong.
    #[source]
    pub cause: ModelFault,
}

impl ModelError {
    /// Whether the device, not the files, is at fault (the model loads on
    /// the CPU).
    pub fn is_device_fault(&self) -> bool {
        matches!(self.cause, ModelFault::Engine(EngineError::Backend(_)))
    }
}

/// What is wrong with a model directory.
#[derive(Debug, thiserror::Error)]
pub enum ModelFault {
    /// The engine could not write, read or build it.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Its config is of the other kind.
    #[error("config says {found:?}, expected {expected:?}")]
    Kind {
        /// The kind the config names.
        found: ModelKind,
        /// The kind the directory should hold.
        expected: ModelKind,
    },
    /// Its weights carry no hash tables.
    #[error("params.safetensors has no hash tables; serving needs them to embed ids")]
    NoHashTables,
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

/// The ranker's product-surface vocabulary of the models in `dir` (the
/// demo models when `None`), read from the config alone, so that a world
/// can be checked against it before the models load.
pub fn ranker_product_surfaces(dir: Option<&Path>) -> Result<u32, ModelError> {
    let size = match dir {
        None => preset_config(Preset::Demo).product_surface_vocab_size,
        Some(dir) => {
            let path = sub(dir, ModelKind::Ranker).join("config.json");
            let err = |cause: EngineError| ModelError {
                path: path.clone(),
                cause: cause.into(),
            };
            if foryou_engine::artifacts::model::is_artifact_dir(dir) {
                foryou_engine::artifacts::config::ArtifactConfig::from_file(&path)
                    .map_err(|e| {
                        err(EngineError::Config {
                            path: path.display().to_string(),
                            message: e.to_string(),
                        })
                    })?
                    .product_surface_vocab_size
            } else {
                foryou_engine::ModelConfig::from_file(&path)
                    .map_err(err)?
                    .product_surface_vocab_size
            }
        }
    };
    Ok(u32::try_from(size).unwrap_or(u32::MAX))
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
    write_demo_models(dir, seed, DEMO_TABLE_ROWS)
}

/// [`ensure_demo_models`] with `table_rows`-row hash tables (the ranker
/// from `seed`, the retriever from `seed + 1`).
fn write_demo_models(dir: &Path, seed: u64, table_rows: usize) -> Result<bool, ModelError> {
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
        write_random_model(&path, &cfg, seed + i as u64, table_rows, &mut |_, _| {}).map_err(
            |e| ModelError {
                path: path.clone(),
                cause: e.into(),
            },
        )?;
        wrote = true;
    }
    Ok(wrote)
}

/// Demo-shaped models with 64-row hash tables (ranker seed 1, retriever
/// seed 2) on the CPU, for tests.
#[cfg(test)]
pub(crate) fn small_demo_models() -> PhoenixModels {
    let dir = tempfile::tempdir().expect("tempdir");
    write_demo_models(dir.path(), 1, 64).expect("write the models");
    load_models(dir.path(), &Device::cpu()).expect("load the models")
}

/// Loads `dir/ranker` and `dir/retrieval` onto `device`: our layout
/// (`config.json` + `params.safetensors` with hash tables), or X's released
/// artifacts (`config.json`, `model_params.npz`, `embedding_tables.npz`;
/// the published id hash, bf16 as `run_pipeline.py` runs them).
pub fn load_models(dir: &Path, device: &Device) -> Result<PhoenixModels, ModelError> {
    if foryou_engine::artifacts::model::is_artifact_dir(dir) {
        return load_artifacts(dir, device);
    }
    let load = |kind| {
        let path = sub(dir, kind);
        let err = |cause: ModelFault| ModelError {
            path: path.clone(),
            cause,
        };
        let (cfg, weights) = load_model_dir(&path).map_err(|e| err(e.into()))?;
        if cfg.kind != kind {
            return Err(err(ModelFault::Kind {
                found: cfg.kind,
                expected: kind,
            }));
        }
        if weights.hash_tables.is_none() {
            return Err(err(ModelFault::NoHashTables));
        }
        Ok((cfg, weights))
    };
    let (rcfg, rw) = load(ModelKind::Ranker)?;
    let (qcfg, qw) = load(ModelKind::Retrieval)?;
    let err = |kind, e: EngineError| ModelError {
        path: sub(dir, kind),
        cause: e.into(),
    };
    let dtype = rcfg.fprop_dtype;
    let ranker =
        PhoenixRanker::on(device, rcfg, rw, dtype).map_err(|e| err(ModelKind::Ranker, e))?;
    let dtype = qcfg.fprop_dtype;
    let retriever =
        PhoenixRetriever::on(device, qcfg, qw, dtype).map_err(|e| err(ModelKind::Retrieval, e))?;
    Ok(PhoenixModels { ranker, retriever })
}

/// The released artifact pair of `dir` on `device`, in bf16.
fn load_artifacts(dir: &Path, device: &Device) -> Result<PhoenixModels, ModelError> {
    let err = |e: EngineError| ModelError {
        path: dir.to_path_buf(),
        cause: e.into(),
    };
    let dtype = foryou_engine::FpropDtype::Bf16;
    let ((rcfg, rw), (kcfg, kw)) =
        foryou_engine::artifacts::model::load_pair(dir, dtype).map_err(err)?;
    let ranker = PhoenixRanker::on(device, kcfg, kw, dtype).map_err(err)?;
    let retriever = PhoenixRetriever::on(device, rcfg, rw, dtype).map_err(err)?;
    Ok(PhoenixModels { ranker, retriever })
}
