//! [`IvfLists`]: inverted lists over one sealed segment's rows
//! (`AnnMethod::Ivf`): the rows are split into lists by their nearest
//! centroid, and a search scans only the lists whose centroids score best
//! against the query.
//!
//! * **Centroids** ([`IvfCentroids`], one set for the whole index, shared
//!   by every segment's lists): spherical k-means (inner product, unit
//!   centroids) on an evenly strided sample of the first sealed segment,
//!   at most [`TRAIN_ROWS_PER_LIST`] rows a list, [`TRAIN_ITERATIONS`]
//!   rounds, k-means|| seeds (a seeded RNG); a list left empty
//!   keeps its centroid. Deterministic: the same rows give the same
//!   centroids. Shared, a query is scored against them once, not once a
//!   segment, so there can be many lists (one per ~16 rows of a segment).
//! * **Lists**: every row of a segment (dead ones too, as the graphs hold
//!   them) is copied as stored into the list of its best-scoring centroid
//!   (ties to the lower list), lists one after another in the scan's
//!   block layout, each padded to whole blocks of 16 rows, with the
//!   segment row of each copy beside it. The exact scan's kernel
//!   (`block_rows`) scores a list, and the assignment runs the centroids
//!   through it as rows, 16 rows at a time as queries.
//! * **Search**: lists visited best first; at least `probes` lists, and
//!   more until `count` rows that the caller keeps were seen (so a search
//!   for more rows than the probed lists hold still finds them all). The
//!   scores are the scan's own for f32 and bf16 rows; the caller re-scores
//!   every candidate anyway.
//!
//! Why IVF beside the HNSW graphs (measured 2026-12-04,
//! `benches/results/index_ann_cpu_2026-12-04.md`, 1 M clustered posts,
//! B 1, k 100): per-segment HNSW graphs reach recall 1.0 at only 1.63x
//! the exact scan (a graph search costs about what scanning its 65 536
//! rows costs) and build at 9.4 k posts/s; the lists reach recall 0.9998
//! at 13.6x (21x at 10 M) and build at 68 k posts/s: one product with the
//! centroids a query, then a few hundred rows a segment. faiss has this
//! index too, but its build was rejected for CI (see `ann`); the code
//! here is a k-means and a loop over the scan's kernel.

use std::sync::Arc;

use rayon::prelude::*;

use super::block_rows::{BlockRows, GroupQueries};
use super::config::Format;
use super::kernel::{self, LANES, MAX_GROUP};
use super::segment::Segment;

/// Sample rows a list trains on, at most (faiss warns under 39; fewer
/// keep the first seal short, see the results file).
pub const TRAIN_ROWS_PER_LIST: usize = 16;

/// k-means rounds.
pub const TRAIN_ITERATIONS: usize = 6;

/// Segment rows a list holds on average when the config leaves the
/// number of lists to the index.
pub const ROWS_PER_LIST: usize = 16;

/// `row_of` of a padding row.
const PAD: u32 = u32::MAX;

/// Lists for segments of `segment_rows` rows when the config leaves it to
/// the index: one per [`ROWS_PER_LIST`] rows, at least 1.
pub fn auto_lists(segment_rows: usize) -> usize {
    (segment_rows / ROWS_PER_LIST).max(1)
}

/// The index's centroids, `[lists, D]`, unit length (or zero), kept as
/// rows of the scan's kernel.
#[derive(Debug)]
pub(crate) struct IvfCentroids {
    dim: usize,
    lists: usize,
    table: BlockRows,
}

