//! Building blocks of a decoder layer: `y = x @ w` projections, RMSNorm, RoPE
//! (split-halves form, f32 angles as the reference forms them), the gated GELU
//! FFN, and the layer's two halves around attention.

use candle_core::{Result, Tensor};

use crate::config::{GeluKind, ModelConfig};
use crate::numerics::Precision;
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
            GeluKind::Tanh => crate::numerics::gelu::gelu_tanh(&gate)?,
            GeluKind::Erf => gate.gelu_erf()?,
        })?;
        let lin = prec.round(linear(&x, &self.w.w_lin)?)?;
        let ffn = prec.round(linear(&prec.round((gate * lin)?)?, &self.w.w_down)?)?;
        prec.round((h + rms_norm(&ffn, &self.w.ffn_out_norm, eps, prec)?)?)
    }
}
