//! What a live index is built with, chosen once: the row width, the row
//! format, whether quantised rows are re-scored from kept f32 rows, the
//! segment size, the retention window and the capacity.

use super::ann::AnnConfig;
use super::error::IndexError;

/// Widest representation: int8 integer sums stay below 2^31 (255 · 127
/// · 65 536 < 2^31).
pub const MAX_DIM: usize = 65_536;

/// 48 hours: Thunder keeps posts this long, so the live index does too.
pub const DEFAULT_RETENTION_MS: i64 = 48 * 3600 * 1000;

/// Rows per sealed segment. 65 536 rows of D 128 are 8 MiB in int8 and
/// 32 MiB in f32: large enough that the per-segment work of a search
/// (one task list entry, one merge input) is noise, small enough that
/// compacting one rewrites little.
pub const DEFAULT_SEGMENT_ROWS: usize = 65_536;

/// Live posts kept by default: 10 M rows of D 128 hold ~1.9 GB in int8
/// (~5.6 GB in f32), measured in `benches/results/index_scale_*`.
pub const DEFAULT_CAPACITY: usize = 10_000_000;

/// A sealed segment is rewritten once this fraction of its rows is dead
/// (deleted, expired or evicted but still stored).
pub const DEFAULT_COMPACT_DEAD_FRACTION: f64 = 0.25;

/// How representations are stored and scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// 4 bytes a value; the scan is exact.
    F32,
    /// 2 bytes a value, rounded to nearest even; the scan widens to f32.
    Bf16,
    /// 1 byte a value plus an f32 scale a row: `q = round(x / s)`,
    /// `s = max|x| / 127` (symmetric). The scan takes integer dot
    /// products with the query quantised the same way (AVX-512 VNNI),
    /// keeps a deeper list and re-scores it exactly (see [`Rescore`]).
    Int8,
}

impl Format {
    /// Bytes of one stored value.
    pub fn value_bytes(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::Bf16 => 2,
            Self::Int8 => 1,
        }
    }

    /// Bytes of one row's representation as scanned (values and scale;
    /// int8 rows are padded to a multiple of 4 values).
    pub fn row_bytes(self, dim: usize) -> usize {
        match self {
            Self::Int8 => dim.next_multiple_of(4) + 4,
            _ => dim * self.value_bytes(),
        }
    }
}

/// What a search's final scores are computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Rescore {
    /// The rows as stored: f32 products of the exact (never quantised)
    /// query with the stored row widened to f32 (bf16), or widened and
    /// times its scale (int8). No extra memory; scores carry the format's
    /// rounding. bf16 scans exactly this way; int8 scans approximately
    /// (quantised query) and re-scores a list `k + max(64, k/4)` deep.
    #[default]
    Stored,
    /// Every segment also keeps the f32 rows (`4·D` more bytes a post,
    /// never scanned); the scan keeps a list `k + max(64, k/4)` deep and
    /// re-scores it from the f32 rows, so scores equal an exact f32
    /// scan's, and so does the order whenever the exact top-k lies within
    /// the deeper list. Means nothing for [`Format::F32`], which keeps no
    /// second copy.
    F32Rows,
    /// As [`Rescore::F32Rows`] with bf16 copies (`2·D` more bytes a post):
    /// scores are a bf16 scan's. For int8 (a bf16 index scans bf16
    /// already, and keeps no second copy).
    Bf16Rows,
}

/// How a search of a given config turns scan scores into final ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rescoring {
    /// The scan is exact on the stored rows (f32; bf16 without f32 rows).
    None,
    /// int8 without kept rows: re-score the deeper list from the stored
    /// rows.
    StoredRows,
    /// Re-score the deeper list from the kept f32 or bf16 rows.
    KeptRows,
}

/// A live index's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexConfig {
    /// Width D of a representation.
    pub dim: usize,
    /// Row storage.
    pub format: Format,
    /// Re-scoring of quantised rows.
    pub rescore: Rescore,
    /// Rows per sealed segment.
    pub segment_rows: usize,
    /// Posts whose `created_ms` is older than `now_ms - retention_ms` leave.
    pub retention_ms: i64,
    /// Most live posts; inserting past it evicts the oldest inserted.
    pub capacity: usize,
    /// Dead fraction at which a sealed segment is rewritten, in (0, 1].
    pub compact_dead_fraction: f64,
    /// Approximate search: each sealed segment gets a graph and is
    /// searched through it (the open segment is still scanned exactly).
    /// Off (`None`) by default.
    pub ann: Option<AnnConfig>,
}

