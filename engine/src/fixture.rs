//! The reference fixture format: a directory with `config.json`,
//! `params.safetensors` and `inputs.safetensors`, evaluated into tensors named
//! and shaped like the fixture's `outputs.safetensors`. Works on any directory
//! in this format, whatever its sizes, head ratios, layer counts and padding.

use std::path::Path;

use crate::backend::Device;
use crate::config::{FpropDtype, ModelConfig, ModelKind};
use crate::corpus::{Corpus, CorpusItem};
use crate::error::{EngineError, Result};
use crate::inputs::{CandidateInputs, RecsysInputs, UserInputs};
use crate::model::ranker::PhoenixRanker;
use crate::model::retriever::PhoenixRetriever;
use crate::tensor_io::{OutTensor, SafetensorsFile};
use crate::weights::PhoenixWeights;

/// Which ranker computation to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RankerPath {
    /// The dense, explicitly masked reference computation.
    Dense,
    /// The cached-context, candidate-isolation path.
    Fast,
}

/// Options of a fixture evaluation.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Ranker path (ignored by the retriever).
    pub path: RankerPath,
    /// Forward dtype; `None` takes the config's `fprop_dtype`.
    pub dtype: Option<FpropDtype>,
    /// Candidate chunk size of the fast path; `None` scores all at once.
    pub chunk: Option<usize>,
    /// Retrieval top-k; `None` takes the config's `top_k`.
    pub top_k: Option<usize>,
    /// Where the ranker's fast path and the retriever run; a GPU that cannot
    /// be used is an error here.
    pub device: crate::ComputeDevice,
    /// How the device is used (AMX on the CPU, table placement on a GPU).
    pub device_options: crate::DeviceOptions,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            path: RankerPath::Fast,
            dtype: None,
            chunk: None,
            top_k: None,
            device: crate::ComputeDevice::Cpu,
            device_options: crate::DeviceOptions::default(),
        }
    }
}

/// A model directory: `config.json` + `params.safetensors`.
pub fn load_model_dir(dir: &Path) -> Result<(ModelConfig, PhoenixWeights)> {
    let cfg = ModelConfig::from_file(&dir.join("config.json"))?;
    let weights = PhoenixWeights::load(&dir.join("params.safetensors"), &cfg)?;
    Ok((cfg, weights))
}

/// Runs the ranker on an inputs file and returns `logits`, `probs`,
/// `ranked_indices` and (May 2026 models) `continuous_preds`.
pub fn eval_ranker(
    ranker: &PhoenixRanker,
    inputs: &Path,
    opts: &EvalOptions,
) -> Result<Vec<OutTensor>> {
    let file = SafetensorsFile::open(inputs)?;
    let batch = RecsysInputs::from_safetensors(&file, ranker.config())?;
    let out = match (opts.path, opts.chunk) {
        (RankerPath::Dense, _) => ranker.forward_dense(&batch)?,
        (RankerPath::Fast, None) => ranker.forward(&batch)?,
        (RankerPath::Fast, Some(chunk)) => ranker.forward_chunked(&batch, chunk)?,
    };
    let shape = vec![out.batch, out.count, out.num_actions];
    let mut tensors = vec![
        OutTensor::f32("logits", shape.clone(), &out.logits),
        OutTensor::f32("probs", shape, &out.probs),
        OutTensor::i32(
            "ranked_indices",
            vec![out.batch, out.count],
            &out.ranked_indices(),
        ),
    ];
    if out.num_continuous > 0 {
        tensors.push(OutTensor::f32(
            "continuous_preds",
            vec![out.batch, out.count, out.num_continuous],
            &out.continuous,
        ));
    }
    Ok(tensors)
}

fn padding_mask(c: &CandidateInputs, cfg: &ModelConfig) -> Vec<u8> {
    c.valid_mask(cfg).into_iter().map(u8::from).collect()
}

fn tower_outputs(
    retriever: &PhoenixRetriever,
    cands: &CandidateInputs,
    rep_name: &str,
    mask_name: &str,
) -> Result<Vec<OutTensor>> {
    let cfg = retriever.config();
    let rep = retriever.candidate_representation(cands)?;
    Ok(vec![
        OutTensor::f32(rep_name, vec![cands.batch, cands.count, cfg.emb_size], &rep),
        OutTensor::u8(
            mask_name,
            vec![cands.batch, cands.count],
            &padding_mask(cands, cfg),
        ),
    ])
}

