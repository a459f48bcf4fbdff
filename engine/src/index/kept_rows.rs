//! Row-major copies of the representations a quantised index keeps only
//! to re-score its candidates (`Rescore::F32Rows`, `Rescore::Bf16Rows`):
//! never scanned, read for a few hundred rows a query.

use super::config::Rescore;
use super::element::Element;
use super::kernel;

/// `[n, D]` rows in f32 or bf16.
#[derive(Debug, Clone)]
pub(crate) enum KeptRows {
    /// f32 values.
    F32(Vec<f32>),
    /// bf16 bit patterns.
    Bf16(Vec<u16>),
}

impl KeptRows {
    /// Room for `rows` rows of width `dim` for `rescore`; `None` for
    /// [`Rescore::Stored`].
    pub fn with_capacity(rescore: Rescore, dim: usize, rows: usize) -> Option<Self> {
        match rescore {
            Rescore::Stored => None,
            Rescore::F32Rows => Some(Self::F32(Vec::with_capacity(rows * dim))),
            Rescore::Bf16Rows => Some(Self::Bf16(Vec::with_capacity(rows * dim))),
        }
    }

    /// Bytes of one value.
    pub fn value_bytes(rescore: Rescore) -> usize {
        match rescore {
            Rescore::Stored => 0,
            Rescore::F32Rows => 4,
            Rescore::Bf16Rows => 2,
        }
    }

    /// Appends `x`.
    pub fn push(&mut self, x: &[f32]) {
        match self {
            Self::F32(v) => v.extend_from_slice(x),
            Self::Bf16(v) => v.extend(x.iter().map(|&x| u16::store(x, 1.0))),
        }
    }

    /// Appends `other`'s row `row` (`dim` wide) as kept.
    pub fn push_from(&mut self, other: &Self, row: usize, dim: usize) {
        let span = row * dim..(row + 1) * dim;
        match (self, other) {
            (Self::F32(a), Self::F32(b)) => a.extend_from_slice(&b[span]),
            (Self::Bf16(a), Self::Bf16(b)) => a.extend_from_slice(&b[span]),
            _ => debug_assert!(false, "one index keeps one format"),
        }
    }

    /// `query · row` in f32 (the float scan's arithmetic), `None` past the
    /// end.
    pub fn dot(&self, query: &[f32], row: usize) -> Option<f32> {
        let dim = query.len();
        let span = row * dim..(row + 1) * dim;
        match self {
            Self::F32(v) => v.get(span).map(|x| kernel::dot(query, x.iter().copied())),
            Self::Bf16(v) => v
                .get(span)
                .map(|x| kernel::dot(query, x.iter().map(|b| b.widen()))),
        }
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Self::F32(v) => v.capacity() * 4,
            Self::Bf16(v) => v.capacity() * 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rows_re_score_with_the_rounded_values() {
        let mut k = KeptRows::with_capacity(Rescore::Bf16Rows, 2, 2).expect("bf16 keeps rows");
        k.push(&[0.1, 0.2]);
        k.push(&[1.0 / 3.0, 1.0]);
        let mut c = KeptRows::with_capacity(Rescore::Bf16Rows, 2, 1).expect("bf16 keeps rows");
        c.push_from(&k, 1, 2);
        let want = half::bf16::from_f32(1.0 / 3.0).to_f32() * 2.0 + 1.0;
        assert_eq!(c.dot(&[2.0, 1.0], 0), Some(want));
        assert_eq!(c.dot(&[2.0, 1.0], 1), None);
        assert!(KeptRows::with_capacity(Rescore::Stored, 2, 1).is_none());
    }
}
