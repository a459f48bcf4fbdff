//! Attention of the CPU stack, on views into the fused q|k|v buffer: the
//! causal, padding-masked context pass and candidate isolation against the
//! cached context (each candidate sees the context and itself).
//!
//! Per (row, query head, block of queries): `s = q · Kᵀ` with one gemm
//! (strided views, no copies), then per query row the reference's transform
//! (bf16 rounding in bf16 mode, multiplier, `cap·tanh(x/cap)`), masking,
//! one softmax over `[context | self]` with a shared max, and `o = p · V`
//! with a second gemm plus the self term. Masked keys get weight exactly 0,
//! as `exp(-1e30 - max)` does in the reference; every query here sees at
//! least one key (the user token), which the ranker guarantees.

use rayon::prelude::*;

use super::matmul::{View, gemm_views};
use super::ops::{by_precision, rnd};
use crate::config::ModelConfig;
use crate::numerics::Precision;
use crate::numerics::simd::{self, round_bf16, wide};
use crate::numerics::softcap::softcap_scalar;

/// Queries per task: bounds the score block to `QUERY_BLOCK x S` floats.
const QUERY_BLOCK: usize = 128;

/// Where the queries come from: `q` of head `h`, token `t` of row `b` is
/// `qkv[(b * tokens + t) * width + h * key + ..key]`.
#[derive(Debug, Clone, Copy)]
pub struct QkvView<'a> {
    /// The fused projection, `[B * tokens, width]`.
    pub qkv: &'a [f32],
    /// Tokens per row.
    pub tokens: usize,
    /// Row width `(Hq + 2 Hkv) * K`.
    pub width: usize,
}

/// Context keys and values of one layer, `[B, Hkv, S1, K]` each, and which
/// context tokens are real, `[B, S1]`.
#[derive(Debug, Clone)]
pub struct ContextKv {
    /// Keys after RoPE.
    pub k: Vec<f32>,
    /// Values.
    pub v: Vec<f32>,
}

/// The shape constants of one attention call.
#[derive(Debug, Clone, Copy)]
struct Heads {
    hq: usize,
    hkv: usize,
    k: usize,
    mult: f32,
    cap: Option<f32>,
}

impl Heads {
    fn new(cfg: &ModelConfig) -> Self {
        Self {
            hq: cfg.num_q_heads,
            hkv: cfg.num_kv_heads,
            k: cfg.key_size,
            mult: cfg.attn_output_multiplier,
            cap: cfg.attn_logit_softcap,
        }
    }
}

/// Copies the keys and values of `qkv` into `[B, Hkv, S1, K]` for the
/// candidates that will attend to them.
pub fn split_kv(cfg: &ModelConfig, view: QkvView<'_>, batch: usize) -> ContextKv {
    let (hq, hkv, k, s1) = (cfg.num_q_heads, cfg.num_kv_heads, cfg.key_size, view.tokens);
    let mut kk = vec![0f32; batch * hkv * s1 * k];
    let mut vv = vec![0f32; batch * hkv * s1 * k];
    for b in 0..batch {
        for h in 0..hkv {
            for t in 0..s1 {
                let src = (b * s1 + t) * view.width;
                let dst = ((b * hkv + h) * s1 + t) * k;
                let ko = src + (hq + h) * k;
                let vo = src + (hq + hkv + h) * k;
                kk[dst..dst + k].copy_from_slice(&view.qkv[ko..ko + k]);
                vv[dst..dst + k].copy_from_slice(&view.qkv[vo..vo + k]);
            }
        }
    }
    ContextKv { k: kk, v: vv }
}

/// One task: queries `t0..t1` of row `b`, query head `qh`.
#[derive(Debug, Clone, Copy)]
struct Task {
    b: usize,
    qh: usize,
    t0: usize,
    t1: usize,
}

fn tasks(batch: usize, hq: usize, tokens: usize) -> Vec<Task> {
    let mut out = Vec::new();
    for b in 0..batch {
        for qh in 0..hq {
            let mut t0 = 0;
            while t0 < tokens {
                let t1 = (t0 + QUERY_BLOCK).min(tokens);
                out.push(Task { b, qh, t0, t1 });
                t0 = t1;
            }
        }
    }
    out
}