impl IndexConfig {
    /// Defaults for everything but the width and format.
    pub fn new(dim: usize, format: Format) -> Self {
        Self {
            dim,
            format,
            rescore: Rescore::Stored,
            segment_rows: DEFAULT_SEGMENT_ROWS,
            retention_ms: DEFAULT_RETENTION_MS,
            capacity: DEFAULT_CAPACITY,
            compact_dead_fraction: DEFAULT_COMPACT_DEAD_FRACTION,
            ann: None,
        }
    }

    /// The rows segments keep to re-score from: `rescore` when it can
    /// add precision to the format, else [`Rescore::Stored`] (none).
    pub fn kept_rows(&self) -> Rescore {
        match (self.format, self.rescore) {
            (Format::F32, _) | (Format::Bf16, Rescore::Bf16Rows) => Rescore::Stored,
            (_, r) => r,
        }
    }

    /// What a search re-scores from.
    pub(crate) fn rescoring(&self) -> Rescoring {
        match (self.format, self.kept_rows()) {
            (Format::Int8, Rescore::Stored) => Rescoring::StoredRows,
            (_, Rescore::Stored) => Rescoring::None,
            _ => Rescoring::KeptRows,
        }
    }

    /// Bytes a post costs in segments: scanned row, kept f32 row and
    /// metadata (ids, creation time, sequence number), before the
    /// bookkeeping the writer adds.
    pub fn segment_bytes_per_post(&self) -> usize {
        let kept = self.dim * super::kept_rows::KeptRows::value_bytes(self.kept_rows());
        self.format.row_bytes(self.dim) + kept + super::segment::METADATA_BYTES
    }

    /// Checks every value; the error names the first bad one.
    pub fn validate(&self) -> Result<(), IndexError> {
        let bad = |field, value: String, expected| {
            Err(IndexError::Config {
                field,
                value,
                expected,
            })
        };
        if self.dim == 0 || self.dim > MAX_DIM {
            return bad("dim", self.dim.to_string(), "between 1 and 65536");
        }
        if self.segment_rows == 0 || u32::try_from(self.segment_rows).is_err() {
            return bad(
                "segment_rows",
                self.segment_rows.to_string(),
                "between 1 and 2^32 - 1",
            );
        }
        if self.retention_ms <= 0 {
            return bad(
                "retention_ms",
                self.retention_ms.to_string(),
                "a positive duration",
            );
        }
        if self.capacity == 0 {
            return bad("capacity", "0".into(), "at least 1");
        }
        let f = self.compact_dead_fraction;
        if !(f > 0.0 && f <= 1.0) {
            return bad("compact_dead_fraction", f.to_string(), "in (0, 1]");
        }
        self.ann.as_ref().map_or(Ok(()), AnnConfig::validate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_first_bad_field() {
        let ok = IndexConfig::new(8, Format::Int8);
        assert_eq!(ok.validate(), Ok(()));
        let e = IndexConfig {
            dim: 0,
            ..ok.clone()
        }
        .validate();
        assert!(matches!(e, Err(IndexError::Config { field: "dim", .. })));
        let e = IndexConfig {
            compact_dead_fraction: 0.0,
            ..ok.clone()
        }
        .validate()
        .expect_err("0 is outside (0, 1]");
        assert_eq!(
            e.to_string(),
            "index config compact_dead_fraction = 0: expected in (0, 1]"
        );
        let e = IndexConfig {
            retention_ms: -1,
            ..ok
        }
        .validate();
        assert!(matches!(
            e,
            Err(IndexError::Config {
                field: "retention_ms",
                ..
            })
        ));
    }

    #[test]
    fn int8_always_rescores_and_bf16_only_from_f32_rows() {
        let mut c = IndexConfig::new(8, Format::Int8);
        assert_eq!(c.rescoring(), Rescoring::StoredRows);
        c.rescore = Rescore::Bf16Rows;
        assert_eq!(c.rescoring(), Rescoring::KeptRows);
        c.format = Format::Bf16;
        assert_eq!(
            (c.rescoring(), c.kept_rows()),
            (Rescoring::None, Rescore::Stored)
        );
        c.rescore = Rescore::F32Rows;
        assert_eq!(c.rescoring(), Rescoring::KeptRows);
        c.format = Format::F32;
        assert_eq!(
            (c.rescoring(), c.kept_rows()),
            (Rescoring::None, Rescore::Stored)
        );
    }

    #[test]
    fn f32_rows_are_kept_only_for_quantised_formats_that_rescore() {
        let mut c = IndexConfig::new(128, Format::F32);
        c.rescore = Rescore::F32Rows;
        assert_eq!(c.kept_rows(), Rescore::Stored);
        c.format = Format::Int8;
        assert_eq!(c.kept_rows(), Rescore::F32Rows);
        assert_eq!(
            c.segment_bytes_per_post(),
            128 + 4 + 512 + super::super::segment::METADATA_BYTES
        );
        assert_eq!(Format::Int8.row_bytes(6), 8 + 4);
    }
}
