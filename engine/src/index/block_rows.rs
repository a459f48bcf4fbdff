//! Representations in the scan's layout: blocks of [`LANES`] rows. f32 and
//! bf16 are dimension-major inside a block (row `r`, dimension `d` of
//! block `b` at `(b · D + d) · 16 + r`); int8 packs four dimensions per
//! row (`((b · D4/4 + d/4) · 16 + r) · 4 + d % 4`, see `int8_kernel`).
//! The last block and int8's last dimensions are padded with zeros; int8
//! rows carry a scale. Rows are appended (quantised on the way in, or
//! copied as stored from another segment, never re-quantised).

use super::config::Format;
use super::element::{Element, FloatElement};
use super::int8_kernel::{self, QuantisedQueries};
use super::kernel::{self, LANES};

/// Rows of one element type.
#[derive(Debug, Clone)]
pub(crate) struct Blocks<E> {
    dim: usize,
    /// `dim` rounded up to the element's group.
    padded: usize,
    len: usize,
    /// `nb · padded · LANES` values.
    data: Vec<E>,
    /// `[nb · LANES]`; empty unless the element is scaled.
    scales: Vec<f32>,
}

impl<E: Element> Blocks<E> {
    fn with_capacity(dim: usize, rows: usize) -> Self {
        let padded = dim.next_multiple_of(E::GROUP);
        let nb = rows.div_ceil(LANES);
        Self {
            dim,
            padded,
            len: 0,
            data: Vec::with_capacity(nb * padded * LANES),
            scales: Vec::with_capacity(if E::SCALED { nb * LANES } else { 0 }),
        }
    }

    /// Opens a new block when the last one is full.
    fn grow(&mut self) {
        if self.len.is_multiple_of(LANES) {
            self.data
                .resize(self.data.len() + self.padded * LANES, E::ZERO);
            if E::SCALED {
                self.scales.resize(self.scales.len() + LANES, 0.0);
            }
        }
    }

    fn at(&self, row: usize, d: usize) -> usize {
        let g = E::GROUP;
        ((row / LANES * (self.padded / g) + d / g) * LANES + row % LANES) * g + d % g
    }

    /// Appends `x` (`D` values), quantised.
    fn push(&mut self, x: &[f32]) {
        self.grow();
        let row = self.len;
        let s = E::scale_of(x);
        for (d, &v) in x.iter().enumerate().take(self.dim) {
            let i = self.at(row, d);
            self.data[i] = E::store(v, s);
        }
        if E::SCALED {
            self.scales[row] = s;
        }
        self.len += 1;
    }

    /// Appends `other`'s row `row` as stored.
    fn push_from(&mut self, other: &Self, row: usize) {
        self.grow();
        let to = self.len;
        for d in 0..self.dim {
            let (i, j) = (self.at(to, d), other.at(row, d));
            self.data[i] = other.data[j];
        }
        if E::SCALED {
            self.scales[to] = other.scales[row];
        }
        self.len += 1;
    }

    /// `query · row` in f32 with the row as stored (widened, times its
    /// scale): the float kernel's arithmetic for one row.
    fn stored_dot(&self, query: &[f32], row: usize) -> f32 {
        let widened = (0..self.dim).map(|d| self.data[self.at(row, d)].widen());
        let dot = kernel::dot(query, widened);
        if E::SCALED {
            dot * self.scales[row]
        } else {
            dot
        }
    }

    /// Row `row` as the scan sees it: widened values times the scale.
    fn widened(&self, row: usize) -> Vec<f32> {
        let s = if E::SCALED { self.scales[row] } else { 1.0 };
        (0..self.dim)
            .map(|d| self.data[self.at(row, d)].widen() * s)
            .collect()
    }

    /// The stored values and scales of blocks `blocks`.
    fn range(&self, blocks: std::ops::Range<usize>) -> (&[E], &[f32]) {
        let per_block = self.padded * LANES;
        let data = &self.data[blocks.start * per_block..blocks.end * per_block];
        let scales = if E::SCALED {
            &self.scales[blocks.start * LANES..blocks.end * LANES]
        } else {
            &[]
        };
        (data, scales)
    }

    fn heap_bytes(&self) -> usize {
        self.data.capacity() * size_of::<E>() + self.scales.capacity() * 4
    }
}

impl<E: FloatElement> Blocks<E> {
    /// Float-kernel scores for blocks `blocks`.
    fn float_scores(
        &self,
        queries_t: &[f32],
        group: usize,
        blocks: std::ops::Range<usize>,
        out: &mut [f32],
    ) {
        let (data, scales) = self.range(blocks);
        kernel::scores::<E>(queries_t, group, self.dim, data, scales, out);
    }
}

/// A group of queries prepared for one format's kernel.
#[derive(Debug, Clone)]
pub(crate) enum GroupQueries {
    /// `[D, size]` f32, transposed (f32 and bf16 rows).
    Float(Vec<f32>),
    /// Quantised (int8 rows).
    Int8(QuantisedQueries),
}

impl GroupQueries {
    /// `queries: [count, D]` prepared for `format`, zero padded to `size`.
    pub fn new(format: Format, queries: &[f32], count: usize, size: usize, dim: usize) -> Self {
        match format {
            Format::F32 | Format::Bf16 => {
                Self::Float(kernel::transpose_queries(queries, count, size, dim))
            }
            Format::Int8 => Self::Int8(int8_kernel::quantise_queries(queries, count, size, dim)),
        }
    }
}

