//! Rotary position embeddings: the inverse frequencies of a model and the
//! angle tables of the positions of one pass, shared by the candle blocks,
//! the CPU stack and the CUDA backend. Split-halves form; angles are formed
//! in f32 (`pos * inv_freq`), as the reference forms them.

use candle_core::{Device, Result, Tensor};

use crate::config::{CandidatePositions, ModelConfig};

/// RoPE angles for a list of positions.
#[derive(Debug, Clone)]
pub struct Rope {
    inv_freq: Vec<f32>,
}

impl Rope {
    /// `inv_freq_i = 1 / base^(2i / K)` for `i < K/2`, in f32 like the reference.
    pub fn new(cfg: &ModelConfig) -> Self {
        let k = cfg.key_size;
        let inv_freq = (0..k / 2)
            .map(|i| 1.0f32 / cfg.rope_base.powf((2 * i) as f32 / k as f32))
            .collect();
        Self { inv_freq }
    }

    /// The inverse frequencies `[K/2]`.
    pub fn inv_freq(&self) -> &[f32] {
        &self.inv_freq
    }

    /// `(cos, sin)` tables for the given positions (angle = pos * inv_freq
    /// in f32): `[T, K/2]` for `T` positions shared by the `batch` rows of
    /// `T` tokens, or `[B, T, K/2]` for `B * T` positions, one row each.
    pub fn tables(&self, positions: &[usize], batch: usize, t: usize) -> Result<(Tensor, Tensor)> {
        let tables = RopeTables::new(positions, &self.inv_freq);
        let half = self.inv_freq.len();
        let (cos, sin) = tables.into_parts();
        let shape: Vec<usize> = if positions.len() == t {
            vec![t, half]
        } else {
            vec![batch, t, half]
        };
        Ok((
            Tensor::from_vec(cos, shape.as_slice(), &Device::Cpu)?,
            Tensor::from_vec(sin, shape.as_slice(), &Device::Cpu)?,
        ))
    }
}

/// RoPE angle tables for the positions of one pass: `[T, K/2]` each.
#[derive(Debug, Clone)]
pub struct RopeTables {
    pub(crate) cos: Vec<f32>,
    pub(crate) sin: Vec<f32>,
    pub(crate) half: usize,
    pub(crate) tokens: usize,
}

