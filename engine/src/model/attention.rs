//! Attention as the reference computes it: `logit = (q.k) * multiplier`, then
//! `cap * tanh(logit / cap)`, masked logits replaced by the fill value (-1e30,
//! so a row with no visible key gets uniform weights), softmax in f32.
//! Grouped-query: query head `j` reads kv head `j / G`, and the `G` query heads
//! of a group are stacked so each K/V head is multiplied once.

use candle_core::{Result, Tensor};

use super::Precision;
use crate::config::ModelConfig;

/// Multiplier and soft-cap applied to raw `q.k` logits (rounded first: in bf16
/// the reference forms `q.k` in bf16 and widens it).
fn transform_logits(s: Tensor, cfg: &ModelConfig, prec: Precision) -> Result<Tensor> {
    super::softcap::softcap(
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

/// Cached keys and values of the context (user + history) for one layer.
#[derive(Debug, Clone)]
pub struct ContextKv {
    /// Keys after RoPE, `[B, Hkv, S1, K]`.
    pub k: Tensor,
    /// Values, `[B, Hkv, S1, K]`.
    pub v: Tensor,
}

/// Candidate-isolation attention without a T x T mask: every candidate query
/// attends to the context keys (padding-masked) plus its own key only; the two
/// parts are merged by a shared max (log-sum-exp), so the weights are those of
/// one softmax over `[context | self]`.
///
/// `q: [B, C, Hq, K]`, `k_self, v_self: [B, C, Hkv, K]`, `ctx_mask` broadcastable
/// to `[B, Hq, C, S1]` (key padding), `self_allowed: [B, C]` (0/1, the
/// candidate's own validity). Every query must see at least one key (a valid
/// context token or itself); rows that see none are the caller's to route to
/// the dense path. Returns `[B, C, Hq*K]`.
#[allow(clippy::too_many_arguments)]
pub fn candidate_attention(
    cfg: &ModelConfig,
    q: &Tensor,
    k_self: &Tensor,
    v_self: &Tensor,
    ctx: &ContextKv,
    ctx_mask: &KeyMask,
    self_mask: &KeyMask,
    prec: Precision,
) -> Result<Tensor> {
    let (b, c, hq, kd) = q.dims4()?;
    let hkv = cfg.num_kv_heads;
    let g = hq / hkv;
    let s1 = ctx.k.dim(2)?;
    let qh = group_heads(q, hkv)?; // [B, Hkv, G*C, K]
    // Context part: one matmul per kv head for all its query heads.
    let s_ctx = transform_logits(qh.matmul(&ctx.k.t()?)?, cfg, prec)?; // [B, Hkv, G*C, S1]
    let s_ctx = ctx_mask
        .apply(&s_ctx.reshape((b, hq, c, s1))?)?
        .reshape((b, hkv, g * c, s1))?;
    // Self part: the diagonal q_c . k_c, one value per (head, candidate).
    let ks = k_self.transpose(1, 2)?.contiguous()?.unsqueeze(2)?; // [B, Hkv, 1, C, K]
    let vs = v_self.transpose(1, 2)?.contiguous()?.unsqueeze(2)?;
    let q5 = qh.reshape((b, hkv, g, c, kd))?;
    let s_self = q5.broadcast_mul(&ks)?.sum_keepdim(4)?; // [B, Hkv, G, C, 1]
    let s_self = transform_logits(s_self, cfg, prec)?;
    let s_self = self_mask.apply(&s_self)?.reshape((b, hkv, g * c, 1))?;
    // Merge by a shared max.
    let m = s_ctx.max_keepdim(3)?.maximum(&s_self)?; // [B, Hkv, G*C, 1]
    let p_ctx = s_ctx.broadcast_sub(&m)?.exp()?;
    let p_self = (&s_self - &m)?.exp()?;
    let denom = (p_ctx.sum_keepdim(3)? + &p_self)?;
    let w_ctx = prec.round(p_ctx.broadcast_div(&denom)?)?;
    let w_self = prec.round((p_self / denom)?)?.reshape((b, hkv, g, c, 1))?;
    let self_term = w_self.broadcast_mul(&vs)?.reshape((b, hkv, g * c, kd))?;
    let out = prec.round((w_ctx.matmul(&ctx.v)? + self_term)?)?; // [B, Hkv, G*C, K]
    ungroup_heads(&out, hq)
}
