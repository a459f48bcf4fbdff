//! The f32 and bf16 scan's inner loop: the scores of a group of `G`
//! queries against rows stored in blocks of [`LANES`] rows,
//! dimension-major (row `r`, dimension `d` of a block at
//! `d * LANES + r`). int8 rows have their own kernel (`int8_kernel`).
//!
//! Math: `out[g][row] = scale[row] · Σ_d query[g][d] · widen(x[row][d])`,
//! the sum taken in order `d = 0, 1, …` with one fused multiply-add per
//! term, starting from 0 (the scale is 1 for both formats; kept for a
//! scaled float element). Each of a block's 16 rows
//! sits in its own vector lane, so a block needs no horizontal sum, a
//! stored value is widened once for all `G` queries, and the query value
//! is a broadcast. Every lane accumulates in the same order as [`dot`],
//! so an f32 scan equals [`dot`] bit for bit (what the tests pin).
//!
//! Shapes: the queries are `[D, G]` f32, transposed (`G` in 1, 2, 4, 8,
//! 16; callers pad with zero queries, see [`transpose_queries`]); `blocks` holds whole blocks, `[nb, D, LANES]`;
//! `scales` is `[nb · LANES]` (read only when the element is scaled);
//! `out` is `[G, nb · LANES]`.
//!
//! Register tiles: `G` queries × `R` blocks of accumulators, `R` chosen so
//! `G · R` is 8 to 16 vectors (AVX-512: 16 lanes a register) and the FMA
//! chains are independent enough to hide the FMA latency: (G, R) = (1, 4),
//! (2, 4), (4, 2), (8, 2), (16, 1).
//!
//! Three versions, picked at run time: explicit AVX-512 vectors through
//! `pulp` (x86-64-v4, safe code), and a portable loop compiled for AVX2 +
//! FMA or for the build's baseline (where `mul_add` without hardware FMA
//! is a libm call: correct, slow). All three compute the same bits.
//!
//! Versions (AMD EPYC, 2 vCPUs, AVX-512, D 128; `index-scale`, December
//! 2026): v1 scalar arrays indexed `queries[g * D + d]`: broadcast FMAs,
//! but a bounds check per FMA (f32, 100k rows, B 16: 9.5 ms); v2 the same
//! loops over transposed queries without bounds checks: LLVM vectorised
//! across queries with gathers and scatters (200 ms); v3, this one,
//! explicit `f32x16` accumulators (5.2 ms). At G = 1, 2 blocks a tile
//! left the FMA chains latency-bound (f32, 1M rows, B 1: 24.6 ms), 4 run
//! at 15.2 ms (34 GB/s), 8 were no faster.

use super::element::{Element, FloatElement};

/// Rows of a block: one AVX-512 register of f32.
pub(crate) const LANES: usize = 16;

/// The largest query group one pass scores.
pub(crate) const MAX_GROUP: usize = 16;

/// The padded group size that serves `n` queries (`1 ..= 16`).
pub(crate) fn group_size(n: usize) -> usize {
    n.clamp(1, MAX_GROUP).next_power_of_two()
}

/// `Σ_d q[d] · x[d]` in order with fused multiply-adds from 0: the scan's
/// arithmetic for one (query, row) pair.
pub(crate) fn dot(q: &[f32], x: impl IntoIterator<Item = f32>) -> f32 {
    q.iter()
        .zip(x)
        .fold(0.0f32, |acc, (q, x)| q.mul_add(x, acc))
}

/// Scores `group` queries (`queries_t: [dim, group]`, transposed; `group`
/// from [`group_size`]) against the blocks; see the module doc for shapes.
pub(crate) fn scores<E: FloatElement>(
    queries_t: &[f32],
    group: usize,
    dim: usize,
    blocks: &[E],
    scales: &[f32],
    out: &mut [f32],
) {
    match group {
        1 => dispatch::<E, 1, 4>(queries_t, dim, blocks, scales, out),
        2 => dispatch::<E, 2, 4>(queries_t, dim, blocks, scales, out),
        4 => dispatch::<E, 4, 2>(queries_t, dim, blocks, scales, out),
        8 => dispatch::<E, 8, 2>(queries_t, dim, blocks, scales, out),
        _ => dispatch::<E, 16, 1>(queries_t, dim, blocks, scales, out),
    }
}

