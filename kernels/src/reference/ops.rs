//! References for the fused ops (kernels/src/cu/ops.cu), with the same
//! rounding points. Row ops take `[rows, D]` row-major f32.

use half::bf16;

use super::round_bf16;

fn maybe_round(x: f32, round: bool) -> f32 {
    if round { round_bf16(x) } else { x }
}

fn inv_rms(row: impl Iterator<Item = f32>, d: usize, eps: f32) -> f32 {
    let ss: f64 = row.map(|v| f64::from(v) * f64::from(v)).sum();
    1.0 / ((ss / d as f64) as f32 + eps).sqrt()
}

/// `bf16(x / sqrt(mean(x^2) + eps) * scale)` per row.
pub fn rms_norm(x: &[f32], scale: &[f32], eps: f32, round_in: bool) -> Vec<bf16> {
    let d = scale.len();
    x.chunks_exact(d)
        .flat_map(|row| {
            let r = inv_rms(row.iter().map(|&v| maybe_round(v, round_in)), d, eps);
            row.iter()
                .zip(scale)
                .map(move |(&v, &s)| bf16::from_f32(maybe_round(v, round_in) * r * s))
        })
        .collect()
}

/// `h = round(h + round(rms(round(y)) * s_post))`, then `bf16(rms(h) * s_next)`.
/// Updates `h` in place; returns the next pre-norm (empty without `s_next`).
pub fn residual_rms_norm(
    h: &mut [f32],
    y: &[f32],
    s_post: &[f32],
    s_next: Option<&[f32]>,
    eps: f32,
    round: bool,
) -> Vec<bf16> {
    let d = s_post.len();
    let mut next = Vec::new();
    for (hr, yr) in h.chunks_exact_mut(d).zip(y.chunks_exact(d)) {
        let r = inv_rms(yr.iter().map(|&v| maybe_round(v, round)), d, eps);
        for ((hv, &yv), &s) in hr.iter_mut().zip(yr).zip(s_post) {
            let n = maybe_round(maybe_round(yv, round) * r * s, round);
            *hv = maybe_round(*hv + n, round);
        }
        if let Some(sn) = s_next {
            let r2 = inv_rms(hr.iter().copied(), d, eps);
            next.extend(hr.iter().zip(sn).map(|(&v, &s)| bf16::from_f32(v * r2 * s)));
        }
    }
    next
}

/// Shapes of [`qkv_rope`].
#[derive(Debug, Clone, Copy)]
pub struct QkvShape {
    /// Batch rows B.
    pub batch: usize,
    /// Tokens per row T.
    pub tokens: usize,
    /// Query heads.
    pub q_heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Head width K (even).
    pub head_dim: usize,
}

/// Splits `qkv: [B*T, (Hq+2Hkv)*K]` into RoPE'd `q: [B*T, Hq, K]` and
/// `k: [B, Hkv, T, K]` plus `v: [B, Hkv, T, K]`.
pub fn qkv_rope(
    s: QkvShape,
    qkv: &[f32],
    pos: &[i32],
    inv_freq: &[f32],
    round: bool,
) -> (Vec<bf16>, Vec<bf16>, Vec<bf16>) {
    let QkvShape {
        batch,
        tokens,
        q_heads: hq,
        kv_heads: hkv,
        head_dim: k,
    } = s;
    let half = k / 2;
    let w = (hq + 2 * hkv) * k;
    let zero = bf16::from_f32(0.0);
    let mut q = vec![zero; batch * tokens * hq * k];
    let mut ko = vec![zero; batch * hkv * tokens * k];
    let mut vo = vec![zero; batch * hkv * tokens * k];
    for r in 0..batch * tokens {
        let (b, t) = (r / tokens, r % tokens);
        let src = &qkv[r * w..][..w];
        let p = pos[r] as f32;
        for h in 0..hq + hkv {
            let x = &src[h * k..][..k];
            let dst = if h < hq {
                &mut q[(r * hq + h) * k..][..k]
            } else {
                &mut ko[((b * hkv + h - hq) * tokens + t) * k..][..k]
            };
            for i in 0..half {
                let (x1, x2) = (maybe_round(x[i], round), maybe_round(x[i + half], round));
                let (sn, cs) = (p * inv_freq[i]).sin_cos();
                dst[i] = bf16::from_f32(x1 * cs - x2 * sn);
                dst[i + half] = bf16::from_f32(x2 * cs + x1 * sn);
            }
        }
        for h in 0..hkv {
            let v = &src[(hq + hkv + h) * k..][..k];
            let dst = &mut vo[((b * hkv + h) * tokens + t) * k..][..k];
            for (d, &x) in dst.iter_mut().zip(v) {
                *d = bf16::from_f32(x);
            }
        }
    }
    (q, ko, vo)
}

