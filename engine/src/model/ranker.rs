//! The Phoenix ranker, fast path: the context (user + history) runs once,
//! causal and padding-masked, and keeps every layer's K/V; candidates then
//! attend to that cache plus themselves (`cpu::attention`), in chunks of any
//! size with the same result. No T x T mask is ever built. Tokens and the
//! head run on candle; the layer stack on [`crate::cpu`] (or the GPU).
//!
//! One reference quirk needs the dense path: a row whose user token is padding
//! has a fully masked query at position 0, which the reference's -1e30 fill
//! turns into uniform attention over the *whole* sequence, candidates included.
//! Such rows (garbage in any real request) are computed by the dense path so
//! the result still matches the reference number for number.

use candle_core::Tensor;

use super::Precision;
use super::layers::{linear, rms_norm};
use super::tokens::TokenBuilder;
use super::transformer::Transformer;
use crate::config::{CandidatePositions, FpropDtype, ModelConfig, ModelKind};
use crate::cpu::{CpuContext, CpuStack};
use crate::error::{EngineError, Result};
use crate::hash_embed::{CandidateItem, HistoryItem};
use crate::inputs::{CandidateInputs, RecsysInputs, UserInputs};
use crate::weights::{HeadWeights, PhoenixWeights, RankerHead};

/// Logits and probabilities of a ranker call.
#[derive(Debug, Clone, PartialEq)]
pub struct RankerOutput {
    /// B.
    pub batch: usize,
    /// C.
    pub count: usize,
    /// A.
    pub num_actions: usize,
    /// `[B, C, A]` raw action scores.
    pub logits: Vec<f32>,
    /// `[B, C, A]` `sigmoid(logits)`, `dwell_time` included.
    pub probs: Vec<f32>,
}

impl RankerOutput {
    /// Candidate slots per row by descending favorite probability (action 0),
    /// stable (ties keep slot order); padded slots are included like in the
    /// reference. `[B, C]`.
    pub fn ranked_indices(&self) -> Vec<i32> {
        let (c, a) = (self.count, self.num_actions);
        let mut out = Vec::with_capacity(self.batch * c);
        for b in 0..self.batch {
            let fav = |i: usize| self.probs[(b * c + i) * a];
            let mut idx: Vec<usize> = (0..c).collect();
            idx.sort_by(|&x, &y| fav(y).total_cmp(&fav(x)));
            out.extend(idx.into_iter().map(|i| i as i32));
        }
        out
    }

    /// Stacks outputs of row groups back into one batch: `parts[i]` holds the
    /// rows `rows[i]` of the full batch.
    fn scatter_rows(batch: usize, parts: &[(Vec<usize>, RankerOutput)]) -> Self {
        let (count, num_actions) = parts
            .first()
            .map(|(_, o)| (o.count, o.num_actions))
            .unwrap_or((0, 0));
        let row = count * num_actions;
        let mut logits = vec![0f32; batch * row];
        let mut probs = vec![0f32; batch * row];
        for (rows, out) in parts {
            for (i, &r) in rows.iter().enumerate() {
                logits[r * row..(r + 1) * row].copy_from_slice(&out.logits[i * row..(i + 1) * row]);
                probs[r * row..(r + 1) * row].copy_from_slice(&out.probs[i * row..(i + 1) * row]);
            }
        }
        Self {
            batch,
            count,
            num_actions,
            logits,
            probs,
        }
    }

    /// Concatenates candidate chunks of the same rows along the candidate axis.
    fn concat_slots(chunks: &[RankerOutput]) -> Self {
        let batch = chunks.first().map_or(0, |c| c.batch);
        let num_actions = chunks.first().map_or(0, |c| c.num_actions);
        let count = chunks.iter().map(|c| c.count).sum();
        let mut logits = Vec::with_capacity(batch * count * num_actions);
        let mut probs = Vec::with_capacity(batch * count * num_actions);
        for b in 0..batch {
            for ch in chunks {
                let row = ch.count * num_actions;
                logits.extend_from_slice(&ch.logits[b * row..(b + 1) * row]);
                probs.extend_from_slice(&ch.probs[b * row..(b + 1) * row]);
            }
        }
        Self {
            batch,
            count,
            num_actions,
            logits,
            probs,
        }
    }
}

