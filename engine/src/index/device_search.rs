//! [`DeviceSegments`]: the live index's sealed segments held on a device
//! (`--device cuda`: the GPU's memory) and searched there by the top-k
//! kernel, one launch for all of them; the open segment's runs (small,
//! rewritten at every merge) are still scanned on the CPU, and the two
//! lists are merged as the CPU search merges its own.
//!
//! * **Arena.** One device buffer of bf16 rows ([`RowDevice`]). A sealed
//!   segment is uploaded once, the first time a search sees it, into a
//!   free range of the arena (first fit, ranges start at a multiple of 32
//!   rows so each segment's bits are whole words of the mask). Segments a
//!   snapshot no longer holds (dropped, compacted) keep their range until
//!   room is needed. When no range fits, the arena is rebuilt at 1.5x the
//!   sealed rows (at most `capacity + 2 · segment_rows`) and every sealed
//!   segment of the snapshot is uploaded again, packed. Segments that
//!   still do not fit stay on the CPU's scan: answers are complete either
//!   way.
//! * **Liveness.** The kernel's eligibility bitset is the snapshot's
//!   liveness (tombstone, expiry, eviction) of every placed row; rows of
//!   gaps and of stale segments are clear, so the kernel never returns
//!   them. Each segment's bits are cached with the tombstone set, cutoff
//!   and watermark they were computed for, and stay valid while the
//!   tombstone set is the same one and the cutoff and watermark have not
//!   passed any live row; the arena's bitset is re-sent only when a
//!   segment's bits or the placed set change.
//! * **Depth.** The kernel ranks by bf16 scores, so each query asks for
//!   `rescore_depth(k)` rows (the int8 scan's margin) plus one a post it
//!   excludes by id; its candidates are re-scored on the host as the CPU
//!   scan's final score (`Snapshot::rescore`) and merged. A query whose
//!   author exclusions remove so many rows that its list falls short asks
//!   again, twice as deep, up to the kernel's [`DEVICE_MAX_K`]; past that
//!   it is answered by the CPU search alone.
//!
//! * **Failures.** A device error (out of memory, a lost context) fails
//!   no search: that call is answered by the CPU search alone and
//!   counted; the next one tries the device again.
//!
//! One search holds the arena's lock while it syncs, uploads and runs
//! the kernel (the device runs one search at a time anyway); the CPU's
//! scan of the open runs and the merge run after it is released.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::corpus::{Hit, Query};

use super::bitset::Bitset;
use super::config::IndexConfig;
use super::error::IndexError;
use super::row_device::{DEVICE_DIMS, DEVICE_MAX_K, RowDevice};
use super::search::{Plan, rescore_depth};
use super::segment::Segment;
use super::select::Candidate;
use super::snapshot::{SegmentView, Snapshot};

/// Rows a placement's start is a multiple of (one mask word).
const ALIGN: usize = 32;

/// Least arena, in rows, once any segment is placed.
const MIN_ARENA_ROWS: usize = 1 << 16;

/// Counters of a [`DeviceSegments`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceIndexStats {
    /// Segments placed in the arena (stale ones included).
    pub segments: usize,
    /// Rows of those segments.
    pub rows: usize,
    /// Rows the arena holds.
    pub capacity_rows: usize,
    /// Bytes the arena and its bitset take on the device.
    pub device_bytes: usize,
    /// Segment uploads since start (repacks included).
    pub segment_uploads: u64,
    /// Times the arena was rebuilt.
    pub repacks: u64,
    /// Times the eligibility bitset was sent.
    pub mask_uploads: u64,
    /// Queries answered by the CPU search alone (too deep for the kernel).
    pub cpu_fallbacks: u64,
    /// Searches that found a sealed segment no arena could hold (left to
    /// the CPU's scan).
    pub unplaced_searches: u64,
    /// Searches the device failed, answered by the CPU search instead.
    pub device_errors: u64,
}

