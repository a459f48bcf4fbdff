//! The decoder stack of the CPU fast path over plain row-major buffers: the
//! context (user + history) once, causal and padding-masked, keeping every
//! layer's K/V; then candidates against that cache. One set of activations
//! is reused layer to layer; q|k|v and gelu|lin are one product each.

use super::attention::{self, ContextKv, QkvView};
use super::matmul::Weight;
use super::ops;
use crate::config::ModelConfig;
use crate::error::Result;
use crate::numerics::Precision;
use crate::numerics::rope::{RopeRows, RopeTables};

/// Positions whose RoPE rows are computed at load: a context and a
/// serving-size candidate list (`crate::SERVING_CHUNK`) fit.
const ROPE_ROWS: usize = 8192;
use crate::weights::{LayerWeights, concat_columns, host};

fn weight(t: &candle_core::Tensor, prec: Precision, amx: bool) -> Result<Weight> {
    let (k, n) = t.dims2()?;
    Ok(Weight::new(host(t)?, k, n, prec, amx))
}

/// One decoder layer's parameters, prepared for the forward dtype.
#[derive(Debug, Clone)]
struct CpuLayer {
    attn_norm: Vec<f32>,
    /// `[D, (Hq + 2 Hkv) K]`.
    w_qkv: Weight,
    /// `[Hq K, D]`.
    wo: Weight,
    attn_out_norm: Vec<f32>,
    ffn_norm: Vec<f32>,
    /// `[D, 2F]`: GELU branch, then linear branch.
    w_gl: Weight,
    /// `[F, D]`.
    w_down: Weight,
    ffn_out_norm: Vec<f32>,
}

impl CpuLayer {
    fn new(w: &LayerWeights, prec: Precision, amx: bool) -> Result<Self> {
        let fused = |parts: &[&candle_core::Tensor]| -> Result<Weight> {
            let k = parts[0].dim(0)?;
            let n = parts
                .iter()
                .map(|t| t.dim(1))
                .sum::<candle_core::Result<usize>>()?;
            Ok(Weight::new(concat_columns(parts)?, k, n, prec, amx))
        };
        Ok(Self {
            attn_norm: host(&w.attn_norm)?,
            w_qkv: fused(&[&w.wq, &w.wk, &w.wv])?,
            wo: weight(&w.wo, prec, amx)?,
            attn_out_norm: host(&w.attn_out_norm)?,
            ffn_norm: host(&w.ffn_norm)?,
            w_gl: fused(&[&w.w_gelu, &w.w_lin])?,
            w_down: weight(&w.w_down, prec, amx)?,
            ffn_out_norm: host(&w.ffn_out_norm)?,
        })
    }
}

/// The layer stack of the CPU fast path.
#[derive(Debug, Clone)]
pub struct CpuStack {
    cfg: ModelConfig,
    prec: Precision,
    layers: Vec<CpuLayer>,
    /// RoPE rows of the positions a serving call uses.
    rope: RopeRows,
}

/// The context of a batch after the stack: every layer's K/V.
#[derive(Debug, Clone)]
pub struct CpuContext {
    /// Rows B.
    pub batch: usize,
    /// S1 = 1 + S.
    pub len: usize,
    /// Keys and values per layer, `[B, Hkv, S1, K]` each.
    kv: Vec<ContextKv>,
    /// Which context tokens are real, `[B, S1]`.
    valid: Vec<bool>,
}

/// Activations of one pass over `rows` tokens, reused layer to layer.
struct Scratch {
    x: Vec<f32>,
    qkv: Vec<f32>,
    attn: Vec<f32>,
    y: Vec<f32>,
    gl: Vec<f32>,
    u: Vec<f32>,
}

impl CpuStack {
    /// Prepares `layers` for `prec`; in bf16 the matrices go to AMX tiles
    /// when the CPU has them and `amx` is asked for.
    pub fn new(
        cfg: &ModelConfig,
        layers: &[LayerWeights],
        prec: Precision,
        amx: bool,
    ) -> Result<Self> {
        let inv_freq = crate::numerics::rope::Rope::new(cfg).inv_freq().to_vec();
        let rope = RopeRows::new(inv_freq, ROPE_ROWS);
        Ok(Self {
            cfg: cfg.clone(),
            prec,
            layers: layers
                .iter()
                .map(|w| CpuLayer::new(w, prec, amx))
                .collect::<Result<_>>()?,
            rope,
        })
    }

    /// Whether the matrices run on AMX tiles.
    pub fn uses_amx(&self) -> bool {
        self.layers
            .first()
            .is_some_and(|l| matches!(l.w_qkv, Weight::Amx(_)))
    }

    fn width(&self) -> usize {
        (self.cfg.num_q_heads + 2 * self.cfg.num_kv_heads) * self.cfg.key_size
    }