/// Candidate slots a serving call scores per chunk of the fast path: bounds
/// the activations of a request with a huge candidate list (4096 x D floats
/// per tensor), while serving-size requests (Thunder's 1200 plus Phoenix's
/// 1000) run as one chunk.
pub const SERVING_CHUNK: usize = 4096;

/// The ranker: weights prepared for one forward dtype.
#[derive(Debug, Clone)]
pub struct PhoenixRanker {
    pub(crate) cfg: ModelConfig,
    pub(crate) weights: PhoenixWeights,
    pub(crate) transformer: Transformer,
    /// The fast path's layer stack on the CPU.
    pub(crate) cpu: CpuStack,
    pub(crate) prec: Precision,
    /// The fast path's device copy, when running on a GPU.
    #[cfg(feature = "cuda")]
    pub(crate) gpu: Option<std::sync::Arc<crate::gpu::GpuRanker>>,
}

impl PhoenixRanker {
    /// Builds a ranker computing in `dtype` (the config's `fprop_dtype` is only a default).
    pub fn new(cfg: ModelConfig, weights: PhoenixWeights, dtype: FpropDtype) -> Result<Self> {
        if cfg.kind != ModelKind::Ranker {
            return Err(EngineError::Input(format!(
                "config describes a {:?} model, expected a ranker",
                cfg.kind
            )));
        }
        let prec = Precision(dtype);
        let transformer = Transformer::new(&cfg, &weights.layers, prec)?;
        let cpu = CpuStack::new(&cfg, &weights.layers, prec, true)?;
        Ok(Self {
            cfg,
            weights,
            transformer,
            cpu,
            prec,
            #[cfg(feature = "cuda")]
            gpu: None,
        })
    }

    /// Moves the fast path to `device`. On `Err(reason)` (no `cuda` feature,
    /// no driver, no such device, an unsupported shape) the ranker stays on
    /// the CPU, fully working; the caller reports the reason.
    pub fn set_device(&mut self, device: crate::ComputeDevice) -> std::result::Result<(), String> {
        #[cfg(feature = "cuda")]
        {
            let head = match device {
                crate::ComputeDevice::Cpu => None,
                crate::ComputeDevice::Cuda(_) => Some(self.head().map_err(|e| e.to_string())?),
            };
            self.gpu = crate::gpu::model_on(device, &self.cfg, &self.weights, head)?;
            Ok(())
        }
        #[cfg(not(feature = "cuda"))]
        crate::device::cpu_only(device)
    }

    /// Where the GPU fast path spent the last call's time (None on the CPU).
    #[cfg(feature = "cuda")]
    pub fn gpu_phases(&self) -> Option<crate::gpu::ranker::GpuPhases> {
        self.gpu.as_ref().map(|g| g.last_phases())
    }

    /// Where the fast path runs.
    pub fn device(&self) -> crate::ComputeDevice {
        #[cfg(feature = "cuda")]
        if let Some(g) = &self.gpu {
            return crate::ComputeDevice::Cuda(g.gpu().context().ordinal());
        }
        crate::ComputeDevice::Cpu
    }

    /// The validated config.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The hash tables that came with the weights, if any.
    pub fn hash_tables(&self) -> Option<&crate::hash_embed::HashTables> {
        self.weights.hash_tables.as_ref()
    }

    pub(crate) fn head(&self) -> Result<&RankerHead> {
        match &self.weights.head {
            HeadWeights::Ranker(h) => Ok(h),
            HeadWeights::Retrieval(_) => Err(EngineError::Input(
                "weights carry a retrieval head, expected a ranker head".into(),
            )),
        }
    }