/// Runs the retriever on an inputs file: user representation and top-k over
/// `corpus_embeddings`, plus the candidate tower on `candidate_*` and
/// `tower_candidate_*` when the file has them.
pub fn eval_retriever(
    retriever: &PhoenixRetriever,
    inputs: &Path,
    opts: &EvalOptions,
) -> Result<Vec<OutTensor>> {
    let cfg = retriever.config();
    let file = SafetensorsFile::open(inputs)?;
    let user = UserInputs::from_safetensors(&file, cfg)?;
    let corpus = file.read_f32("corpus_embeddings", None)?;
    let n = match corpus.shape.as_slice() {
        [n, d] if *d == cfg.emb_size => *n,
        other => {
            return Err(EngineError::Input(format!(
                "{}: tensor 'corpus_embeddings' has shape {other:?}, expected [N, {}]",
                inputs.display(),
                cfg.emb_size
            )));
        }
    };
    if let Some(i) = corpus.data.iter().position(|v| !v.is_finite()) {
        return Err(EngineError::Input(format!(
            "{}: 'corpus_embeddings' holds a non-finite value at flat index {i}",
            inputs.display()
        )));
    }
    let k = opts.top_k.or(cfg.top_k).ok_or_else(|| {
        EngineError::Input("retrieval needs a top_k: set it in config.json or pass --top-k".into())
    })?;
    if k > n {
        return Err(EngineError::Input(format!(
            "top_k {k} exceeds the corpus size {n}"
        )));
    }
    // The fixture's corpus has no ids: row i stands for post i + 1.
    let items = (1..)
        .take(n)
        .map(|post_id| CorpusItem {
            post_id,
            author_id: 0,
        })
        .collect();
    let corpus = Corpus::from_representations(items, corpus.data, cfg.emb_size)?;
    let got = corpus.retrieve(retriever, &user, k)?;
    let b = user.batch;
    let indices: Vec<i32> = got.top_k.iter().flatten().map(|&(i, _)| i as i32).collect();
    let scores: Vec<f32> = got.top_k.iter().flatten().map(|&(_, s)| s).collect();
    let mut out = vec![
        OutTensor::f32(
            "user_representation",
            vec![b, cfg.emb_size],
            &got.user_representation,
        ),
        OutTensor::i32("top_k_indices", vec![b, k], &indices),
        OutTensor::f32("top_k_scores", vec![b, k], &scores),
    ];
    if file.contains("candidate_post_hashes") {
        let cands = CandidateInputs::from_safetensors(&file, cfg, "candidate_", Some(b))?;
        out.extend(tower_outputs(
            retriever,
            &cands,
            "candidate_representation",
            "candidate_padding_mask",
        )?);
    }
    if file.contains("tower_candidate_post_hashes") {
        let cands = CandidateInputs::from_safetensors(&file, cfg, "tower_candidate_", None)?;
        out.extend(tower_outputs(
            retriever,
            &cands,
            "tower_candidate_representation",
            "tower_candidate_padding_mask",
        )?);
    }
    Ok(out)
}

/// Evaluates a fixture directory: loads its model, runs the ranker or the
/// retriever (as `config.json` says) on `inputs.safetensors`.
pub fn eval_dir(dir: &Path, opts: &EvalOptions) -> Result<Vec<OutTensor>> {
    eval_dir_with_inputs(dir, &dir.join("inputs.safetensors"), opts)
}

/// Like [`eval_dir`] with another inputs file (e.g. a fixture variant).
pub fn eval_dir_with_inputs(
    dir: &Path,
    inputs: &Path,
    opts: &EvalOptions,
) -> Result<Vec<OutTensor>> {
    let (cfg, weights) = load_model_dir(dir)?;
    let dtype = opts.dtype.unwrap_or(cfg.fprop_dtype);
    let device = Device::open(opts.device, opts.device_options)?;
    match cfg.kind {
        ModelKind::Ranker => {
            let ranker = PhoenixRanker::on(&device, cfg, weights, dtype)?;
            eval_ranker(&ranker, inputs, opts)
        }
        ModelKind::Retrieval => {
            let retriever = PhoenixRetriever::on(&device, cfg, weights, dtype)?;
            eval_retriever(&retriever, inputs, opts)
        }
    }
}
