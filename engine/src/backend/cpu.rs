//! The CPU backend: tokens and the head on candle ([`crate::nn`]), the
//! ranker's layer stack on plain buffers ([`crate::cpu`]: gemm, AMX in
//! bf16), the user tower as the dense pass, top-k as one f32 product and an
//! exact selection.

use std::sync::Arc;

use candle_core::{Device as CandleDevice, Tensor};

use super::{Backend, Context, DeviceOptions, ModelParts, TablePlacement};
use crate::ComputeDevice;
use crate::config::{ModelConfig, ModelKind};
use crate::cpu::{CpuContext, CpuStack};
use crate::error::{EngineError, Result};
use crate::inputs::{CandidateInputs, UserInputs};
use crate::nn::head::{candidate_tower, rank_head};
use crate::nn::tokens::TokenBuilder;
use crate::nn::transformer::Transformer;
use crate::numerics::rope::{candidate_positions, context_positions};
use crate::numerics::{Precision, RankerOutput};
use crate::topk::top_k_rows;
use crate::weights::PhoenixWeights;

/// The models on the CPU.
pub struct CpuBackend {
    cfg: ModelConfig,
    weights: Arc<PhoenixWeights>,
    prec: Precision,
    /// The ranker's fast stack (a retriever has none).
    stack: Option<CpuStack>,
    /// The dense stack: the retriever's user tower.
    dense: Arc<Transformer>,
}

impl CpuBackend {
    /// Prepares `parts` for the CPU: a ranker's layers packed for the fast
    /// stack (on AMX tiles in bf16 when `options.cpu_amx` and the CPU has
    /// them).
    pub fn new(parts: &ModelParts, options: DeviceOptions) -> Result<Self> {
        let stack = match parts.cfg.kind {
            ModelKind::Ranker => Some(CpuStack::new(
                &parts.cfg,
                &parts.weights.layers,
                parts.prec,
                options.cpu_amx,
            )?),
            ModelKind::Retrieval => None,
        };
        Ok(Self {
            cfg: parts.cfg.clone(),
            weights: parts.weights.clone(),
            prec: parts.prec,
            stack,
            dense: parts.dense.clone(),
        })
    }

    fn tokens(&self) -> TokenBuilder<'_> {
        TokenBuilder::new(&self.cfg, &self.weights, self.prec)
    }

    fn stack(&self) -> Result<&CpuStack> {
        self.stack.as_ref().ok_or_else(|| {
            EngineError::Input("a retrieval model has no candidate-scoring stack".into())
        })
    }
}

impl std::fmt::Debug for CpuBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuBackend")
            .field("kind", &self.cfg.kind)
            .field("prec", &self.prec)
            .field("amx", &self.stack.as_ref().is_some_and(CpuStack::uses_amx))
            .finish_non_exhaustive()
    }
}

/// Fails for hash-only inputs: the CPU reads the embeddings the inputs carry.
fn host_rows(rows: TablePlacement) -> Result<()> {
    match rows {
        TablePlacement::Host => Ok(()),
        TablePlacement::Device => Err(EngineError::Input(
            "the cpu backend has no resident tables; inputs must carry their embeddings".into(),
        )),
    }
}

impl Backend for CpuBackend {
    fn device(&self) -> ComputeDevice {
        ComputeDevice::Cpu
    }

    /// No bound of its own: the caller's chunk size (the serving calls'
    /// `SERVING_CHUNK`) bounds the activations.
    fn max_chunk(&self, _batch: usize) -> usize {
        usize::MAX
    }

    fn encode_context(&self, user: &UserInputs, rows: TablePlacement) -> Result<Context> {
        host_rows(rows)?;
        let x = self
            .tokens()
            .context(user)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let (b, len) = (user.batch, 1 + user.history_len);
        let valid = user.context_valid(&self.cfg);
        let positions = context_positions(&self.cfg, &valid, b, len);
        let ctx = self.stack()?.encode_context(x, b, &valid, &positions);
        Ok(Context::new(ctx.batch, ctx.len, ctx))
    }

    fn score_candidates(
        &self,
        ctx: &mut Context,
        cands: &CandidateInputs,
        first_slot: usize,
        rows: TablePlacement,
    ) -> Result<RankerOutput> {
        host_rows(rows)?;
        let x = self.candidate_tokens(cands)?;
        self.score_tokens(ctx, x, cands, first_slot)
    }

    fn host_tokens(&self) -> bool {
        true
    }

    fn candidate_tokens(&self, cands: &CandidateInputs) -> Result<Vec<f32>> {
        let head = self.weights.ranker_head()?;
        let x = self.tokens().candidates(cands, head)?;
        Ok(x.flatten_all()?.to_vec1::<f32>()?)
    }

    fn score_tokens(
        &self,
        ctx: &mut Context,
        x: Vec<f32>,
        cands: &CandidateInputs,
        first_slot: usize,
    ) -> Result<RankerOutput> {
        let n = cands.batch * cands.count * self.cfg.emb_size;
        if x.len() != n {
            return Err(EngineError::Input(format!(
                "{} candidate token values, expected {n}",
                x.len()
            )));
        }
        let head = self.weights.ranker_head()?;
        let len = ctx.len;
        let ctx: &mut CpuContext = ctx.state_mut()?;
        let valid = cands.valid_mask(&self.cfg);
        let positions = candidate_positions(&self.cfg, len, first_slot, cands.count, &valid);
        let h = self.stack()?.forward_candidates(x, &positions, &valid, ctx);
        let h = Tensor::from_vec(
            h,
            (cands.batch, cands.count, self.cfg.emb_size),
            &CandleDevice::Cpu,
        )?;
        rank_head(&self.cfg, head, self.prec, &h)
    }

    fn user_hidden(&self, user: &UserInputs, rows: TablePlacement) -> Result<Vec<f32>> {
        host_rows(rows)?;
        self.dense.user_tower(&self.tokens(), user)
    }

    fn candidate_tower(&self, cands: &CandidateInputs) -> Result<Vec<f32>> {
        candidate_tower(&self.cfg, self.weights.candidate_tower()?, cands)
    }

    fn top_k(&self, queries: &[f32], corpus: &Tensor, k: usize) -> Result<Vec<Vec<(u32, f32)>>> {
        exact_top_k(queries, corpus, k)
    }
}

/// Exact top-`k` of `queries · corpusᵀ` in f32: one `[B, D] x [D, N]`
/// product, then an exact selection per row (ties to the lower row).
pub(crate) fn exact_top_k(
    queries: &[f32],
    corpus: &Tensor,
    k: usize,
) -> Result<Vec<Vec<(u32, f32)>>> {
    let (n, d) = corpus.dims2()?;
    let q = Tensor::from_slice(queries, (queries.len() / d.max(1), d), &CandleDevice::Cpu)?;
    let scores = q.matmul(&corpus.t()?)?; // [B, N]
    let scores: Vec<f32> = scores.flatten_all()?.to_vec1()?;
    Ok(top_k_rows(&scores, n, k))
}
