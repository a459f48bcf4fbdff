//! Numerics shared by every path (the candle blocks, the CPU stack, the
//! CUDA backend and the models): where values are rounded ([`Precision`]),
//! the fused soft-cap and GELU, RoPE tables, vectorisable scalar math, and
//! the ranker's output type. A leaf: it depends on nothing of the engine
//! but the config.
//!
//! * [`softcap`]: `cap * tanh(x * mult / cap)` in one pass.
//! * [`gelu`]: the tanh-approximated GELU through the logistic identity.
//! * [`rope`]: inverse frequencies and `(cos, sin)` angle tables.
//! * [`simd`]: branch-free `exp` and bf16 rounding, and `wide!` to compile
//!   loops for AVX-512 at run time.

pub mod gelu;
pub mod rope;
pub mod simd;
pub mod softcap;

use candle_core::{DType, Tensor};

use crate::config::FpropDtype;

/// Where values are rounded: a no-op in f32, round-to-nearest-even to bf16
/// (kept in f32 storage) in bf16 mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Precision(pub FpropDtype);

impl Precision {
    /// Whether values are rounded to bf16.
    pub fn is_bf16(&self) -> bool {
        self.0 == FpropDtype::Bf16
    }

    /// Rounds `t` to the forward dtype (values stay in an f32 tensor).
    pub fn round(&self, t: Tensor) -> candle_core::Result<Tensor> {
        match self.0 {
            FpropDtype::F32 => Ok(t),
            FpropDtype::Bf16 => t.to_dtype(DType::BF16)?.to_dtype(DType::F32),
        }
    }
}

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
    pub(crate) fn scatter_rows(batch: usize, parts: &[(Vec<usize>, RankerOutput)]) -> Self {
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
    pub(crate) fn concat_slots(chunks: &[RankerOutput]) -> Self {
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