/// Runs the explicit AVX-512 kernel ([`V4Tiles`]) when the CPU has
/// x86-64-v4, else [`body`] compiled for AVX2 + FMA or the baseline.
fn dispatch<E: FloatElement, const G: usize, const R: usize>(
    queries_t: &[f32],
    dim: usize,
    blocks: &[E],
    scales: &[f32],
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if let Some(simd) = pulp::x86::V4::try_new() {
            simd.vectorize(V4Tiles::<E, G, R> {
                simd,
                queries_t,
                dim,
                blocks,
                scales,
                out,
            });
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            #[allow(unsafe_code)]
            // SAFETY: AVX2 and FMA were detected just above.
            unsafe {
                avx2::<E, G, R>(queries_t, dim, blocks, scales, out)
            };
            return;
        }
    }
    body::<E, G, R>(queries_t, dim, blocks, scales, out)
}

/// The AVX-512 kernel's arguments; [`pulp::NullaryFnOnce::call`] runs it
/// inlined into pulp's `V4::vectorize` (compiled for x86-64-v4). The
/// accumulators are explicit `f32x16` registers: the same loops over
/// scalar arrays were vectorised across queries with gathers and scatters
/// or not, depending on details of the source (see the module doc).
#[cfg(target_arch = "x86_64")]
struct V4Tiles<'a, E, const G: usize, const R: usize> {
    simd: pulp::x86::V4,
    queries_t: &'a [f32],
    dim: usize,
    blocks: &'a [E],
    scales: &'a [f32],
    out: &'a mut [f32],
}

#[cfg(target_arch = "x86_64")]
impl<E: FloatElement, const G: usize, const R: usize> pulp::NullaryFnOnce for V4Tiles<'_, E, G, R> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        let Self {
            simd,
            queries_t,
            dim,
            blocks,
            scales,
            out,
        } = self;
        let Some((qt, rows, nb)) = shapes::<E, G>(queries_t, dim, blocks, scales, out) else {
            return;
        };
        let n = nb * LANES;
        let mut b = 0;
        while b + R <= nb {
            v4_tile::<E, G, R>(simd, qt, &rows[b * dim..(b + R) * dim], b, scales, out, n);
            b += R;
        }
        while b < nb {
            v4_tile::<E, G, 1>(simd, qt, &rows[b * dim..(b + 1) * dim], b, scales, out, n);
            b += 1;
        }
    }
}

/// [`tile`] with explicit AVX-512 vectors.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn v4_tile<E: FloatElement, const G: usize, const R: usize>(
    simd: pulp::x86::V4,
    qt: &[[f32; G]],
    rows: &[[E; LANES]],
    b0: usize,
    scales: &[f32],
    out: &mut [f32],
    n: usize,
) {
    let dim = qt.len();
    let blocks: [&[[E; LANES]]; R] = std::array::from_fn(|r| &rows[r * dim..(r + 1) * dim]);
    let zero = simd.splat_f32x16(0.0);
    let mut acc = [[zero; R]; G];
    for (d, q) in qt.iter().enumerate() {
        let v: [pulp::f32x16; R] = std::array::from_fn(|r| E::widen_v4(simd, &blocks[r][d]));
        for (acc, &q) in acc.iter_mut().zip(q) {
            let q = simd.splat_f32x16(q);
            for (acc, &v) in acc.iter_mut().zip(&v) {
                *acc = simd.mul_add_f32x16(q, v, *acc);
            }
        }
    }
    for (g, acc) in acc.iter().enumerate() {
        for (r, acc) in acc.iter().enumerate() {
            let row0 = (b0 + r) * LANES;
            let a: [f32; LANES] = pulp::cast(*acc);
            let dst = &mut out[g * n + row0..g * n + row0 + LANES];
            if E::SCALED {
                for ((dst, a), s) in dst.iter_mut().zip(a).zip(&scales[row0..row0 + LANES]) {
                    *dst = a * s;
                }
            } else {
                dst.copy_from_slice(&a);
            }
        }
    }
}

