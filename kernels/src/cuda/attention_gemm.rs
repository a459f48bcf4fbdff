//! The GEMM attention path (`cu/attention_gemm.cu`): the queries stacked per
//! kv head, cuBLAS `X = Qs Kc^T`, the row softmax with the self term,
//! cuBLAS `O = P Vc`, then the unstack that adds the self term. Same
//! contract as [`Gpu::attention`]; its CPU twin is
//! [`crate::reference::attention_gemm`].
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
use crate::reference::attention::AttentionShape;

/// Most workspace bytes the GEMM path holds by default; a batch that needs
/// more runs in chunks of batch rows.
pub const GEMM_ATTENTION_WORKSPACE: usize = 1 << 30;

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
fn grown<'a, T: cudarc::driver::DeviceRepr>(
    g: &Gpu,
    slot: &'a mut Option<CudaSlice<T>>,
    n: usize,
) -> GpuResult<&'a mut CudaSlice<T>> {
    if slot.as_ref().is_none_or(|s| s.len() < n) {
        *slot = None; // free before allocating the larger one
        *slot = Some(g.scratch(n.max(1))?);
    }
    slot.as_mut()
        .ok_or_else(|| GpuError::Shape("workspace slot empty".into()))
}

/// The buffer in `slot` (filled by [`grown`]).
fn ws<T>(slot: &Option<CudaSlice<T>>) -> GpuResult<&CudaSlice<T>> {
    slot.as_ref()
        .ok_or_else(|| GpuError::Shape("workspace slot empty".into()))
}

