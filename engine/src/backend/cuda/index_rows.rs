//! [`GpuRowDevice`]: the live index's arena of sealed segments in GPU
//! memory, searched by the top-k kernel (`foryou_kernels::cuda::topk`:
//! bf16 rows, mma scoring, threshold filtering, one launch sequence per
//! batch of 64 queries over the arena's filled prefix). Its CPU twin is
//! `crate::index::CpuRowDevice`; the kernel's own contract test
//! (`kernels/tests/gpu_contract.rs`) checks both against one reference.

use std::sync::Arc;

use foryou_kernels::cuda::Gpu;
use foryou_kernels::cuda::topk::{GpuCorpus, MAX_K};

use crate::index::{DEVICE_MAX_K, IndexError, RowDevice};

// The index plans its depths with the kernel's limit.
const _: () = assert!(MAX_K == DEVICE_MAX_K);

/// An arena on one GPU.
pub struct GpuRowDevice {
    gpu: Arc<Gpu>,
    arena: Option<GpuCorpus>,
}

impl std::fmt::Debug for GpuRowDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuRowDevice({:?})", self.arena)
    }
}

impl GpuRowDevice {
    /// No arena until the first allocation.
    pub fn new(gpu: Arc<Gpu>) -> Self {
        Self { gpu, arena: None }
    }

    fn arena(&self) -> Result<&GpuCorpus, IndexError> {
        self.arena.as_ref().ok_or_else(no_arena)
    }

    /// The device and the arena to write.
    fn arena_mut(&mut self) -> Result<(&Gpu, &mut GpuCorpus), IndexError> {
        let arena = self.arena.as_mut().ok_or_else(no_arena)?;
        Ok((&self.gpu, arena))
    }
}

fn no_arena() -> IndexError {
    IndexError::Device("no arena allocated".into())
}

fn device_error(e: foryou_kernels::cuda::GpuError) -> IndexError {
    IndexError::Device(e.to_string())
}

impl RowDevice for GpuRowDevice {
    fn allocate(&mut self, rows: usize, dim: usize) -> Result<(), IndexError> {
        // Free the old arena before the new one takes its memory.
        self.arena = None;
        self.arena = Some(
            self.gpu
                .corpus_with_capacity(rows, dim)
                .map_err(device_error)?,
        );
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.arena.as_ref().map_or(0, GpuCorpus::rows)
    }

    fn write(&mut self, first: usize, bits: &[u16]) -> Result<(), IndexError> {
        let (gpu, arena) = self.arena_mut()?;
        gpu.write_rows(arena, first, bits).map_err(device_error)
    }

    fn set_eligible(&mut self, words: &[u32]) -> Result<(), IndexError> {
        let (gpu, arena) = self.arena_mut()?;
        gpu.set_eligible(arena, words).map_err(device_error)
    }

    fn top_k(
        &self,
        rows: usize,
        queries: &[f32],
        k: usize,
    ) -> Result<Vec<Vec<(u32, f32)>>, IndexError> {
        self.gpu
            .top_k_prefix(self.arena()?, rows, queries, k)
            .map_err(device_error)
    }

    fn device_bytes(&self) -> usize {
        self.arena
            .as_ref()
            .map_or(0, |a| a.rows() * a.dim() * 2 + a.rows().div_ceil(32) * 4)
    }
}
