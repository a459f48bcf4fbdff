//! The two-tower retriever. User tower: the decoder stack over `[user | history]`
//! (causal, padding-masked, no final norm), mean over valid tokens, L2 norm.
//! Candidate tower: `concat(post, author hash embeddings) @ proj_1 -> SiLU ->
//! @ proj_2 -> L2 norm`. Retrieval: exact dot-product top-k over the rows
//! of a corpus (searched with ids and exclusions by `corpus::Corpus`). The
//! towers and the top-k run on the model's [`Backend`]; a batch with a
//! padding user takes the dense user tower on the host (the reference's
//! uniform-attention quirk).

use std::sync::Arc;

use candle_core::Tensor;

use crate::backend::{Backend, Device, ModelParts, TablePlacement};
use crate::config::{FpropDtype, ModelConfig, ModelKind};
use crate::error::{EngineError, Result};
use crate::hash_embed::HistoryItem;
use crate::inputs::{CandidateInputs, UserInputs};
use crate::nn::head::pool_users;
use crate::nn::tokens::TokenBuilder;
use crate::numerics::Precision;
use crate::weights::PhoenixWeights;

/// The retrieval model.
#[derive(Debug, Clone)]
pub struct PhoenixRetriever {
    /// Config, shared weights, precision and the dense user tower (padding
    /// users, and the oracle).
    parts: ModelParts,
    backend: Arc<dyn Backend>,
}

impl PhoenixRetriever {
    /// Builds a retriever on the CPU computing in `dtype`.
    pub fn new(cfg: ModelConfig, weights: PhoenixWeights, dtype: FpropDtype) -> Result<Self> {
        Self::on(&Device::cpu(), cfg, weights, dtype)
    }

    /// Builds a retriever on `device` computing in `dtype`.
    pub fn on(
        device: &Device,
        cfg: ModelConfig,
        weights: PhoenixWeights,
        dtype: FpropDtype,
    ) -> Result<Self> {
        let parts = ModelParts::new(ModelKind::Retrieval, cfg, weights, Precision(dtype))?;
        let backend = device.load(&parts)?;
        Ok(Self { parts, backend })
    }

    /// Moves the towers and top-k to `device`. On error the retriever stays
    /// where it was, fully working.
    pub fn set_device(&mut self, device: &Device) -> Result<()> {
        self.backend = device.load(&self.parts)?;
        Ok(())
    }

    /// A buffer on the model's device for the live index's sealed
    /// segments (`None` on the CPU).
    pub fn row_device(&self) -> Option<Box<dyn crate::index::RowDevice>> {
        self.backend.row_device()
    }

    /// Where the user tower runs.
    pub fn device(&self) -> crate::ComputeDevice {
        self.backend.device()
    }

    /// The validated config.
    pub fn config(&self) -> &ModelConfig {
        &self.parts.cfg
    }

    /// The hash tables shipped with the weights, if any (to turn ids into
    /// inputs).
    pub fn hash_tables(&self) -> Option<&crate::hash_embed::HashTables> {
        self.parts.weights.hash_tables.as_ref()
    }

    /// Hidden states of the user tower, `[B, 1 + S, D]`: on the backend
    /// when every user token is valid, else the dense pass on the host (a
    /// padding user needs the reference's uniform-attention quirk).
    fn user_hidden(&self, user: &UserInputs, rows: TablePlacement) -> Result<Vec<f32>> {
        if (0..user.batch).all(|r| user.user_valid(&self.parts.cfg, r)) {
            return self.backend.user_hidden(user, rows);
        }
        let p = &self.parts;
        let tokens = TokenBuilder::new(&p.cfg, &p.weights, p.prec);
        p.dense.user_tower(&tokens, user)
    }

    /// Mean of the hidden states over valid tokens, L2 normalised: `[B, D]`.
    fn pool(&self, user: &UserInputs, h: Vec<f32>) -> Result<Vec<f32>> {
        let valid = user.context_valid(&self.parts.cfg);
        pool_users(
            &self.parts.cfg,
            h,
            (user.batch, 1 + user.history_len),
            &valid,
        )
    }

    /// User representations `[B, D]` row-major, unit norm.
    pub fn user_representation(&self, user: &UserInputs) -> Result<Vec<f32>> {
        user.validate(&self.parts.cfg)?;
        let h = self.user_hidden(user, TablePlacement::Host)?;
        self.pool(user, h)
    }

    /// User representations for viewers given by ids (the serving path),
    /// `[B, D]`. When the backend holds the hash tables on its device the
    /// host only hashes and the device gathers the rows (a batch with a
    /// padding user gathers on the host and takes the dense pass, as in
    /// [`Self::user_representation`]).
    pub fn represent_ids(&self, users: &[(i64, &[HistoryItem])]) -> Result<Vec<f32>> {
        let cfg = &self.parts.cfg;
        let tables = self.hash_tables().ok_or_else(|| {
            EngineError::Input("the retriever's weights carry no hash tables".into())
        })?;
        let s = cfg.history_seq_len;
        if self.backend.table_placement() == TablePlacement::Device {
            let user = tables.user_hashes(cfg, users, s)?;
            if (0..user.batch).all(|r| user.user_valid(cfg, r)) {
                let h = self.backend.user_hidden(&user, TablePlacement::Device)?;
                return self.pool(&user, h);
            }
        }
        self.user_representation(&tables.user_inputs(cfg, users, s)?)
    }

    /// Candidate-tower representations `[B, C, D]` row-major, unit norm;
    /// the product surface is not used, padded candidates are encoded like
    /// any other.
    pub fn candidate_representation(&self, cands: &CandidateInputs) -> Result<Vec<f32>> {
        cands.validate(&self.parts.cfg, "candidate_")?;
        self.backend.candidate_tower(cands)
    }

    /// Exact top-`k` (corpus row, score) of `reps . corpus` per row of
    /// `reps: [B, D]` over `corpus: [N, D]`, best first, ties to the lower
    /// row (on a GPU: bf16 inputs, so near-ties may reorder). Searching
    /// with ids and exclusions is `Corpus::search`.
    pub(crate) fn top_k(
        &self,
        reps: &[f32],
        corpus: &Tensor,
        k: usize,
    ) -> Result<Vec<Vec<(u32, f32)>>> {
        let d = self.parts.cfg.emb_size;
        let (n, width) = corpus.dims2()?;
        if width != d {
            return Err(EngineError::Input(format!(
                "corpus has width {width}, expected emb_size {d}"
            )));
        }
        if !reps.len().is_multiple_of(d) {
            return Err(EngineError::Input(format!(
                "{} representation values are not rows of width {d}",
                reps.len()
            )));
        }
        let k = k.min(n);
        if k == 0 {
            return Ok(vec![Vec::new(); reps.len() / d]);
        }
        self.backend.top_k(reps, corpus, k)
    }
}