/// A launch of `grid` blocks of 256 threads, no dynamic shared memory.
fn blocks(grid: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (grid, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Per batch row: stacked rows R = T * G, and the workspace bytes.
fn per_batch_row(s: &AttentionShape) -> (usize, usize) {
    let r = s.queries * (s.q_heads / s.kv_heads);
    let score_bytes = if s.round_logits { 2 } else { 4 };
    let rows = s.kv_heads * r;
    let bytes = rows * (s.head_dim * 2 + s.context * (score_bytes + 2) + 4 + s.head_dim * 4);
    (r, bytes)
}

/// Grid of a grid-stride loop over `n` items, 256 per block.
fn stride_grid(n: usize) -> u32 {
    n.div_ceil(256).clamp(1, 1 << 20) as u32
}

/// A device address `elems` elements of `T` past `base`.
fn at<T>(base: u64, elems: usize) -> u64 {
    base + (elems * std::mem::size_of::<T>()) as u64
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
        let (r, bytes) = per_batch_row(&s);
        let chunk = (scratch.limit / bytes.max(1)).clamp(1, s.batch);
        let (hkv, d, t, sl) = (s.kv_heads, s.head_dim, s.queries, s.context);
        let n_qs = chunk * hkv * r * d;
        let n_x = chunk * hkv * r * sl;
        let stream = self.stream().clone();
        grown(self, &mut scratch.qs, n_qs)?;
        if s.round_logits {
            grown(self, &mut scratch.x_bf16, n_x)?;
        } else {
            grown(self, &mut scratch.x_f32, n_x)?;
        }
        grown(self, &mut scratch.p, n_x)?;
        grown(self, &mut scratch.pself, chunk * hkv * r)?;
        grown(self, &mut scratch.o, n_qs)?;
        // The guards keep the buffers' addresses valid for the launches
        // below (event tracking is off: one stream, see `Gpu::open`).
        let (qs_p, _g1) = ws(&scratch.qs)?.device_ptr(&stream);
        let (x_p, _g2) = match (&scratch.x_bf16, &scratch.x_f32, s.round_logits) {
            (Some(x), _, true) => x.device_ptr(&stream),
            (_, Some(x), false) => x.device_ptr(&stream),
            _ => return Err(GpuError::Shape("workspace slot empty".into())),
        };
        let (p_p, _g3) = ws(&scratch.p)?.device_ptr(&stream);
        let (ps_p, _g4) = ws(&scratch.pself)?.device_ptr(&stream);
        let (o_p, _g5) = ws(&scratch.o)?.device_ptr(&stream);
        let (q_p, _g6) = q.device_ptr(&stream);
        let (kc_p, _g7) = kc.device_ptr(&stream);
        let (vc_p, _g8) = vc.device_ptr(&stream);
        let (kv_p, _g9) = key_valid.device_ptr(&stream);
        let (out_p, _g10) = out.device_ptr_mut(&stream);
        let self_ptrs = self_kv.map(|sk| {
            let (k, gk) = sk.k.device_ptr(&stream);
            let (v, gv) = sk.v.device_ptr(&stream);
            let valid = sk.valid.map(|x| x.device_ptr(&stream));
            (k, v, valid, gk, gv)
        });
        let (hq_i, hkv_i, d_i, t_i, s_i) = (
            as_i32("Hq", s.q_heads)?,
            as_i32("Hkv", hkv)?,
            as_i32("D", d)?,
            as_i32("T", t)?,
            as_i32("S", sl)?,
        );
        let (r_i, causal, round) = (
            as_i32("T*G", r)?,
            i32::from(s.causal),
            i32::from(s.round_logits),
        );
        let (f_stack, f_soft, f_unstack) = (
            self.function("gqa_stack_q")?,
            self.function(if s.round_logits {
                "gqa_softmax_bf16s"
            } else {
                "gqa_softmax_f32s"
            })?,
            self.function("gqa_unstack_out")?,
        );
        let x_type = if s.round_logits {
            cudaDataType::CUDA_R_16BF
        } else {
            cudaDataType::CUDA_R_32F
        };
        let mut b0 = 0;
        while b0 < s.batch {
            let nb = chunk.min(s.batch - b0);
            let nb_i = as_i32("batch rows", nb)?;
            let heads = as_i32("batch rows x kv heads", nb * hkv)?;
            let q_c = at::<u16>(q_p, b0 * t * s.q_heads * d);
            let out_c = at::<u16>(out_p, b0 * t * s.q_heads * d);
            let kc_c = at::<u16>(kc_p, b0 * hkv * sl * d);
            let vc_c = at::<u16>(vc_p, b0 * hkv * sl * d);
            let kv_c = at::<u8>(kv_p, b0 * sl);
            let (ks_c, vs_c, sv_c) = match &self_ptrs {
                Some((k, v, valid, _, _)) => (
                    at::<u16>(*k, b0 * hkv * t * d),
                    at::<u16>(*v, b0 * hkv * t * d),
                    valid.as_ref().map_or(0, |(p, _)| at::<u8>(*p, b0 * t)),
                ),
                None => (0, 0, 0),
            };
            // 1. Qs = q stacked per kv head.
            let vecs = nb * t * s.q_heads * d / 8;
            let mut lb = stream.launch_builder(f_stack);
            lb.arg(&q_c)
                .arg(&qs_p)
                .arg(&nb_i)
                .arg(&t_i)
                .arg(&hq_i)
                .arg(&hkv_i)
                .arg(&d_i);
            // SAFETY: argument count and types match `gqa_stack_q`; q and the
            // stacked buffer hold nb*T*Hq*D elements (checked above).
            unsafe { lb.launch(blocks(stride_grid(vecs))) }?;
            // 2. X[i] = Qs[i] Kc[i]^T for i = (b, h): column-major
            //    X^T[S, R] = Kc[S, D] (transposed view) x Qs^T[D, R].
            // SAFETY: every operand lies inside the buffers checked or
            // allocated above for `nb` batch rows.
            unsafe {
                self.gemm_strided_batched(
                    true,
                    (s_i, r_i, d_i),
                    (kc_c, d_i, (sl * d) as i64),
                    (qs_p, d_i, (r * d) as i64),
                    (x_p, x_type, s_i, (r * sl) as i64),
                    heads,
                )?;
            }
            // 3. P, pself = softmax rows.
            let rows = nb * hkv * r;
            let mut lb = stream.launch_builder(f_soft);
            lb.arg(&x_p)
                .arg(&qs_p)
                .arg(&ks_c)
                .arg(&sv_c)
                .arg(&kv_c)
                .arg(&p_p)
                .arg(&ps_p)
                .arg(&nb_i)
                .arg(&t_i)
                .arg(&s_i)
                .arg(&hq_i)
                .arg(&hkv_i)
                .arg(&d_i)
                .arg(&causal)
                .arg(&s.mult)
                .arg(&s.cap)
                .arg(&round);
            let cfg = blocks(as_i32("softmax blocks", rows.div_ceil(8))? as u32);
            // SAFETY: argument count and types match `gqa_softmax_*`; X and P
            // hold `rows` rows of S, pself `rows`, the self K/V (or null)
            // nb*Hkv*T*D, the masks nb*S and nb*T.
            unsafe { lb.launch(cfg) }?;
            // 4. O[i] = P[i] Vc[i]: column-major O^T[D, R] = Vc^T[D, S] x P^T[S, R].
            // SAFETY: as for step 2.
            unsafe {
                self.gemm_strided_batched(
                    false,
                    (d_i, r_i, s_i),
                    (vc_c, d_i, (sl * d) as i64),
                    (p_p, s_i, (r * sl) as i64),
                    (o_p, cudaDataType::CUDA_R_32F, d_i, (r * d) as i64),
                    heads,
                )?;
            }
            // 5. out = O unstacked (+ pself * vs).
            let mut lb = stream.launch_builder(f_unstack);
            lb.arg(&o_p)
                .arg(&ps_p)
                .arg(&vs_c)
                .arg(&out_c)
                .arg(&nb_i)
                .arg(&t_i)
                .arg(&hq_i)
                .arg(&hkv_i)
                .arg(&d_i);
            // SAFETY: argument count and types match `gqa_unstack_out`; O
            // holds nb*Hkv*R*D, out nb*T*Hq*D from its offset.
            unsafe { lb.launch(blocks(stride_grid(vecs))) }?;
            b0 += nb;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(b: usize, t: usize, s: usize, round: bool) -> AttentionShape {
        AttentionShape {
            batch: b,
            queries: t,
            context: s,
            q_heads: 20,
            kv_heads: 4,
            head_dim: 128,
            causal: false,
            mult: 1.0,
            cap: 30.0,
            round_logits: round,
        }
    }

    #[test]
    fn workspace_per_batch_row_counts_every_intermediate() {
        // Prod shape: R = 1400 * 5; per kv head row: Qs 256 B, X 2 B and P
        // 2 B per key, pself 4 B, O 512 B.
        let (r, bytes) = per_batch_row(&shape(1, 1400, 1025, true));
        assert_eq!(r, 7000);
        assert_eq!(bytes, 4 * 7000 * (256 + 1025 * 4 + 4 + 512));
        // f32 scores take two more bytes per key.
        let (_, wide) = per_batch_row(&shape(1, 1400, 1025, false));
        assert_eq!(wide - bytes, 4 * 7000 * 1025 * 2);
        // 64 prod rows do not fit in one workspace: they run in chunks.
        assert!(64 * bytes > GEMM_ATTENTION_WORKSPACE);
        assert!(bytes < GEMM_ATTENTION_WORKSPACE);
    }

    #[test]
    fn device_offsets_scale_by_element_size() {
        assert_eq!(at::<u16>(1000, 3), 1006);
        assert_eq!(at::<f32>(1000, 3), 1012);
        assert_eq!(at::<u8>(1000, 3), 1003);
        assert_eq!(stride_grid(0), 1);
        assert_eq!(stride_grid(257), 2);
    }
}
