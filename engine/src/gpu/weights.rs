//! The model's parameters on the device: matrices as bf16 (q|k|v and
//! gelu|lin fused column-wise, so each is one GEMM), norm gains as f32.

use candle_core::Tensor;
use foryou_kernels::cuda::cudarc::driver::CudaSlice;
use foryou_kernels::cuda::{Gpu, bf16_bits};

use crate::error::Result;
use crate::weights::LayerWeights;

/// Row-major f32 values of a tensor.
pub(crate) fn host(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

/// Row-wise concatenation of `[R, a]`, `[R, b]`, ... matrices.
fn concat_columns(parts: &[&Tensor]) -> Result<Vec<f32>> {
    let rows = parts[0].dim(0)?;
    let data: Vec<(usize, Vec<f32>)> = parts
        .iter()
        .map(|t| Ok((t.dim(1)?, host(t)?)))
        .collect::<Result<_>>()?;
    let width: usize = data.iter().map(|(w, _)| w).sum();
    let mut out = Vec::with_capacity(rows * width);
    for r in 0..rows {
        for (w, d) in &data {
            out.extend_from_slice(&d[r * w..(r + 1) * w]);
        }
    }
    Ok(out)
}

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
