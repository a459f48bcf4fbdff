//! Page-locked staging for inputs the host builds: the host writes them
//! straight into pinned memory and the copy to the device runs
//! asynchronously on the stream, instead of a pageable copy that bounces
//! through a driver buffer and holds the calling thread (11 ms for the
//! ranker's 67 MB of bf16 rows at the prod-like shape on the H200). The
//! host can then build the next input while the last one is on its way.
//!
//! A [`Pinned`] buffer is reused across calls and grown when a call needs
//! more. Before it is written again, the event recorded after its last
//! copy is waited on.

use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{CudaEvent, CudaSlice, DevicePtrMut, PinnedHostSlice};

use super::{Gpu, GpuResult};

/// Pinned buffers grow in steps of this many elements (2 MB of bf16).
const GROW_STEP: usize = 1 << 20;

/// One reusable pinned buffer of bf16 bits and the event of its last copy.
#[derive(Debug, Default)]
pub struct Pinned {
    buf: Option<PinnedHostSlice<u16>>,
    done: Option<CudaEvent>,
}

impl Pinned {
    /// A device buffer of `n` elements whose contents `fill` writes on the
    /// host (every element it will be read for; the rest stays undefined),
    /// copied asynchronously on `gpu`'s stream. `fill` must only write:
    /// the memory is write-combined, so reading it back is slow.
    pub fn upload(
        &mut self,
        gpu: &Gpu,
        n: usize,
        fill: impl FnOnce(&mut [u16]),
    ) -> GpuResult<CudaSlice<u16>> {
        if let Some(done) = &self.done {
            done.synchronize()?;
        }
        let buf = match self.buf.take() {
            Some(b) if b.len() >= n => b,
            old => {
                drop(old);
                let len = n.max(1).div_ceil(GROW_STEP) * GROW_STEP;
                // SAFETY: the contents are undefined until `fill` writes
                // them; only the written prefix is copied.
                unsafe { gpu.context().alloc_pinned::<u16>(len) }?
            }
        };
        let buf = self.buf.insert(buf);
        let host = &mut buf.as_mut_slice()?[..n];
        fill(host);
        let mut dst = gpu.scratch::<u16>(n)?;
        if n > 0 {
            let stream = gpu.stream();
            let (ptr, _guard) = dst.device_ptr_mut(stream);
            // SAFETY: `dst` holds at least `n` elements; `host` stays
            // allocated and unwritten until the event recorded below has
            // completed (waited on at the next use, or on drop).
            unsafe { cudarc::driver::result::memcpy_htod_async(ptr, host, stream.cu_stream()) }?;
            let done = match self.done.take() {
                Some(e) => e,
                None => gpu
                    .context()
                    .new_event(Some(CUevent_flags::CU_EVENT_DISABLE_TIMING))?,
            };
            done.record(stream)?;
            self.done = Some(done);
        }
        Ok(dst)
    }
}

impl Drop for Pinned {
    /// The last copy must leave the buffer before it is freed.
    fn drop(&mut self) {
        if let Some(done) = &self.done {
            let _ = done.synchronize();
        }
    }
}
