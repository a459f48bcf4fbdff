//! foryou's CUDA kernels and their CPU references.
//!
//! * [`sources`]: the CUDA C++ sources (`src/cu/*.cu`), compiled by NVRTC at
//!   start-up for the device's architecture; always built, so CI can compile
//!   them without a GPU.
//! * [`reference`]: a CPU implementation of every kernel's contract; tests
//!   compare the kernels against it on fresh random inputs.
//! * [`attention_plan`]: the GEMM attention path's launches and products as
//!   data, executed by the device and by the host emulation test.
//! * `cuda` (feature `cuda`): the device context, NVRTC compilation, cuBLAS,
//!   and the launch wrappers. The default build has no CUDA dependency at
//!   all, and a `cuda` build still starts on a machine without a driver:
//!   [`cuda::Gpu::open`] checks for the libraries before touching them and
//!   returns an error the caller turns into "running on the CPU".

pub mod attention_plan;
pub mod reference;
pub mod sources;

#[cfg(feature = "cuda")]
#[allow(unsafe_code)] // kernel launches and raw device pointers
pub mod cuda;

/// Which implementation the GPU attention runs on (`--gpu-attention`).
/// Always built, so configuration can name it without the `cuda` feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttentionKernel {
    /// `attention_d*`: one fused kernel with an online softmax (the
    /// default until a GPU run measures the other faster).
    #[default]
    Flash,
    /// Two cuBLAS GEMMs around a row softmax (`cu/attention_gemm.cu`).
    Gemm,
}

impl std::str::FromStr for AttentionKernel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "flash" => Ok(Self::Flash),
            "gemm" => Ok(Self::Gemm),
            other => Err(format!(
                "unknown attention kernel '{other}', expected flash or gemm"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::AttentionKernel;

    #[test]
    fn attention_kernel_names_parse() {
        assert_eq!("flash".parse(), Ok(AttentionKernel::Flash));
        assert_eq!("gemm".parse(), Ok(AttentionKernel::Gemm));
        let err = "cublas"
            .parse::<AttentionKernel>()
            .expect_err("not a kernel");
        assert!(err.contains("'cublas'"), "{err}");
        assert_eq!(AttentionKernel::default(), AttentionKernel::Flash);
    }
}