/// Runs every task, each writing its `[t1 - t0, K]` block of `out`
/// (`[B * tokens, Hq * K]`).
fn run_tasks(
    heads: &Heads,
    batch: usize,
    tokens: usize,
    out: &mut [f32],
    body: impl Fn(&Task, &mut [f32]) + Sync,
) {
    let (hq, k) = (heads.hq, heads.k);
    let blocks: Vec<(Task, Vec<f32>)> = tasks(batch, hq, tokens)
        .into_par_iter()
        .map(|task| {
            let mut o = vec![0f32; (task.t1 - task.t0) * k];
            body(&task, &mut o);
            (task, o)
        })
        .collect();
    for (task, o) in blocks {
        for (i, t) in (task.t0..task.t1).enumerate() {
            let at = (task.b * tokens + t) * hq * k + task.qh * k;
            out[at..at + k].copy_from_slice(&o[i * k..(i + 1) * k]);
        }
    }
}

/// `scores[rows, s] = q_block · Kᵀ` for one head (serial gemm: tasks are
/// already parallel).
fn scores(view: QkvView<'_>, task: &Task, heads: &Heads, keys: &[f32], s: usize) -> Vec<f32> {
    let rows = task.t1 - task.t0;
    let k = heads.k;
    let mut out = vec![0f32; rows * s];
    let q0 = (task.b * view.tokens + task.t0) * view.width + task.qh * k;
    let q = View::new(view.qkv, q0, view.width, 1);
    let kt = View::new(keys, 0, 1, k); // Kᵀ: element (d, j) = keys[j * k + d]
    gemm_views(rows, s, k, &mut out, s, q, kt, false);
    out
}

/// `out[rows, K] = p[rows, s] · values[s, K]`.
fn weighted_sum(p: &[f32], rows: usize, s: usize, values: &[f32], k: usize, out: &mut [f32]) {
    let pv = View::new(p, 0, s, 1);
    let vv = View::new(values, 0, k, 1);
    gemm_views(rows, k, s, out, k, pv, vv, false);
}

/// Causal, padding-masked attention of the context over itself: query `t`
/// sees keys `j <= t` with `valid[b * S1 + j]`. `kv` holds the same keys and
/// values as `view` (from [`split_kv`]). Writes `out: [B * S1, Hq * K]`.
pub fn context_attention(
    cfg: &ModelConfig,
    prec: Precision,
    view: QkvView<'_>,
    kv: &ContextKv,
    valid: &[bool],
    batch: usize,
    out: &mut [f32],
) {
    let heads = Heads::new(cfg);
    let (g, k, s1) = (heads.hq / heads.hkv, heads.k, view.tokens);
    let bias = key_bias(valid);
    run_tasks(&heads, batch, s1, out, |task, o| {
        let h = task.qh / g;
        let base = (task.b * heads.hkv + h) * s1 * k;
        let (keys, values) = (&kv.k[base..base + s1 * k], &kv.v[base..base + s1 * k]);
        // Keys past the block's last query are never visible.
        let s = task.t1;
        let mut p = scores(view, task, &heads, keys, s);
        let bias = &bias[task.b * s1..task.b * s1 + s];
        let (mult, cap) = (heads.mult, heads.cap);
        by_precision!(prec, context_softmax(&mut p, s, task.t0, bias, mult, cap));
        weighted_sum(&p, task.t1 - task.t0, s, values, k, o);
        if prec.is_bf16() {
            o.iter_mut().for_each(|v| *v = round_bf16(*v));
        }
    });
}

/// Candidate isolation: candidate `c` of row `b` sees the context keys with
/// `ctx_valid[b * S1 + j]` and its own key when `self_valid[b * C + c]`.
/// `view` holds the candidates' fused projections (their queries and own
/// keys/values). Writes `out: [B * C, Hq * K]`.
#[allow(clippy::too_many_arguments)]
pub fn candidate_attention(
    cfg: &ModelConfig,
    prec: Precision,
    view: QkvView<'_>,
    ctx: &ContextKv,
    ctx_len: usize,
    ctx_valid: &[bool],
    self_valid: &[bool],
    batch: usize,
    out: &mut [f32],
) {
    let heads = Heads::new(cfg);
    let (g, k, s1, c) = (heads.hq / heads.hkv, heads.k, ctx_len, view.tokens);
    let bias = key_bias(ctx_valid);
    run_tasks(&heads, batch, c, out, |task, o| {
        let h = task.qh / g;
        let base = (task.b * heads.hkv + h) * s1 * k;
        let (keys, values) = (&ctx.k[base..base + s1 * k], &ctx.v[base..base + s1 * k]);
        let mut p = scores(view, task, &heads, keys, s1);
        let bias = &bias[task.b * s1..(task.b + 1) * s1];
        let rows = task.t1 - task.t0;
        let own: Vec<Option<f32>> = (0..rows)
            .map(|i| {
                let at = (task.b * c + task.t0 + i) * view.width;
                let q = &view.qkv[at + task.qh * k..at + (task.qh + 1) * k];
                let ks = &view.qkv[at + (heads.hq + h) * k..at + (heads.hq + h + 1) * k];
                self_valid[task.b * c + task.t0 + i].then(|| dot(q, ks))
            })
            .collect();
        let mut w_self = vec![0f32; rows];
        let (mult, cap) = (heads.mult, heads.cap);
        by_precision!(
            prec,
            candidate_softmax(&mut p, s1, bias, &own, &mut w_self, mult, cap)
        );
        weighted_sum(&p, task.t1 - task.t0, s1, values, k, o);
        for (i, orow) in o.chunks_mut(k).enumerate() {
            let at = (task.b * c + task.t0 + i) * view.width + (heads.hq + heads.hkv + h) * k;
            let vs = &view.qkv[at..at + k];
            for (ov, &v) in orow.iter_mut().zip(vs) {
                let y = *ov + w_self[i] * v;
                *ov = if prec.is_bf16() { round_bf16(y) } else { y };
            }
        }
    });
}

