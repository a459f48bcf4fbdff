//! [`Snapshot::search`]: the exact scan of every live row of a snapshot
//! for a batch of queries, with per-query exclusions.
//!
//! The segments are cut into tasks of at most [`TASK_BLOCKS`] blocks that
//! rayon runs in parallel; each rayon split carries one candidate list
//! per query across its tasks (`select`: a buffer cut back to the best
//! with a linear selection), and the splits share each query's best
//! threshold so far (any list's `depth`-th best bounds the search's), so
//! most blocks of 16 scores are skipped by one vectorised comparison. A
//! task scores [`CHUNK_BLOCKS`] blocks at a time for every query group
//! (up to 16 queries share one pass over the rows, see `kernel` and
//! `int8_kernel`). A row's liveness (tombstone, expiry, eviction) and the
//! query's exclusions are checked only for rows that would enter a list,
//! and only when the segment holds dead rows or the query excludes
//! something, so an excluded or dead row never takes the place of a live
//! one and the metadata arrays stay out of the hot loop. The lists are
//! merged per query: best first, ties to the older post (earlier segment,
//! then earlier row: insertion order), non-finite scores dropped.
//!
//! Segments with an ANN graph (`IndexConfig::ann`: the sealed ones) are
//! not scanned: `ann_search` asks their graphs for candidates, which join
//! the scan's before the merge.
//!
//! int8 scans approximately (integer products with a quantised query,
//! `int8_kernel`), and with kept rows (`Rescore::F32Rows`, `Bf16Rows`)
//! any quantised format re-scores: each list is then `k + max(64, k/4)`
//! deep by scan score, those candidates get their score recomputed in f32
//! from the kept rows (f32 rows: an f32 scan's score bit for bit) or, for
//! int8 without them, from the stored rows with the exact query (what a
//! float scan of the stored rows would give), and the best `k` are
//! returned.

use std::collections::HashSet;
use std::ops::Range;

use rayon::prelude::*;

use crate::corpus::{CorpusItem, Hit, Query};

use super::block_rows::GroupQueries;
use super::config::{Format, Rescoring};
use super::error::IndexError;
use super::kernel::{self, LANES, MAX_GROUP};
use super::select::{Candidate, SharedThresholds, TopCandidates, best_first};
use super::snapshot::Snapshot;

/// Least extra depth of a list that is re-scored.
pub const RESCORE_MARGIN: usize = 64;

/// Blocks a parallel task scans: 16 384 rows, 2 MiB of int8 rows at D 128.
const TASK_BLOCKS: usize = 1024;

/// Blocks scored per kernel call: 1024 rows; 16 queries' scores are
/// 64 KiB, read back from L2.
const CHUNK_BLOCKS: usize = 64;

/// How deep a re-scored list is for `k` results.
pub fn rescore_depth(k: usize) -> usize {
    k.saturating_add((k / 4).max(RESCORE_MARGIN))
}

/// One query's wants, with its exclusions as sets.
pub(super) struct Plan {
    pub k: usize,
    /// Candidates kept by the scan.
    pub depth: usize,
    excluded_posts: HashSet<i64>,
    excluded_authors: HashSet<i64>,
    /// Either set is non-empty.
    pub excludes_any: bool,
}

impl Plan {
    fn new(q: &Query<'_>, rescoring: Rescoring, posts: usize) -> Self {
        let depth = match rescoring {
            Rescoring::None => q.k,
            Rescoring::StoredRows | Rescoring::KeptRows => rescore_depth(q.k),
        };
        Self {
            k: q.k,
            depth: if q.k == 0 { 0 } else { depth.min(posts) },
            excluded_posts: q.excluded_posts.iter().copied().collect(),
            excluded_authors: q.excluded_authors.iter().copied().collect(),
            excludes_any: !q.excluded_posts.is_empty() || !q.excluded_authors.is_empty(),
        }
    }

    /// Posts it excludes by id (each hides at most one row).
    pub fn excluded_post_count(&self) -> usize {
        self.excluded_posts.len()
    }

