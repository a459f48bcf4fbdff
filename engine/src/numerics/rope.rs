//! Rotary position embeddings: the inverse frequencies of a model and the
//! angle tables of the positions of one pass, shared by the candle blocks,
//! the CPU stack and the CUDA backend. Split-halves form; angles are formed
//! in f32 (`pos * inv_freq`), as the reference forms them.

use candle_core::{Device, Result, Tensor};

use crate::config::{CandidatePositions, ModelConfig};

/// RoPE angles for a list of positions.
#[derive(Debug, Clone)]
pub struct Rope {
    inv_freq: Vec<f32>,
}

impl Rope {
    /// `inv_freq_i = 1 / base^(2i / K)` for `i < K/2`, in f32 like the reference.
    pub fn new(cfg: &ModelConfig) -> Self {
        let k = cfg.key_size;
        let inv_freq = (0..k / 2)
            .map(|i| 1.0f32 / cfg.rope_base.powf((2 * i) as f32 / k as f32))
            .collect();
        Self { inv_freq }
    }

    /// The inverse frequencies `[K/2]`.
    pub fn inv_freq(&self) -> &[f32] {
        &self.inv_freq
    }

    /// `(cos, sin)` tables `[T, K/2]` for the given positions (angle = pos * inv_freq in f32).
    pub fn tables(&self, positions: &[usize]) -> Result<(Tensor, Tensor)> {
        let t = RopeTables::new(positions, &self.inv_freq);
        let (tokens, half) = (positions.len(), self.inv_freq.len());
        let (cos, sin) = t.into_parts();
        Ok((
            Tensor::from_vec(cos, (tokens, half), &Device::Cpu)?,
            Tensor::from_vec(sin, (tokens, half), &Device::Cpu)?,
        ))
    }
}

/// RoPE angle tables for the positions of one pass: `[T, K/2]` each.
#[derive(Debug, Clone)]
pub struct RopeTables {
    pub(crate) cos: Vec<f32>,
    pub(crate) sin: Vec<f32>,
    pub(crate) half: usize,
    pub(crate) tokens: usize,
}

impl RopeTables {
    /// Angles `pos * inv_freq` in f32, as the reference forms them.
    pub fn new(positions: &[usize], inv_freq: &[f32]) -> Self {
        let mut cos = Vec::with_capacity(positions.len() * inv_freq.len());
        let mut sin = Vec::with_capacity(cos.capacity());
        for &p in positions {
            for &f in inv_freq {
                let a = p as f32 * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        Self {
            cos,
            sin,
            half: inv_freq.len(),
            tokens: positions.len(),
        }
    }

    /// The `(cos, sin)` tables, `[T, K/2]` row-major each.
    pub fn into_parts(self) -> (Vec<f32>, Vec<f32>) {
        (self.cos, self.sin)
    }
}

/// RoPE positions of candidate slots `first..first + count` after a context
/// of `ctx_len` tokens: their slot positions (`absolute`, the reference), or
/// one shared position right after the context (`shared`).
pub fn candidate_positions(
    cfg: &ModelConfig,
    ctx_len: usize,
    first: usize,
    count: usize,
) -> Vec<usize> {
    match cfg.candidate_positions {
        CandidatePositions::Absolute => (ctx_len + first..ctx_len + first + count).collect(),
        CandidatePositions::Shared => vec![ctx_len; count],
    }
}
