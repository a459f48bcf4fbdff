//! Attention as the reference computes it: `logit = (q.k) * multiplier`, then
//! `cap * tanh(logit / cap)`, masked logits replaced by the fill value (-1e30,
//! so a row with no visible key gets uniform weights), softmax in f32.
//! Grouped-query: query head `j` reads kv head `j / G`, and the `G` query heads
//! of a group are stacked so each K/V head is multiplied once.

use candle_core::{Result, Tensor};

use crate::config::ModelConfig;
use crate::numerics::Precision;

/// Multiplier and soft-cap applied to raw `q.k` logits (rounded first: in bf16
/// the reference forms `q.k` in bf16 and widens it).
fn transform_logits(s: Tensor, cfg: &ModelConfig, prec: Precision) -> Result<Tensor> {
    crate::numerics::softcap::softcap(
        &prec.round(s)?,
        cfg.attn_output_multiplier,
        cfg.attn_logit_softcap,
    )
}

/// `[B, T, H, K]` -> `[B, Hkv, G*T, K]` (the `G` query heads of each kv head stacked).
fn group_heads(x: &Tensor, hkv: usize) -> Result<Tensor> {
    let (b, t, h, k) = x.dims4()?;
    x.transpose(1, 2)?
        .contiguous()?
        .reshape((b, hkv, (h / hkv) * t, k))
}

/// `[B, Hkv, G*T, K]` -> `[B, T, Hq*K]` (heads concatenated head-major).
fn ungroup_heads(x: &Tensor, hq: usize) -> Result<Tensor> {
    let (b, _, gt, k) = x.dims4()?;
    let hkv = x.dim(1)?;
    let t = gt / (hq / hkv);
    x.reshape((b, hq, t, k))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b, t, hq * k))
}

/// A 0/1 key mask plus its additive fill: `logit * allowed + (1 - allowed) * fill`
/// equals `where(allowed, logit, fill)` exactly for finite logits.
#[derive(Debug, Clone)]
pub struct KeyMask {
    allowed: Tensor,
    fill: Tensor,
}

impl KeyMask {
    /// From a row-major 0/1 array of the given shape (broadcastable against logits).
    pub fn new(allowed: Vec<f32>, shape: &[usize], fill: f32) -> Result<Self> {
        let bias: Vec<f32> = allowed
            .iter()
            .map(|&a| if a > 0.0 { 0.0 } else { fill })
            .collect();
        let dev = candle_core::Device::Cpu;
        Ok(Self {
            allowed: Tensor::from_vec(allowed, shape, &dev)?,
            fill: Tensor::from_vec(bias, shape, &dev)?,
        })
    }

    fn apply(&self, s: &Tensor) -> Result<Tensor> {
        s.broadcast_mul(&self.allowed)?.broadcast_add(&self.fill)
    }
}

/// Dense attention with an explicit mask. `q: [B, T, Hq, K]`, `k, v: [B, T, Hkv, K]`,
/// `mask` broadcastable to `[B, Hq, T, T]` (query, key). Returns `[B, T, Hq*K]`.
pub fn masked_attention(
    cfg: &ModelConfig,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &KeyMask,
    prec: Precision,
) -> Result<Tensor> {
    let (b, t, hq, _) = q.dims4()?;
    let hkv = cfg.num_kv_heads;
    let qh = group_heads(q, hkv)?; // [B, Hkv, G*T, K]
    let kh = k.transpose(1, 2)?.contiguous()?; // [B, Hkv, T, K]
    let vh = v.transpose(1, 2)?.contiguous()?;
    let s = transform_logits(qh.matmul(&kh.t()?)?, cfg, prec)?; // [B, Hkv, G*T, T]
    let s = mask.apply(&s.reshape((b, hq, t, t))?)?;
    let w = prec.round(candle_nn::ops::softmax_last_dim(&s)?)?;
    let w = w.reshape((b, hkv, (hq / hkv) * t, t))?;
    let out = prec.round(w.matmul(&vh)?)?; // [B, Hkv, G*T, K]
    ungroup_heads(&out, hq)
}