    /// Whether `item` is excluded by post or by author.
    pub fn excludes(&self, item: CorpusItem) -> bool {
        self.excluded_posts.contains(&item.post_id)
            || self.excluded_authors.contains(&item.author_id)
    }
}

/// Queries `first .. first + count`, zero padded to `size` and prepared
/// for the format's kernel.
struct Group {
    first: usize,
    count: usize,
    size: usize,
    queries: GroupQueries,
}

/// What one rayon split carries across its tasks: a list per query and
/// the score buffer.
struct Worker {
    tops: Vec<TopCandidates>,
    buf: Vec<f32>,
}

/// Cuts `queries: [b, d]` into padded groups of at most 16.
fn groups(format: Format, queries: &[f32], b: usize, d: usize) -> Vec<Group> {
    let mut out = Vec::with_capacity(b.div_ceil(MAX_GROUP));
    let mut first = 0;
    while first < b {
        let count = (b - first).min(MAX_GROUP);
        let size = kernel::group_size(count);
        let q = &queries[first * d..(first + count) * d];
        out.push(Group {
            first,
            count,
            size,
            queries: GroupQueries::new(format, q, count, size, d),
        });
        first += count;
    }
    out
}

/// Keeps the best `n` of `c` (in no order).
fn cut(c: &mut Vec<Candidate>, n: usize) {
    if n == 0 {
        c.clear();
    } else if c.len() > n {
        c.select_nth_unstable_by(n - 1, best_first);
        c.truncate(n);
    }
}

