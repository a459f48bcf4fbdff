//! The GPU ranker's inputs: token rows built on the host as bf16 (hash
//! embeddings, product-surface rows, signed actions; in parallel), uploaded,
//! and projected to tokens by cuBLAS; then the context pass and the
//! candidate pass through the layer stack (`stack.rs`).

use foryou_kernels::cuda::bf16_bits;
use foryou_kernels::cuda::cudarc::driver::CudaSlice;
use foryou_kernels::cuda::gemm::GemmOut;
use half::bf16;
use rayon::prelude::*;

use super::ranker::{ContextKv, GpuPhases, GpuRanker, fill_bf16, ms_since};
use crate::config::CandidatePositions;
use crate::error::{EngineError, Result};
use crate::inputs::{CandidateInputs, UserInputs};

impl GpuRanker {
    /// Token projections of user + history, then every layer; keeps K/V.
    /// With `full` the last layer runs completely (the hidden states are
    /// wanted); otherwise it stops after its K/V, all candidates need.
    pub(super) fn encode_context(
        &self,
        u: &UserInputs,
        full: bool,
        ph: &mut GpuPhases,
    ) -> Result<(ContextKv, CudaSlice<f32>)> {
        let cfg = &self.cfg;
        let g = &*self.gpu;
        let (b, s, d) = (u.batch, u.history_len, cfg.emb_size);
        let s1 = s + 1;
        let (hu, hi, ha, a) = (
            cfg.num_user_hashes,
            cfg.num_item_hashes,
            cfg.num_author_hashes,
            cfg.num_actions,
        );
        let wh = (hi + ha + 2) * d;
        // Host: [post | author | (actions, filled on the device) | surface],
        // one row per history slot, converted to bf16 in parallel.
        let t = std::time::Instant::now();
        let mut x_hist = vec![0u16; b * s * wh];
        let mut acts = vec![0u16; b * s * a];
        x_hist
            .par_chunks_mut(wh)
            .zip(acts.par_chunks_mut(a))
            .enumerate()
            .for_each(|(r, (row, act))| {
                let (post, rest) = row.split_at_mut(hi * d);
                let (author, rest) = rest.split_at_mut(ha * d);
                fill_bf16(post, &u.history_post_embeddings[r * hi * d..][..hi * d]);
                fill_bf16(author, &u.history_author_embeddings[r * ha * d..][..ha * d]);
                fill_bf16(
                    &mut rest[d..],
                    self.surface_row(u.history_product_surface[r]),
                );
                let taken = &u.history_actions[r * a..][..a];
                if taken.iter().any(|&x| x != 0.0) {
                    for (dst, &x) in act.iter_mut().zip(taken) {
                        *dst = bf16::from_f32(2.0 * x - 1.0).to_bits();
                    }
                }
            });
        let x_user = bf16_bits(&u.user_embeddings);
        let positions: Vec<i32> = (0..b).flat_map(|_| 0..s1 as i32).collect();
        let key_valid: Vec<u8> = u.context_valid(cfg).into_iter().map(u8::from).collect();

        ph.host_ms += ms_since(t);
        let t = std::time::Instant::now();
        let mut dx_hist = g.upload(&x_hist)?;
        let dacts = g.upload(&acts)?;
        let dx_user = g.upload(&x_user)?;
        let dpos = g.upload(&positions)?;
        let key_valid = g.upload(&key_valid)?;
        ph.upload_ms += ms_since(t);
        let rows = b * s1;
        let mut h = g.scratch::<f32>(rows * d)?;
        // Signed actions @ action_projection, rounded to bf16, into the action block.
        g.gemm_bf16(
            b * s,
            d,
            a,
            &dacts,
            0,
            &self.action_projection,
            GemmOut::Bf16(&mut dx_hist),
            (hi + ha) * d,
            wh,
        )?;
        // User token of row r lands at h[r, 0]; history at h[r, 1..].
        g.gemm_bf16(
            b,
            d,
            hu * d,
            &dx_user,
            0,
            &self.proj_user,
            GemmOut::F32(&mut h),
            0,
            s1 * d,
        )?;
        for r in 0..b {
            g.gemm_bf16(
                s,
                d,
                wh,
                &dx_hist,
                r * s * wh,
                &self.proj_history,
                GemmOut::F32(&mut h),
                (r * s1 + 1) * d,
                d,
            )?;
        }
        g.round_bf16_inplace(&mut h, rows * d)?;

        let mut kv = ContextKv {
            k: Vec::with_capacity(self.layers.len()),
            v: Vec::with_capacity(self.layers.len()),
            key_valid,
            len: s1,
        };
        let shape = self.attention_shape(b, s1, s1, true);
        self.run_layers(&mut h, b, s1, &dpos, &shape, &mut kv, full)?;
        Ok((kv, h))
    }

    /// Candidate slots `first..first + C` of `cands` through every layer,
    /// then the head. Returns logits `[B, C, A]` (f32, not yet rounded).
    pub(super) fn score(
        &self,
        ctx: &ContextKv,
        cands: &CandidateInputs,
        first: usize,
        ph: &mut GpuPhases,
    ) -> Result<Vec<f32>> {
        let cfg = &self.cfg;
        let g = &*self.gpu;
        let head = self
            .head
            .as_ref()
            .ok_or_else(|| EngineError::Gpu("a user tower has no ranker head".into()))?;
        let (b, c, d) = (cands.batch, cands.count, cfg.emb_size);
        let (hi, ha, a) = (cfg.num_item_hashes, cfg.num_author_hashes, cfg.num_actions);
        let wc = (hi + ha + 1) * d;
        let t = std::time::Instant::now();
        let mut x = vec![0u16; b * c * wc];
        x.par_chunks_mut(wc).enumerate().for_each(|(r, row)| {
            let (post, rest) = row.split_at_mut(hi * d);
            let (author, surface) = rest.split_at_mut(ha * d);
            fill_bf16(post, &cands.post_embeddings[r * hi * d..][..hi * d]);
            fill_bf16(author, &cands.author_embeddings[r * ha * d..][..ha * d]);
            fill_bf16(surface, self.surface_row(cands.product_surface[r]));
        });
        let positions: Vec<i32> = (0..b)
            .flat_map(|_| {
                (0..c).map(move |i| match cfg.candidate_positions {
                    CandidatePositions::Absolute => (ctx.len + first + i) as i32,
                    CandidatePositions::Shared => ctx.len as i32,
                })
            })
            .collect();
        let valid: Vec<u8> = cands.valid_mask(cfg).into_iter().map(u8::from).collect();
        ph.host_ms += ms_since(t);
        let t = std::time::Instant::now();
        let dx = g.upload(&x)?;
        let dpos = g.upload(&positions)?;
        let dvalid = g.upload(&valid)?;
        ph.upload_ms += ms_since(t);
        let rows = b * c;
        let mut h = g.scratch::<f32>(rows * d)?;
        g.gemm_bf16(
            rows,
            d,
            wc,
            &dx,
            0,
            &head.proj_candidate,
            GemmOut::F32(&mut h),
            0,
            d,
        )?;
        g.round_bf16_inplace(&mut h, rows * d)?;
        let normed =
            self.run_layers_candidates(&mut h, b, c, &dpos, ctx, &dvalid, &head.final_norm)?;
        let mut logits = g.scratch::<f32>(rows * a)?;
        g.gemm_bf16(
            rows,
            a,
            d,
            &normed,
            0,
            &head.unembeddings,
            GemmOut::F32(&mut logits),
            0,
            a,
        )?;
        Ok(g.download(&logits)?)
    }
}
