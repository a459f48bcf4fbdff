//! The CUDA C++ sources, each with the shared prelude (`cu/common.cuh`)
//! prepended, ready for NVRTC. Always compiled (no CUDA needed), so tests
//! and tools can hand the exact sources to `nvcc -ptx` as well.

/// Shared helpers every kernel source starts with.
pub const COMMON: &str = include_str!("cu/common.cuh");

/// One compilation unit: a name (the module's cache key), its source without
/// the prelude, and the kernels it exports.
#[derive(Debug, Clone, Copy)]
pub struct KernelSource {
    /// Module name, also the `.cu` file stem.
    pub name: &'static str,
    /// Source text after the prelude.
    pub body: &'static str,
    /// The `extern "C"` entry points it defines.
    pub kernels: &'static [&'static str],
}

impl KernelSource {
    /// The full text NVRTC compiles: prelude, then body.
    pub fn full_source(&self) -> String {
        format!("{COMMON}\n#line 1 \"{}.cu\"\n{}", self.name, self.body)
    }
}

/// Candidate-isolation and causal attention.
pub const ATTENTION: KernelSource = KernelSource {
    name: "attention",
    body: include_str!("cu/attention.cu"),
    kernels: &["attention_d32", "attention_d64", "attention_d128"],
};

/// The same attention as two cuBLAS GEMMs around a row softmax.
pub const ATTENTION_GEMM: KernelSource = KernelSource {
    name: "attention_gemm",
    body: include_str!("cu/attention_gemm.cu"),
    kernels: &[
        "gqa_stack_q",
        "gqa_softmax_bf16s",
        "gqa_softmax_f32s",
        "gqa_unstack_out",
    ],
};

/// Batched dot-product top-k.
pub const TOPK: KernelSource = KernelSource {
    name: "topk",
    body: include_str!("cu/topk.cu"),
    kernels: &[
        "topk_init",
        "topk_reset",
        "topk_score_filter_d64",
        "topk_score_filter_d128",
        "topk_score_filter_d256",
        "topk_select",
    ],
};

/// Fused row and elementwise ops of the decoder layer.
pub const OPS: KernelSource = KernelSource {
    name: "ops",
    body: include_str!("cu/ops.cu"),
    kernels: &[
        "rms_norm_bf16",
        "residual_rms_norm",
        "qkv_rope",
        "gated_gelu",
        "f32_to_bf16_copy",
        "round_bf16_inplace",
        "gather_rows_bf16",
        "gather_rows_bf16x8",
    ],
};

/// Every source, in load order.
pub const ALL: [KernelSource; 4] = [ATTENTION, ATTENTION_GEMM, TOPK, OPS];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_kernel_is_defined_in_its_source() {
        for src in ALL {
            for k in src.kernels {
                // Either a literal definition or a macro instantiation.
                let literal = src.body.contains(&format!(" {k}("));
                let via_macro = k.rsplit_once("_d").is_some_and(|(stem, dim)| {
                    src.body.contains(&format!("{stem}_d##DIM"))
                        && src.body.contains(&format!("({dim})"))
                });
                assert!(literal || via_macro, "{k} not found in {}.cu", src.name);
            }
        }
    }
}