impl Snapshot {
    /// For each query (`queries: [B, D]`, row `b` for `qs[b]`): its `k`
    /// best live posts by `query · representation`, leaving out its
    /// excluded posts and authors; best first, ties to the older post
    /// (inserted earlier), non-finite scores dropped. Fewer than `k` when
    /// fewer posts qualify.
    pub fn search(&self, queries: &[f32], qs: &[Query<'_>]) -> Result<Vec<Vec<Hit>>, IndexError> {
        let d = self.dim;
        if queries.len() != qs.len() * d {
            return Err(IndexError::QueryShape {
                values: queries.len(),
                queries: qs.len(),
                dim: d,
            });
        }
        let plans = self.plans(qs);
        Ok(self.search_planned(queries, &plans, &[], Vec::new()))
    }

    /// Each query's plan: its `k`, scan depth and exclusions.
    pub(super) fn plans(&self, qs: &[Query<'_>]) -> Vec<Plan> {
        qs.iter()
            .map(|q| Plan::new(q, self.rescoring, self.posts))
            .collect()
    }

    /// [`Self::search`] for checked queries, except that segments marked
    /// in `covered` are neither scanned nor searched through a graph:
    /// `extra[b]` holds query `b`'s candidates from them (live, not
    /// excluded, re-scored; empty or absent when none), merged with the
    /// rest.
    pub(super) fn search_planned(
        &self,
        queries: &[f32],
        plans: &[Plan],
        covered: &[bool],
        mut extra: Vec<Vec<Candidate>>,
    ) -> Vec<Vec<Hit>> {
        let d = self.dim;
        let b = plans.len();
        if plans.iter().all(|p| p.depth == 0) {
            return vec![Vec::new(); b];
        }
        extra.resize_with(b, Vec::new);
        let groups = groups(self.format, queries, b, d);
        let shared = SharedThresholds::new(b);
        // One accumulator per rayon split, carried across its tasks, so
        // its thresholds reflect every row it has seen.
        let widest = groups.iter().map(|g| g.size).max().unwrap_or(1);
        let found: Vec<Vec<Vec<Candidate>>> = self
            .tasks(covered)
            .into_par_iter()
            .fold(
                || Worker {
                    tops: plans.iter().map(|p| TopCandidates::new(p.depth)).collect(),
                    buf: vec![0.0; widest * CHUNK_BLOCKS * LANES],
                },
                |mut w, (s, blocks)| {
                    self.scan(s, blocks, &groups, plans, &shared, &mut w);
                    w
                },
            )
            .map(|w| w.tops.into_iter().map(TopCandidates::into_vec).collect())
            .collect();
        plans
            .par_iter()
            .zip(extra)
            .enumerate()
            .map(|(b, (plan, mut cands))| {
                let query = &queries[b * d..(b + 1) * d];
                cands.extend(found.iter().flat_map(|t| t[b].iter().copied()));
                self.add_graph_candidates(query, plan, covered, &mut cands);
                self.finish(query, cands, plan)
            })
            .collect()
    }

    /// (segment, block range) of every task (segments with a graph are
    /// searched through it instead, `covered` ones elsewhere).
    fn tasks(&self, covered: &[bool]) -> Vec<(usize, Range<usize>)> {
        let mut tasks = Vec::new();
        for (s, seg) in self.segments.iter().enumerate() {
            if seg.ann.is_some() || covered.get(s) == Some(&true) {
                continue;
            }
            let nb = seg.data.rows().blocks();
            let mut start = 0;
            while start < nb {
                let end = (start + TASK_BLOCKS).min(nb);
                tasks.push((s, start..end));
                start = end;
            }
        }
        tasks
    }

    /// Adds to `worker`'s lists the best candidates per query among the
    /// live, not excluded rows of blocks `blocks` of segment `s`.
    fn scan(
        &self,
        s: usize,
        blocks: Range<usize>,
        groups: &[Group],
        plans: &[Plan],
        shared: &SharedThresholds,
        worker: &mut Worker,
    ) {
        let seg = &self.segments[s];
        let data = &seg.data;
        let Worker { tops, buf } = worker;
        let mut b0 = blocks.start;
        while b0 < blocks.end {
            let b1 = (b0 + CHUNK_BLOCKS).min(blocks.end);
            let n = (b1 - b0) * LANES;
            let first_row = b0 * LANES;
            let rows = n.min(data.len().saturating_sub(first_row));
            for group in groups {
                let out = &mut buf[..group.size * n];
                data.rows().scores(&group.queries, group.size, b0..b1, out);
                for g in 0..group.count {
                    let b = group.first + g;
                    let (top, plan) = (&mut tops[b], &plans[b]);
                    if plan.depth == 0 {
                        continue;
                    }
                    let scores = &out[g * n..g * n + rows];
                    for (c, block) in scores.chunks(LANES).enumerate() {
                        // Most blocks hold no score that could enter: one
                        // vectorised test skips them (NaN never enters).
                        let mut t = top.threshold().max(shared.get(b));
                        if !block.iter().fold(false, |any, &x| any | (x >= t)) {
                            continue;
                        }
                        for (i, &score) in block.iter().enumerate() {
                            let row = first_row + c * LANES + i;
                            // Metadata is read only when it can matter:
                            // a segment with dead rows, a query with
                            // exclusions.
                            if score < t
                                || !score.is_finite()
                                || (!seg.all_live && !self.is_live(seg, row))
                                || (plan.excludes_any && plan.excludes(data.item(row)))
                            {
                                continue;
                            }
                            let cand = Candidate {
                                score,
                                segment: s,
                                row,
                            };
                            if let Some(cut) = top.push(cand) {
                                shared.raise(b, cut);
                                t = t.max(cut);
                            }
                        }
                    }
                }
            }
            b0 = b1;
        }
    }

    /// One query's merged candidates: cut to the scan depth, re-scored
    /// from f32 rows when the index keeps them, cut to `k`, best first.
    fn finish(&self, query: &[f32], mut cands: Vec<Candidate>, plan: &Plan) -> Vec<Hit> {
        cut(&mut cands, plan.depth);
        if self.rescoring != Rescoring::None {
            for c in &mut cands {
                let data = &self.segments[c.segment].data;
                c.score = match self.rescoring {
                    Rescoring::KeptRows => data.kept_dot(query, c.row).unwrap_or(f32::NAN),
                    _ => data.stored_dot(query, c.row),
                };
            }
            cands.retain(|c| c.score.is_finite());
        }
        cut(&mut cands, plan.k);
        cands.sort_unstable_by(best_first);
        cands
            .into_iter()
            .map(|c| {
                let item = self.segments[c.segment].data.item(c.row);
                Hit {
                    post_id: item.post_id,
                    author_id: item.author_id,
                    score: c.score,
                }
            })
            .collect()
    }
}