impl RopeTables {
    /// Angles `pos * inv_freq` in f32, as the reference forms them.
    pub fn new(positions: &[usize], inv_freq: &[f32]) -> Self {
        let mut cos = Vec::with_capacity(positions.len() * inv_freq.len());
        let mut sin = Vec::with_capacity(cos.capacity());
        for &p in positions {
            for &f in inv_freq {
                let a = p as f32 * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        Self {
            cos,
            sin,
            half: inv_freq.len(),
            tokens: positions.len(),
        }
    }

    /// The `(cos, sin)` tables, `[T, K/2]` row-major each.
    pub fn into_parts(self) -> (Vec<f32>, Vec<f32>) {
        (self.cos, self.sin)
    }
}

/// The angle tables of positions `0..limit`, computed once at load, so a
/// pass copies its rows instead of evaluating `cos` and `sin` for every
/// token (1.7 % of a CPU ranker's samples at 1 150 candidates); positions
/// from `limit` on are computed as [`RopeTables::new`] computes them. The
/// same values either way.
#[derive(Debug, Clone)]
pub struct RopeRows {
    inv_freq: Vec<f32>,
    /// `[limit, K/2]` each.
    table: RopeTables,
}

impl RopeRows {
    /// Rows of positions `0..limit` for `inv_freq`.
    pub fn new(inv_freq: Vec<f32>, limit: usize) -> Self {
        let positions: Vec<usize> = (0..limit).collect();
        let table = RopeTables::new(&positions, &inv_freq);
        Self { inv_freq, table }
    }

    /// [`RopeTables::new`]`(positions, inv_freq)`.
    pub fn tables(&self, positions: &[usize]) -> RopeTables {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(positions.len() * half);
        let mut sin = Vec::with_capacity(cos.capacity());
        for &p in positions {
            if p < self.table.tokens {
                cos.extend_from_slice(&self.table.cos[p * half..(p + 1) * half]);
                sin.extend_from_slice(&self.table.sin[p * half..(p + 1) * half]);
            } else {
                let one = RopeTables::new(&[p], &self.inv_freq);
                cos.extend_from_slice(&one.cos);
                sin.extend_from_slice(&one.sin);
            }
        }
        RopeTables {
            cos,
            sin,
            half,
            tokens: positions.len(),
        }
    }
}

/// RoPE positions of the context tokens `[user | history]` of `batch` rows
/// of `len` tokens, `valid` `[B, len]`: `0..len`, shared by every row
/// (`len` values), or with right-anchored RoPE (May 2026) one row each
/// (`B * len` values): the user at 0, history slot `t` (1-based) at
/// `E - L + t - 1` where `E = len` and `L` counts the row's valid history
/// tokens, and every padded token at 0.
pub fn context_positions(
    cfg: &ModelConfig,
    valid: &[bool],
    batch: usize,
    len: usize,
) -> Vec<usize> {
    if !cfg.right_anchored_rope {
        return (0..len).collect();
    }
    let mut out = Vec::with_capacity(batch * len);
    for row in valid.chunks_exact(len.max(1)).take(batch) {
        let l = row[1..].iter().filter(|&&v| v).count();
        out.extend(row.iter().enumerate().map(|(t, &v)| match (t, v) {
            (_, false) | (0, _) => 0,
            (t, true) => (len + t - 1).saturating_sub(l),
        }));
    }
    out
}

/// RoPE positions of candidate slots `first..first + count` after a context
/// of `ctx_len` tokens (`valid`: `[B, count]`): their slot positions
/// (`absolute`, the reference), or one shared position right after the
/// context (`shared`), `count` values for every row; with right-anchored
/// RoPE (May 2026) `B * count` values: `ctx_len` for a real candidate, 0
/// for a padded one.
pub fn candidate_positions(
    cfg: &ModelConfig,
    ctx_len: usize,
    first: usize,
    count: usize,
    valid: &[bool],
) -> Vec<usize> {
    if cfg.right_anchored_rope {
        return valid.iter().map(|&v| if v { ctx_len } else { 0 }).collect();
    }
    match cfg.candidate_positions {
        CandidatePositions::Absolute => (ctx_len + first..ctx_len + first + count).collect(),
        CandidatePositions::Shared => vec![ctx_len; count],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precomputed_rows_equal_fresh_tables_inside_and_past_the_limit() {
        let inv: Vec<f32> = (0..8)
            .map(|i| 1.0 / 10_000f32.powf(i as f32 / 8.0))
            .collect();
        let rows = RopeRows::new(inv.clone(), 100);
        let positions = [0, 5, 99, 100, 4_000, 7, 7];
        let got = rows.tables(&positions);
        let want = RopeTables::new(&positions, &inv);
        assert_eq!((got.half, got.tokens), (8, positions.len()));
        assert_eq!(got.cos, want.cos);
        assert_eq!(got.sin, want.sin);
    }

    fn cfg(right_anchored: bool) -> ModelConfig {
        let json = serde_json::json!({
            "emb_size": 8, "key_size": 4, "num_q_heads": 1, "num_kv_heads": 1,
            "num_layers": 1, "widening_factor": 2, "attn_output_multiplier": 0.5,
            "history_seq_len": 4, "candidate_seq_len": 2, "num_actions": 2,
            "product_surface_vocab_size": 2, "num_user_hashes": 1, "num_item_hashes": 1,
            "num_author_hashes": 1, "right_anchored_rope": right_anchored
        });
        ModelConfig::from_json(&json.to_string(), "test").expect("valid")
    }

    #[test]
    fn right_anchored_positions_end_the_history_at_the_candidates() {
        let c = cfg(true);
        // Row 0: two valid history items then padding; row 1: a hole at
        // slot 2 (valid tokens after it keep their index-based position).
        let valid = [
            true, true, true, false, false, //
            true, true, false, true, false,
        ];
        assert_eq!(
            context_positions(&c, &valid, 2, 5),
            vec![0, 3, 4, 0, 0, 0, 3, 0, 5, 0]
        );
        assert_eq!(
            candidate_positions(&c, 5, 3, 2, &[true, false, true, true]),
            vec![5, 0, 5, 5]
        );
    }

    #[test]
    fn without_anchoring_positions_are_shared_indices() {
        let c = cfg(false);
        assert_eq!(
            context_positions(&c, &[true; 10], 2, 5),
            vec![0, 1, 2, 3, 4]
        );
        assert_eq!(candidate_positions(&c, 5, 3, 2, &[true; 4]), vec![8, 9]);
    }
}
