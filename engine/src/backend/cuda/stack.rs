//! The GPU ranker's layer stack: the fused q|k|v projection and RoPE, the
//! attention (causal over the context, candidate isolation for the
//! candidates; the flash kernel or the GEMM path, as `--gpu-attention`
//! says), then output projection, sandwich norms and the gated GELU FFN,
//! with one set of activations reused layer to layer.

use foryou_kernels::cuda::attention::SelfKvGpu;
use foryou_kernels::cuda::attention_gemm::GemmAttentionScratch;
use foryou_kernels::cuda::cudarc::driver::CudaSlice;
use foryou_kernels::cuda::gemm::GemmOut;
use foryou_kernels::reference::attention::AttentionShape;
use foryou_kernels::reference::ops::QkvShape;

use super::ranker::{ContextKv, GpuRanker};
use super::weights::GpuLayer;
use crate::backend::BackendError;
use crate::config::GeluKind;
use crate::error::{EngineError, Result};

impl GpuRanker {
    /// The activations of one pass over `rows` tokens, reused layer to layer.
    pub(super) fn scratch(&self, rows: usize) -> Result<Scratch> {
        let c = &self.cfg;
        let g = &*self.gpu;
        let (d, k, hq, hkv, f) = (
            c.emb_size,
            c.key_size,
            c.num_q_heads,
            c.num_kv_heads,
            c.ffn_size,
        );
        Ok(Scratch {
            rows,
            x: g.scratch(rows * d)?,
            qkv: g.scratch(rows * (hq + 2 * hkv) * k)?,
            q: g.scratch(rows * hq * k)?,
            attn: g.scratch(rows * hq * k)?,
            y: g.scratch(rows * d)?,
            gl: g.scratch(rows * 2 * f)?,
            u: g.scratch(rows * f)?,
        })
    }

