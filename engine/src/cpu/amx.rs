//! bf16 matrix products on Intel AMX tiles (`TDPBF16PS`), f32 accumulation.
//!
//! Math: `C[M, N] = A[M, K] · B[K, N]` with bf16 inputs and every product
//! summed in f32, the contract of the reference's bf16 matmuls (the products
//! of two bf16 values are exact in f32). `B` is a weight packed once
//! ([`PackedBf16`]); `A` is converted per call.
//!
//! Why AMX and not AVX-512 BF16: on this project's CPU (Sapphire Rapids, 2
//! cores) `VDPBF16PS zmm` measured 53 GFLOP/s per core against 105 for f32
//! `VFMADD` (12 independent chains, `/tmp` microbenchmark, 2026-11-28): half
//! the f32 rate, so it cannot make a bf16 path faster. One `TDPBF16PS` does a
//! 16x16x32 block; measured 0.98-2.2 TFLOP/s per core on the same machine.
//!
//! Layout and launch: both operands are packed in 16x32 bf16 tiles (1 KB,
//! rows of 64 bytes) in the order the kernel reads them. `B` (the weight,
//! once) is padded to `Kp = ceil32(K)`, `Np = ceil32(N)`; for each 32-column
//! strip and each 32-deep K step it holds the strip's two 16-column tiles in
//! AMX's pair-interleaved ("VNNI") order. `A` (per call) is padded to
//! `ceil32(M)` rows; for each 32-row block and K step it holds the two
//! 16-row tiles. One `asm!` block computes 32 full rows of `C` against every
//! column strip: per strip, tiles 0-3 accumulate the 2x2 tile block over K
//! (two A tiles in 4-5, two B tiles in 6-7, four `TDPBF16PS` per step) and
//! are stored straight into `C`. The tile configuration is loaded once per
//! block of rows and released at the end, so no tile state crosses Rust
//! code. Blocks of 32 rows run in parallel on rayon; a ragged last block or
//! strip goes through a padded scratch block.
//!
//! Measured speed (`cargo run --release -p foryou-benches --bin cpu-kernels`,
//! 2 vCPUs, the mid shape's layer products, packing of A included): 318-382
//! GFLOP/s, 1.9-2.3x the f32 `gemm` crate on the same products
//! (`benches/results/cpu_engine_vs_jax_2026-11-28.md`). That is 20-35 % of
//! the tiles' peak: each step loads 4 KB of tiles for four `TDPBF16PS`, so
//! the loop waits on L2; K blocking (A kept in L1) is the next step.
//!
//! Stable Rust has no AMX intrinsics (`x86_amx_intrinsics` is unstable), so
//! the kernel is inline assembly; Linux also requires each process to ask
//! for the tile state (`arch_prctl(ARCH_REQ_XCOMP_PERM)`), done once in
//! [`available`]. Tests compare against [`matmul_reference`].

use half::bf16;
use rayon::prelude::*;

use crate::numerics::simd::{round_bf16, wide};

/// Rows and columns of one output block of the microkernel.
const BLOCK: usize = 32;
/// bf16 elements of one 16x32 tile.
const TILE_ELEMS: usize = 16 * 32;

/// Whether AMX bf16 can be used in this process: the CPU has AMX-TILE and
/// AMX-BF16 and the kernel granted the tile state. Checked once. Whether a
/// model uses it is the caller's choice (`DeviceOptions::cpu_amx`).
pub fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(detect_and_enable)
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn detect_and_enable() -> bool {
    // CPUID.(EAX=7, ECX=0):EDX bit 22 = AMX-BF16, bit 24 = AMX-TILE.
    let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
    let cpu_has = leaf7.edx & (1 << 22) != 0 && leaf7.edx & (1 << 24) != 0;
    if !cpu_has {
        return false;
    }
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    #[allow(unsafe_code)]
    // SAFETY: a plain syscall with integer arguments; it only changes which
    // register state this process may use.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        )
    };
    rc == 0
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn detect_and_enable() -> bool {
    false
}

fn ceil_to(x: usize, m: usize) -> usize {
    x.div_ceil(m) * m
}

/// A `[K, N]` weight in AMX tile order (see the module doc).
#[derive(Debug, Clone)]
pub struct PackedBf16 {
    k: usize,
    n: usize,
    kp: usize,
    np: usize,
    data: Vec<bf16>,
}

