//! Device-side timing with CUDA events: untimed warm-up runs first, then
//! many repetitions, each between two events recorded on the stream, and
//! the median of those times reported.

use cudarc::driver::sys::CUevent_flags;

use super::{Gpu, GpuResult};

impl Gpu {
    /// Runs `f(i)` for `warmup` untimed then `reps` timed repetitions, each
    /// between two events on the stream; returns each repetition's ms.
    pub fn time_ms(
        &self,
        warmup: usize,
        reps: usize,
        mut f: impl FnMut(usize) -> GpuResult<()>,
    ) -> GpuResult<Vec<f32>> {
        for i in 0..warmup {
            f(i)?;
        }
        self.synchronize()?;
        let ctx = self.context();
        let mut out = Vec::with_capacity(reps);
        for i in 0..reps {
            let start = ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
            let end = ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
            start.record(self.stream())?;
            f(warmup + i)?;
            end.record(self.stream())?;
            end.synchronize()?;
            out.push(start.elapsed_ms(&end)?);
        }
        Ok(out)
    }
}

/// The median of `xs` (upper median for even lengths); NaN when empty.
pub fn median(xs: &[f32]) -> f32 {
    let mut v = xs.to_vec();
    v.sort_by(f32::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f32::NAN)
}
