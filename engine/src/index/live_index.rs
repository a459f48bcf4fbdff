//! [`LiveIndex`], the writer: inserts micro-batches into the open
//! segment, seals it when full, deletes, expires by the caller's clock,
//! evicts past the capacity, compacts, and publishes a new [`Snapshot`]
//! at the end of every call. [`IndexReader`] hands the latest snapshot to
//! any number of reader threads.
//!
//! One writer owns the index (`&mut self`); readers never wait for it. A
//! publish is one atomic pointer swap (`arc-swap`): a search holds the
//! snapshot it loaded for as long as it runs and sees all of a call's
//! changes or none of them.
//!
//! The open segment is a short list of immutable runs. A call's accepted
//! posts become a new run; while the run before it is no larger, the two
//! are merged (a binary counter: at most `log2(segment_rows)` runs, and a
//! post is copied `O(log segment_rows)` times before it is sealed). When
//! the open segment reaches `segment_rows` rows its runs are merged into
//! one sealed segment. Merges and compactions copy rows as stored (no
//! re-quantisation) and drop dead rows.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::corpus::{CorpusItem, Hit, Query};

use super::ann::{AnnGraph, AnnMethod};
use super::config::IndexConfig;
use super::device_search::DeviceSegments;
use super::error::IndexError;
use super::ivf::{IvfCentroids, auto_lists};
use super::post::NewPost;
use super::recent_deletes::RecentDeletes;
use super::segment::SegmentBuilder;
use super::segment_state::SegmentState;
use super::snapshot::Snapshot;
use super::stats::IndexStats;

/// Bytes a live post costs in the writer's id map (`post_id → sequence
/// number`: 16 bytes and a control byte a bucket, buckets ≥ 8/7 entries).
const LOCATION_BUCKET_BYTES: usize = 16 + 1;

/// What one insert call did with its posts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InsertReport {
    /// Posts now live.
    pub inserted: usize,
    /// Skipped: live already (a replay).
    pub duplicates: usize,
    /// Skipped: deleted earlier (the delete arrived first, or a replay).
    pub deleted_before_insert: usize,
    /// Skipped: created before the retention window.
    pub expired_on_insert: usize,
}

/// Hands out the latest snapshot; cheap to clone, `Send + Sync`.
#[derive(Debug, Clone)]
pub struct IndexReader {
    published: Arc<ArcSwap<Snapshot>>,
    /// Where sealed segments are searched, when not on the CPU.
    device: Option<Arc<DeviceSegments>>,
}

impl IndexReader {
    /// The index as of the last publish; unaffected by later writes.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.published.load_full()
    }

    /// This reader with its searches' sealed segments held and searched
    /// on `device` (the open segment stays on the CPU).
    pub fn on_device(mut self, device: Arc<DeviceSegments>) -> Self {
        self.device = Some(device);
        self
    }

    /// The device sealed segments are searched on, if any.
    pub fn device(&self) -> Option<&Arc<DeviceSegments>> {
        self.device.as_ref()
    }

    /// [`Snapshot::search`] of the latest snapshot, on the device when
    /// the reader has one.
    pub fn search_latest(
        &self,
        queries: &[f32],
        qs: &[Query<'_>],
    ) -> Result<Vec<Vec<Hit>>, IndexError> {
        let snap = self.snapshot();
        match &self.device {
            Some(device) => device.search(&snap, queries, qs),
            None => snap.search(queries, qs),
        }
    }
}

/// The live retrieval index (the writer side).
#[derive(Debug)]
pub struct LiveIndex {
    config: IndexConfig,
    published: Arc<ArcSwap<Snapshot>>,
    /// In insertion order: sealed segments, then the open segment's runs.
    segments: Vec<SegmentState>,
    /// Live posts: post id → insertion sequence number.
    locations: HashMap<i64, u64>,
    deletes: RecentDeletes,
    next_seq: u64,
    /// Posts created before it have expired (only moves forward).
    cutoff_ms: i64,
    /// Posts inserted before it (by sequence number) were evicted or dead.
    evicted_below: u64,
    live: usize,
    /// The counters (sizes are filled in by [`Self::stats`]).
    counters: IndexStats,
    /// IVF centroids, trained on the first sealed segment
    /// (`AnnMethod::Ivf`), shared by every segment's lists.
    ivf: Option<Arc<IvfCentroids>>,
}