impl PackedBf16 {
    /// Packs a row-major `[k, n]` f32 matrix, rounding each value to bf16.
    pub fn new(w: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(w.len(), k * n, "weight is not [{k}, {n}]");
        let (kp, np) = (ceil_to(k.max(1), BLOCK), ceil_to(n.max(1), BLOCK));
        let mut data = vec![bf16::ZERO; kp * np];
        for row in 0..k {
            for col in 0..n {
                data[Self::slot(kp, row, col)] = bf16::from_f32(w[row * n + col]);
            }
        }
        Self { k, n, kp, np, data }
    }

    /// Where `w[row, col]` lives: strip `col / 32`, K step `row / 32`, tile
    /// `col % 32 / 16`; inside the tile, row `(row % 32) / 2` holds the k
    /// pair, column `col % 16` at `2 * (col % 16) + row % 2`.
    fn slot(kp: usize, row: usize, col: usize) -> usize {
        let kb = kp / BLOCK;
        let (strip, step, tile) = (col / BLOCK, row / BLOCK, col % BLOCK / 16);
        let r = row % BLOCK;
        ((strip * kb + step) * 2 + tile) * TILE_ELEMS + (r / 2) * 32 + 2 * (col % 16) + r % 2
    }

    /// Input width K.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Output width N.
    pub fn n(&self) -> usize {
        self.n
    }
}

/// `out[m, n] = a[m, k] · w` with `a` row-major f32 (rounded to bf16 on the
/// way in) and `out` row-major `[m, w.n()]`. Needs [`available`].
pub fn matmul(a: &[f32], m: usize, w: &PackedBf16, out: &mut [f32]) {
    assert!(available(), "AMX is not available in this process");
    assert_eq!(a.len(), m * w.k, "input is not [{m}, {}]", w.k);
    assert_eq!(out.len(), m * w.n, "output is not [{m}, {}]", w.n);
    if m == 0 || w.n == 0 {
        return;
    }
    let mp = ceil_to(m, BLOCK);
    let packed_a = pack_a(a, m, w.k, mp, w.kp);
    let (n, kb) = (w.n, w.kp / BLOCK);
    let full_strips = n / BLOCK;
    let a_block = BLOCK * w.kp; // bf16 per 32-row block of packed A
    let run = |(i, rows_out): (usize, &mut [f32])| {
        let rows = rows_out.len() / n;
        let a0 = &packed_a[i * a_block..(i + 1) * a_block];
        if rows == BLOCK && full_strips > 0 {
            // Full strips store straight into the output rows.
            #[allow(unsafe_code)]
            // SAFETY: a0 is one packed 32-row block, w.data holds every
            // strip, and 32 rows of `full_strips * 32` floats at stride n
            // fit in rows_out.
            unsafe {
                rows_32(
                    a0.as_ptr(),
                    w.data.as_ptr(),
                    kb,
                    full_strips,
                    rows_out.as_mut_ptr(),
                    n,
                )
            };
        }
        let direct = if rows == BLOCK { full_strips } else { 0 };
        if direct * BLOCK < n {
            // The rest (a ragged strip, or every strip of a ragged last
            // block) into a padded scratch block, then copied.
            let strips = w.np / BLOCK - direct;
            let mut scratch = vec![0f32; BLOCK * strips * BLOCK];
            let b = &w.data[direct * kb * 2 * TILE_ELEMS..];
            #[allow(unsafe_code)]
            // SAFETY: as above, into a scratch of 32 rows x strips*32.
            unsafe {
                rows_32(
                    a0.as_ptr(),
                    b.as_ptr(),
                    kb,
                    strips,
                    scratch.as_mut_ptr(),
                    strips * BLOCK,
                )
            };
            let (c0, width) = (direct * BLOCK, n - direct * BLOCK);
            for r in 0..rows {
                rows_out[r * n + c0..r * n + n]
                    .copy_from_slice(&scratch[r * strips * BLOCK..r * strips * BLOCK + width]);
            }
        }
    };
    if m <= BLOCK {
        run((0, out));
    } else {
        out.par_chunks_mut(BLOCK * n).enumerate().for_each(run);
    }
}

