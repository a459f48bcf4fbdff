//! The decoder stack on candle, dense over a masked sequence: the reference
//! ranker (the oracle the fast path is tested against) and the retriever's
//! user tower. The ranker's fast path runs on a backend.

use candle_core::{Result, Tensor};

use super::attention::{KeyMask, masked_attention};
use super::layers::DecoderLayer;
use super::tokens::TokenBuilder;
use crate::config::ModelConfig;
use crate::inputs::UserInputs;
use crate::numerics::Precision;
use crate::numerics::rope::{Rope, context_positions};
use crate::weights::LayerWeights;

/// The decoder layers with their RoPE tables and rounding policy.
#[derive(Debug, Clone)]
pub struct Transformer {
    cfg: ModelConfig,
    layers: Vec<DecoderLayer>,
    rope: Rope,
    prec: Precision,
}

/// `allowed[b, i, j] = valid[b, j] && j <= i` over `len` tokens, `[B, 1, len, len]`.
pub fn causal_mask(valid: &[bool], batch: usize, len: usize, fill: f32) -> Result<KeyMask> {
    let mut allowed = vec![0f32; batch * len * len];
    for b in 0..batch {
        for i in 0..len {
            for j in 0..=i {
                if valid[b * len + j] {
                    allowed[(b * len + i) * len + j] = 1.0;
                }
            }
        }
    }
    KeyMask::new(allowed, &[batch, 1, len, len], fill)
}

impl Transformer {
    /// Prepares the layers for `prec`.
    pub fn new(cfg: &ModelConfig, layers: &[LayerWeights], prec: Precision) -> Result<Self> {
        Ok(Self {
            cfg: cfg.clone(),
            layers: layers
                .iter()
                .map(|w| DecoderLayer::new(w, prec))
                .collect::<Result<_>>()?,
            rope: Rope::new(cfg),
            prec,
        })
    }

    /// Dense pass over `x: [B, T, D]` with RoPE positions `positions` (`T`
    /// shared by every row, or `B * T`) and an explicit `[B, 1, T, T]` mask. Returns the hidden states `[B, T, D]`.
    pub fn forward_dense(&self, x: &Tensor, positions: &[usize], mask: &KeyMask) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let (cos, sin) = self.rope.tables(positions, b, t)?;
        let mut h = x.clone();
        for layer in &self.layers {
            let qkv = layer.qkv(&self.cfg, &h, &cos, &sin, self.prec)?;
            let attn = masked_attention(&self.cfg, &qkv.q, &qkv.k, &qkv.v, mask, self.prec)?;
            h = layer.finish(&self.cfg, &h, &attn, self.prec)?;
        }
        Ok(h)
    }
}

impl Transformer {
    /// The user tower on candle: `[user | history]` tokens of `user`
    /// through every layer, causal and padding-masked, absolute positions.
    /// Hidden states `[B, 1 + S, D]` row-major (no final norm).
    pub fn user_tower(
        &self,
        tokens: &TokenBuilder<'_>,
        user: &UserInputs,
    ) -> crate::error::Result<Vec<f32>> {
        let (b, len) = (user.batch, 1 + user.history_len);
        let x = tokens.context(user)?;
        let valid = user.context_valid(&self.cfg);
        let mask = causal_mask(&valid, b, len, self.cfg.attn_mask_fill)?;
        let positions = context_positions(&self.cfg, &valid, b, len);
        let h = self.forward_dense(&x, &positions, &mask)?;
        Ok(h.flatten_all()?.to_vec1()?)
    }
}