    /// Pre-norm of layer 0, then every layer's fused q|k|v projection and
    /// RoPE into `k`/`v` (`[B, Hkv, T, K]` each, per layer, from `kv_out`),
    /// with `attend(i, scratch, k, v)` filling `scratch.attn`; `end` says
    /// how the last layer ends.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_stack(
        &self,
        h: &mut CudaSlice<f32>,
        b: usize,
        t: usize,
        pos: &CudaSlice<i32>,
        mut kv_out: impl FnMut(usize) -> Result<(CudaSlice<u16>, CudaSlice<u16>)>,
        mut attend: impl FnMut(usize, &mut Scratch, CudaSlice<u16>, CudaSlice<u16>) -> Result<()>,
        end: StackEnd<'_>,
    ) -> Result<Scratch> {
        let c = &self.cfg;
        let g = &*self.gpu;
        let qs = QkvShape {
            batch: b,
            tokens: t,
            q_heads: c.num_q_heads,
            kv_heads: c.num_kv_heads,
            head_dim: c.key_size,
        };
        let width = (c.num_q_heads + 2 * c.num_kv_heads) * c.key_size;
        let mut s = self.scratch(b * t)?;
        g.rms_norm(
            h,
            &self.layers[0].attn_norm,
            c.rms_norm_eps,
            s.rows,
            false,
            &mut s.x,
        )?;
        let n = self.layers.len();
        for (i, layer) in self.layers.iter().enumerate() {
            g.gemm_bf16(
                s.rows,
                width,
                c.emb_size,
                &s.x,
                0,
                &layer.w_qkv,
                GemmOut::F32(&mut s.qkv),
                0,
                width,
            )?;
            let (mut kl, mut vl) = kv_out(i)?;
            g.qkv_rope(
                qs,
                &s.qkv,
                pos,
                &self.inv_freq,
                true,
                &mut s.q,
                &mut kl,
                &mut vl,
            )?;
            let last = i + 1 == n;
            let next = match (last, &end) {
                (true, StackEnd::KvOnly) => {
                    attend(i, &mut s, kl, vl)?; // hands the K/V over, no attention
                    break;
                }
                (true, StackEnd::Full { next_norm }) => *next_norm,
                (false, _) => Some(&self.layers[i + 1].attn_norm),
            };
            attend(i, &mut s, kl, vl)?;
            self.finish_layer(layer, next, h, &mut s)?;
        }
        Ok(s)
    }

    /// The context pass: every layer over `h: [B*S1, D]`, K/V kept in `kv`;
    /// without `full` the last layer stops after its K/V.
    #[allow(clippy::too_many_arguments)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_layers(
        &self,
        h: &mut CudaSlice<f32>,
        b: usize,
        t: usize,
        pos: &CudaSlice<i32>,
        shape: &AttentionShape,
        kv: &mut ContextKv,
        full: bool,
        gemm: &mut GemmAttentionScratch,
    ) -> Result<()> {
        let g = &*self.gpu;
        let kv_len = b * t * self.cfg.num_kv_heads * self.cfg.key_size;
        let key_valid = &kv.key_valid;
        let (mut ks, mut vs) = (Vec::new(), Vec::new());
        let n = self.layers.len();
        self.run_stack(
            h,
            b,
            t,
            pos,
            |_| Ok((g.scratch(kv_len)?, g.scratch(kv_len)?)),
            |i, s, kl, vl| {
                if i + 1 < n || full {
                    g.attention_with(
                        self.attention,
                        shape,
                        &s.q,
                        &kl,
                        &vl,
                        key_valid,
                        None,
                        &mut s.attn,
                        gemm,
                    )?;
                }
                ks.push(kl);
                vs.push(vl);
                Ok(())
            },
            if full {
                StackEnd::Full { next_norm: None }
            } else {
                StackEnd::KvOnly
            },
        )?;
        kv.k = ks;
        kv.v = vs;
        Ok(())
    }

    /// Candidates through every layer against the context K/V; returns the
    /// final-normed states `[B*C, D]` as bf16.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_layers_candidates(
        &self,
        h: &mut CudaSlice<f32>,
        b: usize,
        c: usize,
        pos: &CudaSlice<i32>,
        ctx: &ContextKv,
        valid: &CudaSlice<u8>,
        final_norm: &CudaSlice<f32>,
        gemm: &mut GemmAttentionScratch,
    ) -> Result<CudaSlice<u16>> {
        let g = &*self.gpu;
        let shape = self.attention_shape(b, c, ctx.len, false);
        let kv_len = b * c * self.cfg.num_kv_heads * self.cfg.key_size;
        // The candidates' own K/V: one pair of buffers serves every layer.
        let pool = std::cell::RefCell::new(Some((g.scratch(kv_len)?, g.scratch(kv_len)?)));
        let s = self.run_stack(
            h,
            b,
            c,
            pos,
            |_| {
                pool.borrow_mut().take().ok_or_else(|| {
                    EngineError::Backend(BackendError::Internal("self K/V buffers in use".into()))
                })
            },
            |i, s, ks, vs| {
                let self_kv = SelfKvGpu {
                    k: &ks,
                    v: &vs,
                    valid: Some(valid),
                };
                g.attention_with(
                    self.attention,
                    &shape,
                    &s.q,
                    &ctx.k[i],
                    &ctx.v[i],
                    &ctx.key_valid,
                    Some(self_kv),
                    &mut s.attn,
                    gemm,
                )?;
                *pool.borrow_mut() = Some((ks, vs));
                Ok(())
            },
            StackEnd::Full {
                next_norm: Some(final_norm),
            },
        )?;
        Ok(s.x)
    }

    /// Output projection, post-attention norm + residual, the FFN sandwich;
    /// leaves `bf16(rms(h) * next_norm)` in `s.x` (nothing without a next norm).
    pub(super) fn finish_layer(
        &self,
        layer: &GpuLayer,
        next_norm: Option<&CudaSlice<f32>>,
        h: &mut CudaSlice<f32>,
        s: &mut Scratch,
    ) -> Result<()> {
        let cfg = &self.cfg;
        let g = &*self.gpu;
        let (d, hqk, f, eps, rows) = (
            cfg.emb_size,
            cfg.num_q_heads * cfg.key_size,
            cfg.ffn_size,
            cfg.rms_norm_eps,
            s.rows,
        );
        g.gemm_bf16(
            rows,
            d,
            hqk,
            &s.attn,
            0,
            &layer.wo,
            GemmOut::F32(&mut s.y),
            0,
            d,
        )?;
        g.residual_rms_norm(
            h,
            &s.y,
            &layer.attn_out_norm,
            Some(&layer.ffn_norm),
            eps,
            rows,
            true,
            &mut s.x,
        )?;
        g.gemm_bf16(
            rows,
            2 * f,
            d,
            &s.x,
            0,
            &layer.w_gl,
            GemmOut::F32(&mut s.gl),
            0,
            2 * f,
        )?;
        g.gated_gelu(&s.gl, rows, f, cfg.gelu == GeluKind::Erf, true, &mut s.u)?;
        g.gemm_bf16(
            rows,
            d,
            f,
            &s.u,
            0,
            &layer.w_down,
            GemmOut::F32(&mut s.y),
            0,
            d,
        )?;
        g.residual_rms_norm(
            h,
            &s.y,
            &layer.ffn_out_norm,
            next_norm,
            eps,
            rows,
            true,
            &mut s.x,
        )?;
        Ok(())
    }
}

/// How the layer stack ends.
pub(super) enum StackEnd<'a> {
    /// After the last layer's K/V (the ranker's context pass: candidates
    /// need nothing else of it).
    KvOnly,
    /// The last layer runs whole, then the pre-norm `next_norm` (the
    /// ranker's final norm; none for the user tower).
    Full {
        /// Gain of the norm after the last layer.
        next_norm: Option<&'a CudaSlice<f32>>,
    },
}

/// Activations of one pass (`rows` tokens), reused by every layer.
pub(super) struct Scratch {
    rows: usize,
    /// The next GEMM's bf16 input `[rows, D]` (a pre-norm).
    x: CudaSlice<u16>,
    /// Fused q|k|v projection `[rows, (Hq + 2 Hkv) K]`.
    qkv: CudaSlice<f32>,
    /// Queries after RoPE `[rows, Hq, K]`.
    q: CudaSlice<u16>,
    /// Attention output `[rows, Hq K]`.
    attn: CudaSlice<u16>,
    /// A projection's f32 output `[rows, D]`.
    y: CudaSlice<f32>,
    /// Fused gelu|lin projection `[rows, 2F]`.
    gl: CudaSlice<f32>,
    /// Gated GELU `[rows, F]`.
    u: CudaSlice<u16>,
}
