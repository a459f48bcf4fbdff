//! The GPU model path (feature `cuda`): the ranker's forward pass on cuBLAS
//! bf16 GEMMs plus foryou-kernels' attention and fused ops, and the
//! retriever's user tower plus the top-k kernel.

pub mod ranker;
mod stack;
pub mod tables;
mod tokens;
pub mod weights;

pub use foryou_kernels::cuda::{Gpu, GpuError};
pub use ranker::GpuRanker;
pub use tables::TablePlacement;

use crate::error::EngineError;

impl From<foryou_kernels::cuda::cudarc::driver::DriverError> for EngineError {
    fn from(e: foryou_kernels::cuda::cudarc::driver::DriverError) -> Self {
        EngineError::Gpu(e.to_string())
    }
}

impl From<GpuError> for EngineError {
    fn from(e: GpuError) -> Self {
        match e {
            GpuError::Shape(m) => EngineError::Input(m),
            other => EngineError::Gpu(other.to_string()),
        }
    }
}

/// Opens `cuda:N`, or says why not (missing driver, no device, ...).
pub fn open(ordinal: usize) -> Result<std::sync::Arc<Gpu>, GpuError> {
    Gpu::open(ordinal).map(std::sync::Arc::new)
}

/// The device copy of a model for `device`: `None` on the CPU, the model's
/// weights uploaded on `cuda:N` (a ranker with its `head`, a user tower
/// without), or why the GPU cannot be used.
pub(crate) fn model_on(
    device: crate::ComputeDevice,
    cfg: &crate::ModelConfig,
    weights: &crate::weights::PhoenixWeights,
    head: Option<&crate::weights::RankerHead>,
) -> Result<Option<std::sync::Arc<GpuRanker>>, String> {
    match device {
        crate::ComputeDevice::Cpu => Ok(None),
        crate::ComputeDevice::Cuda(n) => {
            let gpu = open(n).map_err(|e| e.to_string())?;
            let model = GpuRanker::new(gpu, cfg, weights, head).map_err(|e| e.to_string())?;
            Ok(Some(std::sync::Arc::new(model)))
        }
    }
}
