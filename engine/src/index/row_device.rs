//! What the live index asks of a device that holds its sealed segments
//! (`device_search`): one buffer of bf16 rows written in place (the
//! arena), an eligibility bitset over it, and an exact top-k by dot
//! product over a prefix of it.
//!
//! Two implementations: the GPU's top-k kernel (`foryou_kernels::cuda::
//! topk`, wrapped by the engine's CUDA backend, `Backend::row_device`)
//! and [`CpuRowDevice`], its CPU twin. The twin computes the kernel's
//! contract as `foryou_kernels::reference::topk` states it (bf16 rows and
//! queries, exact sums, score descending, ties to the lower row,
//! ineligible rows never returned), so the tests of the arena, the mask
//! and the merge run here and the GPU contract test checks the kernel
//! against the same reference.

use half::bf16;

use super::error::IndexError;

/// Widths the top-k kernel is built for.
pub const DEVICE_DIMS: [usize; 3] = [64, 128, 256];

/// Largest `k` one top-k call takes (the kernel sorts `k` keys in shared
/// memory; `foryou_kernels::cuda::topk::MAX_K`).
pub const DEVICE_MAX_K: usize = 16_384;

/// A device's row buffer and top-k.
pub trait RowDevice: Send + std::fmt::Debug {
    /// Replaces the buffer with `rows` zero rows of width `dim`, none
    /// eligible.
    fn allocate(&mut self, rows: usize, dim: usize) -> Result<(), IndexError>;

    /// Rows the buffer holds.
    fn capacity(&self) -> usize;

    /// Overwrites rows `first..` with `bits` (bf16 bits, whole rows).
    fn write(&mut self, first: usize, bits: &[u16]) -> Result<(), IndexError>;

    /// Replaces the eligibility bitset: `ceil(capacity / 32)` words, bit
    /// `r % 32` of word `r / 32` set when row `r` may be returned.
    fn set_eligible(&mut self, words: &[u32]) -> Result<(), IndexError>;

    /// Per query (`queries: [B, D]` f32, rounded to bf16): the best `k`
    /// (`1..=DEVICE_MAX_K`) eligible rows among the first `rows`, as
    /// (row, score) best first, ties to the lower row.
    fn top_k(
        &self,
        rows: usize,
        queries: &[f32],
        k: usize,
    ) -> Result<Vec<Vec<(u32, f32)>>, IndexError>;

    /// Bytes the buffer and bitset take on the device.
    fn device_bytes(&self) -> usize;
}

/// The kernel's CPU twin: host vectors and the reference top-k.
#[derive(Debug, Default)]
pub struct CpuRowDevice {
    rows: Vec<bf16>,
    eligible: Vec<u32>,
    capacity: usize,
    dim: usize,
}

impl CpuRowDevice {
    /// An empty twin (allocate before use).
    pub fn new() -> Self {
        Self::default()
    }
}

fn shape(msg: String) -> IndexError {
    IndexError::Device(msg)
}

impl RowDevice for CpuRowDevice {
    fn allocate(&mut self, rows: usize, dim: usize) -> Result<(), IndexError> {
        if !DEVICE_DIMS.contains(&dim) {
            return Err(shape(format!("row width {dim} not in 64, 128, 256")));
        }
        let values = rows
            .checked_mul(dim)
            .ok_or_else(|| shape(format!("{rows} rows of width {dim} overflow")))?;
        self.rows = vec![bf16::ZERO; values];
        self.eligible = vec![0; rows.div_ceil(32)];
        self.capacity = rows;
        self.dim = dim;
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    fn write(&mut self, first: usize, bits: &[u16]) -> Result<(), IndexError> {
        let d = self.dim.max(1);
        let start = first.saturating_mul(d);
        let end = start.saturating_add(bits.len());
        if !bits.len().is_multiple_of(d) || end > self.rows.len() {
            return Err(shape(format!(
                "{} values at row {first} do not fit whole rows of a {} x {d} buffer",
                bits.len(),
                self.capacity
            )));
        }
        for (dst, &b) in self.rows[start..end].iter_mut().zip(bits) {
            *dst = bf16::from_bits(b);
        }
        Ok(())
    }

    fn set_eligible(&mut self, words: &[u32]) -> Result<(), IndexError> {
        let want = self.capacity.div_ceil(32);
        if words.len() < want {
            return Err(shape(format!(
                "eligibility bitset holds {} words, needs {want}",
                words.len()
            )));
        }
        self.eligible.clear();
        self.eligible.extend_from_slice(&words[..want]);
        Ok(())
    }

    fn top_k(
        &self,
        rows: usize,
        queries: &[f32],
        k: usize,
    ) -> Result<Vec<Vec<(u32, f32)>>, IndexError> {
        let d = self.dim;
        if d == 0 || !queries.len().is_multiple_of(d) {
            return Err(shape(format!(
                "{} query values are not a multiple of width {d}",
                queries.len()
            )));
        }
        if k == 0 || k > DEVICE_MAX_K {
            return Err(shape(format!("k = {k} not in 1..={DEVICE_MAX_K}")));
        }
        if rows > self.capacity {
            return Err(shape(format!(
                "{rows} rows asked of a buffer of {}",
                self.capacity
            )));
        }
        let q: Vec<bf16> = queries.iter().map(|&v| bf16::from_f32(v)).collect();
        Ok(foryou_kernels::reference::topk::top_k(
            &q,
            &self.rows[..rows * d],
            d,
            Some(&self.eligible),
            k,
        ))
    }

    fn device_bytes(&self) -> usize {
        self.rows.len() * 2 + self.eligible.len() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_twin_returns_only_eligible_rows_of_the_prefix_best_first() {
        let mut dev = CpuRowDevice::new();
        dev.allocate(40, 64).expect("allocate");
        // Row r scores r against the query (first value r, the rest 0).
        let bits: Vec<u16> = (0..40)
            .flat_map(|r| {
                let mut row = vec![0u16; 64];
                row[0] = bf16::from_f32(r as f32).to_bits();
                row
            })
            .collect();
        dev.write(0, &bits).expect("write");
        let mut q = vec![0.0f32; 64];
        q[0] = 1.0;
        // Nothing is eligible before a mask is set.
        assert!(dev.top_k(40, &q, 3).expect("top_k")[0].is_empty());
        // Rows 0..35 eligible except 33.
        dev.set_eligible(&[u32::MAX, 0b0101]).expect("mask");
        let got = dev.top_k(36, &q, 3).expect("top_k");
        assert_eq!(got[0], vec![(34, 34.0), (32, 32.0), (31, 31.0)]);
        // Rows past the prefix are not read even when eligible.
        assert_eq!(dev.top_k(33, &q, 1).expect("top_k")[0], vec![(32, 32.0)]);
        assert!(dev.write(39, &bits[..128]).is_err());
        assert!(dev.top_k(41, &q, 1).is_err());
        assert!(dev.top_k(40, &q, DEVICE_MAX_K + 1).is_err());
        assert!(dev.set_eligible(&[0]).is_err());
        assert!(CpuRowDevice::new().allocate(4, 100).is_err());
    }
}