/// The transposed queries as `[D]` of `[f32; G]`, the rows as `[nb · D]`
/// of `[E; LANES]` and the block count, when every slice is long enough.
#[inline(always)]
#[allow(clippy::type_complexity)]
fn shapes<'a, E: Element, const G: usize>(
    queries_t: &'a [f32],
    dim: usize,
    blocks: &'a [E],
    scales: &[f32],
    out: &[f32],
) -> Option<(&'a [[f32; G]], &'a [[E; LANES]], usize)> {
    let (rows, _) = blocks.as_chunks::<LANES>();
    let (qt, _) = queries_t.as_chunks::<G>();
    if dim == 0 || qt.len() < dim {
        debug_assert!(dim == 0, "kernel shapes checked by the caller");
        return None;
    }
    let nb = rows.len() / dim;
    let n = nb * LANES;
    if out.len() < G * n || (E::SCALED && scales.len() < n) {
        debug_assert!(false, "kernel shapes checked by the caller");
        return None;
    }
    Some((&qt[..dim], rows, nb))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn avx2<E: FloatElement, const G: usize, const R: usize>(
    queries_t: &[f32],
    dim: usize,
    blocks: &[E],
    scales: &[f32],
    out: &mut [f32],
) {
    body::<E, G, R>(queries_t, dim, blocks, scales, out)
}

/// The portable kernel: tiles of `R` blocks, then single blocks.
#[inline(always)]
fn body<E: FloatElement, const G: usize, const R: usize>(
    queries_t: &[f32],
    dim: usize,
    blocks: &[E],
    scales: &[f32],
    out: &mut [f32],
) {
    let Some((qt, rows, nb)) = shapes::<E, G>(queries_t, dim, blocks, scales, out) else {
        return;
    };
    let n = nb * LANES;
    let mut b = 0;
    while b + R <= nb {
        tile::<E, G, R>(qt, &rows[b * dim..(b + R) * dim], b, scales, out, n);
        b += R;
    }
    while b < nb {
        tile::<E, G, 1>(qt, &rows[b * dim..(b + 1) * dim], b, scales, out, n);
        b += 1;
    }
}

/// `G` queries × the `R` blocks in `rows` (`[R * D]`, starting at block
/// `b0`), in scalar arrays the compiler vectorises as it sees fit (the
/// portable path; the AVX-512 path is [`v4_tile`]).
#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn tile<E: FloatElement, const G: usize, const R: usize>(
    qt: &[[f32; G]],
    rows: &[[E; LANES]],
    b0: usize,
    scales: &[f32],
    out: &mut [f32],
    n: usize,
) {
    let dim = qt.len();
    let blocks: [&[[E; LANES]]; R] = std::array::from_fn(|r| &rows[r * dim..(r + 1) * dim]);
    let mut acc = [[[0.0f32; LANES]; R]; G];
    for d in 0..dim {
        let q = &qt[d];
        let mut v = [[0.0f32; LANES]; R];
        for r in 0..R {
            let src = &blocks[r][d];
            for l in 0..LANES {
                v[r][l] = src[l].widen();
            }
        }
        for g in 0..G {
            let qg = q[g];
            for r in 0..R {
                for l in 0..LANES {
                    acc[g][r][l] = qg.mul_add(v[r][l], acc[g][r][l]);
                }
            }
        }
    }
    for g in 0..G {
        for r in 0..R {
            let row0 = (b0 + r) * LANES;
            let dst = &mut out[g * n + row0..g * n + row0 + LANES];
            if E::SCALED {
                let s = &scales[row0..row0 + LANES];
                for l in 0..LANES {
                    dst[l] = acc[g][r][l] * s[l];
                }
            } else {
                dst.copy_from_slice(&acc[g][r]);
            }
        }
    }
}

