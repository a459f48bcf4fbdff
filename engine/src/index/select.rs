//! The best candidates of a scan: better means a higher score, then
//! (ties) the older post. Segments are in insertion order and so are the
//! rows of each, so (segment, row) orders posts as their insertion
//! sequence numbers do, without reading them (a cold array: reading it
//! per candidate took a fifth of an int8 scan).
//!
//! [`TopCandidates`] keeps them in a buffer of up to twice its capacity
//! and, when full, cuts it back to the best `cap` with a linear selection
//! (`select_nth_unstable`); the cut's worst score becomes the threshold
//! below which nothing is admitted. A push is an append: amortised O(1),
//! where a binary heap of `cap` costs O(log cap) a push (at k = 1000 and
//! B = 16 the heap took longer than the scan).

use std::cmp::Ordering;
use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};

/// A row a scan found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Candidate {
    /// Its score (finite).
    pub score: f32,
    /// Its segment in the snapshot.
    pub segment: usize,
    /// Its row in the segment.
    pub row: usize,
}

/// Best first: higher score, then older (earlier segment, earlier row).
pub(crate) fn best_first(a: &Candidate, b: &Candidate) -> Ordering {
    b.score
        .total_cmp(&a.score)
        .then(a.segment.cmp(&b.segment))
        .then(a.row.cmp(&b.row))
}

/// The `cap` best candidates pushed.
#[derive(Debug)]
pub(crate) struct TopCandidates {
    cap: usize,
    buf: Vec<Candidate>,
    /// Scores below it cannot be among the best `cap`.
    threshold: f32,
}

impl TopCandidates {
    /// Keeps at most `cap`.
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            buf: Vec::with_capacity(Self::limit(cap).min(1 << 16)),
            threshold: if cap == 0 {
                f32::INFINITY
            } else {
                f32::NEG_INFINITY
            },
        }
    }

    /// Buffer length that triggers a cut.
    fn limit(cap: usize) -> usize {
        cap.saturating_mul(2).max(cap.saturating_add(64))
    }

    /// A score below which nothing can be among the best `cap`: `-inf`
    /// until the first cut, `+inf` when nothing can be kept.
    #[inline]
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// Adds `c`, a candidate scoring at least [`Self::threshold`] (ties
    /// with it are settled by age at the next cut). Returns the new
    /// threshold when the push cut the buffer.
    pub fn push(&mut self, c: Candidate) -> Option<f32> {
        if self.cap == 0 {
            return None;
        }
        self.buf.push(c);
        if self.buf.len() >= Self::limit(self.cap) {
            self.cut();
            return Some(self.threshold);
        }
        None
    }

    /// Keeps the best `cap`; their worst score becomes the threshold.
    fn cut(&mut self) {
        if self.buf.len() > self.cap {
            self.buf.select_nth_unstable_by(self.cap - 1, best_first);
            self.buf.truncate(self.cap);
            self.threshold = self.buf[self.cap - 1].score;
        }
    }

    /// The best `cap` pushed (fewer if fewer were), in no particular order.
    pub fn into_vec(mut self) -> Vec<Candidate> {
        self.cut();
        self.buf
    }
}

/// One threshold per query shared by a search's parallel tasks: a task's
/// `cap`-th best score bounds the search's from below, so any task may
/// skip what scores under the highest one published. Stored as order
/// preserving bits (`f32::total_cmp` order) so a raise is one
/// `fetch_max`.
#[derive(Debug)]
pub(crate) struct SharedThresholds(Vec<AtomicU32>);

/// `x`'s bits, ordered as `total_cmp` orders the floats.
fn ordered_bits(x: f32) -> u32 {
    let b = x.to_bits();
    if b & 0x8000_0000 != 0 {
        !b
    } else {
        b | 0x8000_0000
    }
}

/// Inverse of [`ordered_bits`].
fn from_ordered_bits(k: u32) -> f32 {
    if k & 0x8000_0000 != 0 {
        f32::from_bits(k & 0x7fff_ffff)
    } else {
        f32::from_bits(!k)
    }
}

impl SharedThresholds {
    /// `n` thresholds at `-inf`.
    pub fn new(n: usize) -> Self {
        let low = ordered_bits(f32::NEG_INFINITY);
        Self((0..n).map(|_| AtomicU32::new(low)).collect())
    }

    /// Query `b`'s threshold.
    #[inline]
    pub fn get(&self, b: usize) -> f32 {
        self.0.get(b).map_or(f32::NEG_INFINITY, |t| {
            from_ordered_bits(t.load(AtomicOrdering::Relaxed))
        })
    }

    /// Raises query `b`'s threshold to `t` if higher.
    pub fn raise(&self, b: usize, t: f32) {
        if let Some(cur) = self.0.get(b) {
            cur.fetch_max(ordered_bits(t), AtomicOrdering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A candidate at row `row` of segment 0.
    fn c(score: f32, row: usize) -> Candidate {
        Candidate {
            score,
            segment: 0,
            row,
        }
    }

    #[test]
    fn keeps_the_best_with_ties_to_the_older_post() {
        let mut t = TopCandidates::new(3);
        for x in [
            c(0.5, 9),
            c(0.9, 5),
            c(0.5, 2),
            c(0.1, 1),
            c(0.9, 7),
            c(0.5, 1),
        ] {
            if x.score >= t.threshold() {
                t.push(x);
            }
        }
        let mut got = t.into_vec();
        got.sort_by(best_first);
        let got: Vec<(f32, usize)> = got.iter().map(|x| (x.score, x.row)).collect();
        assert_eq!(got, vec![(0.9, 5), (0.9, 7), (0.5, 1)]);
    }

    #[test]
    fn a_cut_raises_the_threshold_to_the_worst_kept() {
        let mut t = TopCandidates::new(2);
        assert_eq!(t.threshold(), f32::NEG_INFINITY);
        // 66 pushes fill the buffer (2 + 64) and cut it to the best 2.
        let cuts: Vec<f32> = (0..66).filter_map(|i| t.push(c(i as f32, i))).collect();
        assert_eq!(cuts, vec![64.0]);
        assert_eq!(t.threshold(), 64.0);
        let mut got: Vec<usize> = t.into_vec().iter().map(|x| x.row).collect();
        got.sort_unstable();
        assert_eq!(got, vec![64, 65]);
    }

    #[test]
    fn a_zero_capacity_list_keeps_nothing() {
        let mut t = TopCandidates::new(0);
        assert_eq!(t.threshold(), f32::INFINITY);
        assert_eq!(t.push(c(1.0, 0)), None);
        assert!(t.into_vec().is_empty());
    }

    #[test]
    fn shared_thresholds_only_rise_in_float_order() {
        let s = SharedThresholds::new(2);
        assert_eq!(s.get(0), f32::NEG_INFINITY);
        s.raise(0, -0.5);
        s.raise(0, -0.75);
        assert_eq!(s.get(0), -0.5);
        s.raise(0, 0.25);
        assert_eq!(
            (s.get(0), s.get(1), s.get(9)),
            (0.25, f32::NEG_INFINITY, f32::NEG_INFINITY)
        );
        for x in [-3.0f32, -0.0, 0.0, 1e-30, 7.0, f32::INFINITY] {
            assert_eq!(from_ordered_bits(ordered_bits(x)).to_bits(), x.to_bits());
        }
    }
}
