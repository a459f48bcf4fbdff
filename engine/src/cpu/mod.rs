//! The CPU fast path without a tensor library around it: the ranker's
//! context and candidate passes over plain row-major buffers.
//!
//! The CPU backend (`backend::cpu`) runs the token and head projections on
//! candle; the layer stack, where the time goes, runs here:
//!
//! * [`matmul`]: `x · W`, f32 through the `gemm` crate, or bf16 on
//!   [`amx`] tiles in bf16 mode;
//! * [`ops`]: RMSNorm, residual, RoPE, gated GELU, bf16 rounding, one pass
//!   each;
//! * [`attention`]: causal context attention and candidate isolation on
//!   strided views of the fused q|k|v buffer;
//! * [`stack`]: the layer loop.
//!
//! Why: on the mid shape, candle's per-op tensors (allocation, page faults,
//! copies between layouts) cost more than the matrix products; see
//! `benches/results/` for the measured effect.

pub mod amx;
pub mod attention;
pub mod matmul;
pub mod ops;
pub mod stack;

pub use stack::{CpuContext, CpuStack};

/// Asks glibc's allocator to keep freed memory for reuse instead of handing
/// it back to the kernel: a call's activations (hundreds of KB to MB each)
/// otherwise come from fresh `mmap`s, and every page faults in again on the
/// next call (page faults and clearing were ~15% of a demo-shape batch-64
/// ranker call in perf). Blocks under 32 MB (glibc's cap for this setting)
/// come from the heap; the heap is trimmed only past 1 GB free. A no-op
/// off glibc. Call once at start-up.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: mallopt only changes allocator tunables; it is called before
    // the program starts its threads.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
