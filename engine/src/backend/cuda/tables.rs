//! Hash-embedding tables resident on the device, so a request uploads its
//! hashes (4 bytes each) and the gather kernel builds the token inputs
//! there, instead of the host gathering, converting and uploading
//! D-wide bf16 rows (at the prod-like shape that was 67 MB and 19 ms of a
//! 50 ms call, against 8 ms of device work).
//!
//! Placement: the tables (bf16, as the host path rounds them) go to the
//! device when they fit in its free memory with a reserve left for
//! activations: a quarter of the device, at least 4 GiB. Otherwise, or with
//! `--gpu-tables host`, rows are gathered on the host as before.

use foryou_kernels::cuda::cudarc::driver::CudaSlice;
use foryou_kernels::cuda::{Gpu, GpuError};
use foryou_kernels::reference::ops::GatherShape;
use rayon::prelude::*;

use super::ranker::fill_bf16;
use crate::backend::GpuTables as TablePolicy;
use crate::error::Result;
use crate::hash_embed::{HashTable, HashTables};

/// Rows converted and copied per step of an upload (bounds the host copy).
const UPLOAD_CHUNK: usize = 1 << 24;

/// One table on the device: `[rows, D]` bf16.
pub(crate) struct DeviceTable {
    pub(crate) data: CudaSlice<u16>,
    pub(crate) rows: usize,
    pub(crate) dim: usize,
    /// Index 0 gathers zeros (hash tables: hash 0 is padding).
    pub(crate) skip_row0: bool,
}

/// The user, post and author tables plus the product-surface table.
pub(crate) struct GpuTables {
    pub(crate) user: DeviceTable,
    pub(crate) post: DeviceTable,
    pub(crate) author: DeviceTable,
}

/// Bytes a placement must leave free on a device of `total` bytes.
fn reserve(total: usize) -> usize {
    (total / 4).max(4 << 30)
}

/// Whether tables of `bytes` go to a device with `free` of `total` bytes
/// free, under the placement `policy`.
pub(crate) fn fits(bytes: usize, free: usize, total: usize, policy: TablePolicy) -> bool {
    match policy {
        TablePolicy::Host => false,
        TablePolicy::Auto => bytes.saturating_add(reserve(total)) <= free,
    }
}

impl DeviceTable {
    /// Uploads `t` as bf16 (round to nearest even), in chunks.
    fn upload(gpu: &Gpu, t: &HashTable) -> Result<Self> {
        let n = t.rows * t.dim;
        let mut data = gpu.scratch::<u16>(n)?;
        let mut staged = vec![0u16; UPLOAD_CHUNK.min(n)];
        let mut at = 0;
        while at < n {
            let len = UPLOAD_CHUNK.min(n - at);
            staged[..len]
                .par_chunks_mut(1 << 16)
                .zip(t.data[at..at + len].par_chunks(1 << 16))
                .for_each(|(dst, src)| fill_bf16(dst, src));
            let mut view = data.slice_mut(at..at + len);
            gpu.stream()
                .memcpy_htod(&staged[..len], &mut view)
                .map_err(GpuError::from)?;
            at += len;
        }
        // The staging buffer is reused by the next step: the copy above is
        // from pageable memory, so it has left `staged` on return.
        Ok(Self {
            data,
            rows: t.rows,
            dim: t.dim,
            skip_row0: true,
        })
    }

    /// Bytes on the device.
    fn bytes(t: &HashTable) -> usize {
        t.rows * t.dim * 2
    }

    /// The gather shape for `rows` output rows of `per_row` hashes each,
    /// written from column `offset` of rows `stride` wide.
    pub(crate) fn shape(
        &self,
        rows: usize,
        per_row: usize,
        stride: usize,
        offset: usize,
    ) -> GatherShape {
        GatherShape {
            rows,
            per_row,
            dim: self.dim,
            table_rows: self.rows,
            skip_row0: self.skip_row0,
            out_stride: stride,
            out_offset: offset,
        }
    }
}

impl GpuTables {
    /// The tables on `gpu` when they fit (see the module doc); `None` keeps
    /// the host gather.
    pub(crate) fn place(
        gpu: &Gpu,
        tables: &HashTables,
        policy: TablePolicy,
    ) -> Result<Option<Self>> {
        let bytes = DeviceTable::bytes(&tables.user)
            + DeviceTable::bytes(&tables.post)
            + DeviceTable::bytes(&tables.author);
        let (free, total) = gpu.context().mem_get_info().map_err(GpuError::from)?;
        if !fits(bytes, free, total, policy) {
            tracing::info!(
                table_mb = bytes >> 20,
                free_mb = free >> 20,
                "hash tables stay on the host (gathered per request)"
            );
            return Ok(None);
        }
        let placed = Self {
            user: DeviceTable::upload(gpu, &tables.user)?,
            post: DeviceTable::upload(gpu, &tables.post)?,
            author: DeviceTable::upload(gpu, &tables.author)?,
        };
        tracing::info!(table_mb = bytes >> 20, "hash tables resident on the device");
        Ok(Some(placed))
    }
}

/// Hashes as the gather kernel's i32 indices (validated inputs hold
/// 0..=i32::MAX; anything else maps to -1, which gathers zeros).
pub(crate) fn indices(hashes: &[i64]) -> Vec<i32> {
    hashes
        .iter()
        .map(|&h| i32::try_from(h).ok().filter(|&v| v >= 0).unwrap_or(-1))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_leaves_a_reserve_and_honours_the_override() {
        let gib = 1usize << 30;
        // 80 GiB device: the reserve is 20 GiB.
        let auto = TablePolicy::Auto;
        assert!(fits(50 * gib, 70 * gib, 80 * gib, auto));
        assert!(!fits(51 * gib, 70 * gib, 80 * gib, auto));
        // A small device keeps at least 4 GiB.
        assert!(fits(gib, 5 * gib, 8 * gib, auto));
        assert!(!fits(gib + 1, 5 * gib, 8 * gib, auto));
        assert!(!fits(1, 70 * gib, 80 * gib, TablePolicy::Host));
    }

    #[test]
    fn hashes_outside_i32_become_the_zero_row_index() {
        assert_eq!(
            indices(&[0, 5, i64::from(i32::MAX), 1 << 40, -3]),
            vec![0, 5, i32::MAX, -1, -1]
        );
    }
}
