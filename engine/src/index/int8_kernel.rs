//! The int8 scan: integer dot products of a quantised query with the
//! quantised rows, then scaled. Approximate (the query is quantised too);
//! the search re-scores its deeper candidate list exactly (`search`).
//!
//! Math: a query `q` is quantised like a row (`s_q = max|q| / 127`,
//! `q_i = round(q / s_q)`); a row is stored as `x_u = x_i + 128` (u8).
//! `Σ_d x_u · q_i = Σ x_i · q_i + 128 · Σ q_i`, so the score is
//! `(Σ_d x_u · q_i − 128 · Σ q_i) · s_q · s_x`. Every sum is exact in i32
//! (|Σ| ≤ 255 · 127 · D, below 2^31 for D ≤ 66 000), so the AVX-512 VNNI
//! path and the portable path give the same bits.
//!
//! Layout: blocks of [`LANES`] rows; inside a block, dimensions in groups
//! of [`PACK`], each group a 64-byte line of 16 rows × 4 values (row `r`,
//! dimension `d` of block `b` at `((b · D4/4 + d/4) · 16 + r) · 4 + d % 4`,
//! `D4` = D rounded up to 4, padding 0 = byte 128). One `vpdpbusd`
//! multiplies a line by a query's four bytes broadcast: 64 products,
//! where the float kernel does 16 a fused multiply-add.
//!
//! Shapes: `packed` is `[D4/4, G]` i32 (four query bytes, little endian),
//! `corr` and `qscale` `[G]`; `rows` `[nb · D4/4]` lines; `scales`
//! `[nb · 16]`; `out` `[G, nb · 16]` f32. One block a tile (R = 1), so the
//! loads are one sequential stream; `G` queries give `G` independent
//! accumulator chains.
//!
//! Versions (AMD EPYC, 2 vCPUs, 1M rows, D 128, B 1, k 100, ratios to
//! the f32 scan in the same run; `index-scale`, December 2026): v1 the
//! float kernel over int8 rows (widen, FMA with the f32 query; exact, no
//! re-scoring): 1.6x; v2 VNNI over tiles of 4 blocks (4 interleaved load
//! streams): 1.5x; v3, this one, VNNI one block a tile: 2.9-3.4x, 5.4x
//! once the candidate selection stopped dominating (`select`).

use super::element::{quant_scale, quantise};
use super::kernel::LANES;

/// Query bytes packed in one 32-bit lane.
pub(crate) const PACK: usize = 4;

/// A group of queries quantised for the int8 kernel.
#[derive(Debug, Clone)]
pub(crate) struct QuantisedQueries {
    /// `[D4/4, size]`: four quantised values of a query per i32.
    pub packed: Vec<i32>,
    /// `[size]`: `128 · Σ q_i`, the offset's contribution.
    pub corr: Vec<i32>,
    /// `[size]`: `s_q` (NaN for a query with a non-finite value, so its
    /// scores are dropped).
    pub scale: Vec<f32>,
}

/// Quantises `queries: [count, dim]` for the kernel, zero padded to `size`
/// queries and `D4` dimensions.
pub(crate) fn quantise_queries(
    queries: &[f32],
    count: usize,
    size: usize,
    dim: usize,
) -> QuantisedQueries {
    let lines = dim.div_ceil(PACK);
    let mut out = QuantisedQueries {
        packed: vec![0; lines * size],
        corr: vec![0; size],
        scale: vec![0.0; size],
    };
    for (g, q) in queries.chunks_exact(dim).take(count).enumerate() {
        let s = quant_scale(q);
        let finite = q.iter().all(|x| x.is_finite());
        let mut qi = vec![0i8; lines * PACK];
        for (qi, &x) in qi.iter_mut().zip(q) {
            *qi = quantise(x, s);
        }
        out.corr[g] = 128 * qi.iter().map(|&v| i32::from(v)).sum::<i32>();
        out.scale[g] = if finite { s } else { f32::NAN };
        for (j, four) in qi.chunks_exact(PACK).enumerate() {
            out.packed[j * size + g] =
                i32::from_le_bytes([four[0] as u8, four[1] as u8, four[2] as u8, four[3] as u8]);
        }
    }
    out
}

/// Scores a group of `group` queries (from `kernel::group_size`) against
/// whole blocks of rows `dim` wide; see the module doc for shapes.
pub(crate) fn scores(
    q: &QuantisedQueries,
    group: usize,
    dim: usize,
    blocks: &[u8],
    scales: &[f32],
    out: &mut [f32],
) {
    match group {
        1 => dispatch::<1, 1>(q, dim, blocks, scales, out),
        2 => dispatch::<2, 1>(q, dim, blocks, scales, out),
        4 => dispatch::<4, 1>(q, dim, blocks, scales, out),
        8 => dispatch::<8, 1>(q, dim, blocks, scales, out),
        _ => dispatch::<16, 1>(q, dim, blocks, scales, out),
    }
}