    fn scratch(&self, rows: usize) -> Scratch {
        let c = &self.cfg;
        Scratch {
            x: vec![0.0; rows * c.emb_size],
            qkv: vec![0.0; rows * self.width()],
            attn: vec![0.0; rows * c.num_q_heads * c.key_size],
            y: vec![0.0; rows * c.emb_size],
            gl: vec![0.0; rows * 2 * c.ffn_size],
            u: vec![0.0; rows * c.ffn_size],
        }
    }

    /// Pre-norm, the fused q|k|v product and RoPE on q and k into `s.qkv`.
    fn qkv(&self, layer: &CpuLayer, h: &[f32], rows: usize, rope: &RopeTables, s: &mut Scratch) {
        let c = &self.cfg;
        ops::rms_norm(h, &layer.attn_norm, c.rms_norm_eps, self.prec, &mut s.x);
        layer.w_qkv.apply(&s.x, rows, &mut s.qkv);
        ops::round(&mut s.qkv, self.prec);
        let rotated = (c.num_q_heads + c.num_kv_heads) * c.key_size;
        ops::rope(&mut s.qkv, self.width(), rotated, rope, self.prec);
    }

    /// Everything after attention: output projection, sandwich norm and
    /// residual, the gated GELU FFN, sandwich norm and residual, on `h`.
    fn finish(&self, layer: &CpuLayer, h: &mut [f32], rows: usize, s: &mut Scratch) {
        let c = &self.cfg;
        let eps = c.rms_norm_eps;
        layer.wo.apply(&s.attn, rows, &mut s.y);
        ops::round(&mut s.y, self.prec);
        ops::residual_norm(h, &s.y, &layer.attn_out_norm, eps, self.prec);
        ops::rms_norm(h, &layer.ffn_norm, eps, self.prec, &mut s.x);
        layer.w_gl.apply(&s.x, rows, &mut s.gl);
        ops::gated_gelu(&s.gl, c.ffn_size, c.gelu, self.prec, &mut s.u);
        layer.w_down.apply(&s.u, rows, &mut s.y);
        ops::round(&mut s.y, self.prec);
        ops::residual_norm(h, &s.y, &layer.ffn_out_norm, eps, self.prec);
    }

    /// Runs the context `h: [B * S1, D]` (S1 = `valid.len() / B`) through
    /// every layer at RoPE `positions` (S1 shared by every row, or B * S1),
    /// keeping each layer's K/V; the last layer stops after its
    /// K/V, which is all the candidates read.
    pub fn encode_context(
        &self,
        mut h: Vec<f32>,
        batch: usize,
        valid: &[bool],
        positions: &[usize],
    ) -> CpuContext {
        let len = valid.len() / batch.max(1);
        let rows = batch * len;
        let rope = self.rope.tables(positions);
        let mut s = self.scratch(rows);
        let mut kv = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            self.qkv(layer, &h, rows, &rope, &mut s);
            let view = QkvView {
                qkv: &s.qkv,
                tokens: len,
                width: self.width(),
            };
            let layer_kv = attention::split_kv(&self.cfg, view, batch);
            if i + 1 < self.layers.len() {
                attention::context_attention(
                    &self.cfg,
                    self.prec,
                    view,
                    &layer_kv,
                    valid,
                    batch,
                    &mut s.attn,
                );
                self.finish(layer, &mut h, rows, &mut s);
            }
            kv.push(layer_kv);
        }
        CpuContext {
            batch,
            len,
            kv,
            valid: valid.to_vec(),
        }
    }

    /// Candidates `h: [B * C, D]` at RoPE `positions` (one per slot, or
    /// B * C, one per candidate), each
    /// attending to `ctx` and to itself when `valid[b * C + c]`. Returns the
    /// hidden states `[B * C, D]`.
    pub fn forward_candidates(
        &self,
        mut h: Vec<f32>,
        positions: &[usize],
        valid: &[bool],
        ctx: &CpuContext,
    ) -> Vec<f32> {
        let (batch, count) = (ctx.batch, valid.len() / ctx.batch.max(1));
        let rows = batch * count;
        let rope = self.rope.tables(positions);
        let mut s = self.scratch(rows);
        for (layer, kv) in self.layers.iter().zip(&ctx.kv) {
            self.qkv(layer, &h, rows, &rope, &mut s);
            let view = QkvView {
                qkv: &s.qkv,
                tokens: count,
                width: self.width(),
            };
            attention::candidate_attention(
                &self.cfg,
                self.prec,
                view,
                kv,
                ctx.len,
                &ctx.valid,
                valid,
                batch,
                &mut s.attn,
            );
            self.finish(layer, &mut h, rows, &mut s);
        }
        h
    }
}
