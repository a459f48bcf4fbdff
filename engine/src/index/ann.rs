//! [`AnnGraph`]: an approximate structure over one sealed segment's rows,
//! an HNSW graph (the `usearch` crate, inner-product metric) or inverted
//! lists (`ivf`), and its settings [`AnnConfig`].
//!
//! The writer builds a segment's graph when the segment seals or is
//! compacted (`live_index`), never on the search path; the open
//! segment's runs are scanned exactly. Keys are row numbers. Rows are
//! added one at a time in insertion order, so a graph (and what a search
//! of it returns) depends only on the segment's rows; a build on rayon's
//! threads ([`AnnConfig::parallel_build`]) is not deterministic, and as
//! measured not faster either (the index's thread contexts come from
//! `reserve`; `reserve_capacity_and_threads` is untried). The graph keeps its own copy of the rows (widened from
//! the stored format, then held in [`AnnScalar`]); its distances only
//! pick candidates, which the search then re-scores from the segment's
//! rows (`ann_search`).
//!
//! Why usearch (measured 2026-12-03, this 2-vCPU AMD EPYC VM, see
//! `benches/results/index_ann_cpu_2026-12-03.md`): a clean release
//! build of the crate (C++ through `cxx`, SIMD kernels through `numkong`,
//! dispatched at run time) takes 3 min 24 s; on 65 536 clustered unit
//! vectors of D 128 (M 16) it builds at ~4 500 rows/s on one thread and
//! reaches recall@100 0.95 at ~1 ms a query. `hnsw_rs` (pure Rust) built
//! 4-5x slower (245 rows/s on uniform vectors vs usearch's 1 167) and
//! searched ~4x slower at equal recall, and its dot-product distance
//! assumes unit vectors. `faiss` (static) was not tried: its cmake build
//! of faiss and a BLAS is estimated above 30 min on 2 cores, over the CI
//! budget.

use std::sync::Arc;

use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use super::config::Format;
use super::error::IndexError;
use super::ivf::{IvfCentroids, IvfLists};
use super::segment::Segment;

/// Graph neighbours a node keeps per level above the base (HNSW `M`);
/// the base level keeps twice as many.
pub const DEFAULT_ANN_CONNECTIVITY: usize = 16;

/// Candidate list length while adding a row (HNSW `efConstruction`).
pub const DEFAULT_ANN_EXPANSION_ADD: usize = 64;

/// Least candidate list length while searching (HNSW `ef`); a search for
/// more results than this uses their number.
pub const DEFAULT_ANN_EXPANSION_SEARCH: usize = 128;

/// How the graph stores its copy of the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AnnScalar {
    /// 4 bytes a value.
    #[default]
    F32,
    /// 2 bytes a value: half the memory, candidates picked by bf16
    /// distances (re-scored afterwards all the same).
    Bf16,
}

/// Which approximate structure a sealed segment gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnnMethod {
    /// An HNSW graph (usearch), tuned by the config's `connectivity`,
    /// `expansion_add`, `expansion_search` and `scalar`.
    #[default]
    Hnsw,
    /// Inverted lists (`ivf`): `lists` centroids for the whole index (0:
    /// one per 16 rows of a segment), at least `probes` lists scanned a
    /// search in each sealed segment.
    Ivf {
        /// Centroids; 0 picks `segment_rows / 16`.
        lists: usize,
        /// Lists scanned a search, at least.
        probes: usize,
    },
}

/// Lists an IVF search scans, at least, unless told otherwise.
pub const DEFAULT_IVF_PROBES: usize = 16;

/// Settings of the sealed segments' graphs.
#[derive(Debug, Clone, PartialEq)]
pub struct AnnConfig {
    /// Graph or inverted lists.
    pub method: AnnMethod,
    /// HNSW `M`: neighbours a node keeps (more: better recall, slower
    /// builds, more memory).
    pub connectivity: usize,
    /// HNSW `efConstruction`.
    pub expansion_add: usize,
    /// HNSW `ef`, at least (more: better recall, slower searches).
    pub expansion_search: usize,
    /// The graph's copy of the rows.
    pub scalar: AnnScalar,
    /// Add rows from rayon's threads: faster, not deterministic.
    pub parallel_build: bool,
}

impl Default for AnnConfig {
    fn default() -> Self {
        Self {
            method: AnnMethod::Hnsw,
            connectivity: DEFAULT_ANN_CONNECTIVITY,
            expansion_add: DEFAULT_ANN_EXPANSION_ADD,
            expansion_search: DEFAULT_ANN_EXPANSION_SEARCH,
            scalar: AnnScalar::F32,
            parallel_build: false,
        }
    }
}