/// The arguments, shaped: `[D4/4]` of `[i32; G]`, lines, blocks.
struct Shaped<'a, const G: usize> {
    packed: &'a [[i32; G]],
    lines: &'a [[u8; 64]],
    nb: usize,
    corr: &'a [i32],
    qscale: &'a [f32],
}

fn shape<'a, const G: usize>(
    q: &'a QuantisedQueries,
    dim: usize,
    blocks: &'a [u8],
    scales: &[f32],
    out: &[f32],
) -> Option<Shaped<'a, G>> {
    let per_block = dim.div_ceil(PACK); // lines a block
    let (packed, _) = q.packed.as_chunks::<G>();
    let (lines, _) = blocks.as_chunks::<64>();
    if dim == 0 || packed.len() < per_block || q.corr.len() < G || q.scale.len() < G {
        debug_assert!(dim == 0, "kernel shapes checked by the caller");
        return None;
    }
    let nb = lines.len() / per_block;
    if out.len() < G * nb * LANES || scales.len() < nb * LANES {
        debug_assert!(false, "kernel shapes checked by the caller");
        return None;
    }
    Some(Shaped {
        packed: &packed[..per_block],
        lines,
        nb,
        corr: &q.corr[..G],
        qscale: &q.scale[..G],
    })
}

/// Whether the CPU has AVX-512 with VNNI; checked once.
#[cfg(target_arch = "x86_64")]
fn has_vnni() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    })
}

fn dispatch<const G: usize, const R: usize>(
    q: &QuantisedQueries,
    dim: usize,
    blocks: &[u8],
    scales: &[f32],
    out: &mut [f32],
) {
    let Some(s) = shape::<G>(q, dim, blocks, scales, out) else {
        return;
    };
    #[cfg(target_arch = "x86_64")]
    if has_vnni() {
        #[allow(unsafe_code)]
        // SAFETY: the CPU has AVX-512 F, BW, VL and VNNI (checked just
        // above), every feature `vnni` is compiled for.
        unsafe {
            vnni::<G, R>(&s, scales, out)
        };
        return;
    }
    portable::<G>(&s, scales, out);
}

/// `out[g · n + row] = (acc − corr[g]) · s_q[g] · s_x[row]`.
#[inline(always)]
fn epilogue<const G: usize>(
    s: &Shaped<'_, G>,
    acc: &[[i32; LANES]; G],
    row0: usize,
    scales: &[f32],
    out: &mut [f32],
) {
    let n = s.nb * LANES;
    let sx = &scales[row0..row0 + LANES];
    for (g, acc) in acc.iter().enumerate() {
        let dst = &mut out[g * n + row0..g * n + row0 + LANES];
        let (corr, qs) = (s.corr[g], s.qscale[g]);
        for ((dst, &a), &sx) in dst.iter_mut().zip(acc).zip(sx) {
            *dst = (a - corr) as f32 * (qs * sx);
        }
    }
}

/// The AVX-512 VNNI kernel.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn vnni<const G: usize, const R: usize>(s: &Shaped<'_, G>, scales: &[f32], out: &mut [f32]) {
    let mut b = 0;
    while b + R <= s.nb {
        vnni_tile::<G, R>(s, b, scales, out);
        b += R;
    }
    while b < s.nb {
        vnni_tile::<G, 1>(s, b, scales, out);
        b += 1;
    }
}

/// `G` queries × blocks `b0 .. b0 + R`, accumulators in registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
fn vnni_tile<const G: usize, const R: usize>(
    s: &Shaped<'_, G>,
    b0: usize,
    scales: &[f32],
    out: &mut [f32],
) {
    use std::arch::x86_64::{
        __m512i, _mm512_dpbusd_epi32, _mm512_set1_epi32, _mm512_setzero_si512,
    };
    let per_block = s.packed.len();
    let blocks: [&[[u8; 64]]; R] =
        std::array::from_fn(|r| &s.lines[(b0 + r) * per_block..(b0 + r + 1) * per_block]);
    let mut acc = [[_mm512_setzero_si512(); R]; G];
    for (j, q) in s.packed.iter().enumerate() {
        let v: [__m512i; R] = std::array::from_fn(|r| pulp::cast(blocks[r][j]));
        for (acc, &q) in acc.iter_mut().zip(q) {
            let q = _mm512_set1_epi32(q);
            for (acc, &v) in acc.iter_mut().zip(&v) {
                *acc = _mm512_dpbusd_epi32(*acc, v, q);
            }
        }
    }
    // `acc` is [G][R]; block r's accumulators are one column.
    #[allow(clippy::needless_range_loop)]
    for r in 0..R {
        let lanes: [[i32; LANES]; G] = std::array::from_fn(|g| pulp::cast(acc[g][r]));
        epilogue::<G>(s, &lanes, (b0 + r) * LANES, scales, out);
    }
}

