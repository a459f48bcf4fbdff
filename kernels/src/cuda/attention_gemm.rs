//! The GEMM attention path (`cu/attention_gemm.cu`): the queries stacked per
//! kv head, cuBLAS `X = Qs Kc^T`, the row softmax with the self term,
//! cuBLAS `O = P Vc`, then the unstack that adds the self term. Same
//! contract as [`Gpu::attention`]; its CPU twin is
//! [`crate::reference::attention_gemm`]. The launches and products come
//! from [`crate::attention_plan::plan`], which the host emulation test
//! executes too.
//!
//! Why beside the flash kernel: at the prod shape the score matrix is small
//! for HBM (57 MB in bf16) and cuBLAS runs its two products near the GEMM
//! rate, where the flash kernel (mma.sync, no wgmma) measured 0.44x
//! FlexAttention on the H200. Which is faster per shape is for the GPU
//! bench to say; [`AttentionKernel`] picks one.

use cudarc::cublas::sys::cudaDataType;
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut, LaunchConfig, PushKernelArg};

use super::attention::{SelfKvGpu, check_args};
use super::{Gpu, GpuError, GpuResult, as_i32};
use crate::AttentionKernel;
use crate::attention_plan::{At, Buf, GEMM_ATTENTION_WORKSPACE, Step, plan};
use crate::reference::attention::AttentionShape;

/// Device buffers of the GEMM path, kept between calls (and layers) and
/// grown when a call needs more.
#[derive(Debug)]
pub struct GemmAttentionScratch {
    /// Most bytes the buffers may take: a batch needing more runs in chunks.
    limit: usize,
    qs: Option<CudaSlice<u16>>,
    x_bf16: Option<CudaSlice<u16>>,
    x_f32: Option<CudaSlice<f32>>,
    p: Option<CudaSlice<u16>>,
    pself: Option<CudaSlice<f32>>,
    o: Option<CudaSlice<f32>>,
}

impl Default for GemmAttentionScratch {
    fn default() -> Self {
        Self::with_workspace_limit(GEMM_ATTENTION_WORKSPACE)
    }
}

impl GemmAttentionScratch {
    /// Empty buffers that will grow to at most about `bytes` (one batch
    /// row's worth at least).
    pub fn with_workspace_limit(bytes: usize) -> Self {
        Self {
            limit: bytes,
            qs: None,
            x_bf16: None,
            x_f32: None,
            p: None,
            pself: None,
            o: None,
        }
    }
}

/// `slot`, reallocated when it holds fewer than `n` elements.
fn grow<T: cudarc::driver::DeviceRepr>(
    g: &Gpu,
    slot: &mut Option<CudaSlice<T>>,
    n: usize,
) -> GpuResult<()> {
    if slot.as_ref().is_none_or(|s| s.len() < n) {
        *slot = None; // free before allocating the larger one
        *slot = Some(g.scratch(n.max(1))?);
    }
    Ok(())
}

