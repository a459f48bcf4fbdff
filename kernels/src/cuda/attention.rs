//! Launches `attention_d{32,64,128}` (see `cu/attention.cu` for the math and
//! layouts, `reference::attention` for the CPU contract).

use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

use super::{Gpu, GpuError, GpuResult, as_i32, expect_len};
use crate::reference::attention::AttentionShape;

/// The queries' own K/V and validity on the device (candidate isolation).
#[derive(Debug, Clone, Copy)]
pub struct SelfKvGpu<'a> {
    /// `[B, Hkv, T, D]` bf16 bits.
    pub k: &'a CudaSlice<u16>,
    /// `[B, Hkv, T, D]` bf16 bits.
    pub v: &'a CudaSlice<u16>,
    /// `[B, T]` u8, or `None` for all valid.
    pub valid: Option<&'a CudaSlice<u8>>,
}

/// Dynamic shared memory of `attention_d{head_dim}`: two stages of K and
/// V tiles, 64 rows of `head_dim + 8` bf16 each (the limit is raised to
/// this once, when the kernels load).
pub(crate) fn smem_bytes(head_dim: usize) -> usize {
    2 * 2 * 64 * (head_dim + 8) * 2
}

/// The argument checks both attention paths make before a launch: kv heads
/// divide the query heads, the causal pass is square, nothing is empty,
/// and every buffer holds what the shape says.
pub(crate) fn check_args(
    s: &AttentionShape,
    q: &CudaSlice<u16>,
    kc: &CudaSlice<u16>,
    vc: &CudaSlice<u16>,
    key_valid: &CudaSlice<u8>,
    self_kv: Option<&SelfKvGpu<'_>>,
    out: &CudaSlice<u16>,
) -> GpuResult<()> {
    if s.kv_heads == 0 || !s.q_heads.is_multiple_of(s.kv_heads) {
        return Err(GpuError::Shape(format!(
            "{} query heads are not a multiple of {} kv heads",
            s.q_heads, s.kv_heads
        )));
    }
    if s.causal && s.queries != s.context {
        return Err(GpuError::Shape("the causal pass needs T == S".into()));
    }
    if s.batch == 0 || s.queries == 0 || s.context == 0 {
        return Err(GpuError::Shape("empty attention".into()));
    }
    expect_len("q", q.len(), s.q_len())?;
    expect_len("out", out.len(), s.q_len())?;
    expect_len("context k", kc.len(), s.kv_len())?;
    expect_len("context v", vc.len(), s.kv_len())?;
    expect_len("key_valid", key_valid.len(), s.batch * s.context)?;
    if let Some(sk) = self_kv {
        expect_len("self k", sk.k.len(), s.self_kv_len())?;
        expect_len("self v", sk.v.len(), s.self_kv_len())?;
        if let Some(v) = sk.valid {
            expect_len("self_valid", v.len(), s.batch * s.queries)?;
        }
    }
    Ok(())
}

impl Gpu {
    /// `out = attention(q, context K/V, self K/V)` per the contract of
    /// [`crate::reference::attention::attention`]; queued on the stream.
    #[allow(clippy::too_many_arguments)]
    pub fn attention(
        &self,
        shape: &AttentionShape,
        q: &CudaSlice<u16>,
        kc: &CudaSlice<u16>,
        vc: &CudaSlice<u16>,
        key_valid: &CudaSlice<u8>,
        self_kv: Option<SelfKvGpu<'_>>,
        out: &mut CudaSlice<u16>,
    ) -> GpuResult<()> {
        let s = shape;
        let name = match s.head_dim {
            32 => "attention_d32",
            64 => "attention_d64",
            128 => "attention_d128",
            d => {
                return Err(GpuError::Shape(format!(
                    "head width {d} not in 32, 64, 128"
                )));
            }
        };
        check_args(s, q, kc, vc, key_valid, self_kv.as_ref(), out)?;
        let rows = s.queries * (s.q_heads / s.kv_heads);
        let smem = smem_bytes(s.head_dim);
        self.check_smem(name, smem)?;
        let func = self.function(name)?;
        let cfg = LaunchConfig {
            grid_dim: (rows.div_ceil(64) as u32, s.kv_heads as u32, s.batch as u32),
            block_dim: (128, 1, 1),
            shared_mem_bytes: smem as u32,
        };
        let (t, sl, hq, hkv) = (
            as_i32("T", s.queries)?,
            as_i32("S", s.context)?,
            as_i32("Hq", s.q_heads)?,
            as_i32("Hkv", s.kv_heads)?,
        );
        let causal = i32::from(s.causal);
        let round = i32::from(s.round_logits);
        let null = 0u64;
        let mut b = self.stream().launch_builder(func);
        b.arg(q).arg(kc).arg(vc).arg(key_valid);
        match &self_kv {
            Some(sk) => {
                b.arg(sk.k).arg(sk.v);
                match sk.valid {
                    Some(v) => b.arg(v),
                    None => b.arg(&null),
                };
            }
            None => {
                b.arg(&null).arg(&null).arg(&null);
            }
        }
        b.arg(out)
            .arg(&t)
            .arg(&sl)
            .arg(&hq)
            .arg(&hkv)
            .arg(&causal)
            .arg(&s.mult)
            .arg(&s.cap)
            .arg(&round);
        // SAFETY: argument count and types match the kernel's signature, and
        // every buffer was checked above to hold what the kernel indexes.
        unsafe { b.launch(cfg) }?;
        Ok(())
    }
}