/// `queries: [count, dim]` as `[dim, size]` (transposed), zero padded to
/// `size` queries: the layout [`scores`] reads.
pub(crate) fn transpose_queries(
    queries: &[f32],
    count: usize,
    size: usize,
    dim: usize,
) -> Vec<f32> {
    let mut t = vec![0.0; dim * size];
    for (g, q) in queries.chunks_exact(dim).take(count).enumerate() {
        for (d, &x) in q.iter().enumerate() {
            t[d * size + g] = x;
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::tests::pseudo;

    /// Rows `[n, dim]` laid out in blocks (zero padded).
    fn blocked<E: FloatElement>(rows: &[Vec<f32>], dim: usize) -> (Vec<E>, Vec<f32>) {
        let nb = rows.len().div_ceil(LANES);
        let mut data = vec![E::ZERO; nb * dim * LANES];
        let mut scales = vec![0.0; nb * LANES];
        for (i, row) in rows.iter().enumerate() {
            let s = E::scale_of(row);
            scales[i] = s;
            for (d, &x) in row.iter().enumerate() {
                data[(i / LANES) * dim * LANES + d * LANES + i % LANES] = E::store(x, s);
            }
        }
        (data, scales)
    }

    /// [`scores`] through the portable loop whatever the CPU.
    fn portable_scores<E: FloatElement>(
        qt: &[f32],
        group: usize,
        dim: usize,
        blocks: &[E],
        scales: &[f32],
        out: &mut [f32],
    ) {
        match group {
            1 => body::<E, 1, 4>(qt, dim, blocks, scales, out),
            2 => body::<E, 2, 4>(qt, dim, blocks, scales, out),
            4 => body::<E, 4, 2>(qt, dim, blocks, scales, out),
            8 => body::<E, 8, 2>(qt, dim, blocks, scales, out),
            _ => body::<E, 16, 1>(qt, dim, blocks, scales, out),
        }
    }

    /// Every group size, over a block count that is not a multiple of the
    /// tile: each score equals `dot` over the widened, scaled row.
    fn scores_equal_dot_per_pair<E: FloatElement>() {
        let dim = 19;
        let n = 7 * LANES;
        let rows: Vec<Vec<f32>> = (0..n).map(|i| pseudo(i as u64 + 1, dim)).collect();
        let (data, scales) = blocked::<E>(&rows, dim);
        for group in [1, 2, 4, 8, 16] {
            let q = pseudo(99 + group as u64, group * dim);
            let qt = transpose_queries(&q, group, group, dim);
            let mut out = vec![f32::NAN; group * n];
            scores::<E>(&qt, group, dim, &data, &scales, &mut out);
            let mut portable = vec![f32::NAN; group * n];
            portable_scores::<E>(&qt, group, dim, &data, &scales, &mut portable);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&out), bits(&portable), "group {group}: portable path");
            for g in 0..group {
                for (i, row) in rows.iter().enumerate() {
                    let s = E::scale_of(row);
                    let stored = row.iter().map(|&x| E::store(x, s).widen());
                    let want = dot(&q[g * dim..(g + 1) * dim], stored);
                    let want = if E::SCALED { want * s } else { want };
                    assert_eq!(
                        out[g * n + i].to_bits(),
                        want.to_bits(),
                        "group {group}, query {g}, row {i}"
                    );
                }
            }
        }
    }

    #[test]
    fn f32_scores_equal_dot_bit_for_bit_at_every_group_size() {
        scores_equal_dot_per_pair::<f32>();
    }

    #[test]
    fn bf16_scores_equal_dot_over_widened_rows() {
        scores_equal_dot_per_pair::<u16>();
    }

    #[test]
    fn group_size_pads_to_a_power_of_two_up_to_16() {
        let got: Vec<usize> = [1, 2, 3, 5, 9, 16, 40].map(group_size).to_vec();
        assert_eq!(got, vec![1, 2, 4, 8, 16, 16, 16]);
    }
}