impl AnnConfig {
    /// Checks every value; the error names the first bad one.
    pub fn validate(&self) -> Result<(), IndexError> {
        let bad = |field, value: usize, expected| {
            Err(IndexError::Config {
                field,
                value: value.to_string(),
                expected,
            })
        };
        if !(2..=256).contains(&self.connectivity) {
            return bad("ann.connectivity", self.connectivity, "between 2 and 256");
        }
        if self.expansion_add == 0 {
            return bad("ann.expansion_add", 0, "at least 1");
        }
        if self.expansion_search == 0 {
            return bad("ann.expansion_search", 0, "at least 1");
        }
        if let AnnMethod::Ivf { probes: 0, .. } = self.method {
            return bad("ann.probes", 0, "at least 1");
        }
        Ok(())
    }
}

/// One sealed segment's approximate structure.
#[derive(Debug)]
pub(crate) enum AnnGraph {
    /// An HNSW graph.
    Hnsw(HnswGraph),
    /// Inverted lists.
    Ivf(IvfLists),
}

impl AnnGraph {
    /// The structure `config` asks for over every row of `seg` (dead
    /// ones too: a search filters them, and a segment is compacted once
    /// enough are dead).
    /// `ivf`: the index's centroids, trained by the caller on its first
    /// sealed segment (unused by a graph).
    pub fn build(
        seg: &Segment,
        dim: usize,
        format: Format,
        config: &AnnConfig,
        ivf: impl FnOnce() -> Arc<IvfCentroids>,
    ) -> Result<Self, AnnError> {
        Ok(match config.method {
            AnnMethod::Hnsw => Self::Hnsw(HnswGraph::build(seg, dim, config)?),
            AnnMethod::Ivf { probes, .. } => Self::Ivf(IvfLists::build(seg, format, ivf(), probes)),
        })
    }

    /// Up to `count` rows for which `keep(row)` holds, best first.
    /// `order`: the lists of `order.0`, best first for this query (from
    /// [`IvfCentroids::order`]); lists cut by other centroids rank their
    /// own.
    pub fn search(
        &self,
        query: &[f32],
        count: usize,
        keep: impl Fn(usize) -> bool,
        order: Option<&(Arc<IvfCentroids>, Vec<u32>)>,
    ) -> Result<Vec<usize>, AnnError> {
        match self {
            Self::Hnsw(g) => g.search(query, count, keep),
            Self::Ivf(l) => Ok(match order {
                Some((c, order)) if Arc::ptr_eq(c, l.centroids()) => {
                    l.search(order, query, count, keep)
                }
                _ => l.search(&l.centroids().order(query), query, count, keep),
            }),
        }
    }

    /// The centroids of inverted lists (`None` for a graph).
    pub fn ivf_centroids(&self) -> Option<&Arc<IvfCentroids>> {
        match self {
            Self::Hnsw(_) => None,
            Self::Ivf(l) => Some(l.centroids()),
        }
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Self::Hnsw(g) => g.heap_bytes(),
            Self::Ivf(l) => l.heap_bytes(),
        }
    }
}

/// One sealed segment's HNSW graph.
pub(crate) struct HnswGraph {
    index: Index,
}

impl std::fmt::Debug for HnswGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HnswGraph")
            .field("rows", &self.index.size())
            .finish()
    }
}

/// Why a graph could not be built or searched (the library's message).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("ann graph of {rows} rows: {message}")]
pub(crate) struct AnnError {
    rows: usize,
    message: String,
}

impl AnnError {
    fn new(rows: usize, e: impl std::fmt::Display) -> Self {
        Self {
            rows,
            message: e.to_string(),
        }
    }
}

impl HnswGraph {
    /// The graph of every row of `seg`.
    fn build(seg: &Segment, dim: usize, config: &AnnConfig) -> Result<Self, AnnError> {
        let rows = seg.len();
        let fail = |e| AnnError::new(rows, e);
        let options = IndexOptions {
            dimensions: dim,
            metric: MetricKind::IP,
            quantization: match config.scalar {
                AnnScalar::F32 => ScalarKind::F32,
                AnnScalar::Bf16 => ScalarKind::BF16,
            },
            connectivity: config.connectivity,
            expansion_add: config.expansion_add,
            expansion_search: config.expansion_search,
            multi: false,
        };
        let index = Index::new(&options).map_err(fail)?;
        index.reserve(rows).map_err(fail)?;
        let add = |row: usize| index.add(row as u64, &seg.rows().widened(row));
        if config.parallel_build {
            use rayon::prelude::*;
            (0..rows).into_par_iter().try_for_each(add).map_err(fail)?;
        } else {
            (0..rows).try_for_each(add).map_err(fail)?;
        }
        Ok(Self { index })
    }

    /// Up to `count` rows for which `keep(row)` holds, nearest to `query`
    /// by the graph's inner product first.
    fn search(
        &self,
        query: &[f32],
        count: usize,
        keep: impl Fn(usize) -> bool,
    ) -> Result<Vec<usize>, AnnError> {
        let found = self
            .index
            .filtered_search(query, count, |key| keep(key as usize))
            .map_err(|e| AnnError::new(self.index.size(), e))?;
        Ok(found.keys.iter().map(|&k| k as usize).collect())
    }

    /// Heap bytes held (the library's count: rows, links, levels).
    fn heap_bytes(&self) -> usize {
        self.index.memory_usage()
    }
}
