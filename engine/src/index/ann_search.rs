//! One query's candidates from the sealed segments' graphs
//! (`IndexConfig::ann`), merged by `search` with the exact scan of the
//! open segment's runs.
//!
//! Each graph is searched with the snapshot's liveness (tombstone,
//! expiry, eviction) and the query's exclusions as its filter, so a dead
//! or excluded row never takes a live one's place, exactly as in the
//! scan. Every candidate is re-scored from the segment's rows as the scan
//! would score it (`stored_dot`; `kept_dot` when the index keeps rows to
//! re-score from), so a returned post's score is the exact scan's: only
//! which posts are found is approximate.
//!
//! Inverted lists (`ivf`) share the index's centroids: the query is
//! scored against them once, and every segment scans its lists in that
//! order.
//!
//! Depth: asking each of `G` graphs for the whole list (`k`, or the
//! re-scored depth) multiplies the graph work by `G`. A first round asks
//! each for `max(32, 2·depth/G)` (at most the depth); a graph whose list
//! came back full and whose worst candidate still beats the merged
//! list's `depth`-th best may hold more, and only those graphs are asked
//! again for the whole depth. When the posts of the best list are spread
//! over segments (segments are cut by insertion time, not by content)
//! the second round is rare; when one segment holds most of them, it is
//! asked again and the answer is what a full-depth search would give.

use std::sync::Arc;

use rayon::prelude::*;

use super::config::Rescoring;
use super::ivf::IvfCentroids;
use super::search::Plan;
use super::select::{Candidate, best_first};
use super::snapshot::{SegmentView, Snapshot};

/// Least first-round depth of a graph search.
const FIRST_ROUND_MIN: usize = 32;

/// A graph's first-round depth for a list `depth` deep over `graphs`
/// graphs.
fn first_round_depth(depth: usize, graphs: usize) -> usize {
    let share = (2 * depth).div_ceil(graphs.max(1));
    depth.min(share.max(FIRST_ROUND_MIN))
}

/// One graph's answer.
struct GraphList {
    segment: usize,
    /// Asked for this many.
    asked: usize,
    /// Re-scored, any order.
    cands: Vec<Candidate>,
}

impl GraphList {
    /// The worst score found (`+inf` when none).
    fn worst(&self) -> f32 {
        self.cands
            .iter()
            .map(|c| c.score)
            .fold(f32::INFINITY, f32::min)
    }
}

impl Snapshot {
    /// Adds to `cands` the candidates of every segment with a graph and
    /// not `covered` for `query` under `plan` (nothing when no segment
    /// has one).
    pub(super) fn add_graph_candidates(
        &self,
        query: &[f32],
        plan: &Plan,
        covered: &[bool],
        cands: &mut Vec<Candidate>,
    ) {
        let graphs: Vec<usize> = (0..self.segments.len())
            .filter(|&s| self.segments[s].ann.is_some() && covered.get(s) != Some(&true))
            .collect();
        if graphs.is_empty() || plan.depth == 0 {
            return;
        }
        let depth = plan.depth;
        let first = first_round_depth(depth, graphs.len());
        // Inverted lists share one set of centroids: the query is scored
        // against them once here, not once a segment.
        let order = graphs
            .iter()
            .find_map(|&s| self.segments[s].ann.as_ref()?.ivf_centroids())
            .map(|c| (Arc::clone(c), c.order(query)));
        let order = order.as_ref();
        let mut lists: Vec<GraphList> = graphs
            .par_iter()
            .map(|&s| self.graph_list(s, query, plan, first, order))
            .collect();
        if first < depth {
            // The merged list's `depth`-th best so far bounds what a
            // deeper graph search could add.
            let mut scores: Vec<f32> = cands
                .iter()
                .chain(lists.iter().flat_map(|l| &l.cands))
                .map(|c| c.score)
                .collect();
            let bound = if scores.len() < depth {
                f32::NEG_INFINITY
            } else {
                let (_, nth, _) = scores.select_nth_unstable_by(depth - 1, |a, b| b.total_cmp(a));
                *nth
            };
            lists.par_iter_mut().for_each(|l| {
                if l.cands.len() >= l.asked && l.worst() >= bound {
                    *l = self.graph_list(l.segment, query, plan, depth, order);
                }
            });
        }
        cands.extend(lists.into_iter().flat_map(|l| l.cands));
    }

    /// Up to `count` live, not excluded rows of segment `s` from its
    /// graph, re-scored.
    fn graph_list(
        &self,
        s: usize,
        query: &[f32],
        plan: &Plan,
        count: usize,
        order: Option<&(Arc<IvfCentroids>, Vec<u32>)>,
    ) -> GraphList {
        let seg = &self.segments[s];
        let mut list = GraphList {
            segment: s,
            asked: count,
            cands: Vec::new(),
        };
        let Some(graph) = &seg.ann else {
            return list;
        };
        let keep = |row: usize| {
            row < seg.data.len()
                && (seg.all_live || self.is_live(seg, row))
                && !(plan.excludes_any && plan.excludes(seg.data.item(row)))
        };
        let rows = match graph.search(query, count, keep, order) {
            Ok(rows) => rows,
            Err(e) => {
                // Only an allocation failure inside the library: the
                // segment's posts are missing from this one answer.
                tracing::warn!(segment = s, error = %e, "ann graph search failed");
                return list;
            }
        };
        list.cands = rows
            .into_iter()
            .map(|row| Candidate {
                score: self.rescore(seg, query, row),
                segment: s,
                row,
            })
            .filter(|c| c.score.is_finite())
            .collect();
        list.cands.sort_unstable_by(best_first);
        list
    }

    /// `query · row` as the scan's final score would be.
    pub(super) fn rescore(&self, seg: &SegmentView, query: &[f32], row: usize) -> f32 {
        match self.rescoring {
            Rescoring::KeptRows => seg.data.kept_dot(query, row).unwrap_or(f32::NAN),
            Rescoring::None | Rescoring::StoredRows => seg.data.stored_dot(query, row),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_round_asks_each_graph_for_twice_its_share_but_at_least_32() {
        assert_eq!(first_round_depth(100, 1), 100);
        assert_eq!(first_round_depth(100, 16), 32);
        assert_eq!(first_round_depth(1000, 16), 125);
        assert_eq!(first_round_depth(20, 16), 20);
    }
}
