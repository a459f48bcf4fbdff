//! The writer's view of one segment: the shared rows, the tombstones it
//! publishes (copied on write, so a snapshot's never change), and what
//! only the writer needs to count live posts exactly: which rows are dead
//! for any reason (deleted, expired, evicted), the rows ordered by
//! creation time, and how far expiry and eviction have walked.

use std::sync::Arc;

use crate::corpus::CorpusItem;

use super::ann::AnnGraph;
use super::bitset::Bitset;
use super::segment::Segment;
use super::snapshot::SegmentView;

/// One segment as the writer tracks it.
#[derive(Debug)]
pub(crate) struct SegmentState {
    data: Arc<Segment>,
    tombstones: Arc<Bitset>,
    tombstone_count: usize,
    dead: Bitset,
    dead_count: usize,
    /// Rows by creation time (ties by row).
    by_created: Vec<u32>,
    /// `by_created[..expired]` are expired.
    expired: usize,
    /// Rows `..evicted` have been passed by eviction.
    evicted: usize,
    /// Still part of the open segment (a run), not sealed.
    pub open: bool,
    /// The sealed segment's graph (`IndexConfig::ann`), built by the
    /// writer when it sealed.
    pub ann: Option<Arc<AnnGraph>>,
}

impl SegmentState {
    /// A fresh segment, every row live.
    pub fn new(data: Segment, open: bool) -> Self {
        let n = data.len();
        let created = data.created();
        let mut by_created: Vec<u32> = (0..n).filter_map(|r| u32::try_from(r).ok()).collect();
        by_created.sort_by_key(|&r| (created[r as usize], r));
        Self {
            data: Arc::new(data),
            tombstones: Arc::new(Bitset::new(n)),
            tombstone_count: 0,
            dead: Bitset::new(n),
            dead_count: 0,
            by_created,
            expired: 0,
            evicted: 0,
            open,
            ann: None,
        }
    }

    /// The rows.
    pub fn data(&self) -> &Arc<Segment> {
        &self.data
    }

    /// Rows stored.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Rows stored and dead.
    pub fn dead_count(&self) -> usize {
        self.dead_count
    }

    /// Rows deleted and still stored.
    pub fn tombstone_count(&self) -> usize {
        self.tombstone_count
    }

    /// Rows live.
    pub fn live(&self) -> usize {
        self.len() - self.dead_count
    }

    /// Whether row `row` is live.
    pub fn is_live(&self, row: usize) -> bool {
        !self.dead.contains(row)
    }

    /// What a snapshot holds of it.
    pub fn view(&self) -> SegmentView {
        SegmentView {
            data: Arc::clone(&self.data),
            tombstones: Arc::clone(&self.tombstones),
            all_live: self.dead_count == 0,
            ann: self.ann.clone(),
            sealed: !self.open,
        }
    }

    fn kill(&mut self, row: usize) -> bool {
        let newly = self.dead.insert(row);
        if newly {
            self.dead_count += 1;
        }
        newly
    }

    /// Deletes row `row`: a tombstone searches see from the next publish.
    /// True when the row was live.
    pub fn delete(&mut self, row: usize) -> bool {
        if !self.kill(row) {
            return false;
        }
        if Arc::make_mut(&mut self.tombstones).insert(row) {
            self.tombstone_count += 1;
        }
        true
    }

    /// Kills every row created before `cutoff_ms`; `on_dead` sees each
    /// row that was live. Returns how many were.
    pub fn expire(&mut self, cutoff_ms: i64, mut on_dead: impl FnMut(CorpusItem, u64)) -> usize {
        let mut n = 0;
        while let Some(&row) = self.by_created.get(self.expired) {
            let row = row as usize;
            if self.data.created_ms(row) >= cutoff_ms {
                break;
            }
            if self.kill(row) {
                on_dead(self.data.item(row), self.data.seq(row));
                n += 1;
            }
            self.expired += 1;
        }
        n
    }

    /// Kills live rows from the oldest until `want` have died or every row
    /// is passed; `on_dead` sees each. Returns how many died and the
    /// sequence number of the last row passed (every row up to it is
    /// dead).
    pub fn evict(
        &mut self,
        want: usize,
        mut on_dead: impl FnMut(CorpusItem, u64),
    ) -> (usize, Option<u64>) {
        let (mut n, mut last) = (0, None);
        while n < want && self.evicted < self.len() {
            let row = self.evicted;
            if self.kill(row) {
                on_dead(self.data.item(row), self.data.seq(row));
                n += 1;
            }
            last = Some(self.data.seq(row));
            self.evicted += 1;
        }
        (n, last)
    }

    /// Heap bytes held: the rows (shared with snapshots, counted once
    /// here) and the writer's bookkeeping.
    pub fn heap_bytes(&self) -> usize {
        self.data.heap_bytes()
            + self.tombstones.heap_bytes()
            + self.dead.heap_bytes()
            + self.by_created.capacity() * 4
            + self.ann.as_ref().map_or(0, |g| g.heap_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::config::{Format, IndexConfig};
    use crate::index::post::NewPost;
    use crate::index::segment::SegmentBuilder;

    fn state(created: &[i64]) -> SegmentState {
        let cfg = IndexConfig::new(1, Format::F32);
        let mut b = SegmentBuilder::new(&cfg, created.len());
        for (i, &c) in (0i64..).zip(created) {
            let post = NewPost {
                item: CorpusItem {
                    post_id: i,
                    author_id: 0,
                },
                created_ms: c,
                representation: &[1.0],
            };
            b.push_post(&post, 100 + i as u64);
        }
        SegmentState::new(b.finish(), false)
    }

    #[test]
    fn a_row_dies_once_whatever_kills_it() {
        let mut s = state(&[30, 10, 20, 40]);
        assert!(s.delete(1));
        assert!(!s.delete(1));
        let mut seen = Vec::new();
        // Rows 1 (10, deleted already) and 2 (20) are older than 25.
        assert_eq!(s.expire(25, |it, _| seen.push(it.post_id)), 1);
        assert_eq!(seen, vec![2]);
        // Eviction kills row 0, passes rows 1 and 2 (dead already) and
        // stops after killing row 3, the second.
        let (n, last) = s.evict(2, |it, _| seen.push(it.post_id));
        assert_eq!((n, last), (2, Some(103)));
        assert_eq!(seen, vec![2, 0, 3]);
        assert_eq!((s.live(), s.dead_count(), s.tombstone_count()), (0, 4, 1));
    }

    #[test]
    fn deleting_copies_the_tombstones_a_snapshot_holds() {
        let mut s = state(&[1, 2]);
        let before = s.view();
        s.delete(0);
        assert!(!before.tombstones.contains(0));
        assert!(s.view().tombstones.contains(0));
    }
}