/// `a [m, k]` f32 -> packed bf16 tiles (see the module doc), zero padded to
/// `mp x kp`.
fn pack_a(a: &[f32], m: usize, k: usize, mp: usize, kp: usize) -> Vec<bf16> {
    let mut out = vec![bf16::ZERO; mp * kp];
    let kb = kp / BLOCK;
    let block = BLOCK * kp;
    let fill = |(i, dst): (usize, &mut [bf16])| {
        for r in 0..BLOCK.min(m.saturating_sub(i * BLOCK)) {
            let src = &a[(i * BLOCK + r) * k..(i * BLOCK + r + 1) * k];
            let (tile, rr) = (r / 16, r % 16);
            for step in 0..kb {
                let at = (step * 2 + tile) * TILE_ELEMS + rr * 32;
                let from = step * BLOCK;
                let to = (from + BLOCK).min(k);
                if from >= to {
                    break;
                }
                to_bf16::<true>(&src[from..to], &mut dst[at..at + (to - from)]);
            }
        }
    };
    if mp > BLOCK {
        out.par_chunks_mut(block).enumerate().for_each(fill);
    } else {
        out.chunks_mut(block).enumerate().for_each(fill);
    }
    out
}

wide!(fn to_bf16(src: &[f32], dst: &mut [bf16]) => to_bf16_body);

/// f32 -> bf16, round to nearest even (branch-free, so it vectorises).
#[inline(always)]
fn to_bf16_body<const B: bool>(src: &[f32], dst: &mut [bf16]) {
    for (d, &v) in dst.iter_mut().zip(src) {
        *d = bf16::from_bits((round_bf16(v).to_bits() >> 16) as u16);
    }
}

/// Tile configuration (64 bytes, palette 1): tiles 0-7 all 16 rows x 64 bytes.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

const CONFIG: TileConfig = {
    let mut colsb = [0u16; 16];
    let mut rows = [0u8; 16];
    let mut t = 0;
    while t < 8 {
        colsb[t] = 64;
        rows[t] = 16;
        t += 1;
    }
    TileConfig {
        palette: 1,
        start_row: 0,
        reserved: [0; 14],
        colsb,
        rows,
    }
};

