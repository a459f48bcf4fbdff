//! `y = x · W` for the CPU stack: f32 through the `gemm` crate (the same
//! AVX-512 kernels candle's CPU matmul uses, called without a tensor
//! around them), or bf16 on AMX tiles when the forward dtype is bf16 and
//! the CPU has them.

use super::amx::{self, PackedBf16};
use crate::numerics::Precision;

/// Work (multiply-adds) below which a product runs on one thread: 4 M
/// (about 80 µs on one core); smaller ones lost more to the fork-join than
/// they gained (demo shape, batch 1: 1.44 -> 1.05 ms p50 with 2 threads).
const PARALLEL_MIN_WORK: usize = 1 << 22;

/// A weight matrix `[K, N]` prepared for the forward dtype.
#[derive(Debug, Clone)]
pub enum Weight {
    /// Row-major f32 (in bf16 mode already rounded to bf16 values).
    F32 {
        /// `[k, n]` values.
        w: Vec<f32>,
        /// Input width.
        k: usize,
        /// Output width.
        n: usize,
    },
    /// bf16 in AMX tile order.
    Amx(PackedBf16),
}

impl Weight {
    /// Prepares a row-major `[k, n]` matrix: AMX tiles in bf16 mode when the
    /// CPU has them (and `amx` is asked for), else f32 (rounded to bf16
    /// values in bf16 mode, as the reference casts its weights).
    pub fn new(w: Vec<f32>, k: usize, n: usize, prec: Precision, amx: bool) -> Self {
        if prec.is_bf16() && amx && amx::available() {
            return Self::Amx(PackedBf16::new(&w, k, n));
        }
        let w = if prec.is_bf16() {
            w.into_iter().map(super::ops::round_bf16).collect()
        } else {
            w
        };
        Self::F32 { w, k, n }
    }

    /// Input width K.
    pub fn k(&self) -> usize {
        match self {
            Self::F32 { k, .. } => *k,
            Self::Amx(p) => p.k(),
        }
    }

    /// Output width N.
    pub fn n(&self) -> usize {
        match self {
            Self::F32 { n, .. } => *n,
            Self::Amx(p) => p.n(),
        }
    }

    /// `out[rows, N] = x[rows, K] · W`.
    pub fn apply(&self, x: &[f32], rows: usize, out: &mut [f32]) {
        match self {
            Self::F32 { w, k, n } => gemm_f32(x, rows, *k, w, *n, out),
            Self::Amx(p) => amx::matmul(x, rows, p, out),
        }
    }
}

/// Threads for one product: candle's setting (`CANDLE_NUM_THREADS`, else
/// rayon's pool), one for small products.
fn parallelism(work: usize) -> gemm::Parallelism {
    let threads = candle_core::utils::get_num_threads();
    if threads > 1 && work >= PARALLEL_MIN_WORK {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    }
}

/// `out[m, n] = a[m, k] · b[k, n]`, all row-major f32.
pub fn gemm_f32(a: &[f32], m: usize, k: usize, b: &[f32], n: usize, out: &mut [f32]) {
    let lhs = View::new(a, 0, k, 1);
    let rhs = View::new(b, 0, n, 1);
    gemm_views(m, n, k, out, n, lhs, rhs, true);
}

/// A strided matrix inside a buffer: element `(i, j)` is
/// `data[offset + i * rs + j * cs]`. Lets a head inside a `[T, H*K]` buffer,
/// or a transposed `K`, feed a product without a copy.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    data: &'a [f32],
    offset: usize,
    rs: usize,
    cs: usize,
}

impl<'a> View<'a> {
    /// A view with row stride `rs` and column stride `cs` from `offset`.
    pub fn new(data: &'a [f32], offset: usize, rs: usize, cs: usize) -> Self {
        Self {
            data,
            offset,
            rs,
            cs,
        }
    }

    /// Panics unless every element of a `rows x cols` view is in bounds.
    fn check(&self, rows: usize, cols: usize, what: &str) {
        if rows == 0 || cols == 0 {
            return;
        }
        let last = self.offset + (rows - 1) * self.rs + (cols - 1) * self.cs;
        assert!(
            last < self.data.len(),
            "{what} view out of bounds: {last} >= {}",
            self.data.len()
        );
    }
}

/// `dst[m, n] (row stride dst_rs) = lhs[m, k] · rhs[k, n]`, bounds checked.
/// `parallel`: may use the thread pool (off inside tasks that are already
/// parallel).
#[allow(clippy::too_many_arguments)]
pub fn gemm_views(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_rs: usize,
    lhs: View<'_>,
    rhs: View<'_>,
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    lhs.check(m, k, "lhs");
    rhs.check(k, n, "rhs");
    assert!((m - 1) * dst_rs + n <= dst.len(), "dst view out of bounds");
    let par = if parallel {
        parallelism(m * n * k)
    } else {
        gemm::Parallelism::None
    };
    #[allow(unsafe_code)]
    // SAFETY: every addressed element is in bounds (checked above), and
    // `dst` is borrowed mutably, so nothing else reads it meanwhile.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            false,
            lhs.data.as_ptr().add(lhs.offset),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr().add(rhs.offset),
            rhs.cs as isize,
            rhs.rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FpropDtype;

    #[test]
    fn f32_weight_is_an_exact_matrix_product_on_integers() {
        // Small integers: every partial sum is exact, so any order agrees.
        let (m, k, n) = (3, 5, 4);
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 - 3.0).collect();
        let w: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 - 2.0).collect();
        let weight = Weight::new(w.clone(), k, n, Precision(FpropDtype::F32), true);
        let mut out = vec![f32::NAN; m * n];
        weight.apply(&a, m, &mut out);
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|p| a[i * k + p] * w[p * n + j]).sum();
                assert_eq!(out[i * n + j], want, "[{i}, {j}]");
            }
        }
    }

    #[test]
    fn bf16_weight_rounds_its_values_either_way() {
        let (k, n) = (2, 2);
        let w = vec![1.0 + 1.0 / 512.0, 3.0, -1.0, 0.5];
        let a = vec![1.0, 0.0];
        for amx in [false, true] {
            let weight = Weight::new(w.clone(), k, n, Precision(FpropDtype::Bf16), amx);
            let mut out = vec![0f32; n];
            weight.apply(&a, 1, &mut out);
            // 1 + 2^-9 is not a bf16 value; it rounds to 1.
            assert_eq!(out, vec![1.0, 3.0], "amx asked: {amx}");
        }
    }
}
