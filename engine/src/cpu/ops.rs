//! Row-wise fused passes of the CPU stack over `[rows, width]` f32 buffers:
//! RMSNorm (optionally after a residual add), RoPE, the gated GELU and bf16
//! rounding. Each is one pass where candle needs several tensors.

use rayon::prelude::*;

use crate::config::GeluKind;
use crate::numerics::Precision;
use crate::numerics::gelu::gelu_tanh_scalar;

/// Elements per parallel piece of a pass (whole rows); smaller passes stay
/// on the calling thread.
const PIECE: usize = 1 << 14;

use crate::numerics::rope::RopeTables;
pub use crate::numerics::simd::round_bf16;
use crate::numerics::simd::wide;

/// Rounds to bf16 when `B` (the forward dtype is bf16): a compile-time
/// choice, so the loops using it have no branch and vectorise.
#[inline(always)]
pub fn rnd<const B: bool>(x: f32) -> f32 {
    if B { round_bf16(x) } else { x }
}

/// Calls `f::<true>` in bf16 mode, `f::<false>` in f32.
macro_rules! by_precision {
    ($prec:expr, $f:ident($($arg:expr),* $(,)?)) => {
        if $prec.is_bf16() { $f::<true>($($arg),*) } else { $f::<false>($($arg),*) }
    };
}
pub(crate) use by_precision;

/// Rows per parallel piece for rows of `width` elements.
fn piece_rows(width: usize) -> usize {
    (PIECE / width.max(1)).max(1)
}

/// Splits `x` into pieces of whole `width`-wide rows and runs `f(first_row,
/// piece)` on each, in parallel when there is more than one piece.
fn pieces(x: &mut [f32], width: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    let rows = piece_rows(width);
    let width = width.max(1);
    if x.len() <= rows * width {
        f(0, x);
    } else {
        x.par_chunks_mut(rows * width)
            .enumerate()
            .for_each(|(i, p)| f(i * rows, p));
    }
}

/// Rounds every value when `prec` is bf16.
pub fn round(x: &mut [f32], prec: Precision) {
    if prec.is_bf16() {
        pieces(x, 1, |_, p| round_piece::<true>(p));
    }
}

wide!(fn round_piece(x: &mut [f32]) => round_body);

#[inline(always)]
fn round_body<const B: bool>(x: &mut [f32]) {
    x.iter_mut().for_each(|v| *v = rnd::<B>(*v));
}

/// `out = rms_norm(x) * scale` per row of width `scale.len()`: `scale * x /
/// sqrt(mean(x^2) + eps)`, rounded (candle's order of operations, so f32
/// results agree with the candle path).
pub fn rms_norm(x: &[f32], scale: &[f32], eps: f32, prec: Precision, out: &mut [f32]) {
    let d = scale.len();
    pieces(out, d, |r0, o| {
        let x = &x[r0 * d..r0 * d + o.len()];
        by_precision!(prec, rms_piece(x, scale, eps, o));
    });
}

wide!(fn rms_piece(x: &[f32], scale: &[f32], eps: f32, out: &mut [f32]) => rms_body);

#[inline(always)]
fn rms_body<const B: bool>(x: &[f32], scale: &[f32], eps: f32, out: &mut [f32]) {
    let d = scale.len();
    for (o, x) in out.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
        let sum2: f32 = x.iter().map(|v| v * v).sum();
        let m = (sum2 / d as f32 + eps).sqrt();
        for ((o, &v), &g) in o.iter_mut().zip(x).zip(scale) {
            *o = rnd::<B>(v / m * g);
        }
    }
}

/// The sandwich residual: `h = round(h + round(rms_norm(y) * scale))` per row,
/// in place on `h`.
pub fn residual_norm(h: &mut [f32], y: &[f32], scale: &[f32], eps: f32, prec: Precision) {
    let d = scale.len();
    pieces(h, d, |r0, hp| {
        let y = &y[r0 * d..r0 * d + hp.len()];
        by_precision!(prec, residual_piece(hp, y, scale, eps));
    });
}

wide!(fn residual_piece(h: &mut [f32], y: &[f32], scale: &[f32], eps: f32) => residual_body);

#[inline(always)]
fn residual_body<const B: bool>(h: &mut [f32], y: &[f32], scale: &[f32], eps: f32) {
    let d = scale.len();
    for (h, y) in h.chunks_exact_mut(d).zip(y.chunks_exact(d)) {
        let sum2: f32 = y.iter().map(|v| v * v).sum();
        let m = (sum2 / d as f32 + eps).sqrt();
        for ((hv, &yv), &g) in h.iter_mut().zip(y).zip(scale) {
            *hv = rnd::<B>(*hv + rnd::<B>(yv / m * g));
        }
    }
}

/// RoPE in place on the heads in the first `rotated` columns of each
/// `width`-wide row of `x` (heads of width `2 * tables.half`); row `r` is
/// token `r % T` of its sequence (split halves:
/// `[x1, x2] -> [x1 cos - x2 sin, x2 cos + x1 sin]`), rounded after.
pub fn rope(x: &mut [f32], width: usize, rotated: usize, t: &RopeTables, prec: Precision) {
    pieces(x, width, |r0, p| {
        by_precision!(prec, rope_piece(p, r0, width, rotated, t));
    });
}

wide!(fn rope_piece(x: &mut [f32], r0: usize, width: usize, rotated: usize, t: &RopeTables) => rope_body);