/// GELU, tanh form written as `x / (1 + exp(-2u))`, or the erf form.
pub fn gelu(x: f32, erf_kind: bool) -> f32 {
    if erf_kind {
        (0.5 * f64::from(x) * (1.0 + erf(f64::from(x) / std::f64::consts::SQRT_2))) as f32
    } else {
        let u = 0.797_884_6 * x * (1.0 + 0.044_715 * x * x);
        x / (1.0 + (-2.0 * u).exp())
    }
}

/// erf by its series / continued fraction, good to ~1e-15 (std has none).
fn erf(x: f64) -> f64 {
    if x.abs() < 2.5 {
        // Maclaurin series.
        let mut sum = x;
        let mut term = x;
        let x2 = x * x;
        for n in 1..80 {
            term *= -x2 / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        // erfc continued fraction (Lentz), accurate for |x| >= 2.5.
        let ax = x.abs();
        let mut f = ax;
        for n in (1..60).rev() {
            f = ax + (n as f64 / 2.0) / f;
        }
        let erfc = (-ax * ax).exp() / (f * std::f64::consts::PI.sqrt());
        (1.0 - erfc).copysign(x)
    }
}

/// `bf16(round(round(gelu(round(gate))) * round(lin)))` over `gl: [rows, 2F]`.
pub fn gated_gelu(gl: &[f32], f: usize, erf_kind: bool, round: bool) -> Vec<bf16> {
    gl.chunks_exact(2 * f)
        .flat_map(|row| {
            (0..f).map(move |j| {
                let g = maybe_round(row[j], round);
                let l = maybe_round(row[f + j], round);
                let ge = maybe_round(gelu(g, erf_kind), round);
                bf16::from_f32(maybe_round(ge * l, round))
            })
        })
        .collect()
}

/// Shapes of [`gather_rows`]: `rows` output rows, each taking `per_row`
/// table rows of width `dim`, written side by side from column
/// `out_offset` of an output row `out_stride` wide.
#[derive(Debug, Clone, Copy)]
pub struct GatherShape {
    /// Output rows.
    pub rows: usize,
    /// Indices (hashes) per output row H.
    pub per_row: usize,
    /// Table width D.
    pub dim: usize,
    /// Rows in the table.
    pub table_rows: usize,
    /// Index 0 gives zeros (hash tables: hash 0 is padding); otherwise
    /// every index in `[0, table_rows)` is a row (the product-surface table).
    pub skip_row0: bool,
    /// Width of an output row, elements.
    pub out_stride: usize,
    /// First output column written.
    pub out_offset: usize,
}

/// `out[r, off + j*D + c] = table[idx[r*H + j], c]`, or 0 when the index is
/// out of range (or 0 with `skip_row0`); columns outside
/// `off..off + H*D` are not touched.
pub fn gather_rows(idx: &[i32], table: &[bf16], s: GatherShape, out: &mut [bf16]) {
    let d = s.dim;
    let lo = i32::from(s.skip_row0);
    for r in 0..s.rows {
        for j in 0..s.per_row {
            let h = idx[r * s.per_row + j];
            let dst = &mut out[r * s.out_stride + s.out_offset + j * d..][..d];
            if h >= lo && (h as usize) < s.table_rows {
                dst.copy_from_slice(&table[h as usize * d..][..d]);
            } else {
                dst.fill(bf16::ZERO);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_of_a_constant_row_is_the_scale() {
        let out = rms_norm(&[3.0; 4], &[1.0, 2.0, 0.5, -1.0], 0.0, false);
        let out: Vec<f32> = out.iter().map(|v| v.to_f32()).collect();
        assert_eq!(out, vec![1.0, 2.0, 0.5, -1.0]);
    }

    #[test]
    fn residual_adds_the_normed_update_and_prenorms_the_result() {
        let mut h = vec![1.0, -1.0];
        let next = residual_rms_norm(
            &mut h,
            &[2.0, 2.0],
            &[1.0, 1.0],
            Some(&[1.0, 1.0]),
            0.0,
            false,
        );
        assert_eq!(h, vec![2.0, 0.0]);
        let next: Vec<f32> = next.iter().map(|v| v.to_f32()).collect();
        assert!((next[0] - 2f32.sqrt()).abs() < 1e-2 && next[1] == 0.0);
    }

    #[test]
    fn rope_at_position_zero_is_the_identity_and_rotates_by_angle() {
        let s = QkvShape {
            batch: 1,
            tokens: 2,
            q_heads: 1,
            kv_heads: 1,
            head_dim: 2,
        };
        // Rows: q = [1, 0], k = [0, 1], v = [5, 6].
        let qkv = [1.0, 0.0, 0.0, 1.0, 5.0, 6.0, 1.0, 0.0, 0.0, 1.0, 5.0, 6.0];
        let angle = std::f32::consts::FRAC_PI_2;
        let (q, k, v) = qkv_rope(s, &qkv, &[0, 1], &[angle], false);
        let f = |x: &[bf16]| x.iter().map(|v| v.to_f32()).collect::<Vec<_>>();
        assert_eq!(f(&q[..2]), vec![1.0, 0.0]);
        // Position 1 rotates q = [1, 0] by 90 degrees: [cos, sin] = [0, 1].
        let q1 = f(&q[2..]);
        assert!(q1[0].abs() < 1e-6 && (q1[1] - 1.0).abs() < 1e-6);
        let k1 = f(&k[2..]);
        assert!((k1[0] + 1.0).abs() < 1e-6 && k1[1].abs() < 1e-6);
        assert_eq!(f(&v), vec![5.0, 6.0, 5.0, 6.0]);
    }

    #[test]
    fn gelu_forms_agree_with_known_values() {
        for (x, want) in [(0.0f32, 0.0f32), (1.0, 0.841_192), (-2.0, -0.045_402)] {
            assert!((gelu(x, false) - want).abs() < 1e-4, "tanh form at {x}");
        }
        for (x, want) in [(1.0f32, 0.841_344_7f32), (-3.0, -0.004_049_8)] {
            assert!((gelu(x, true) - want).abs() < 1e-6, "erf form at {x}");
        }
        let out = gated_gelu(&[1.0, 2.0], 1, true, false);
        assert!((out[0].to_f32() - 2.0 * 0.841_344_7).abs() < 1e-2);
    }
    #[test]
    fn gather_copies_rows_zeroes_padding_and_leaves_other_columns() {
        let b = |v: f32| bf16::from_f32(v);
        // Table of 4 rows, D = 2: row r = [10r, 10r + 1].
        let table: Vec<bf16> = (0..8).map(|i| b((i / 2 * 10 + i % 2) as f32)).collect();
        let s = GatherShape {
            rows: 2,
            per_row: 2,
            dim: 2,
            table_rows: 4,
            skip_row0: true,
            out_stride: 6,
            out_offset: 1,
        };
        let mut out = vec![b(-1.0); 12];
        gather_rows(&[3, 0, 1, 9], &table, s, &mut out);
        let got: Vec<f32> = out.iter().map(|v| v.to_f32()).collect();
        assert_eq!(
            got,
            vec![-1., 30., 31., 0., 0., -1., -1., 10., 11., 0., 0., -1.]
        );
        // Without skip_row0, index 0 is a row like any other; -1 is out of range.
        let s = GatherShape {
            skip_row0: false,
            per_row: 1,
            out_stride: 2,
            out_offset: 0,
            ..s
        };
        let mut out = vec![b(-1.0); 4];
        gather_rows(&[0, -1], &table, s, &mut out);
        let got: Vec<f32> = out.iter().map(|v| v.to_f32()).collect();
        assert_eq!(got, vec![0., 1., 0., 0.]);
    }
}
