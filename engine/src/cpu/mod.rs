//! The CPU fast path without a tensor library around it: the ranker's
//! context and candidate passes over plain row-major buffers.
//!
//! candle runs the dense reference path (the oracle) and the token and head
//! projections; the layer stack, where the time goes, runs here:
//!
//! * [`matmul`]: `x · W`, f32 through the `gemm` crate, or bf16 on
//!   [`amx`] tiles in bf16 mode;
//! * [`ops`]: RMSNorm, residual, RoPE, gated GELU, bf16 rounding, one pass
//!   each;
//! * [`attention`]: causal context attention and candidate isolation on
//!   strided views of the fused q|k|v buffer;
//! * [`simd`]: vectorisable `exp` and bf16 rounding, run at the CPU's
//!   widest vectors;
//! * [`stack`]: the layer loop.
//!
//! Why: on the mid shape, candle's per-op tensors (allocation, page faults,
//! copies between layouts) cost more than the matrix products; see
//! `benches/results/` for the measured effect.

pub mod amx;
pub mod attention;
pub mod matmul;
pub mod ops;
pub mod simd;
pub mod stack;

pub use stack::{CpuContext, CpuStack};