#[inline(always)]
fn rope_body<const B: bool>(
    x: &mut [f32],
    r0: usize,
    width: usize,
    rotated: usize,
    t: &RopeTables,
) {
    let half = t.half;
    for (i, row) in x.chunks_exact_mut(width).enumerate() {
        let at = ((r0 + i) % t.tokens.max(1)) * half;
        let (cos, sin) = (&t.cos[at..at + half], &t.sin[at..at + half]);
        for head in row[..rotated].chunks_exact_mut(2 * half) {
            let (x1, x2) = head.split_at_mut(half);
            for (((a, b), &c), &s) in x1.iter_mut().zip(x2.iter_mut()).zip(cos).zip(sin) {
                let (y1, y2) = (*a * c - *b * s, *b * c + *a * s);
                *a = rnd::<B>(y1);
                *b = rnd::<B>(y2);
            }
        }
    }
}

/// Exact GELU, `x Φ(x)`, through candle's `erf` (a call per element).
#[inline(always)]
fn gelu_erf(x: f32) -> f32 {
    (candle_core::cpu::erf::erf_f32(x * std::f32::consts::FRAC_1_SQRT_2) + 1.0) * 0.5 * x
}

/// The gated GELU on the fused `[rows, 2F]` projection (GELU branch in the
/// first F columns, linear branch in the last F): writes
/// `round(round(gelu(round(g))) * round(l))` into `out: [rows, F]`.
pub fn gated_gelu(gl: &[f32], f: usize, kind: GeluKind, prec: Precision, out: &mut [f32]) {
    pieces(out, f, |r0, o| {
        let gl = &gl[r0 * 2 * f..r0 * 2 * f + 2 * o.len()];
        match kind {
            GeluKind::Tanh => by_precision!(prec, gated_tanh_piece(gl, f, o)),
            GeluKind::Erf => by_precision!(prec, gated_erf_piece(gl, f, o)),
        }
    });
}

wide!(fn gated_tanh_piece(gl: &[f32], f: usize, out: &mut [f32]) => gated_tanh_body);
wide!(fn gated_erf_piece(gl: &[f32], f: usize, out: &mut [f32]) => gated_erf_body);

#[inline(always)]
fn gated_tanh_body<const B: bool>(gl: &[f32], f: usize, out: &mut [f32]) {
    gated_body::<B>(gl, f, out, gelu_tanh_scalar);
}

#[inline(always)]
fn gated_erf_body<const B: bool>(gl: &[f32], f: usize, out: &mut [f32]) {
    gated_body::<B>(gl, f, out, gelu_erf);
}

#[inline(always)]
fn gated_body<const B: bool>(gl: &[f32], f: usize, out: &mut [f32], gelu: impl Fn(f32) -> f32) {
    for (o, row) in out.chunks_exact_mut(f).zip(gl.chunks_exact(2 * f)) {
        let (g, l) = row.split_at(f);
        for ((ov, &gv), &lv) in o.iter_mut().zip(g).zip(l) {
            *ov = rnd::<B>(rnd::<B>(gelu(rnd::<B>(gv))) * rnd::<B>(lv));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FpropDtype;

    const F32: Precision = Precision(FpropDtype::F32);

    #[test]
    fn rms_norm_of_a_constant_row_is_its_scale() {
        let x = vec![3.0f32; 8];
        let scale: Vec<f32> = (0..8).map(|i| i as f32).collect();
        let mut out = vec![0f32; 8];
        rms_norm(&x, &scale, 0.0, F32, &mut out);
        assert_eq!(out, scale);
    }

    #[test]
    fn residual_norm_adds_the_normed_branch() {
        let mut h = vec![1.0f32, 2.0];
        let y = vec![-4.0f32, -4.0]; // normed to [-1, -1]
        residual_norm(&mut h, &y, &[1.0, 2.0], 0.0, F32);
        assert_eq!(h, vec![0.0, 0.0]);
    }

    #[test]
    fn rope_at_position_zero_is_identity_and_rotates_by_the_angle() {
        let inv = vec![1.0f32, 0.5];
        let x0 = vec![1.0f32, 2.0, 3.0, 4.0];
        let mut x = x0.clone();
        rope(&mut x, 4, 4, &RopeTables::new(&[0], &inv), F32);
        assert_eq!(x, x0);
        rope(&mut x, 4, 4, &RopeTables::new(&[2], &inv), F32);
        // pair (x1[0], x2[0]) = (1, 3) turned by 2 rad; (2, 4) by 1 rad.
        let (c2, s2, c1, s1) = (2f32.cos(), 2f32.sin(), 1f32.cos(), 1f32.sin());
        let want = [
            1.0 * c2 - 3.0 * s2,
            2.0 * c1 - 4.0 * s1,
            3.0 * c2 + s2,
            4.0 * c1 + 2.0 * s1,
        ];
        for (g, w) in x.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{x:?} vs {want:?}");
        }
    }

    #[test]
    fn gated_gelu_multiplies_the_branches() {
        let gl = vec![0.0f32, 10.0, 5.0, 2.0]; // F = 2: gelu([0, 10]) * [5, 2]
        let mut out = vec![f32::NAN; 2];
        gated_gelu(&gl, 2, GeluKind::Tanh, F32, &mut out);
        assert_eq!(out[0], 0.0);
        assert!((out[1] - 20.0).abs() < 1e-4, "{out:?}");
        gated_gelu(&gl, 2, GeluKind::Erf, F32, &mut out);
        assert!((out[1] - 20.0).abs() < 1e-4, "{out:?}");
    }

    #[test]
    fn bf16_rounding_is_nearest_even() {
        let mut x = vec![1.0 + 1.0 / 256.0, 1.0 + 3.0 / 256.0];
        round(&mut x, Precision(FpropDtype::Bf16));
        assert_eq!(x, vec![1.0, 1.0 + 4.0 / 256.0]);
    }
}