/// A launch of `grid` blocks of 256 threads, no dynamic shared memory.
fn blocks(grid: usize) -> GpuResult<LaunchConfig> {
    Ok(LaunchConfig {
        grid_dim: (as_i32("grid", grid)? as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    })
}

/// Device base addresses of a plan's buffers (0 where a call has none).
struct Addrs {
    base: [u64; 13],
    x_bf16: bool,
}

impl Addrs {
    /// The device address of an operand.
    fn at(&self, (buf, offset): At) -> GpuResult<u64> {
        let base = self.base[buf as usize];
        if base == 0 {
            return Err(GpuError::Shape(format!(
                "plan names {}, which this call lacks",
                buf.name()
            )));
        }
        Ok(base + (offset * buf.elem_bytes(self.x_bf16)) as u64)
    }

    /// [`Self::at`], or a null pointer for `None`.
    fn maybe(&self, at: Option<At>) -> GpuResult<u64> {
        at.map_or(Ok(0), |a| self.at(a))
    }
}

impl Gpu {
    /// `out = attention(q, context K/V, self K/V)` per the contract of
    /// [`crate::reference::attention::attention`], as two cuBLAS GEMMs
    /// around a row softmax (see the module doc); queued on the stream.
    /// `scratch` holds the intermediate tensors between calls.
    #[allow(clippy::too_many_arguments)]
    pub fn attention_gemm(
        &self,
        shape: &AttentionShape,
        q: &CudaSlice<u16>,
        kc: &CudaSlice<u16>,
        vc: &CudaSlice<u16>,
        key_valid: &CudaSlice<u8>,
        self_kv: Option<SelfKvGpu<'_>>,
        out: &mut CudaSlice<u16>,
        scratch: &mut GemmAttentionScratch,
    ) -> GpuResult<()> {
        let s = *shape;
        if s.head_dim == 0 || !s.head_dim.is_multiple_of(8) {
            return Err(GpuError::Shape(format!(
                "head width {} is not a multiple of 8",
                s.head_dim
            )));
        }
        check_args(&s, q, kc, vc, key_valid, self_kv.as_ref(), out)?;
        let has_valid = self_kv.as_ref().is_some_and(|k| k.valid.is_some());
        let plan = plan(&s, self_kv.is_some(), has_valid, scratch.limit);
        grow(self, &mut scratch.qs, plan.qs_len)?;
        if plan.x_bf16 {
            grow(self, &mut scratch.x_bf16, plan.x_len)?;
        } else {
            grow(self, &mut scratch.x_f32, plan.x_len)?;
        }
        grow(self, &mut scratch.p, plan.x_len)?;
        grow(self, &mut scratch.pself, plan.pself_len)?;
        grow(self, &mut scratch.o, plan.qs_len)?;
        let stream = self.stream().clone();
        let empty = || GpuError::Shape("workspace slot empty".into());
        // The guards keep the buffers' addresses valid while the steps are
        // queued (event tracking is off: one stream, see `Gpu::open`).
        let (qs_p, _g1) = scratch.qs.as_ref().ok_or_else(empty)?.device_ptr(&stream);
        let (x_p, _g2) = match (&scratch.x_bf16, &scratch.x_f32, plan.x_bf16) {
            (Some(x), _, true) => x.device_ptr(&stream),
            (_, Some(x), false) => x.device_ptr(&stream),
            _ => return Err(empty()),
        };
        let (p_p, _g3) = scratch.p.as_ref().ok_or_else(empty)?.device_ptr(&stream);
        let (ps_p, _g4) = scratch
            .pself
            .as_ref()
            .ok_or_else(empty)?
            .device_ptr(&stream);
        let (o_p, _g5) = scratch.o.as_ref().ok_or_else(empty)?.device_ptr(&stream);
        let (q_p, _g6) = q.device_ptr(&stream);
        let (kc_p, _g7) = kc.device_ptr(&stream);
        let (vc_p, _g8) = vc.device_ptr(&stream);
        let (kv_p, _g9) = key_valid.device_ptr(&stream);
        let (out_p, _g10) = out.device_ptr_mut(&stream);
        let own = self_kv.map(|sk| {
            let (k, gk) = sk.k.device_ptr(&stream);
            let (v, gv) = sk.v.device_ptr(&stream);
            let valid = sk.valid.map(|x| x.device_ptr(&stream));
            (k, v, valid, gk, gv)
        });
        let (ks_p, vs_p, sv_p) = own.as_ref().map_or((0, 0, 0), |(k, v, valid, _, _)| {
            (*k, *v, valid.as_ref().map_or(0, |(p, _)| *p))
        });
        let mut base = [0u64; 13];
        for (buf, addr) in [
            (Buf::Q, q_p),
            (Buf::Kc, kc_p),
            (Buf::Vc, vc_p),
            (Buf::KeyValid, kv_p),
            (Buf::Ks, ks_p),
            (Buf::Vs, vs_p),
            (Buf::SelfValid, sv_p),
            (Buf::Out, out_p),
            (Buf::Qs, qs_p),
            (Buf::X, x_p),
            (Buf::P, p_p),
            (Buf::Pself, ps_p),
            (Buf::O, o_p),
        ] {
            base[buf as usize] = addr;
        }
        let addrs = Addrs {
            base,
            x_bf16: plan.x_bf16,
        };
        let (t, hq, hkv, d, sl, ldx) = (
            as_i32("T", s.queries)?,
            as_i32("Hq", s.q_heads)?,
            as_i32("Hkv", s.kv_heads)?,
            as_i32("D", s.head_dim)?,
            as_i32("S", s.context)?,
            as_i32("S rounded up", plan.ldx)?,
        );
        let (causal, round) = (i32::from(s.causal), i32::from(s.round_logits));
        let softmax = if plan.x_bf16 {
            "gqa_softmax_bf16s"
        } else {
            "gqa_softmax_f32s"
        };
        for step in &plan.steps {
            match *step {
                Step::Stack { q, qs, batch, grid } => {
                    let (q, qs, nb) = (addrs.at(q)?, addrs.at(qs)?, as_i32("batch", batch)?);
                    let mut lb = stream.launch_builder(self.function("gqa_stack_q")?);
                    lb.arg(&q)
                        .arg(&qs)
                        .arg(&nb)
                        .arg(&t)
                        .arg(&hq)
                        .arg(&hkv)
                        .arg(&d);
                    // SAFETY: argument count and types match `gqa_stack_q`;
                    // the plan keeps q and Qs within their `batch` rows.
                    unsafe { lb.launch(blocks(grid)?) }?;
                }
                Step::Gemm(m) => {
                    let c_type = if m.c_bf16 {
                        cudaDataType::CUDA_R_16BF
                    } else {
                        cudaDataType::CUDA_R_32F
                    };
                    let dim = |what, v| as_i32(what, v);
                    // SAFETY: the plan keeps every operand inside its buffer
                    // (checked or allocated above) for `batch` products.
                    unsafe {
                        self.gemm_strided_batched(
                            m.transpose_a,
                            (dim("m", m.m)?, dim("n", m.n)?, dim("k", m.k)?),
                            (addrs.at(m.a.0)?, dim("lda", m.a.1)?, m.a.2 as i64),
                            (addrs.at(m.b.0)?, dim("ldb", m.b.1)?, m.b.2 as i64),
                            (addrs.at(m.c.0)?, c_type, dim("ldc", m.c.1)?, m.c.2 as i64),
                            dim("batch", m.batch)?,
                        )?;
                    }
                }
                Step::Softmax {
                    x,
                    qs,
                    ks,
                    self_valid,
                    key_valid,
                    p,
                    pself,
                    batch,
                    grid,
                } => {
                    let ptrs = [
                        addrs.at(x)?,
                        addrs.at(qs)?,
                        addrs.maybe(ks)?,
                        addrs.maybe(self_valid)?,
                        addrs.at(key_valid)?,
                        addrs.at(p)?,
                        addrs.at(pself)?,
                    ];
                    let nb = as_i32("batch", batch)?;
                    let mut lb = stream.launch_builder(self.function(softmax)?);
                    for ptr in &ptrs {
                        lb.arg(ptr);
                    }
                    lb.arg(&nb)
                        .arg(&t)
                        .arg(&sl)
                        .arg(&ldx)
                        .arg(&hq)
                        .arg(&hkv)
                        .arg(&d)
                        .arg(&causal)
                        .arg(&s.mult)
                        .arg(&s.cap)
                        .arg(&round);
                    // SAFETY: argument count and types match `gqa_softmax_*`;
                    // X and P hold the chunk's rows of `ldx`, the self K/V
                    // (or null) and the masks the chunk's rows.
                    unsafe { lb.launch(blocks(grid)?) }?;
                }
                Step::Unstack {
                    o,
                    pself,
                    vs,
                    out,
                    batch,
                    grid,
                } => {
                    let ptrs = [
                        addrs.at(o)?,
                        addrs.at(pself)?,
                        addrs.maybe(vs)?,
                        addrs.at(out)?,
                    ];
                    let nb = as_i32("batch", batch)?;
                    let mut lb = stream.launch_builder(self.function("gqa_unstack_out")?);
                    for ptr in &ptrs {
                        lb.arg(ptr);
                    }
                    lb.arg(&nb).arg(&t).arg(&hq).arg(&hkv).arg(&d);
                    // SAFETY: argument count and types match
                    // `gqa_unstack_out`; O and out hold the chunk's rows.
                    unsafe { lb.launch(blocks(grid)?) }?;
                }
            }
        }
        Ok(())
    }

    /// [`Self::attention`] or [`Self::attention_gemm`], as `kernel` says.
    #[allow(clippy::too_many_arguments)]
    pub fn attention_with(
        &self,
        kernel: AttentionKernel,
        shape: &AttentionShape,
        q: &CudaSlice<u16>,
        kc: &CudaSlice<u16>,
        vc: &CudaSlice<u16>,
        key_valid: &CudaSlice<u8>,
        self_kv: Option<SelfKvGpu<'_>>,
        out: &mut CudaSlice<u16>,
        scratch: &mut GemmAttentionScratch,
    ) -> GpuResult<()> {
        match kernel {
            AttentionKernel::Flash => self.attention(shape, q, kc, vc, key_valid, self_kv, out),
            AttentionKernel::Gemm => {
                self.attention_gemm(shape, q, kc, vc, key_valid, self_kv, out, scratch)
            }
        }
    }
}