/// One segment's liveness bits, and what they were computed for.
#[derive(Debug)]
struct LiveBits {
    tombstones: Arc<Bitset>,
    cutoff_ms: i64,
    evicted_below: u64,
    /// Bit `r % 32` of word `r / 32`: row `r` is live.
    words: Vec<u32>,
    /// Earliest creation time and least sequence number of a live row.
    min_created: i64,
    min_seq: u64,
}

impl LiveBits {
    fn compute(snap: &Snapshot, view: &SegmentView) -> Self {
        let n = view.data.len();
        let mut words = vec![0u32; n.div_ceil(32)];
        let (mut min_created, mut min_seq) = (i64::MAX, u64::MAX);
        for row in 0..n {
            if view.all_live || snap.is_live(view, row) {
                words[row / 32] |= 1 << (row % 32);
                min_created = min_created.min(view.data.created_ms(row));
                min_seq = min_seq.min(view.data.seq(row));
            }
        }
        Self {
            tombstones: Arc::clone(&view.tombstones),
            cutoff_ms: snap.cutoff_ms,
            evicted_below: snap.evicted_below,
            words,
            min_created,
            min_seq,
        }
    }

    /// Whether these bits are `view`'s liveness in `snap`: same tombstones,
    /// and the cutoff and watermark moved forward past no live row.
    fn valid_for(&self, snap: &Snapshot, view: &SegmentView) -> bool {
        Arc::ptr_eq(&self.tombstones, &view.tombstones)
            && snap.cutoff_ms >= self.cutoff_ms
            && snap.cutoff_ms <= self.min_created
            && snap.evicted_below >= self.evicted_below
            && snap.evicted_below <= self.min_seq
    }
}

/// A segment's range of the arena.
#[derive(Debug)]
struct Placement {
    seg: Arc<Segment>,
    start: usize,
    live: Option<LiveBits>,
}

impl Placement {
    fn end(&self) -> usize {
        self.start + self.seg.len()
    }
}

/// The device, its arena and what it holds.
#[derive(Debug)]
struct Arena {
    device: Box<dyn RowDevice>,
    dim: usize,
    max_rows: usize,
    /// Sorted by start, disjoint.
    placements: Vec<Placement>,
    /// Segments (by address) whose bits the device's bitset holds; `None`
    /// when it must be sent again.
    masked: Option<Vec<usize>>,
    stats: DeviceIndexStats,
}

fn seg_key(seg: &Arc<Segment>) -> usize {
    Arc::as_ptr(seg) as usize
}

