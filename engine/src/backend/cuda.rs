//! The CUDA backend (feature `cuda`): the ranker's passes on cuBLAS bf16
//! GEMMs plus foryou-kernels' attention and fused ops ([`ranker`],
//! [`stack`], [`tokens`]), hash tables resident on the device when they fit
//! ([`tables`]), the retriever's user tower on the same stack and its top-k
//! on the top-k kernel. The candidate tower runs on the host (its CPU
//! form, candle): it runs when a corpus is built, not per request.
//!
//! Every product is a bf16 GEMM with f32 accumulation; values are rounded to
//! bf16 where the reference rounds them in bf16 mode, whatever the config's
//! `fprop_dtype` (the GPU path computes in bf16).

pub mod index_rows;
pub mod ranker;
mod stack;
pub mod tables;
mod tokens;
pub mod weights;

use std::sync::{Arc, Mutex};

use foryou_kernels::cuda::topk::{GpuCorpus, MAX_K};
pub use foryou_kernels::cuda::{Gpu, GpuError};
pub use index_rows::GpuRowDevice;
pub use ranker::{GpuContext, GpuRanker};

use super::{Backend, BackendError, Context, DeviceOptions, ModelParts, Phases, TablePlacement};
use crate::ComputeDevice;
use crate::config::ModelConfig;
use crate::error::{EngineError, Result};
use crate::inputs::{CandidateInputs, UserInputs};
use crate::numerics::RankerOutput;
use crate::weights::{HeadWeights, PhoenixWeights};

impl From<foryou_kernels::cuda::cudarc::driver::DriverError> for EngineError {
    fn from(e: foryou_kernels::cuda::cudarc::driver::DriverError) -> Self {
        GpuError::from(e).into()
    }
}

impl From<GpuError> for EngineError {
    /// Arguments outside a kernel's contract are bad input; the rest is the
    /// device's failure.
    fn from(e: GpuError) -> Self {
        match e {
            GpuError::Shape(m) => EngineError::Input(m),
            other => EngineError::Backend(BackendError::Gpu(other)),
        }
    }
}

/// Opens `cuda:N` (libraries, context, every kernel compiled), or says why
/// not (missing driver, no device, ...).
pub(crate) fn open(ordinal: usize) -> std::result::Result<Arc<Gpu>, BackendError> {
    Ok(Arc::new(Gpu::open(ordinal)?))
}

/// A model on one GPU.
pub struct CudaBackend {
    cfg: ModelConfig,
    /// Kept for the host-side candidate tower.
    weights: Arc<PhoenixWeights>,
    model: GpuRanker,
    /// The corpus last searched, uploaded once per corpus tensor (bf16).
    corpus: Mutex<Option<(candle_core::TensorId, Arc<GpuCorpus>)>>,
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBackend")
            .field("model", &self.model)
            .field("tables", &self.model.table_placement())
            .finish_non_exhaustive()
    }
}

impl CudaBackend {
    /// Uploads `parts`' weights to `gpu` (a ranker with its head, or the
    /// retriever's user tower), and the hash tables as `options` allow.
    pub fn new(gpu: Arc<Gpu>, parts: &ModelParts, options: DeviceOptions) -> Result<Self> {
        let head = match &parts.weights.head {
            HeadWeights::Ranker(h) => Some(h),
            HeadWeights::Retrieval(_) => None,
        };
        let model = GpuRanker::new(gpu, &parts.cfg, &parts.weights, head, options)?;
        Ok(Self {
            cfg: parts.cfg.clone(),
            weights: parts.weights.clone(),
            model,
            corpus: Mutex::default(),
        })
    }

    /// The device copy of `corpus` (bf16), uploading it on first use.
    fn corpus_for(&self, corpus: &candle_core::Tensor) -> Result<Arc<GpuCorpus>> {
        let mut slot = self
            .corpus
            .lock()
            .map_err(|_| EngineError::Backend(BackendError::Poisoned))?;
        if let Some((id, c)) = slot.as_ref()
            && *id == corpus.id()
        {
            return Ok(c.clone());
        }
        let (_, d) = corpus.dims2()?;
        let values: Vec<f32> = corpus.flatten_all()?.to_vec1()?;
        let bits = foryou_kernels::cuda::bf16_bits(&values);
        let up = Arc::new(self.model.gpu().upload_corpus(&bits, d, None)?);
        *slot = Some((corpus.id(), up.clone()));
        Ok(up)
    }
}

impl Backend for CudaBackend {
    fn device(&self) -> ComputeDevice {
        ComputeDevice::Cuda(self.model.gpu().context().ordinal())
    }

    fn table_placement(&self) -> TablePlacement {
        self.model.table_placement()
    }

    fn max_chunk(&self, batch: usize) -> usize {
        self.model.max_chunk(batch)
    }

    fn encode_context(&self, user: &UserInputs, rows: TablePlacement) -> Result<Context> {
        let ctx = self.model.encode(user, rows)?;
        Ok(Context::new(user.batch, 1 + user.history_len, ctx))
    }

    fn score_candidates(
        &self,
        ctx: &mut Context,
        cands: &CandidateInputs,
        first_slot: usize,
        rows: TablePlacement,
    ) -> Result<RankerOutput> {
        let ctx: &mut GpuContext = ctx.state_mut()?;
        self.model.score_chunk(ctx, cands, first_slot, rows)
    }

    fn user_hidden(&self, user: &UserInputs, rows: TablePlacement) -> Result<Vec<f32>> {
        self.model.user_hidden(user, rows)
    }

    fn candidate_tower(&self, cands: &CandidateInputs) -> Result<Vec<f32>> {
        let tower = self.weights.candidate_tower()?;
        crate::nn::head::candidate_tower(&self.cfg, tower, cands)
    }

    /// The top-k kernel (bf16 inputs) when `k` and the width fit it;
    /// otherwise the CPU's exact f32 search.
    fn top_k(
        &self,
        queries: &[f32],
        corpus: &candle_core::Tensor,
        k: usize,
    ) -> Result<Vec<Vec<(u32, f32)>>> {
        if k <= MAX_K && matches!(self.cfg.emb_size, 64 | 128 | 256) {
            let gpu_corpus = self.corpus_for(corpus)?;
            return Ok(self.model.gpu().top_k(&gpu_corpus, queries, k)?);
        }
        super::cpu::exact_top_k(queries, corpus, k)
    }

    fn last_phases(&self) -> Option<Phases> {
        Some(self.model.last_phases())
    }

    fn row_device(&self) -> Option<Box<dyn crate::index::RowDevice>> {
        Some(Box::new(index_rows::GpuRowDevice::new(
            self.model.gpu().clone(),
        )))
    }
}
