//! What a reader searches: an immutable view of the index at one publish.
//! It holds the segments (shared, never changed), each with the
//! tombstones of that moment, the expiry cutoff and the eviction
//! watermark. A row is live in it iff it is not tombstoned, was created
//! at or after the cutoff and was inserted at or after the watermark.
//! Later writes build a new snapshot; this one answers as it did.

use std::sync::Arc;

use crate::corpus::CorpusItem;

use super::ann::AnnGraph;
use super::bitset::Bitset;
use super::config::{Format, Rescoring};
use super::segment::Segment;

/// One segment as a snapshot holds it.
#[derive(Debug, Clone)]
pub(crate) struct SegmentView {
    /// The rows.
    pub data: Arc<Segment>,
    /// Rows deleted at the snapshot's publish.
    pub tombstones: Arc<Bitset>,
    /// No row was dead (deleted, expired, evicted) at the publish, so a
    /// search skips the liveness checks.
    pub all_live: bool,
    /// The segment's graph: searched instead of scanned (sealed segments
    /// of an index with `IndexConfig::ann`).
    pub ann: Option<Arc<AnnGraph>>,
    /// A sealed segment (not one of the open segment's runs): what a
    /// device holds (`device_search`).
    pub sealed: bool,
}

/// The index at one publish.
#[derive(Debug)]
pub struct Snapshot {
    pub(crate) dim: usize,
    pub(crate) format: Format,
    /// What searches re-score from.
    pub(crate) rescoring: Rescoring,
    /// Segments in insertion order (sealed ones, then the open runs).
    pub(crate) segments: Vec<SegmentView>,
    /// Rows created before it are expired.
    pub(crate) cutoff_ms: i64,
    /// Rows inserted before it (sequence number below) are evicted.
    pub(crate) evicted_below: u64,
    pub(crate) posts: usize,
    pub(crate) version: u64,
}

impl Snapshot {
    /// An empty index of width `dim`.
    pub(crate) fn empty(dim: usize, format: Format, rescoring: Rescoring) -> Self {
        Self {
            dim,
            format,
            rescoring,
            segments: Vec::new(),
            cutoff_ms: i64::MIN,
            evicted_below: 0,
            posts: 0,
            version: 0,
        }
    }

    /// Live posts.
    pub fn len(&self) -> usize {
        self.posts
    }

    /// True when no post is live.
    pub fn is_empty(&self) -> bool {
        self.posts == 0
    }

    /// Width D of a representation.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Publishes before this one (0 for the empty index at construction).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Whether row `row` of `seg` is live in this snapshot.
    #[inline]
    pub(crate) fn is_live(&self, seg: &SegmentView, row: usize) -> bool {
        seg.data.seq(row) >= self.evicted_below
            && seg.data.created_ms(row) >= self.cutoff_ms
            && !seg.tombstones.contains(row)
    }

    /// The live posts, oldest inserted first.
    pub fn live_items(&self) -> impl Iterator<Item = CorpusItem> + '_ {
        self.segments.iter().flat_map(move |seg| {
            (0..seg.data.len())
                .filter(move |&r| self.is_live(seg, r))
                .map(move |r| seg.data.item(r))
        })
    }
}
