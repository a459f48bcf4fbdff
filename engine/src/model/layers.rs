//! Building blocks of a decoder layer: `y = x @ w` projections, RMSNorm, RoPE
//! (split-halves form, f32 angles as the reference forms them), the gated GELU
//! FFN, and the layer's two halves around attention.

use candle_core::{Device, Result, Tensor};

use super::Precision;
use crate::config::{GeluKind, ModelConfig};
use crate::weights::LayerWeights;

/// `x @ w` over the last axis of `x` (any leading dims), `w: [In, Out]`.
pub fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let dims = x.dims();
    let Some((last, lead)) = dims.split_last() else {
        candle_core::bail!("linear input is a scalar")
    };
    let rows: usize = lead.iter().product();
    let out = x.reshape((rows, *last))?.matmul(w)?;
    let mut shape = lead.to_vec();
    shape.push(w.dim(1)?);
    out.reshape(shape)
}

/// `scale * x / sqrt(mean(x^2) + eps)` over the last axis, computed in f32 and
/// rounded to the forward dtype.
pub fn rms_norm(x: &Tensor, scale: &Tensor, eps: f32, prec: Precision) -> Result<Tensor> {
    prec.round(candle_nn::ops::rms_norm(&x.contiguous()?, scale, eps)?)
}

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
        let t = crate::cpu::ops::RopeTables::new(positions, &self.inv_freq);
        let (tokens, half) = (positions.len(), self.inv_freq.len());
        let (cos, sin) = t.into_parts();
        Ok((
            Tensor::from_vec(cos, (tokens, half), &Device::Cpu)?,
            Tensor::from_vec(sin, (tokens, half), &Device::Cpu)?,
        ))
    }
}

/// Applies RoPE to `x: [B, T, H, K]` with tables `[T, K/2]`:
/// `x * cos + rotate_half(x) * sin`, `rotate_half([x1, x2]) = [-x2, x1]`.
pub fn apply_rope(x: &Tensor, cos: &Tensor, sin: &Tensor, prec: Precision) -> Result<Tensor> {
    prec.round(candle_nn::rotary_emb::rope_thd(&x.contiguous()?, cos, sin)?)
}

/// Layer weights prepared for the forward dtype (matrices pre-rounded in bf16).
#[derive(Debug, Clone)]
pub struct DecoderLayer {
    w: LayerWeights,
}

/// Queries `[B, T, Hq, K]` and keys/values `[B, T, Hkv, K]` after RoPE.
pub struct Qkv {
    /// Queries.
    pub q: Tensor,
    /// Keys.
    pub k: Tensor,
    /// Values.
    pub v: Tensor,
}

impl DecoderLayer {
    /// Prepares `w` for `prec`: the reference casts every layer matrix to the
    /// forward dtype before its matmul (norm gains stay f32).
    pub fn new(w: &LayerWeights, prec: Precision) -> Result<Self> {
        let r = |t: &Tensor| prec.round(t.clone());
        Ok(Self {
            w: LayerWeights {
                attn_norm: w.attn_norm.clone(),
                wq: r(&w.wq)?,
                wk: r(&w.wk)?,
                wv: r(&w.wv)?,
                wo: r(&w.wo)?,
                attn_out_norm: w.attn_out_norm.clone(),
                ffn_norm: w.ffn_norm.clone(),
                w_gelu: r(&w.w_gelu)?,
                w_lin: r(&w.w_lin)?,
                w_down: r(&w.w_down)?,
                ffn_out_norm: w.ffn_out_norm.clone(),
            },
        })
    }

    /// Pre-attention norm, q/k/v projections and RoPE for tokens `h: [B, T, D]`.
    pub fn qkv(
        &self,
        cfg: &ModelConfig,
        h: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        prec: Precision,
    ) -> Result<Qkv> {
        let (b, t, _) = h.dims3()?;
        let (hq, hkv, k) = (cfg.num_q_heads, cfg.num_kv_heads, cfg.key_size);
        let x = rms_norm(h, &self.w.attn_norm, cfg.rms_norm_eps, prec)?;
        let q = prec
            .round(linear(&x, &self.w.wq)?)?
            .reshape((b, t, hq, k))?;
        let kk = prec
            .round(linear(&x, &self.w.wk)?)?
            .reshape((b, t, hkv, k))?;
        let v = prec
            .round(linear(&x, &self.w.wv)?)?
            .reshape((b, t, hkv, k))?;
        Ok(Qkv {
            q: apply_rope(&q, cos, sin, prec)?,
            k: apply_rope(&kk, cos, sin, prec)?,
            v,
        })
    }

    /// Everything after attention: output projection, post-attention norm and
    /// residual, then the FFN sandwich. `attn: [B, T, Hq*K]`, `h: [B, T, D]`.
    pub fn finish(
        &self,
        cfg: &ModelConfig,
        h: &Tensor,
        attn: &Tensor,
        prec: Precision,
    ) -> Result<Tensor> {
        let eps = cfg.rms_norm_eps;
        let attn_out = prec.round(linear(attn, &self.w.wo)?)?;
        let h = prec.round((h + rms_norm(&attn_out, &self.w.attn_out_norm, eps, prec)?)?)?;
        let x = rms_norm(&h, &self.w.ffn_norm, eps, prec)?;
        let gate = prec.round(linear(&x, &self.w.w_gelu)?)?;
        let gate = prec.round(match cfg.gelu {
            GeluKind::Tanh => super::fused::gelu_tanh(&gate)?,
            GeluKind::Erf => gate.gelu_erf()?,
        })?;
        let lin = prec.round(linear(&x, &self.w.w_lin)?)?;
        let ffn = prec.round(linear(&prec.round((gate * lin)?)?, &self.w.w_down)?)?;
        prec.round((h + rms_norm(&ffn, &self.w.ffn_out_norm, eps, prec)?)?)
    }
}
