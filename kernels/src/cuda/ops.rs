//! Launches the fused ops of `cu/ops.cu` (contracts in `reference::ops`).

use cudarc::driver::{CudaSlice, DevicePtr, LaunchConfig, PushKernelArg};

use super::{Gpu, GpuError, GpuResult, as_i32, expect_len};
use crate::reference::ops::{GatherShape, QkvShape};

fn rows_cfg(rows: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (rows as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn stride_cfg(n: usize, sms: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (n.div_ceil(256).clamp(1, sms as usize * 16) as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

impl Gpu {
    /// `out = bf16(rms_norm(x) * scale)` per row of `x: [rows, D]`.
    pub fn rms_norm(
        &self,
        x: &CudaSlice<f32>,
        scale: &CudaSlice<f32>,
        eps: f32,
        rows: usize,
        round_in: bool,
        out: &mut CudaSlice<u16>,
    ) -> GpuResult<()> {
        let d = scale.len();
        expect_len("rms_norm x", x.len(), rows * d)?;
        expect_len("rms_norm out", out.len(), rows * d)?;
        if rows == 0 {
            return Ok(());
        }
        let (di, r) = (as_i32("D", d)?, i32::from(round_in));
        let func = self.function("rms_norm_bf16")?;
        let mut b = self.stream().launch_builder(func);
        b.arg(x).arg(scale).arg(&eps).arg(&di).arg(&r).arg(out);
        // SAFETY: matches rms_norm_bf16; one block per checked row.
        unsafe { b.launch(rows_cfg(rows)) }?;
        Ok(())
    }

    /// Residual sandwich update of `h` by `y`, and the next pre-norm into
    /// `x_next` when `s_next` is given (see `reference::ops::residual_rms_norm`).
    #[allow(clippy::too_many_arguments)]
    pub fn residual_rms_norm(
        &self,
        h: &mut CudaSlice<f32>,
        y: &CudaSlice<f32>,
        s_post: &CudaSlice<f32>,
        s_next: Option<&CudaSlice<f32>>,
        eps: f32,
        rows: usize,
        round: bool,
        x_next: &mut CudaSlice<u16>,
    ) -> GpuResult<()> {
        let d = s_post.len();
        expect_len("residual h", h.len(), rows * d)?;
        expect_len("residual y", y.len(), rows * d)?;
        expect_len("residual x_next", x_next.len(), rows * d)?;
        if rows == 0 {
            return Ok(());
        }
        let (di, r) = (as_i32("D", d)?, i32::from(round));
        let null = 0u64;
        let func = self.function("residual_rms_norm")?;
        let mut b = self.stream().launch_builder(func);
        b.arg(h).arg(y).arg(s_post);
        match s_next {
            Some(s) => {
                expect_len("residual s_next", s.len(), d)?;
                b.arg(s)
            }
            None => b.arg(&null),
        };
        b.arg(&eps).arg(&di).arg(&r).arg(x_next);
        // SAFETY: matches residual_rms_norm; one block per checked row.
        unsafe { b.launch(rows_cfg(rows)) }?;
        Ok(())
    }

    /// Splits the fused q|k|v projection and applies RoPE (`reference::ops::qkv_rope`).
    #[allow(clippy::too_many_arguments)]
    pub fn qkv_rope(
        &self,
        s: QkvShape,
        qkv: &CudaSlice<f32>,
        pos: &CudaSlice<i32>,
        inv_freq: &CudaSlice<f32>,
        round: bool,
        q: &mut CudaSlice<u16>,
        k: &mut CudaSlice<u16>,
        v: &mut CudaSlice<u16>,
    ) -> GpuResult<()> {
        let rows = s.batch * s.tokens;
        let kd = s.head_dim;
        expect_len("qkv", qkv.len(), rows * (s.q_heads + 2 * s.kv_heads) * kd)?;
        expect_len("positions", pos.len(), rows)?;
        expect_len("inv_freq", inv_freq.len(), kd / 2)?;
        expect_len("q out", q.len(), rows * s.q_heads * kd)?;
        expect_len("k out", k.len(), rows * s.kv_heads * kd)?;
        expect_len("v out", v.len(), rows * s.kv_heads * kd)?;
        if rows == 0 {
            return Ok(());
        }
        let (t, hq, hkv, kk, r) = (
            as_i32("T", s.tokens)?,
            as_i32("Hq", s.q_heads)?,
            as_i32("Hkv", s.kv_heads)?,
            as_i32("K", kd)?,
            i32::from(round),
        );
        let func = self.function("qkv_rope")?;
        let mut b = self.stream().launch_builder(func);
        b.arg(qkv)
            .arg(&t)
            .arg(&hq)
            .arg(&hkv)
            .arg(&kk)
            .arg(pos)
            .arg(inv_freq)
            .arg(&r);
        b.arg(q).arg(k).arg(v);
        // SAFETY: matches qkv_rope; one block per checked row.
        unsafe { b.launch(rows_cfg(rows)) }?;
        Ok(())
    }

    /// Gated GELU of `gl: [rows, 2F]` into `out: [rows, F]` bf16.
    pub fn gated_gelu(
        &self,
        gl: &CudaSlice<f32>,
        rows: usize,
        f: usize,
        erf_kind: bool,
        round: bool,
        out: &mut CudaSlice<u16>,
    ) -> GpuResult<()> {
        expect_len("gated_gelu in", gl.len(), rows * 2 * f)?;
        expect_len("gated_gelu out", out.len(), rows * f)?;
        if rows * f == 0 {
            return Ok(());
        }
        let (r64, fi, e, r) = (
            rows as i64,
            as_i32("F", f)?,
            i32::from(erf_kind),
            i32::from(round),
        );
        let func = self.function("gated_gelu")?;
        let mut b = self.stream().launch_builder(func);
        b.arg(gl).arg(&r64).arg(&fi).arg(&e).arg(&r).arg(out);
        // SAFETY: matches gated_gelu; grid-stride over rows * F elements.
        unsafe { b.launch(stride_cfg(rows * f, self.sm_count())) }?;
        Ok(())
    }

    /// `out = bf16(x)` elementwise.
    pub fn to_bf16(&self, x: &CudaSlice<f32>, out: &mut CudaSlice<u16>) -> GpuResult<()> {
        let n = x.len();
        expect_len("to_bf16 out", out.len(), n)?;
        let n64 = n as i64;
        let func = self.function("f32_to_bf16_copy")?;
        let mut b = self.stream().launch_builder(func);
        b.arg(x).arg(&n64).arg(out);
        // SAFETY: matches f32_to_bf16_copy; grid-stride over n elements.
        unsafe { b.launch(stride_cfg(n, self.sm_count())) }?;
        Ok(())
    }

    /// `x = round_bf16(x)` in place, for the first `n` elements.
    pub fn round_bf16_inplace(&self, x: &mut CudaSlice<f32>, n: usize) -> GpuResult<()> {
        expect_len("round x", x.len(), n)?;
        if n == 0 {
            return Ok(());
        }
        let n64 = n as i64;
        let func = self.function("round_bf16_inplace")?;
        let mut b = self.stream().launch_builder(func);
        b.arg(x).arg(&n64);
        // SAFETY: matches round_bf16_inplace; grid-stride over n elements.
        unsafe { b.launch(stride_cfg(n, self.sm_count())) }?;
        Ok(())
    }
}

impl Gpu {
    /// Hash-embedding gather (`reference::ops::gather_rows`): table rows
    /// picked by `idx` into columns `out_offset..out_offset + H*D` of each
    /// output row. Moves 16 bytes per thread when the shape and the buffers
    /// allow it, one element otherwise.
    pub fn gather_rows(
        &self,
        idx: &CudaSlice<i32>,
        table: &CudaSlice<u16>,
        s: GatherShape,
        out: &mut CudaSlice<u16>,
    ) -> GpuResult<()> {
        let width = s.per_row * s.dim;
        if s.out_offset + width > s.out_stride {
            return Err(GpuError::Shape(format!(
                "gather of {} x {} columns from column {} overruns rows {} wide",
                s.per_row, s.dim, s.out_offset, s.out_stride
            )));
        }
        expect_len("gather idx", idx.len(), s.rows * s.per_row)?;
        expect_len("gather table", table.len(), s.table_rows * s.dim)?;
        if s.rows == 0 || width == 0 {
            return Ok(());
        }
        expect_len(
            "gather out",
            out.len(),
            (s.rows - 1) * s.out_stride + s.out_offset + width,
        )?;
        let stream = self.stream();
        let aligned = |p: u64| p.is_multiple_of(16);
        let vector = s.dim.is_multiple_of(8)
            && s.out_stride.is_multiple_of(8)
            && s.out_offset.is_multiple_of(8)
            && aligned(table.device_ptr(stream).0)
            && aligned(out.device_ptr(stream).0);
        let (name, w) = if vector {
            ("gather_rows_bf16x8", 8)
        } else {
            ("gather_rows_bf16", 1)
        };
        let (rows, h, tr, d, lo, stride, off) = (
            s.rows as i64,
            as_i32("H", s.per_row)?,
            as_i32("table rows", s.table_rows)?,
            as_i32("D", s.dim)?,
            i32::from(s.skip_row0),
            s.out_stride as i64,
            s.out_offset as i64,
        );
        let func = self.function(name)?;
        let mut b = stream.launch_builder(func);
        b.arg(idx)
            .arg(&rows)
            .arg(&h)
            .arg(table)
            .arg(&tr)
            .arg(&d)
            .arg(&lo)
            .arg(out)
            .arg(&stride)
            .arg(&off);
        // SAFETY: matches gather_rows_bf16{,x8}; every index the kernel
        // reads is bounded by the lengths checked above, the vector form
        // only on 16-byte aligned buffers with 8-element strides.
        unsafe { b.launch(stride_cfg(s.rows * width / w, self.sm_count())) }?;
        Ok(())
    }
}
