//! The dense ranker: one sequence `[user | history | candidates]` with the
//! reference's full mask (causal, candidate x candidate zero off the diagonal,
//! AND key padding), RoPE over absolute positions. Kept as the test oracle of
//! the fast path and for rows the fast path cannot take.

use candle_core::Tensor;

use super::ranker::PhoenixRanker;
use crate::error::Result;
use crate::inputs::RecsysInputs;
use crate::nn::attention::KeyMask;
use crate::nn::head::rank_head;
use crate::numerics::RankerOutput;
use crate::numerics::rope::{candidate_positions, context_positions};

/// `allowed[b, i, j]` of the reference ranker over `T = s1 + c` tokens.
fn ranker_mask(valid: &[bool], batch: usize, s1: usize, c: usize, fill: f32) -> Result<KeyMask> {
    let t = s1 + c;
    let mut allowed = vec![0f32; batch * t * t];
    for b in 0..batch {
        for i in 0..t {
            let row = &mut allowed[(b * t + i) * t..(b * t + i + 1) * t];
            for (j, a) in row.iter_mut().enumerate() {
                let structural = if i < s1 { j <= i } else { j < s1 || j == i };
                if structural && valid[b * t + j] {
                    *a = 1.0;
                }
            }
        }
    }
    Ok(KeyMask::new(allowed, &[batch, 1, t, t], fill)?)
}

impl PhoenixRanker {
    /// The reference computation, densely masked, for the whole batch.
    pub fn forward_dense(&self, inputs: &RecsysInputs) -> Result<RankerOutput> {
        inputs.validate(&self.parts.cfg)?;
        self.dense_unchecked(inputs)
    }

    pub(crate) fn dense_unchecked(&self, inputs: &RecsysInputs) -> Result<RankerOutput> {
        let cfg = &self.parts.cfg;
        let (b, c) = (inputs.user.batch, inputs.candidates.count);
        let s1 = 1 + inputs.user.history_len;
        let head = self.head()?;
        let tokens = self.tokens();
        let ctx = tokens.context(&inputs.user)?;
        let cands = tokens.candidates(&inputs.candidates, head)?;
        let x = Tensor::cat(&[ctx, cands], 1)?;
        let ctx_valid = inputs.user.context_valid(cfg);
        let cand_valid = inputs.candidates.valid_mask(cfg);
        let mut valid = Vec::with_capacity(b * (s1 + c));
        for r in 0..b {
            valid.extend_from_slice(&ctx_valid[r * s1..(r + 1) * s1]);
            valid.extend_from_slice(&cand_valid[r * c..(r + 1) * c]);
        }
        let mask = ranker_mask(&valid, b, s1, c, cfg.attn_mask_fill)?;
        let ctx_pos = context_positions(cfg, &ctx_valid, b, s1);
        let cand_pos = candidate_positions(cfg, s1, 0, c, &cand_valid);
        let positions: Vec<usize> = if cfg.right_anchored_rope {
            // One row of T positions per batch row.
            (0..b)
                .flat_map(|r| {
                    ctx_pos[r * s1..(r + 1) * s1]
                        .iter()
                        .chain(&cand_pos[r * c..(r + 1) * c])
                        .copied()
                })
                .collect()
        } else {
            ctx_pos.into_iter().chain(cand_pos).collect()
        };
        let h = self.parts.dense.forward_dense(&x, &positions, &mask)?;
        rank_head(cfg, head, self.parts.prec, &h.narrow(1, s1, c)?)
    }
}