impl IvfCentroids {
    /// `lists` centroids (at most one a row) trained on `seg`'s rows.
    pub fn train(seg: &Segment, dim: usize, lists: usize) -> Self {
        let n = seg.len();
        if n == 0 {
            // Never happens (segments seal full, empty ones are dropped):
            // one zero centroid puts every later row in one list.
            return Self::from_raw(&vec![0.0; dim], dim);
        }
        let lists = lists.min(n).max(1);
        let m = (TRAIN_ROWS_PER_LIST * lists).min(n);
        let sample: Vec<f32> = (0..m).flat_map(|i| seg.rows().widened(i * n / m)).collect();
        let mut centroids = seeds(&sample, dim, lists);
        for _ in 0..TRAIN_ITERATIONS {
            let assign = Self::from_raw(&centroids, dim).nearest(&sample);
            let mut sums = vec![0.0f32; lists * dim];
            let mut counts = vec![0usize; lists];
            for (x, &l) in sample.chunks_exact(dim).zip(&assign) {
                let l = l as usize;
                counts[l] += 1;
                sums[l * dim..(l + 1) * dim]
                    .iter_mut()
                    .zip(x)
                    .for_each(|(s, v)| *s += v);
            }
            for (l, sum) in sums.chunks_exact_mut(dim).enumerate() {
                if counts[l] > 0 {
                    normalise(sum);
                    centroids[l * dim..(l + 1) * dim].copy_from_slice(sum);
                }
            }
        }
        Self::from_raw(&centroids, dim)
    }

    /// Centroids given as `[lists, D]` values.
    fn from_raw(centroids: &[f32], dim: usize) -> Self {
        let lists = centroids.len() / dim;
        let mut table = BlockRows::with_capacity(Format::F32, dim, lists);
        centroids.chunks_exact(dim).for_each(|c| table.push(c));
        Self { dim, lists, table }
    }

    /// For each row of `xs: [n, D]`, the centroid with the largest inner
    /// product, ties to the lower one.
    fn nearest(&self, xs: &[f32]) -> Vec<u32> {
        self.per_row(xs, argmax)
    }