fn align_up(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

impl Arena {
    /// The start of the first free range of `len` rows.
    fn find_gap(&self, len: usize) -> Option<usize> {
        let mut free = 0;
        for p in &self.placements {
            if p.start >= free + len {
                return Some(free);
            }
            free = align_up(p.end());
        }
        (free + len <= self.device.capacity()).then_some(free)
    }

    /// Copies `seg`'s rows (widened, rounded to bf16) to rows `start..`.
    fn upload(&mut self, seg: &Arc<Segment>, start: usize) -> Result<(), IndexError> {
        let mut bits = Vec::with_capacity(seg.len() * self.dim);
        for row in 0..seg.len() {
            bits.extend(
                seg.rows()
                    .widened(row)
                    .into_iter()
                    .map(|v| half::bf16::from_f32(v).to_bits()),
            );
        }
        self.device.write(start, &bits)?;
        let at = self.placements.partition_point(|p| p.start < start);
        self.placements.insert(
            at,
            Placement {
                seg: Arc::clone(seg),
                start,
                live: None,
            },
        );
        self.masked = None;
        self.stats.segment_uploads += 1;
        Ok(())
    }

    /// Rebuilds the arena for `snap`'s sealed segments, packed, and
    /// uploads those that fit.
    fn repack(&mut self, snap: &Snapshot) -> Result<(), IndexError> {
        let sealed: Vec<&Arc<Segment>> = sealed(snap).map(|(_, v)| &v.data).collect();
        let total: usize = sealed.iter().map(|s| align_up(s.len())).sum();
        let rows = align_up((total + total / 2).max(MIN_ARENA_ROWS).min(self.max_rows));
        self.placements.clear();
        self.masked = None;
        self.device.allocate(rows, self.dim)?;
        self.stats.repacks += 1;
        let mut start = 0;
        for seg in sealed {
            if start + seg.len() > rows {
                break;
            }
            self.upload(seg, start)?;
            start = align_up(start + seg.len());
        }
        Ok(())
    }

    /// Uploads each sealed segment of `snap` not yet placed into a free
    /// range; false when one found none (those after it are not tried).
    fn place_missing(&mut self, snap: &Snapshot) -> Result<bool, IndexError> {
        // Each segment appears once in a snapshot: the set need not grow.
        let placed: HashSet<usize> = self.placements.iter().map(|p| seg_key(&p.seg)).collect();
        for (_, view) in sealed(snap) {
            if placed.contains(&seg_key(&view.data)) {
                continue;
            }
            match self.find_gap(view.data.len()) {
                Some(start) => self.upload(&view.data, start)?,
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Places every sealed segment of `snap` that can be; returns each
    /// segment's placement index (`None`: scanned on the CPU).
    fn sync(&mut self, snap: &Snapshot) -> Result<Vec<Option<usize>>, IndexError> {
        if !self.place_missing(snap)? {
            // Free the ranges of segments this snapshot no longer holds,
            // then place again; rebuild when that is not enough, unless
            // the arena is already as large as it may be and the sealed
            // rows exceed it.
            let current: HashSet<usize> = sealed(snap).map(|(_, v)| seg_key(&v.data)).collect();
            self.placements
                .retain(|p| current.contains(&seg_key(&p.seg)));
            self.masked = None;
            let total: usize = sealed(snap).map(|(_, v)| align_up(v.data.len())).sum();
            if !self.place_missing(snap)?
                && (self.device.capacity() < self.max_rows || total <= self.max_rows)
            {
                self.repack(snap)?;
            }
        }
        let index: HashMap<usize, usize> = self
            .placements
            .iter()
            .enumerate()
            .map(|(i, p)| (seg_key(&p.seg), i))
            .collect();
        let out: Vec<Option<usize>> = snap
            .segments
            .iter()
            .map(|v| {
                if v.sealed {
                    index.get(&seg_key(&v.data)).copied()
                } else {
                    None
                }
            })
            .collect();
        if sealed(snap).count() > out.iter().flatten().count() {
            self.stats.unplaced_searches += 1;
        }
        Ok(out)
    }

    /// Brings the device's bitset to `snap`'s liveness of the placed
    /// segments (`placed`: [`Self::sync`]'s answer).
    fn refresh_mask(
        &mut self,
        snap: &Snapshot,
        placed: &[Option<usize>],
    ) -> Result<(), IndexError> {
        let mut changed = false;
        for (view, p) in snap.segments.iter().zip(placed) {
            let Some(p) = p.and_then(|i| self.placements.get_mut(i)) else {
                continue;
            };
            if !p.live.as_ref().is_some_and(|l| l.valid_for(snap, view)) {
                p.live = Some(LiveBits::compute(snap, view));
                changed = true;
            }
        }
        let mut keys: Vec<usize> = placed
            .iter()
            .flatten()
            .filter_map(|&i| self.placements.get(i).map(|p| seg_key(&p.seg)))
            .collect();
        keys.sort_unstable();
        if !changed && self.masked.as_ref() == Some(&keys) {
            return Ok(());
        }
        let mut words = vec![0u32; self.device.capacity().div_ceil(32)];
        for &i in placed.iter().flatten() {
            let Some(p) = self.placements.get(i) else {
                continue;
            };
            if let Some(live) = &p.live {
                let first = p.start / 32;
                words[first..first + live.words.len()].copy_from_slice(&live.words);
            }
        }
        self.device.set_eligible(&words)?;
        self.masked = Some(keys);
        self.stats.mask_uploads += 1;
        Ok(())
    }

    fn stats(&self) -> DeviceIndexStats {
        DeviceIndexStats {
            segments: self.placements.len(),
            rows: self.placements.iter().map(|p| p.seg.len()).sum(),
            capacity_rows: self.device.capacity(),
            device_bytes: self.device.device_bytes(),
            ..self.stats
        }
    }
}

/// `snap`'s sealed segments with rows, with their index.
fn sealed(snap: &Snapshot) -> impl Iterator<Item = (usize, &SegmentView)> {
    snap.segments
        .iter()
        .enumerate()
        .filter(|(_, v)| v.sealed && v.data.len() > 0)
}

/// The live index's sealed segments on a device; see the module docs.
#[derive(Debug)]
pub struct DeviceSegments {
    arena: Mutex<Arena>,
}

/// One query's device list turned into candidates.
struct DeviceList {
    cands: Vec<Candidate>,
    /// The device returned all it was asked for (it may hold more).
    full: bool,
}

impl DeviceSegments {
    /// Sealed segments of an index of `config` on `device` (nothing is
    /// allocated until a search places a segment).
    pub fn new(device: Box<dyn RowDevice>, config: &IndexConfig) -> Self {
        let max_rows = config
            .capacity
            .saturating_add(config.segment_rows.saturating_mul(2));
        Self {
            arena: Mutex::new(Arena {
                device,
                dim: config.dim,
                max_rows: align_up(max_rows.min(u32::MAX as usize - ALIGN)),
                placements: Vec::new(),
                masked: None,
                stats: DeviceIndexStats::default(),
            }),
        }
    }

    /// What the arena holds and has done.
    pub fn stats(&self) -> DeviceIndexStats {
        match self.arena.lock() {
            Ok(a) => a.stats(),
            Err(p) => p.into_inner().stats(),
        }
    }

    /// [`Self::stats`] unless a search holds the arena now (a metrics
    /// recorder need not wait behind a device call).
    pub fn try_stats(&self) -> Option<DeviceIndexStats> {
        self.arena.try_lock().ok().map(|a| a.stats())
    }

    /// [`Snapshot::search`]'s answer for `snap`, with its sealed segments
    /// searched on the device: the same posts, except that the device
    /// picks each query's candidates by bf16 score (see the module docs),
    /// and scores as the CPU scan's. When the device fails (out of
    /// memory, a lost context) the call is answered by the CPU search
    /// alone, counted in [`DeviceIndexStats::device_errors`] and logged.
    pub fn search(
        &self,
        snap: &Snapshot,
        queries: &[f32],
        qs: &[Query<'_>],
    ) -> Result<Vec<Vec<Hit>>, IndexError> {
        match self.search_on_device(snap, queries, qs) {
            Err(IndexError::Device(why)) => {
                let errors = match self.arena.lock() {
                    Ok(mut a) => {
                        a.stats.device_errors += 1;
                        a.stats.device_errors
                    }
                    Err(_) => 0,
                };
                // Said at the 1st, 2nd, 4th, ... failure: a device that
                // stays down does not flood the log at the request rate.
                if errors.is_power_of_two() {
                    tracing::warn!(error = %why, errors, "index device failed: searched on the CPU");
                }
                snap.search(queries, qs)
            }
            other => other,
        }
    }

    fn search_on_device(
        &self,
        snap: &Snapshot,
        queries: &[f32],
        qs: &[Query<'_>],
    ) -> Result<Vec<Vec<Hit>>, IndexError> {
        let d = snap.dim;
        if queries.len() != qs.len() * d {
            return Err(IndexError::QueryShape {
                values: queries.len(),
                queries: qs.len(),
                dim: d,
            });
        }
        let plans = snap.plans(qs);
        if !DEVICE_DIMS.contains(&d) || plans.iter().all(|p| p.k == 0) {
            return Ok(snap.search_planned(queries, &plans, &[], Vec::new()));
        }
        let Ok(mut arena) = self.arena.lock() else {
            // A search panicked inside the arena: its state is unknown.
            return Err(IndexError::Device("the device arena is poisoned".into()));
        };
        if arena.dim != d {
            return Err(IndexError::Device(format!(
                "arena width {} differs from the snapshot's {d}",
                arena.dim
            )));
        }
        let placed = arena.sync(snap)?;
        arena.refresh_mask(snap, &placed)?;
        let covered: Vec<bool> = placed.iter().map(Option::is_some).collect();
        let covered_rows: usize = snap
            .segments
            .iter()
            .zip(&covered)
            .filter(|(_, c)| **c)
            .map(|(v, _)| v.data.len())
            .sum();
        let prefix = placed
            .iter()
            .flatten()
            .filter_map(|&i| arena.placements.get(i).map(Placement::end))
            .max()
            .unwrap_or(0);
        // Placement index → the snapshot's segment index.
        let segment_of: HashMap<usize, usize> = placed
            .iter()
            .enumerate()
            .filter_map(|(s, p)| Some(((*p)?, s)))
            .collect();
        let mut extra: Vec<Vec<Candidate>> = vec![Vec::new(); qs.len()];
        let mut fallback = Vec::new();
        if covered_rows > 0 {
            let need: Vec<usize> = plans
                .iter()
                .map(|p| if p.k == 0 { 0 } else { rescore_depth(p.k) })
                .collect();
            let ask = plans
                .iter()
                .zip(&need)
                .map(|(p, n)| n.saturating_add(p.excluded_post_count()))
                .max()
                .unwrap_or(0)
                .clamp(1, DEVICE_MAX_K)
                .min(covered_rows.max(1));
            let lists = arena.device.top_k(prefix, queries, ask)?;
            for (b, list) in lists.into_iter().enumerate() {
                let (Some(plan), Some(&need)) = (plans.get(b), need.get(b)) else {
                    continue;
                };
                if need == 0 {
                    continue;
                }
                let query = &queries[b * d..(b + 1) * d];
                let mut got = arena.candidates(snap, &segment_of, plan, query, &list, ask);
                let mut asked = ask;
                // Exclusions emptied a full list: the device may hold more.
                while got.full && got.cands.len() < need && asked < covered_rows {
                    if asked >= DEVICE_MAX_K {
                        fallback.push(b);
                        break;
                    }
                    asked = asked.saturating_mul(2).min(DEVICE_MAX_K).min(covered_rows);
                    let deeper = arena.device.top_k(prefix, query, asked)?;
                    let list = deeper.into_iter().next().unwrap_or_default();
                    got = arena.candidates(snap, &segment_of, plan, query, &list, asked);
                }
                extra[b] = got.cands;
            }
        }
        arena.stats.cpu_fallbacks += fallback.len() as u64;
        drop(arena);
        let mut out = snap.search_planned(queries, &plans, &covered, extra);
        for b in fallback {
            let alone = snap.search(&queries[b * d..(b + 1) * d], &qs[b..b + 1])?;
            if let (Some(slot), Some(hits)) = (out.get_mut(b), alone.into_iter().next()) {
                *slot = hits;
            }
        }
        Ok(out)
    }
}

impl Arena {
    /// The live, not excluded rows of a device list (`asked` deep) as
    /// re-scored candidates of `snap`'s segments.
    fn candidates(
        &self,
        snap: &Snapshot,
        segment_of: &HashMap<usize, usize>,
        plan: &Plan,
        query: &[f32],
        list: &[(u32, f32)],
        asked: usize,
    ) -> DeviceList {
        let mut cands = Vec::with_capacity(list.len());
        for &(row, _) in list {
            let row = row as usize;
            let i = self.placements.partition_point(|p| p.start <= row);
            let Some(p) = i.checked_sub(1).and_then(|i| self.placements.get(i)) else {
                continue;
            };
            let (Some(&s), local) = (segment_of.get(&(i - 1)), row - p.start) else {
                continue;
            };
            let view = &snap.segments[s];
            if local >= view.data.len()
                || (plan.excludes_any && plan.excludes(view.data.item(local)))
            {
                continue;
            }
            let score = snap.rescore(view, query, local);
            if score.is_finite() {
                cands.push(Candidate {
                    score,
                    segment: s,
                    row: local,
                });
            }
        }
        DeviceList {
            cands,
            full: list.len() >= asked,
        }
    }
}
