//! An immutable run of posts: ids, creation times, insertion sequence
//! numbers (strictly increasing within a segment), the representations in
//! the scan's layout and, when the index re-scores, the f32 rows. Built
//! once by a [`SegmentBuilder`] and then only read; snapshots share it
//! through an `Arc`.

use crate::corpus::CorpusItem;

use super::block_rows::BlockRows;
use super::config::IndexConfig;
use super::kept_rows::KeptRows;
use super::post::NewPost;

/// Bytes of a post's metadata in a segment: ids (16), creation time (8),
/// sequence number (8).
pub(crate) const METADATA_BYTES: usize = size_of::<CorpusItem>() + 8 + 8;

/// Posts in insertion order.
#[derive(Debug)]
pub(crate) struct Segment {
    items: Vec<CorpusItem>,
    created_ms: Vec<i64>,
    seqs: Vec<u64>,
    rows: BlockRows,
    /// `[n, D]` rows to re-score from (`Rescore::F32Rows`, `Bf16Rows`).
    kept: Option<KeptRows>,
    dim: usize,
}

impl Segment {
    /// Posts held (dead ones included: the segment does not know).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Post and author of row `row`.
    pub fn item(&self, row: usize) -> CorpusItem {
        self.items[row]
    }

    /// Creation time of row `row`.
    pub fn created_ms(&self, row: usize) -> i64 {
        self.created_ms[row]
    }

    /// Creation times by row.
    pub fn created(&self) -> &[i64] {
        &self.created_ms
    }

    /// Insertion sequence number of row `row`.
    pub fn seq(&self, row: usize) -> u64 {
        self.seqs[row]
    }

    /// The last (largest) sequence number, if any row.
    pub fn last_seq(&self) -> Option<u64> {
        self.seqs.last().copied()
    }

    /// The row holding sequence number `seq`.
    pub fn find(&self, seq: u64) -> Option<usize> {
        self.seqs.binary_search(&seq).ok()
    }

    /// Representations in the scan's layout.
    pub fn rows(&self) -> &BlockRows {
        &self.rows
    }

    /// `query · row` in f32 with the row as stored.
    pub fn stored_dot(&self, query: &[f32], row: usize) -> f32 {
        self.rows.stored_dot(query, row)
    }

    /// `query · row` from the kept rows, when the segment keeps them.
    pub fn kept_dot(&self, query: &[f32], row: usize) -> Option<f32> {
        self.kept.as_ref().and_then(|k| k.dot(query, row))
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.items.capacity() * size_of::<CorpusItem>()
            + self.created_ms.capacity() * 8
            + self.seqs.capacity() * 8
            + self.rows.heap_bytes()
            + self.kept.as_ref().map_or(0, KeptRows::heap_bytes)
    }
}

/// Appends posts (new, or copied from other segments) in sequence order.
#[derive(Debug)]
pub(crate) struct SegmentBuilder {
    seg: Segment,
}

impl SegmentBuilder {
    /// Room for `rows` posts.
    pub fn new(config: &IndexConfig, rows: usize) -> Self {
        let dim = config.dim;
        Self {
            seg: Segment {
                items: Vec::with_capacity(rows),
                created_ms: Vec::with_capacity(rows),
                seqs: Vec::with_capacity(rows),
                rows: BlockRows::with_capacity(config.format, dim, rows),
                kept: KeptRows::with_capacity(config.kept_rows(), dim, rows),
                dim,
            },
        }
    }

    /// Appends a new post (already validated) as sequence number `seq`.
    pub fn push_post(&mut self, post: &NewPost<'_>, seq: u64) {
        let s = &mut self.seg;
        s.items.push(post.item);
        s.created_ms.push(post.created_ms);
        s.seqs.push(seq);
        s.rows.push(post.representation);
        if let Some(k) = &mut s.kept {
            k.push(post.representation);
        }
    }

    /// Appends row `row` of `from` as stored.
    pub fn push_from(&mut self, from: &Segment, row: usize) {
        let s = &mut self.seg;
        s.items.push(from.items[row]);
        s.created_ms.push(from.created_ms[row]);
        s.seqs.push(from.seqs[row]);
        s.rows.push_from(&from.rows, row);
        if let (Some(k), Some(from)) = (&mut s.kept, &from.kept) {
            k.push_from(from, row, s.dim);
        }
    }

    /// Posts appended so far.
    pub fn len(&self) -> usize {
        self.seg.len()
    }

    /// The finished segment.
    pub fn finish(self) -> Segment {
        self.seg
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::config::{Format, Rescore};

    #[test]
    fn copied_rows_keep_ids_times_sequence_and_f32_rows() {
        let mut cfg = IndexConfig::new(2, Format::Bf16);
        cfg.rescore = Rescore::F32Rows;
        let mut b = SegmentBuilder::new(&cfg, 3);
        for i in 0..3i64 {
            let rep = [0.1 * i as f32, 1.0];
            let post = NewPost {
                item: CorpusItem {
                    post_id: 10 + i,
                    author_id: i,
                },
                created_ms: 1000 + i,
                representation: &rep,
            };
            b.push_post(&post, 5 + i as u64);
        }
        let a = b.finish();
        let mut b = SegmentBuilder::new(&cfg, 1);
        b.push_from(&a, 2);
        let c = b.finish();
        assert_eq!(c.item(0).post_id, 12);
        assert_eq!((c.created_ms(0), c.seq(0)), (1002, 7));
        assert_eq!(c.kept_dot(&[1.0, 1.0], 0), Some(0.2f32 + 1.0));
        assert_eq!(c.rows().widened(0), a.rows().widened(2));
        assert_eq!((a.find(6), a.find(8)), (Some(1), None));
    }
}
