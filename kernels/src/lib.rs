//! foryou's CUDA kernels and their CPU references.
//!
//! * [`sources`]: the CUDA C++ sources (`src/cu/*.cu`), compiled by NVRTC at
//!   start-up for the device's architecture; always built, so CI can compile
//!   them without a GPU.
//! * [`reference`]: a CPU implementation of every kernel's contract; tests
//!   compare the kernels against it on fresh random inputs.
//! * `cuda` (feature `cuda`): the device context, NVRTC compilation, cuBLAS,
//!   and the launch wrappers. The default build has no CUDA dependency at
//!   all, and a `cuda` build still starts on a machine without a driver:
//!   [`cuda::Gpu::open`] checks for the libraries before touching them and
//!   returns an error the caller turns into "running on the CPU".

pub mod reference;
pub mod sources;

#[cfg(feature = "cuda")]
#[allow(unsafe_code)] // kernel launches and raw device pointers
pub mod cuda;