/// Drops `item` from the id map if the map still points at this row.
fn forget(locations: &mut HashMap<i64, u64>, item: CorpusItem, seq: u64) {
    if locations.get(&item.post_id) == Some(&seq) {
        locations.remove(&item.post_id);
    }
}

impl LiveIndex {
    /// An empty index; fails on an invalid config.
    pub fn new(config: IndexConfig) -> Result<Self, IndexError> {
        config.validate()?;
        let empty = Snapshot::empty(config.dim, config.format, config.rescoring());
        Ok(Self {
            published: Arc::new(ArcSwap::from_pointee(empty)),
            config,
            segments: Vec::new(),
            locations: HashMap::new(),
            deletes: RecentDeletes::default(),
            next_seq: 0,
            cutoff_ms: i64::MIN,
            evicted_below: 0,
            live: 0,
            counters: IndexStats::default(),
            ivf: None,
        })
    }

    /// The settings.
    pub fn config(&self) -> &IndexConfig {
        &self.config
    }

    /// A handle for readers.
    pub fn reader(&self) -> IndexReader {
        IndexReader {
            published: Arc::clone(&self.published),
            device: None,
        }
    }

    /// The index as of the last publish.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.published.load_full()
    }

    /// Live posts.
    pub fn len(&self) -> usize {
        self.live
    }

    /// True when no post is live.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Inserts a micro-batch and publishes. Every post is checked first
    /// (width, finite values): on an error nothing changes. Posts already
    /// live, deleted within the retention window, or created before it
    /// are skipped and counted. `now_ms` is the caller's clock.
    pub fn insert(
        &mut self,
        posts: &[NewPost<'_>],
        now_ms: i64,
    ) -> Result<InsertReport, IndexError> {
        for p in posts {
            p.validate(self.config.dim)?;
        }
        self.set_clock(now_ms);
        let mut report = InsertReport::default();
        let mut accepted = Vec::with_capacity(posts.len());
        for p in posts {
            let id = p.item.post_id;
            if p.created_ms < self.cutoff_ms {
                report.expired_on_insert += 1;
            } else if self.locations.contains_key(&id) {
                report.duplicates += 1;
            } else if self.deletes.contains(id) {
                report.deleted_before_insert += 1;
            } else {
                self.locations.insert(id, self.next_seq);
                accepted.push((p, self.next_seq));
                self.next_seq += 1;
            }
        }
        report.inserted = accepted.len();
        self.live += accepted.len();
        let c = &mut self.counters;
        c.inserted += accepted.len() as u64;
        c.duplicates += report.duplicates as u64;
        c.deleted_before_insert += report.deleted_before_insert as u64;
        c.expired_on_insert += report.expired_on_insert as u64;
        self.append(&accepted);
        self.evict_to_capacity();
        self.tidy();
        self.publish();
        Ok(report)
    }

    /// Deletes posts and publishes: they leave every later snapshot at
    /// once. Ids not live are remembered too (see [`InsertReport`]).
    /// Returns how many live posts were deleted.
    pub fn delete(&mut self, post_ids: &[i64], now_ms: i64) -> usize {
        self.set_clock(now_ms);
        let mut removed = 0;
        for &id in post_ids {
            self.deletes.record(id, now_ms);
            let Some(seq) = self.locations.remove(&id) else {
                continue;
            };
            let s = self
                .segments
                .partition_point(|st| st.data().last_seq().is_some_and(|l| l < seq));
            let Some(st) = self.segments.get_mut(s) else {
                continue;
            };
            if let Some(row) = st.data().find(seq)
                && st.delete(row)
            {
                removed += 1;
            }
        }
        self.live -= removed;
        self.counters.deleted += removed as u64;
        self.tidy();
        self.publish();
        removed
    }

    /// Moves the clock to `now_ms` (expiring posts older than the
    /// retention window), compacts and publishes.
    pub fn advance(&mut self, now_ms: i64) {
        self.set_clock(now_ms);
        self.tidy();
        self.publish();
    }

    /// Counters and sizes now.
    pub fn stats(&self) -> IndexStats {
        let mut s = self.counters.clone();
        s.posts = self.live;
        s.segments = self.segments.iter().filter(|st| !st.open).count();
        s.open_runs = self.segments.len() - s.segments;
        s.open_rows = self.open_rows();
        s.stored_rows = self.segments.iter().map(SegmentState::len).sum();
        s.tombstones = self
            .segments
            .iter()
            .map(SegmentState::tombstone_count)
            .sum();
        s.remembered_deletes = self.deletes.len();
        s.bytes = self.bytes();
        s
    }

    /// Heap bytes held by the writer: segments and bookkeeping.
    pub fn bytes(&self) -> usize {
        self.segments
            .iter()
            .map(SegmentState::heap_bytes)
            .sum::<usize>()
            + self.locations.capacity() * LOCATION_BUCKET_BYTES
            + self.deletes.heap_bytes()
            + self.ivf.as_ref().map_or(0, |c| c.heap_bytes())
    }

    /// [`Self::bytes`] per live post (0 when empty).
    pub fn bytes_per_post(&self) -> f64 {
        self.stats().bytes_per_post()
    }

    /// Rows in the open segment's runs.
    fn open_rows(&self) -> usize {
        self.segments
            .iter()
            .filter(|st| st.open)
            .map(SegmentState::len)
            .sum()
    }

    /// Moves the expiry cutoff to `now_ms - retention_ms` (never back) and
    /// kills the posts it passes.
    fn set_clock(&mut self, now_ms: i64) {
        let cutoff = now_ms.saturating_sub(self.config.retention_ms);
        if cutoff <= self.cutoff_ms {
            return;
        }
        self.cutoff_ms = cutoff;
        let locations = &mut self.locations;
        let mut n = 0;
        for st in &mut self.segments {
            n += st.expire(cutoff, |item, seq| forget(locations, item, seq));
        }
        self.live -= n;
        self.counters.expired += n as u64;
        self.deletes.forget_before(cutoff);
    }

    /// Evicts the oldest inserted live posts until at most `capacity`
    /// are live.
    fn evict_to_capacity(&mut self) {
        let locations = &mut self.locations;
        for st in &mut self.segments {
            if self.live <= self.config.capacity {
                break;
            }
            let want = self.live - self.config.capacity;
            let (n, last) = st.evict(want, |item, seq| forget(locations, item, seq));
            self.live -= n;
            self.counters.evictions += n as u64;
            if let Some(last) = last {
                self.evicted_below = self.evicted_below.max(last + 1);
            }
        }
    }

    /// Appends accepted posts (in sequence order) to the open segment,
    /// sealing it whenever it fills.
    fn append(&mut self, accepted: &[(&NewPost<'_>, u64)]) {
        let mut rest = accepted;
        while !rest.is_empty() {
            let room = self.config.segment_rows - self.open_rows();
            let (now, later) = rest.split_at(room.min(rest.len()));
            let mut b = SegmentBuilder::new(&self.config, now.len());
            for (p, seq) in now {
                b.push_post(p, *seq);
            }
            self.segments.push(SegmentState::new(b.finish(), true));
            self.merge_open_runs();
            if self.open_rows() >= self.config.segment_rows {
                self.seal();
            }
            rest = later;
        }
    }

    /// Merges the last two runs while the older is no larger.
    fn merge_open_runs(&mut self) {
        loop {
            let n = self.segments.len();
            let open = self.segments.iter().rev().take_while(|s| s.open).count();
            if open < 2 || self.segments[n - 2].len() > self.segments[n - 1].len() {
                return;
            }
            let merged = self.merge(&self.segments[n - 2..], true);
            self.segments.truncate(n - 2);
            self.segments.extend(merged);
        }
    }

    /// Turns the open segment's runs into one sealed segment.
    fn seal(&mut self) {
        let open = self.segments.iter().rev().take_while(|s| s.open).count();
        if open == 0 {
            return;
        }
        let start = self.segments.len() - open;
        if open == 1 && self.segments[start].dead_count() == 0 {
            self.segments[start].open = false;
            self.build_graph(start);
        } else {
            let merged = self.merge(&self.segments[start..], false);
            self.segments.truncate(start);
            self.segments.extend(merged);
            if start < self.segments.len() {
                self.build_graph(start);
            }
        }
        self.counters.seals += 1;
    }

    /// The live rows of `states`, in order, as one segment (none when no
    /// row is live).
    fn merge(&self, states: &[SegmentState], open: bool) -> Option<SegmentState> {
        let live: usize = states.iter().map(SegmentState::live).sum();
        if live == 0 {
            return None;
        }
        let mut b = SegmentBuilder::new(&self.config, live);
        for st in states {
            for row in (0..st.len()).filter(|&r| st.is_live(r)) {
                b.push_from(st.data(), row);
            }
        }
        debug_assert_eq!(b.len(), live);
        Some(SegmentState::new(b.finish(), open))
    }

    /// Builds sealed segment `i`'s graph when the index has ANN on. A
    /// failed build leaves the segment without one: it is then scanned
    /// exactly, as the open segment is.
    fn build_graph(&mut self, i: usize) {
        let (Some(cfg), Some(st)) = (&self.config.ann, self.segments.get_mut(i)) else {
            return;
        };
        let dim = self.config.dim;
        let lists = match cfg.method {
            AnnMethod::Ivf { lists: 0, .. } => auto_lists(self.config.segment_rows),
            AnnMethod::Ivf { lists, .. } => lists,
            AnnMethod::Hnsw => 0,
        };
        let ivf = &mut self.ivf;
        let centroids = || {
            Arc::clone(
                ivf.get_or_insert_with(|| Arc::new(IvfCentroids::train(st.data(), dim, lists))),
            )
        };
        match AnnGraph::build(st.data(), dim, self.config.format, cfg, centroids) {
            Ok(g) => st.ann = Some(Arc::new(g)),
            Err(e) => tracing::warn!(error = %e, "ann graph build failed; segment scanned exactly"),
        }
    }

    /// Drops segments with no live row and rewrites sealed segments whose
    /// dead fraction reached `compact_dead_fraction`.
    fn tidy(&mut self) {
        let frac = self.config.compact_dead_fraction;
        let mut i = 0;
        while i < self.segments.len() {
            let st = &self.segments[i];
            if st.live() == 0 {
                self.segments.remove(i);
                continue;
            }
            let dead = st.dead_count();
            if !st.open && dead > 0 && dead as f64 >= frac * st.len() as f64 {
                if let Some(m) = self.merge(std::slice::from_ref(st), false) {
                    self.segments[i] = m;
                    self.build_graph(i);
                }
                self.counters.compactions += 1;
            }
            i += 1;
        }
    }

    /// Publishes the current state as a new snapshot.
    fn publish(&mut self) {
        self.counters.publishes += 1;
        let snapshot = Snapshot {
            dim: self.config.dim,
            format: self.config.format,
            rescoring: self.config.rescoring(),
            segments: self.segments.iter().map(SegmentState::view).collect(),
            cutoff_ms: self.cutoff_ms,
            evicted_below: self.evicted_below,
            posts: self.live,
            version: self.counters.publishes,
        };
        self.published.store(Arc::new(snapshot));
    }
}