/// 32 rows of `C` against `strips` column strips: `a` is one packed 32-row
/// block of A (`kb` K steps), `b` the first strip's tiles, and strip `j`
/// lands in `c[r * ldc + 32 j ..]`.
///
/// # Safety
/// AMX must be [`available`]; `a` must hold `kb` steps of 2 tiles, `b`
/// `strips * kb` steps of 2 tiles, `c` 32 rows of `32 * strips` floats at
/// stride `ldc`, and `kb >= 1`.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
unsafe fn rows_32(
    a: *const bf16,
    b: *const bf16,
    kb: usize,
    strips: usize,
    c: *mut f32,
    ldc: usize,
) {
    if strips == 0 || kb == 0 {
        return;
    }
    let sc = ldc * 4; // bytes per C row
    // SAFETY: the caller's contract; every load and store stays inside the
    // buffers described above, and the tiles are released before returning.
    unsafe {
        let c16 = c.add(16 * ldc);
        std::arch::asm!(
            "ldtilecfg [{cfg}]",
            "3:",
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            "mov {ap}, {a}",
            "mov {n}, {kb}",
            "2:",
            "tileloadd tmm4, [{ap} + {s64}*1]",
            "tileloadd tmm5, [{ap} + {s64}*1 + 1024]",
            "tileloadd tmm6, [{b} + {s64}*1]",
            "tileloadd tmm7, [{b} + {s64}*1 + 1024]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "add {ap}, 2048",
            "add {b}, 2048",
            "dec {n}",
            "jnz 2b",
            "tilestored [{c} + {sc}*1], tmm0",
            "tilestored [{c} + {sc}*1 + 64], tmm1",
            "tilestored [{c16} + {sc}*1], tmm2",
            "tilestored [{c16} + {sc}*1 + 64], tmm3",
            "add {c}, 128",
            "add {c16}, 128",
            "dec {strips}",
            "jnz 3b",
            "tilerelease",
            cfg = in(reg) &CONFIG as *const TileConfig,
            a = in(reg) a,
            ap = out(reg) _,
            b = inout(reg) b => _,
            kb = in(reg) kb,
            n = out(reg) _,
            strips = inout(reg) strips => _,
            c = inout(reg) c => _,
            c16 = inout(reg) c16 => _,
            sc = in(reg) sc,
            s64 = in(reg) 64usize,
            options(nostack),
        );
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[allow(unsafe_code)]
unsafe fn rows_32(
    _a: *const bf16,
    _b: *const bf16,
    _kb: usize,
    _strips: usize,
    _c: *mut f32,
    _ldc: usize,
) {
    unreachable!("AMX is never available off x86_64")
}

/// The contract on the CPU, in f64: `out = round_bf16(a) · round_bf16(w)`.
pub fn matmul_reference(a: &[f32], m: usize, w: &[f32], k: usize, n: usize) -> Vec<f32> {
    let r = |x: f32| f64::from(bf16::from_f32(x).to_f32());
    let mut out = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let s: f64 = (0..k).map(|p| r(a[i * k + p]) * r(w[p * n + j])).sum();
            out[i * n + j] = s as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    fn random(len: usize, rng: &mut rand::rngs::StdRng) -> Vec<f32> {
        (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    }

    #[test]
    fn packing_puts_each_weight_at_its_tile_slot() {
        // Values that are exact in bf16, so the slot can be read back.
        let (k, n) = (40, 20);
        let w: Vec<f32> = (0..k * n).map(|i| i as f32).collect();
        let p = PackedBf16::new(&w, k, n);
        assert_eq!((p.kp, p.np), (64, 32));
        // (row, col, offset): step row/32 holds 2 tiles of 512; tile col%32/16.
        for (row, col, at) in [
            (0, 0, 0),
            (1, 0, 1),
            (0, 1, 2),
            (2, 0, 32),
            (31, 15, 15 * 32 + 30 + 1),
            (0, 16, 512),
            (32, 16, 2 * 512 + 512),
            (39, 19, 3 * 512 + 3 * 32 + 6 + 1),
        ] {
            assert_eq!(PackedBf16::slot(p.kp, row, col), at, "w[{row}, {col}]");
            assert_eq!(
                p.data[at],
                bf16::from_f32(w[row * n + col]),
                "w[{row}, {col}]"
            );
        }
        // Padding is zero.
        let nonzero = p.data.iter().filter(|v| v.to_f32() != 0.0).count();
        assert_eq!(nonzero, k * n - 1, "only w[0, 0] == 0 among real entries");
    }

    #[test]
    fn amx_matches_the_reference_on_ragged_shapes() {
        if !available() {
            eprintln!("skipped: no AMX bf16 on this CPU");
            return;
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for (m, k, n) in [
            (1, 1, 1),
            (5, 33, 17),
            (32, 32, 32),
            (70, 100, 65),
            (257, 512, 768),
            (3, 688, 512),
        ] {
            let a = random(m * k, &mut rng);
            let w = random(k * n, &mut rng);
            let packed = PackedBf16::new(&w, k, n);
            let mut out = vec![f32::NAN; m * n];
            matmul(&a, m, &packed, &mut out);
            let want = matmul_reference(&a, m, &w, k, n);
            for (i, (&g, &r)) in out.iter().zip(&want).enumerate() {
                // f32 accumulation of exact products against f64: a few ulps of the sum.
                let tol = 1e-5 * (k as f32).sqrt() * 4.0 + 1e-6;
                assert!((g - r).abs() <= tol, "[{m}x{k}x{n}] at {i}: {g} vs {r}");
            }
        }
    }

    #[test]
    fn amx_results_do_not_depend_on_the_row_count() {
        // Batching pads rows; a row's result must be bit-identical either way.
        if !available() {
            eprintln!("skipped: no AMX bf16 on this CPU");
            return;
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        let (k, n) = (96, 48);
        let w = PackedBf16::new(&random(k * n, &mut rng), k, n);
        let a = random(40 * k, &mut rng);
        let mut all = vec![0f32; 40 * n];
        matmul(&a, 40, &w, &mut all);
        let mut one = vec![0f32; n];
        matmul(&a[7 * k..8 * k], 1, &w, &mut one);
        assert_eq!(one, all[7 * n..8 * n]);
    }
}
