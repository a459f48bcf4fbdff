//! Exact top-k by score: descending, ties to the lower index (what
//! `jax.lax.top_k` returns). O(N) selection plus an O(k log k) sort per row.

use std::cmp::Ordering;

/// Order of (index, score) pairs: higher score first, then lower index.
fn by_score_then_index(a: &(u32, f32), b: &(u32, f32)) -> Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

/// Top `k` of `scores` (`k` is clamped to `scores.len()`), as (index, score)
/// sorted by descending score with ties to the lower index. NaN sorts below
/// every number... except that a NaN with the sign bit clear sorts above; the
/// engine never feeds NaN (inputs are checked for finiteness).
pub fn top_k(scores: &[f32], k: usize) -> Vec<(u32, f32)> {
    let k = k.min(scores.len());
    if k == 0 {
        return Vec::new();
    }
    let mut all: Vec<(u32, f32)> = scores
        .iter()
        .enumerate()
        .map(|(i, &s)| (i as u32, s))
        .collect();
    if k < all.len() {
        all.select_nth_unstable_by(k - 1, by_score_then_index);
        all.truncate(k);
    }
    all.sort_unstable_by(by_score_then_index);
    all
}

/// Top `k` of each row of a row-major `[rows, n]` score matrix.
pub fn top_k_rows(scores: &[f32], n: usize, k: usize) -> Vec<Vec<(u32, f32)>> {
    if n == 0 {
        return Vec::new();
    }
    scores.chunks_exact(n).map(|row| top_k(row, k)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_go_to_the_lower_index() {
        let s = [0.5, 0.9, 0.5, 0.9, 0.1];
        assert_eq!(top_k(&s, 3), vec![(1, 0.9), (3, 0.9), (0, 0.5)]);
        assert_eq!(top_k(&s, 4)[3], (2, 0.5));
    }

    #[test]
    fn k_larger_than_n_returns_all_sorted() {
        let s = [1.0, 3.0, 2.0];
        let got: Vec<u32> = top_k(&s, 10).into_iter().map(|p| p.0).collect();
        assert_eq!(got, vec![1, 2, 0]);
        assert!(top_k(&s, 0).is_empty());
    }

    #[test]
    fn matches_full_sort_on_random_data() {
        let mut x = 12345u64;
        let scores: Vec<f32> = (0..1000)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((x >> 40) % 50) as f32 // many ties
            })
            .collect();
        let mut full: Vec<(u32, f32)> = scores
            .iter()
            .enumerate()
            .map(|(i, &s)| (i as u32, s))
            .collect();
        full.sort_by(by_score_then_index);
        for k in [1, 7, 50, 999, 1000] {
            assert_eq!(top_k(&scores, k), full[..k].to_vec(), "k={k}");
        }
    }
}
