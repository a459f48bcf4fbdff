//! Reference for the top-k kernels (kernels/src/cu/topk.cu): exact scores,
//! a full sort, ties to the lower index, ineligible rows and NaN scores
//! skipped.

use half::bf16;

/// `q . corpus[n]` with f64 accumulation of bf16 products, as f32.
pub fn score(q: &[bf16], row: &[bf16]) -> f32 {
    q.iter()
        .zip(row)
        .map(|(a, b)| f64::from(a.to_f32()) * f64::from(b.to_f32()))
        .sum::<f64>() as f32
}

/// Whether row `n` is eligible under an optional bitset (bit set = eligible).
pub fn eligible(bits: Option<&[u32]>, n: usize) -> bool {
    bits.is_none_or(|b| b.get(n / 32).is_some_and(|w| (w >> (n % 32)) & 1 == 1))
}

/// Per query: the best `k` (index, score), score descending, ties to the
/// lower index. `queries: [B, D]`, `corpus: [N, D]`.
pub fn top_k(
    queries: &[bf16],
    corpus: &[bf16],
    dim: usize,
    bits: Option<&[u32]>,
    k: usize,
) -> Vec<Vec<(u32, f32)>> {
    let n = corpus.len() / dim;
    queries
        .chunks_exact(dim)
        .map(|q| {
            let mut all: Vec<(u32, f32)> = (0..n)
                .filter(|&i| eligible(bits, i))
                .map(|i| (i as u32, score(q, &corpus[i * dim..][..dim])))
                .filter(|(_, s)| !s.is_nan())
                .collect();
            all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            all.truncate(k);
            all
        })
        .collect()
}

/// Checks a top-k answer against the reference up to score rounding `tol`:
/// same length; every returned index is eligible, distinct, with a score
/// within `tol` of its exact score; scores are non-increasing (up to `tol`);
/// and no row left out beats the last returned score by more than `tol`.
/// Returns the first disagreement found.
pub fn check_top_k(
    got: &[(u32, f32)],
    want: &[(u32, f32)],
    exact_score: impl Fn(u32) -> f32,
    bits: Option<&[u32]>,
    tol: f32,
) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{} results, expected {}", got.len(), want.len()));
    }
    let mut seen = std::collections::HashSet::new();
    for (rank, &(i, s)) in got.iter().enumerate() {
        if !seen.insert(i) {
            return Err(format!("index {i} returned twice"));
        }
        if !eligible(bits, i as usize) {
            return Err(format!("index {i} is not eligible"));
        }
        let exact = exact_score(i);
        if (s - exact).abs() > tol {
            return Err(format!("index {i}: score {s}, exact {exact}"));
        }
        if rank > 0 && s > got[rank - 1].1 + tol {
            return Err(format!("rank {rank} score {s} above rank {}", rank - 1));
        }
    }
    if let Some(&(_, last)) = got.last() {
        for &(i, s) in want {
            if s > last + tol && !seen.contains(&i) {
                return Err(format!("index {i} (score {s}) missing; last kept {last}"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::to_bf16;

    #[test]
    fn ties_go_to_the_lower_index_and_ineligible_rows_are_skipped() {
        // Rows 0..6 with scores 1, 3, 3, 2, 3, NaN against q = [1, 0].
        let corpus = to_bf16(&[1., 0., 3., 0., 3., 0., 2., 0., 3., 0., f32::NAN, 0.]);
        let q = to_bf16(&[1., 0.]);
        let all = top_k(&q, &corpus, 2, None, 10);
        assert_eq!(all[0], vec![(1, 3.), (2, 3.), (4, 3.), (3, 2.), (0, 1.)]);
        let bits = [0b11_1101u32]; // row 1 ineligible
        let some = top_k(&q, &corpus, 2, Some(&bits), 2);
        assert_eq!(some[0], vec![(2, 3.), (4, 3.)]);
    }

    #[test]
    fn the_checker_catches_a_missing_better_row() {
        let want = vec![(5, 9.0), (2, 8.0)];
        let exact = |i: u32| match i {
            5 => 9.0,
            2 => 8.0,
            7 => 1.0,
            _ => 0.0,
        };
        assert!(check_top_k(&[(5, 9.0), (2, 8.0)], &want, exact, None, 1e-3).is_ok());
        let err = check_top_k(&[(5, 9.0), (7, 1.0)], &want, exact, None, 1e-3);
        assert!(err.is_err_and(|e| e.contains("missing")));
        let err = check_top_k(&[(5, 9.0), (5, 9.0)], &want, exact, None, 1e-3);
        assert!(err.is_err_and(|e| e.contains("twice")));
    }
}