/// 0 for a real key, -inf for padding: added to the transformed logits.
fn key_bias(valid: &[bool]) -> Vec<f32> {
    valid
        .iter()
        .map(|&v| if v { 0.0 } else { f32::NEG_INFINITY })
        .collect()
}

wide!(fn context_softmax(p: &mut [f32], s: usize, t0: usize, bias: &[f32], mult: f32, cap: Option<f32>) => context_softmax_body);

/// Rows of the causal pass: query `t0 + i` sees the real keys `j <= t0 + i`;
/// later keys get weight 0.
#[inline(always)]
fn context_softmax_body<const B: bool>(
    p: &mut [f32],
    s: usize,
    t0: usize,
    bias: &[f32],
    mult: f32,
    cap: Option<f32>,
) {
    for (i, row) in p.chunks_exact_mut(s.max(1)).enumerate() {
        let seen = (t0 + i + 1).min(row.len());
        let (row, hidden) = row.split_at_mut(seen);
        softmax_row::<B>(row, &bias[..seen], mult, cap, None);
        hidden.fill(0.0);
    }
}

wide!(fn candidate_softmax(p: &mut [f32], s: usize, bias: &[f32], own: &[Option<f32>], w_self: &mut [f32], mult: f32, cap: Option<f32>) => candidate_softmax_body);

/// Rows of candidate isolation: the real context keys plus the own logit.
#[inline(always)]
fn candidate_softmax_body<const B: bool>(
    p: &mut [f32],
    s: usize,
    bias: &[f32],
    own: &[Option<f32>],
    w_self: &mut [f32],
    mult: f32,
    cap: Option<f32>,
) {
    for ((row, &own), w) in p.chunks_exact_mut(s.max(1)).zip(own).zip(w_self) {
        *w = softmax_row::<B>(row, bias, mult, cap, own);
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Lanes of the max and sum accumulators: element `j` always lands in lane
/// `j % LANES`, so trailing masked keys (exact zeros) never change a sum's
/// bits, whatever the padded length.
const LANES: usize = 16;

/// Softmax in place of one query row's logits (raw `q.k`): the reference's
/// transform (bf16 rounding when `B`, multiplier, soft cap), plus `bias`
/// (-inf masks a key to weight 0), and an optional own logit sharing the
/// max and the sum; returns the own weight (0 without one). Each step is a
/// plain loop over the row so it vectorises.
#[inline(always)]
fn softmax_row<const B: bool>(
    row: &mut [f32],
    bias: &[f32],
    mult: f32,
    cap: Option<f32>,
    own: Option<f32>,
) -> f32 {
    for (v, &b) in row.iter_mut().zip(bias) {
        *v = softcap_scalar(rnd::<B>(*v), mult, cap) + b;
    }
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for c in chunks.by_ref() {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = l.max(v);
        }
    }
    for (l, &v) in lanes.iter_mut().zip(chunks.remainder()) {
        *l = l.max(v);
    }
    let own = own.map(|x| softcap_scalar(rnd::<B>(x), mult, cap));
    let mut m = lanes.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    if let Some(o) = own {
        m = m.max(o);
    }
    let mut sums = [0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for c in chunks.by_ref() {
        for (l, v) in sums.iter_mut().zip(c) {
            *v = simd::exp(*v - m); // exactly 0 for masked keys
            *l += *v;
        }
    }
    for (l, v) in sums.iter_mut().zip(chunks.into_remainder()) {
        *v = simd::exp(*v - m);
        *l += *v;
    }
    let own = own.map_or(0.0, |o| simd::exp(o - m));
    let total = sums.iter().sum::<f32>() + own;
    let inv = 1.0 / total;
    for v in row.iter_mut() {
        *v = rnd::<B>(*v * inv);
    }
    rnd::<B>(own * inv)
}
