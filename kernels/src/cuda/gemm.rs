//! Row-major `Y = X @ W` on cuBLAS: bf16 operands, f32 accumulation, output
//! f32 or bf16 (with a row stride, so a product can land in a column block
//! of a wider buffer).

use cudarc::cublas::sys::{cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t, cudaDataType};
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut};

use super::{Gpu, GpuError, GpuResult, as_i32, expect_len};

/// What a product writes.
#[derive(Debug)]
pub enum GemmOut<'a> {
    /// f32 `[M, N]`, rows `ldy` apart.
    F32(&'a mut CudaSlice<f32>),
    /// bf16 `[M, N]`, rows `ldy` apart.
    Bf16(&'a mut CudaSlice<u16>),
}

impl Gpu {
    /// `Y[M, N] = X[M, K] @ W[K, N]` (all row-major; X and W bf16 bits).
    /// X starts `x_offset` elements into its buffer; `y_offset` and `ldy`
    /// place Y inside a wider buffer (`ldy >= N`).
    #[allow(clippy::too_many_arguments)]
    pub fn gemm_bf16(
        &self,
        m: usize,
        n: usize,
        k: usize,
        x: &CudaSlice<u16>,
        x_offset: usize,
        w: &CudaSlice<u16>,
        y: GemmOut<'_>,
        y_offset: usize,
        ldy: usize,
    ) -> GpuResult<()> {
        if ldy < n {
            return Err(GpuError::Shape(format!("ldy {ldy} < n {n}")));
        }
        if m == 0 || n == 0 {
            return Ok(());
        }
        expect_len("gemm x", x.len(), x_offset + m * k)?;
        expect_len("gemm w", w.len(), k * n)?;
        let need = y_offset + (m - 1) * ldy + n;
        let (mi, ni, ki, ld) = (
            as_i32("m", m)?,
            as_i32("n", n)?,
            as_i32("k", k)?,
            as_i32("ldy", ldy)?,
        );
        let (alpha, beta) = (1f32, 0f32);
        let stream = self.stream();
        let (xp, _gx) = x.device_ptr(stream);
        let xp = xp + (x_offset * 2) as u64;
        let (wp, _gw) = w.device_ptr(stream);
        // Column-major view: Y^T[N, M] = W^T[N, K] @ X^T[K, M].
        let (yp, c_type, _gy) = match y {
            GemmOut::F32(buf) => {
                expect_len("gemm y", buf.len(), need)?;
                let (p, g) = buf.device_ptr_mut(stream);
                (p + (y_offset * 4) as u64, cudaDataType::CUDA_R_32F, g)
            }
            GemmOut::Bf16(buf) => {
                expect_len("gemm y", buf.len(), need)?;
                let (p, g) = buf.device_ptr_mut(stream);
                (p + (y_offset * 2) as u64, cudaDataType::CUDA_R_16BF, g)
            }
        };
        // SAFETY: pointers come from live buffers checked to hold the
        // operands; the handle is bound to this wrapper's stream.
        unsafe {
            cudarc::cublas::result::gemm_ex(
                *self.blas().handle(),
                cublasOperation_t::CUBLAS_OP_N,
                cublasOperation_t::CUBLAS_OP_N,
                ni,
                mi,
                ki,
                (&alpha as *const f32).cast(),
                wp as *const _,
                cudaDataType::CUDA_R_16BF,
                ni,
                xp as *const _,
                cudaDataType::CUDA_R_16BF,
                ki,
                (&beta as *const f32).cast(),
                yp as *mut _,
                c_type,
                ld,
                cublasComputeType_t::CUBLAS_COMPUTE_32F,
                cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )?;
        }
        Ok(())
    }

    /// Column-major strided-batched `C_i = op(A_i) B_i` (bf16 operands,
    /// f32 accumulation, C of type `c_type`), `batch` products, each
    /// operand `stride` elements after the previous one: cuBLAS's
    /// `GemmStridedBatchedEx` on this wrapper's stream.
    ///
    /// # Safety
    /// `a`, `b` and `c` are device addresses on this wrapper's stream whose
    /// buffers hold every element the shape, leading dimensions, strides
    /// and batch count reach, and stay alive until the product has run.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn gemm_strided_batched(
        &self,
        transpose_a: bool,
        (m, n, k): (i32, i32, i32),
        (a, lda, stride_a): (u64, i32, i64),
        (b, ldb, stride_b): (u64, i32, i64),
        (c, c_type, ldc, stride_c): (u64, cudaDataType, i32, i64),
        batch: i32,
    ) -> GpuResult<()> {
        let (alpha, beta) = (1f32, 0f32);
        let op_a = if transpose_a {
            cublasOperation_t::CUBLAS_OP_T
        } else {
            cublasOperation_t::CUBLAS_OP_N
        };
        // SAFETY: the caller vouches for the addresses (see above); alpha
        // and beta outlive the call, which only enqueues the product.
        unsafe {
            cudarc::cublas::result::gemm_strided_batched_ex(
                *self.blas().handle(),
                op_a,
                cublasOperation_t::CUBLAS_OP_N,
                m,
                n,
                k,
                (&alpha as *const f32).cast(),
                a as *const _,
                cudaDataType::CUDA_R_16BF,
                lda,
                stride_a,
                b as *const _,
                cudaDataType::CUDA_R_16BF,
                ldb,
                stride_b,
                (&beta as *const f32).cast(),
                c as *mut _,
                c_type,
                ldc,
                stride_c,
                batch,
                cublasComputeType_t::CUBLAS_COMPUTE_32F,
                cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )?;
        }
        Ok(())
    }
}
