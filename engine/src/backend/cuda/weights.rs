//! The model's parameters on the device: matrices as bf16 (q|k|v and
//! gelu|lin fused column-wise, so each is one GEMM), norm gains as f32.

use candle_core::Tensor;
use foryou_kernels::cuda::cudarc::driver::CudaSlice;
use foryou_kernels::cuda::{Gpu, bf16_bits};

use crate::error::Result;
pub(crate) use crate::weights::host;
use crate::weights::{LayerWeights, concat_columns};

/// A matrix as bf16 bits on the device.
pub(crate) fn matrix(gpu: &Gpu, t: &Tensor) -> Result<CudaSlice<u16>> {
    Ok(gpu.upload(&bf16_bits(&host(t)?))?)
}

/// A vector (norm gain) as f32 on the device.
pub(crate) fn vector(gpu: &Gpu, t: &Tensor) -> Result<CudaSlice<f32>> {
    Ok(gpu.upload(&host(t)?)?)
}

/// One decoder layer on the device.
pub(crate) struct GpuLayer {
    pub attn_norm: CudaSlice<f32>,
    /// `[D, (Hq + 2 Hkv) K]`.
    pub w_qkv: CudaSlice<u16>,
    /// `[Hq K, D]`.
    pub wo: CudaSlice<u16>,
    pub attn_out_norm: CudaSlice<f32>,
    pub ffn_norm: CudaSlice<f32>,
    /// `[D, 2F]`: GELU branch, then linear branch.
    pub w_gl: CudaSlice<u16>,
    /// `[F, D]`.
    pub w_down: CudaSlice<u16>,
    pub ffn_out_norm: CudaSlice<f32>,
}

impl GpuLayer {
    pub(crate) fn upload(gpu: &Gpu, w: &LayerWeights) -> Result<Self> {
        Ok(Self {
            attn_norm: vector(gpu, &w.attn_norm)?,
            w_qkv: gpu.upload(&bf16_bits(&concat_columns(&[&w.wq, &w.wk, &w.wv])?))?,
            wo: matrix(gpu, &w.wo)?,
            attn_out_norm: vector(gpu, &w.attn_out_norm)?,
            ffn_norm: vector(gpu, &w.ffn_norm)?,
            w_gl: gpu.upload(&bf16_bits(&concat_columns(&[&w.w_gelu, &w.w_lin])?))?,
            w_down: matrix(gpu, &w.w_down)?,
            ffn_out_norm: vector(gpu, &w.ffn_out_norm)?,
        })
    }
}
