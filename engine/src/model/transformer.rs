//! The decoder stack run three ways: dense over a masked sequence (the
//! reference), causal over the context (user + history), and over candidates
//! against a cached context (each candidate sees the context and itself).

use candle_core::{Result, Tensor};

use super::Precision;
use super::attention::{ContextKv, KeyMask, candidate_attention, masked_attention};
use super::layers::{DecoderLayer, Rope};
use crate::config::ModelConfig;
use crate::weights::LayerWeights;

/// The decoder layers with their RoPE tables and rounding policy.
#[derive(Debug, Clone)]
pub struct Transformer {
    cfg: ModelConfig,
    layers: Vec<DecoderLayer>,
    rope: Rope,
    prec: Precision,
}

/// The context of a batch after the stack: hidden states and per-layer K/V.
#[derive(Debug, Clone)]
pub struct EncodedContext {
    /// Hidden states after the last layer, `[B, S1, D]`.
    pub hidden: Tensor,
    /// Keys and values of every layer.
    pub kv: Vec<ContextKv>,
    /// Key-padding mask of the context, `[B, 1, 1, S1]`.
    pub key_mask: KeyMask,
    /// S1 = 1 + S.
    pub len: usize,
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

    /// Dense pass over `x: [B, T, D]` with RoPE positions `positions` and an
    /// explicit `[B, 1, T, T]` mask. Returns the hidden states `[B, T, D]`.
    pub fn forward_dense(&self, x: &Tensor, positions: &[usize], mask: &KeyMask) -> Result<Tensor> {
        let (cos, sin) = self.rope.tables(positions)?;
        let mut h = x.clone();
        for layer in &self.layers {
            let qkv = layer.qkv(&self.cfg, &h, &cos, &sin, self.prec)?;
            let attn = masked_attention(&self.cfg, &qkv.q, &qkv.k, &qkv.v, mask, self.prec)?;
            h = layer.finish(&self.cfg, &h, &attn, self.prec)?;
        }
        Ok(h)
    }

    /// Causal, padding-masked pass over the context `x: [B, S1, D]` at
    /// positions `0..S1`, keeping every layer's K/V for the candidates.
    pub fn encode_context(&self, x: &Tensor, valid: &[bool]) -> Result<EncodedContext> {
        let (b, len, _) = x.dims3()?;
        let fill = self.cfg.attn_mask_fill;
        let mask = causal_mask(valid, b, len, fill)?;
        let positions: Vec<usize> = (0..len).collect();
        let (cos, sin) = self.rope.tables(&positions)?;
        let mut h = x.clone();
        let mut kv = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let qkv = layer.qkv(&self.cfg, &h, &cos, &sin, self.prec)?;
            let attn = masked_attention(&self.cfg, &qkv.q, &qkv.k, &qkv.v, &mask, self.prec)?;
            kv.push(ContextKv {
                k: qkv.k.transpose(1, 2)?.contiguous()?,
                v: qkv.v.transpose(1, 2)?.contiguous()?,
            });
            h = layer.finish(&self.cfg, &h, &attn, self.prec)?;
        }
        let key_valid: Vec<f32> = valid.iter().map(|&v| f32::from(u8::from(v))).collect();
        Ok(EncodedContext {
            hidden: h,
            kv,
            key_mask: KeyMask::new(key_valid, &[b, 1, 1, len], fill)?,
            len,
        })
    }

    /// Candidates `x: [B, C, D]` at RoPE `positions` (one per slot), each
    /// attending to `ctx` and to itself when `valid`. Returns `[B, C, D]`.
    /// Every row of `ctx` must hold at least one valid token.
    pub fn forward_candidates(
        &self,
        x: &Tensor,
        positions: &[usize],
        valid: &[bool],
        ctx: &EncodedContext,
    ) -> Result<Tensor> {
        let (b, c, _) = x.dims3()?;
        let (cos, sin) = self.rope.tables(positions)?;
        let self_valid: Vec<f32> = valid.iter().map(|&v| f32::from(u8::from(v))).collect();
        let self_mask = KeyMask::new(self_valid, &[b, 1, 1, c, 1], self.cfg.attn_mask_fill)?;
        let mut h = x.clone();
        for (layer, kv) in self.layers.iter().zip(&ctx.kv) {
            let qkv = layer.qkv(&self.cfg, &h, &cos, &sin, self.prec)?;
            let attn = candidate_attention(
                &self.cfg,
                &qkv.q,
                &qkv.k,
                &qkv.v,
                kv,
                &ctx.key_mask,
                &self_mask,
                self.prec,
            )?;
            h = layer.finish(&self.cfg, &h, &attn, self.prec)?;
        }
        Ok(h)
    }
}