    /// For each row of `xs: [n, D]`, its largest inner product with a
    /// centroid.
    fn best_scores(&self, xs: &[f32]) -> Vec<f32> {
        self.per_row(xs, |s| s.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)))
    }

    /// `f` of each row's scores against every centroid (`xs: [n, D]`; the
    /// rows go through the kernel as queries, 16 a call, on rayon's
    /// threads).
    fn per_row<T: Send>(&self, xs: &[f32], f: impl Fn(&[f32]) -> T + Sync) -> Vec<T> {
        let (dim, lists) = (self.dim, self.lists);
        let blocks = self.table.blocks();
        let n = blocks * LANES;
        xs.par_chunks(MAX_GROUP * dim)
            .flat_map_iter(|group| {
                let count = group.len() / dim;
                let size = kernel::group_size(count);
                let queries = GroupQueries::new(Format::F32, group, count, size, dim);
                let mut out = vec![0.0; size * n];
                self.table.scores(&queries, size, 0..blocks, &mut out);
                (0..count)
                    .map(|g| f(&out[g * n..g * n + lists]))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The lists, best-scoring centroid first (ties to the lower list).
    pub fn order(&self, query: &[f32]) -> Vec<u32> {
        let blocks = self.table.blocks();
        let n = blocks * LANES;
        let size = kernel::group_size(1);
        let queries = GroupQueries::new(Format::F32, query, 1, size, self.dim);
        let mut out = vec![0.0; size * n];
        self.table.scores(&queries, size, 0..blocks, &mut out);
        let mut order: Vec<u32> = (0..self.lists as u32).collect();
        order
            .sort_unstable_by(|&a, &b| out[b as usize].total_cmp(&out[a as usize]).then(a.cmp(&b)));
        order
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.table.heap_bytes()
    }
}

/// `lists` unit seeds from `sample: [m, D]` (k-means|| style, seeded RNG):
/// the first row, then [`SEED_ROUNDS`] rounds that each draw an equal
/// share of the rest with probability proportional to `1 - s`, `s` a
/// row's best inner product with the seeds so far, so rows no seed
/// covers yet are likely drawn (evenly spaced rows can leave whole
/// clusters without a seed, and Lloyd rounds rarely move one there).
fn seeds(sample: &[f32], dim: usize, lists: usize) -> Vec<f32> {
    use rand::{RngExt, SeedableRng};
    let m = sample.len() / dim;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x1f5eed);
    let mut chosen = vec![false; m];
    let mut seeds: Vec<f32> = Vec::with_capacity(lists * dim);
    let mut best = vec![f32::NEG_INFINITY; m];
    let add = |seeds: &mut Vec<f32>, new: &[usize], best: &mut [f32]| {
        let first = seeds.len() / dim;
        for &i in new {
            let mut row = sample[i * dim..(i + 1) * dim].to_vec();
            normalise(&mut row);
            seeds.extend_from_slice(&row);
        }
        let fresh = IvfCentroids::from_raw(&seeds[first * dim..], dim);
        for (b, s) in best.iter_mut().zip(fresh.best_scores(sample)) {
            *b = b.max(s);
        }
    };
    chosen[0] = true;
    add(&mut seeds, &[0], &mut best);
    for round in 0..SEED_ROUNDS {
        let have = seeds.len() / dim;
        let want = ((lists - 1) * (round + 1) / SEED_ROUNDS + 1).saturating_sub(have);
        // Running sums of the weights: a draw is a binary search.
        let mut total = 0.0f64;
        let cumulative: Vec<f64> = best
            .iter()
            .zip(&chosen)
            .map(|(&b, &c)| {
                total += if c {
                    0.0
                } else {
                    f64::from((1.0 - b).max(0.0)) + 1e-9
                };
                total
            })
            .collect();
        let mut new = Vec::with_capacity(want);
        for _ in 0..want {
            // Inverse-CDF draw; a row drawn twice is taken once.
            let t = rng.random::<f64>() * total;
            let i = cumulative.partition_point(|&c| c < t).min(m - 1);
            if !chosen[i] {
                chosen[i] = true;
                new.push(i);
            }
        }
        if !new.is_empty() {
            add(&mut seeds, &new, &mut best);
        }
    }
    seeds
}

/// Rounds of seed draws.
const SEED_ROUNDS: usize = 8;

/// The first index of the largest value.
fn argmax(scores: &[f32]) -> u32 {
    let mut best = 0;
    for (l, &s) in scores.iter().enumerate() {
        if s > scores[best] {
            best = l;
        }
    }
    best as u32
}

/// One sealed segment's rows grouped by the index's centroids.
#[derive(Debug)]
pub(crate) struct IvfLists {
    centroids: Arc<IvfCentroids>,
    format: Format,
    /// The rows grouped by list, each list starting on a block.
    rows: BlockRows,
    /// Block at which list `l` starts; `lists + 1` entries.
    starts: Vec<usize>,
    /// Segment row of each stored row ([`PAD`] for padding).
    row_of: Vec<u32>,
    probes: usize,
}

impl IvfLists {
    /// Every row of `seg` in the list of its nearest centroid, searched
    /// `probes` lists at a time.
    pub fn build(
        seg: &Segment,
        format: Format,
        centroids: Arc<IvfCentroids>,
        probes: usize,
    ) -> Self {
        let (n, dim) = (seg.len(), centroids.dim);
        let xs: Vec<f32> = (0..n).flat_map(|r| seg.rows().widened(r)).collect();
        let assign = centroids.nearest(&xs);
        drop(xs);
        let mut members: Vec<Vec<u32>> = vec![Vec::new(); centroids.lists];
        for (row, &l) in assign.iter().enumerate() {
            members[l as usize].push(row as u32);
        }
        let capacity: usize = members
            .iter()
            .map(|m| m.len().next_multiple_of(LANES))
            .sum();
        let mut rows = BlockRows::with_capacity(format, dim, capacity);
        let mut starts = Vec::with_capacity(members.len() + 1);
        let mut row_of = Vec::with_capacity(capacity);
        let zeros = vec![0.0; dim];
        for list in &members {
            starts.push(rows.blocks());
            for &r in list {
                rows.push_from(seg.rows(), r as usize);
                row_of.push(r);
            }
            while !rows.len().is_multiple_of(LANES) {
                rows.push(&zeros);
                row_of.push(PAD);
            }
        }
        starts.push(rows.blocks());
        Self {
            centroids,
            format,
            rows,
            starts,
            row_of,
            probes: probes.max(1),
        }
    }

    /// The centroids the lists were cut by.
    pub fn centroids(&self) -> &Arc<IvfCentroids> {
        &self.centroids
    }

    /// Up to `count` segment rows for which `keep(row)` holds, from the
    /// lists in `order` (best first, from [`IvfCentroids::order`] of
    /// these centroids; see the module doc), best score first (ties to
    /// the lower row).
    pub fn search(
        &self,
        order: &[u32],
        query: &[f32],
        count: usize,
        keep: impl Fn(usize) -> bool,
    ) -> Vec<usize> {
        if count == 0 || query.len() != self.centroids.dim {
            return Vec::new();
        }
        let size = kernel::group_size(1);
        let queries = GroupQueries::new(self.format, query, 1, size, self.centroids.dim);
        let mut buf = Vec::new();
        let mut found: Vec<(f32, u32)> = Vec::with_capacity(2 * count);
        // The count-th best score once `found` has been cut to `count`.
        let mut floor = f32::NEG_INFINITY;
        let mut visited = 0;
        for &l in order {
            if visited >= self.probes && found.len() >= count {
                break;
            }
            let Some(&[start, end]) = self.starts.get(l as usize..l as usize + 2) else {
                continue;
            };
            visited += 1;
            if start == end {
                continue;
            }
            let n = (end - start) * LANES;
            buf.resize(size * n, 0.0);
            self.rows.scores(&queries, size, start..end, &mut buf);
            let first = start * LANES;
            for (i, &score) in buf[..n].iter().enumerate() {
                let row = self.row_of[first + i];
                if row == PAD || score < floor || score.is_nan() || !keep(row as usize) {
                    continue;
                }
                found.push((score, row));
            }
            if found.len() >= 2 * count {
                floor = cut(&mut found, count);
            }
        }
        cut(&mut found, count);
        found.sort_unstable_by(best_first);
        found.into_iter().map(|(_, r)| r as usize).collect()
    }

    /// Heap bytes held (the shared centroids not included).
    pub fn heap_bytes(&self) -> usize {
        self.rows.heap_bytes()
            + self.starts.capacity() * size_of::<usize>()
            + self.row_of.capacity() * 4
    }
}

/// Best score first, ties to the lower row.
fn best_first(a: &(f32, u32), b: &(f32, u32)) -> std::cmp::Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

/// Keeps the best `n` of `found` (in no order); returns the worst kept
/// score (`-inf` when fewer than `n`).
fn cut(found: &mut Vec<(f32, u32)>, n: usize) -> f32 {
    if found.len() < n || n == 0 {
        return f32::NEG_INFINITY;
    }
    found.select_nth_unstable_by(n - 1, best_first);
    found.truncate(n);
    found[n - 1].0
}

/// Scales `v` to unit length (a zero vector stays zero).
fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_lists_is_one_per_16_segment_rows() {
        assert_eq!(auto_lists(65_536), 4096);
        assert_eq!(auto_lists(0), 1);
        assert_eq!(auto_lists(40), 2);
    }

    #[test]
    fn nearest_picks_the_largest_inner_product_ties_to_the_lower_list() {
        // Three centroids of width 2; 20 rows: one group of 16, one of 4.
        let c = IvfCentroids::from_raw(&[1.0, 0.0, 0.0, 1.0, 1.0, 0.0], 2);
        let mut xs = Vec::new();
        for i in 0..20 {
            let t = i as f32 / 19.0;
            xs.extend_from_slice(&[1.0 - t, t]);
        }
        let want: Vec<u32> = (0..20)
            .map(|i| {
                let t = i as f32 / 19.0;
                // Lists 0 and 2 tie; the lower wins.
                u32::from(t > 1.0 - t)
            })
            .collect();
        assert_eq!(c.nearest(&xs), want);
        assert_eq!(c.order(&[0.2, 0.9]), vec![1, 0, 2]);
    }

    #[test]
    fn argmax_takes_the_first_of_equal_maxima() {
        assert_eq!(argmax(&[0.5, 2.0, 2.0, -1.0]), 1);
        assert_eq!(argmax(&[f32::NEG_INFINITY]), 0);
    }
}