/// The same sums in plain integer code, block by block.
fn portable<const G: usize>(s: &Shaped<'_, G>, scales: &[f32], out: &mut [f32]) {
    let per_block = s.packed.len();
    for b in 0..s.nb {
        let mut acc = [[0i32; LANES]; G];
        for (line, q) in s.lines[b * per_block..(b + 1) * per_block]
            .iter()
            .zip(s.packed)
        {
            for (acc, q) in acc.iter_mut().zip(q) {
                let qb = q.to_le_bytes().map(|v| i32::from(v as i8));
                for (a, x) in acc.iter_mut().zip(line.chunks_exact(PACK)) {
                    *a += x
                        .iter()
                        .zip(qb)
                        .map(|(&x, q)| i32::from(x) * q)
                        .sum::<i32>();
                }
            }
        }
        epilogue::<G>(s, &acc, b * LANES, scales, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::element::Element;
    use crate::index::tests::pseudo;

    /// Rows `[n, dim]` in the int8 layout, and their scales.
    fn pack_rows(rows: &[Vec<f32>], dim: usize) -> (Vec<u8>, Vec<f32>) {
        let lines = dim.div_ceil(PACK);
        let nb = rows.len().div_ceil(LANES);
        let mut data = vec![u8::ZERO; nb * lines * 64];
        let mut scales = vec![0.0; nb * LANES];
        for (i, row) in rows.iter().enumerate() {
            let s = u8::scale_of(row);
            scales[i] = s;
            for (d, &x) in row.iter().enumerate() {
                let at = (((i / LANES) * lines + d / PACK) * LANES + i % LANES) * PACK + d % PACK;
                data[at] = u8::store(x, s);
            }
        }
        (data, scales)
    }

    /// [`scores`] through the portable loop whatever the CPU.
    fn portable_scores(
        q: &QuantisedQueries,
        group: usize,
        dim: usize,
        data: &[u8],
        scales: &[f32],
        out: &mut [f32],
    ) {
        fn run<const G: usize>(
            q: &QuantisedQueries,
            dim: usize,
            data: &[u8],
            scales: &[f32],
            out: &mut [f32],
        ) {
            let s = shape::<G>(q, dim, data, scales, out).expect("shapes");
            portable::<G>(&s, scales, out);
        }
        match group {
            1 => run::<1>(q, dim, data, scales, out),
            2 => run::<2>(q, dim, data, scales, out),
            4 => run::<4>(q, dim, data, scales, out),
            8 => run::<8>(q, dim, data, scales, out),
            _ => run::<16>(q, dim, data, scales, out),
        }
    }

    #[test]
    fn vnni_and_portable_paths_equal_the_integer_dot_at_every_group_size() {
        let dim = 19; // not a multiple of 4: one padded line
        let n = 7 * LANES;
        let rows: Vec<Vec<f32>> = (0..n).map(|i| pseudo(i as u64 + 1, dim)).collect();
        let (data, scales) = pack_rows(&rows, dim);
        for group in [1, 2, 4, 8, 16] {
            let q = pseudo(77 + group as u64, group * dim);
            let qq = quantise_queries(&q, group, group, dim);
            let mut fast = vec![f32::NAN; group * n];
            scores(&qq, group, dim, &data, &scales, &mut fast);
            let mut plain = vec![f32::NAN; group * n];
            portable_scores(&qq, group, dim, &data, &scales, &mut plain);
            for g in 0..group {
                let qg = &q[g * dim..(g + 1) * dim];
                let sq = quant_scale(qg);
                for (i, row) in rows.iter().enumerate() {
                    let sx = u8::scale_of(row);
                    let int: i32 = qg
                        .iter()
                        .zip(row)
                        .map(|(&a, &x)| i32::from(quantise(a, sq)) * i32::from(quantise(x, sx)))
                        .sum();
                    let want = int as f32 * (sq * sx);
                    let at = g * n + i;
                    assert_eq!(
                        fast[at].to_bits(),
                        want.to_bits(),
                        "group {group}, q {g}, row {i}"
                    );
                    assert_eq!(
                        plain[at].to_bits(),
                        want.to_bits(),
                        "portable {group}/{g}/{i}"
                    );
                    let exact: f32 = qg.iter().zip(row).map(|(a, x)| a * x).sum();
                    assert!((want - exact).abs() < 0.02, "{want} vs {exact}");
                }
            }
        }
    }

    #[test]
    fn a_query_with_a_non_finite_value_scores_nan() {
        let q = quantise_queries(&[f32::NAN, 0.5, 1.0, 0.0], 1, 1, 4);
        assert!(q.scale[0].is_nan());
        let q = quantise_queries(&[0.25, -1.0], 1, 2, 2);
        assert_eq!((q.corr[0], q.scale[1]), (128 * (32 - 127), 0.0));
    }
}
