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
#[derive(Debug, Clone, PartialEq, Default)]
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
    /// NC, width of the continuous head (0 for a model without one).
    pub num_continuous: usize,
    /// `[B, C, NC]` May 2026 continuous predictions (sigmoid, e.g. column
    /// 1 = dwell time); empty without the head.
    pub continuous: Vec<f32>,
}

impl RankerOutput {
    /// An output with no candidates.
    pub fn empty(batch: usize, num_actions: usize, num_continuous: usize) -> Self {
        Self {
            batch,
            num_actions,
            num_continuous,
            ..Self::default()
        }
    }

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

    /// Row `b`, its first `n` candidates only.
    pub fn row(&self, b: usize, n: usize) -> Self {
        let (c, a, nc) = (self.count, self.num_actions, self.num_continuous);
        let take = |data: &[f32], w: usize| {
            if data.is_empty() {
                Vec::new()
            } else {
                data[b * c * w..(b * c + n) * w].to_vec()
            }
        };
        Self {
            batch: 1,
            count: n,
            num_actions: a,
            logits: take(&self.logits, a),
            probs: take(&self.probs, a),
            num_continuous: nc,
            continuous: take(&self.continuous, nc),
        }
    }

    /// Stacks outputs of row groups back into one batch: `parts[i]` holds the
    /// rows `rows[i]` of the full batch.
    pub(crate) fn scatter_rows(batch: usize, parts: &[(Vec<usize>, RankerOutput)]) -> Self {
        let Some((_, first)) = parts.first() else {
            return Self::empty(batch, 0, 0);
        };
        let (count, a, nc) = (first.count, first.num_actions, first.num_continuous);
        let scatter = |get: fn(&RankerOutput) -> &Vec<f32>, w: usize| {
            let row = count * w;
            let mut out = vec![0f32; batch * row];
            for (rows, o) in parts {
                let src = get(o);
                if src.len() < rows.len() * row {
                    continue; // a part without this output (no continuous head)
                }
                for (i, &r) in rows.iter().enumerate() {
                    out[r * row..(r + 1) * row].copy_from_slice(&src[i * row..(i + 1) * row]);
                }
            }
            out
        };
        Self {
            batch,
            count,
            num_actions: a,
            logits: scatter(|o| &o.logits, a),
            probs: scatter(|o| &o.probs, a),
            num_continuous: nc,
            continuous: scatter(|o| &o.continuous, nc),
        }
    }

    /// Concatenates candidate chunks of the same rows along the candidate axis.
    pub(crate) fn concat_slots(chunks: &[RankerOutput]) -> Self {
        let Some(first) = chunks.first() else {
            return Self::default();
        };
        let (batch, a, nc) = (first.batch, first.num_actions, first.num_continuous);
        let count = chunks.iter().map(|c| c.count).sum();
        let concat = |get: fn(&RankerOutput) -> &Vec<f32>, w: usize| {
            let mut out = Vec::with_capacity(batch * count * w);
            for b in 0..batch {
                for ch in chunks {
                    let row = ch.count * w;
                    if let Some(src) = get(ch).get(b * row..(b + 1) * row) {
                        out.extend_from_slice(src);
                    }
                }
            }
            out
        };
        Self {
            batch,
            count,
            num_actions: a,
            logits: concat(|o| &o.logits, a),
            probs: concat(|o| &o.probs, a),
            num_continuous: nc,
            continuous: concat(|o| &o.continuous, nc),
        }
    }
}