    pub(crate) fn tokens(&self) -> TokenBuilder<'_> {
        TokenBuilder::new(&self.cfg, &self.weights, self.prec)
    }

    /// Final norm, unembedding and sigmoid for candidate states `h: [B, C, D]`.
    pub(crate) fn predict(&self, h: &Tensor) -> Result<RankerOutput> {
        let head = self.head()?;
        let (b, c, _) = h.dims3()?;
        let normed = rms_norm(h, &head.final_norm, self.cfg.rms_norm_eps, self.prec)?;
        let logits = self.prec.round(linear(&normed, &head.unembeddings)?)?;
        let probs = self.prec.round(candle_nn::ops::sigmoid(&logits)?)?;
        Ok(RankerOutput {
            batch: b,
            count: c,
            num_actions: self.cfg.num_actions,
            logits: logits.flatten_all()?.to_vec1()?,
            probs: probs.flatten_all()?.to_vec1()?,
        })
    }

    /// RoPE positions of candidate slots `first..first + count` after a context of `ctx_len`.
    pub(crate) fn candidate_positions(
        &self,
        ctx_len: usize,
        first: usize,
        count: usize,
    ) -> Vec<usize> {
        match self.cfg.candidate_positions {
            CandidatePositions::Absolute => (ctx_len + first..ctx_len + first + count).collect(),
            CandidatePositions::Shared => vec![ctx_len; count],
        }
    }

    /// Runs user + history once; the result serves any number of candidate chunks.
    /// Every row's user token must be valid (see the module doc).
    pub fn encode_context(&self, user: &UserInputs) -> Result<CpuContext> {
        if let Some(b) = (0..user.batch).find(|&b| !user.user_valid(&self.cfg, b)) {
            return Err(EngineError::Input(format!(
                "row {b} has a padding user token; the cached-context path needs a valid user"
            )));
        }
        let x = self
            .tokens()
            .context(user)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        Ok(self
            .cpu
            .encode_context(x, user.batch, &user.context_valid(&self.cfg)))
    }

    /// Scores candidates against an encoded context; `first_slot` is the slot
    /// index of the first candidate (it sets RoPE positions in absolute mode).
    pub fn score_candidates(
        &self,
        ctx: &CpuContext,
        cands: &CandidateInputs,
        first_slot: usize,
    ) -> Result<RankerOutput> {
        let head = self.head()?;
        if cands.batch != ctx.batch {
            return Err(EngineError::Input(format!(
                "candidates have {} rows, the context {}",
                cands.batch, ctx.batch
            )));
        }
        let x = self.tokens().candidates(cands, &head.proj_candidate)?;
        let x = x.flatten_all()?.to_vec1::<f32>()?;
        let positions = self.candidate_positions(ctx.len, first_slot, cands.count);
        let h = self
            .cpu
            .forward_candidates(x, &positions, &cands.valid_mask(&self.cfg), ctx);
        let h = Tensor::from_vec(
            h,
            (cands.batch, cands.count, self.cfg.emb_size),
            &candle_core::Device::Cpu,
        )?;
        self.predict(&h)
    }

    /// Context once, then candidates `chunk` slots at a time (rows with valid users).
    fn fast_rows(
        &self,
        user: &UserInputs,
        cands: &CandidateInputs,
        chunk: usize,
    ) -> Result<RankerOutput> {
        #[cfg(feature = "cuda")]
        if let Some(g) = &self.gpu {
            return g.fast_rows(user, cands, crate::gpu::TablePlacement::Host);
        }
        let ctx = self.encode_context(user)?;
        let mut chunks = Vec::new();
        let mut c0 = 0;
        while c0 < cands.count {
            let c1 = (c0 + chunk).min(cands.count);
            let out = if c0 == 0 && c1 == cands.count {
                self.score_candidates(&ctx, cands, 0)? // one chunk: no copy
            } else {
                self.score_candidates(&ctx, &cands.slots(&self.cfg, c0, c1), c0)?
            };
            chunks.push(out);
            c0 = c1;
        }
        if chunks.is_empty() {
            return Ok(RankerOutput {
                batch: user.batch,
                count: 0,
                num_actions: self.cfg.num_actions,
                logits: Vec::new(),
                probs: Vec::new(),
            });
        }
        Ok(RankerOutput::concat_slots(&chunks))
    }

    /// Fast path over the whole batch, all candidates in one chunk.
    pub fn forward(&self, inputs: &RecsysInputs) -> Result<RankerOutput> {
        self.forward_chunked(inputs, inputs.candidates.count.max(1))
    }

    /// Fast path, scoring candidates `chunk` slots at a time.
    pub fn forward_chunked(&self, inputs: &RecsysInputs, chunk: usize) -> Result<RankerOutput> {
        if chunk == 0 {
            return Err(EngineError::Input("candidate chunk size is 0".into()));
        }
        inputs.validate(&self.cfg)?;
        let cfg = &self.cfg;
        self.split_padded_users(
            &inputs.user,
            &inputs.candidates,
            |user, cands| self.fast_rows(user, cands, chunk),
            |dense| {
                self.dense_unchecked(&RecsysInputs {
                    user: inputs.user.select_rows(cfg, dense),
                    candidates: inputs.candidates.select_rows(cfg, dense),
                })
            },
        )
    }

    /// Rows with a valid user through `fast` (all of them in one call, the
    /// common case, with no row copies), rows with a padding user through
    /// `dense` (given their indices; the dense path's quirk), answers
    /// scattered back into row order.
    fn split_padded_users(
        &self,
        user: &UserInputs,
        cands: &CandidateInputs,
        fast: impl Fn(&UserInputs, &CandidateInputs) -> Result<RankerOutput>,
        dense: impl Fn(&[usize]) -> Result<RankerOutput>,
    ) -> Result<RankerOutput> {
        let cfg = &self.cfg;
        let b = user.batch;
        let (fast_rows, dense_rows): (Vec<usize>, Vec<usize>) =
            (0..b).partition(|&r| user.user_valid(cfg, r));
        if dense_rows.is_empty() {
            return fast(user, cands);
        }
        let mut parts = Vec::new();
        if !fast_rows.is_empty() {
            let out = fast(
                &user.select_rows(cfg, &fast_rows),
                &cands.select_rows(cfg, &fast_rows),
            )?;
            parts.push((fast_rows, out));
        }
        let out = dense(&dense_rows)?;
        parts.push((dense_rows, out));
        Ok(RankerOutput::scatter_rows(b, &parts))
    }

    /// Ranks requests given by ids, the serving path: row `r` is viewer
    /// `users[r]` (id, history oldest first) with candidates `cands[r]`,
    /// padded to `width` slots and scored `chunk` slots at a time. Needs the
    /// weights' hash tables. When they are resident on the GPU the host only
    /// hashes and the device gathers the rows; otherwise the host gathers
    /// them. The same numbers either way (the device tables hold the bf16
    /// values the host path uploads).
    pub fn rank_ids(
        &self,
        users: &[(u64, &[HistoryItem])],
        cands: &[&[CandidateItem]],
        width: usize,
        chunk: usize,
    ) -> Result<RankerOutput> {
        let cfg = &self.cfg;
        let tables = self.hash_tables().ok_or_else(|| {
            EngineError::Input("the ranker's weights carry no hash tables".into())
        })?;
        if users.len() != cands.len() {
            return Err(EngineError::Input(format!(
                "{} viewers but {} candidate lists",
                users.len(),
                cands.len()
            )));
        }
        let s = cfg.history_seq_len;
        #[cfg(feature = "cuda")]
        if let Some(g) = self
            .gpu
            .as_ref()
            .filter(|g| g.table_placement() == crate::gpu::TablePlacement::Device)
        {
            let device = crate::gpu::TablePlacement::Device;
            return self.split_padded_users(
                &tables.user_hashes(cfg, users, s)?,
                &tables.candidate_hashes(cfg, cands, width)?,
                |user, cand| g.fast_rows(user, cand, device),
                // Padding users (the dense path) gather their rows on the host.
                |dense| {
                    let du: Vec<_> = dense.iter().map(|&r| users[r]).collect();
                    let dc: Vec<_> = dense.iter().map(|&r| cands[r]).collect();
                    self.dense_unchecked(&RecsysInputs {
                        user: tables.user_inputs(cfg, &du, s)?,
                        candidates: tables.candidate_inputs(cfg, &dc, width)?,
                    })
                },
            );
        }
        let inputs = RecsysInputs {
            user: tables.user_inputs(cfg, users, s)?,
            candidates: tables.candidate_inputs(cfg, cands, width)?,
        };
        self.forward_chunked(&inputs, chunk)
    }

    /// Where requests given by ids ([`Self::rank_ids`]) gather their
    /// hash-embedding rows: `None` on the CPU (the host, as part of the model).
    #[cfg(feature = "cuda")]
    pub fn table_placement(&self) -> Option<crate::gpu::TablePlacement> {
        self.gpu.as_ref().map(|g| g.table_placement())
    }
}