/// Rows in the index's format (chosen once, at construction).
#[derive(Debug, Clone)]
pub(crate) enum BlockRows {
    /// f32 values.
    F32(Blocks<f32>),
    /// bf16 bit patterns.
    Bf16(Blocks<u16>),
    /// int8 values offset to u8, with a scale a row.
    Int8(Blocks<u8>),
}

/// `$body` with `$b` bound to the inner `Blocks`, whatever the format.
macro_rules! each {
    ($self:expr, $b:ident => $body:expr) => {
        match $self {
            BlockRows::F32($b) => $body,
            BlockRows::Bf16($b) => $body,
            BlockRows::Int8($b) => $body,
        }
    };
}

impl BlockRows {
    /// Room for `rows` rows of width `dim` in `format`.
    pub fn with_capacity(format: Format, dim: usize, rows: usize) -> Self {
        match format {
            Format::F32 => Self::F32(Blocks::with_capacity(dim, rows)),
            Format::Bf16 => Self::Bf16(Blocks::with_capacity(dim, rows)),
            Format::Int8 => Self::Int8(Blocks::with_capacity(dim, rows)),
        }
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        each!(self, b => b.len)
    }

    /// Whole blocks held (the last may be partly padding).
    pub fn blocks(&self) -> usize {
        self.len().div_ceil(LANES)
    }

    /// Appends `x` (`D` finite values), quantised to the format.
    pub fn push(&mut self, x: &[f32]) {
        each!(self, b => b.push(x))
    }

    /// Appends `other`'s row `row` as stored; a no-op between formats
    /// (never happens: one index has one format).
    pub fn push_from(&mut self, other: &Self, row: usize) {
        match (self, other) {
            (Self::F32(a), Self::F32(b)) => a.push_from(b, row),
            (Self::Bf16(a), Self::Bf16(b)) => a.push_from(b, row),
            (Self::Int8(a), Self::Int8(b)) => a.push_from(b, row),
            _ => debug_assert!(false, "one index stores one format"),
        }
    }

    /// `query · row` in f32 with the row as stored.
    pub fn stored_dot(&self, query: &[f32], row: usize) -> f32 {
        each!(self, b => b.stored_dot(query, row))
    }

    /// Row `row` as the scan sees it (widened, scaled).
    pub fn widened(&self, row: usize) -> Vec<f32> {
        each!(self, b => b.widened(row))
    }

    /// `out[g · n + i]`: query `g` of a group of `group` against row
    /// `blocks.start · LANES + i`, `n = blocks.len() · LANES` (exact for
    /// f32 and bf16, approximate for int8: see `int8_kernel`). Queries
    /// prepared for another format leave `out` as it is (never happens).
    pub fn scores(
        &self,
        queries: &GroupQueries,
        group: usize,
        blocks: std::ops::Range<usize>,
        out: &mut [f32],
    ) {
        match (self, queries) {
            (Self::F32(b), GroupQueries::Float(q)) => b.float_scores(q, group, blocks, out),
            (Self::Bf16(b), GroupQueries::Float(q)) => b.float_scores(q, group, blocks, out),
            (Self::Int8(b), GroupQueries::Int8(q)) => {
                let (data, scales) = b.range(blocks);
                int8_kernel::scores(q, group, b.dim, data, scales, out);
            }
            _ => debug_assert!(false, "queries prepared for the index's format"),
        }
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        each!(self, b => b.heap_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copied_rows_keep_their_stored_values_and_scale() {
        let mut a = BlockRows::with_capacity(Format::Int8, 3, 20);
        for i in 0..20 {
            a.push(&[i as f32, -1.0, 0.5]);
        }
        let mut b = BlockRows::with_capacity(Format::Int8, 3, 2);
        b.push_from(&a, 17);
        b.push_from(&a, 3);
        assert_eq!((b.len(), b.blocks()), (2, 1));
        assert_eq!(b.widened(0), a.widened(17));
        assert_eq!(b.widened(1), a.widened(3));
        let w = a.widened(17);
        assert!((w[0] - 17.0).abs() < 1e-5 && (w[1] + 1.0).abs() < 0.07);
    }

    #[test]
    fn scores_cover_a_block_range_in_row_order() {
        let mut rows = BlockRows::with_capacity(Format::F32, 2, 40);
        for i in 0..40 {
            rows.push(&[i as f32, 1.0]);
        }
        // Blocks 1 and 2 are rows 16 ..= 47 (40 ..= 47 padding).
        let q = GroupQueries::new(Format::F32, &[1.0, 0.5], 1, 1, 2);
        let mut out = vec![0.0; 2 * LANES];
        rows.scores(&q, 1, 1..3, &mut out);
        assert_eq!(out[0], 16.5);
        assert_eq!(out[23], 39.5);
        assert_eq!(out[24], 0.0);
    }

    #[test]
    fn int8_scores_approximate_the_stored_dot_products() {
        let mut rows = BlockRows::with_capacity(Format::Int8, 5, 40);
        for i in 0..40 {
            let x = i as f32 / 40.0;
            rows.push(&[x, 1.0 - x, -0.5, 0.25 * x, 0.1]);
        }
        let query = [0.3, -0.2, 0.9, 0.1, -0.4];
        let q = GroupQueries::new(Format::Int8, &query, 1, 1, 5);
        let mut out = vec![0.0; 3 * LANES];
        rows.scores(&q, 1, 0..3, &mut out);
        for (i, &approx) in out.iter().enumerate().take(40) {
            let exact = rows.stored_dot(&query, i);
            assert!(
                (approx - exact).abs() < 0.01,
                "row {i}: {approx} vs {exact}"
            );
        }
    }
}
