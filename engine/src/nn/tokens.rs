//! Token embeddings from the batch (reference steps 1-6): product surface by
//! table lookup, signed action projection (zeroed without engagement), and the
//! per-entity concatenations projected by `proj_mat_1/2/3`. Projections run in
//! f32; the product-surface and action vectors and the finished tokens are
//! rounded to the forward dtype, as the reference does.

use candle_core::{Device, Result, Tensor};

use crate::config::ModelConfig;
use crate::inputs::{CandidateInputs, UserInputs};
use crate::numerics::Precision;
use crate::weights::PhoenixWeights;

/// Builds token embeddings for one model's weights.
pub struct TokenBuilder<'a> {
    cfg: &'a ModelConfig,
    w: &'a PhoenixWeights,
    prec: Precision,
}

fn tensor(data: &[f32], shape: &[usize]) -> Result<Tensor> {
    Tensor::from_slice(data, shape, &Device::Cpu)
}

impl<'a> TokenBuilder<'a> {
    /// A builder over `w`.
    pub fn new(cfg: &'a ModelConfig, w: &'a PhoenixWeights, prec: Precision) -> Self {
        Self { cfg, w, prec }
    }

    /// Product-surface embeddings `[N, D]` for ids already checked to lie in `[0, V)`.
    fn product_surface(&self, ids: &[i64]) -> Result<Tensor> {
        let idx: Vec<u32> = ids.iter().map(|&i| i as u32).collect();
        let idx = Tensor::from_vec(idx, ids.len(), &Device::Cpu)?;
        self.prec
            .round(self.w.product_surface_table.index_select(&idx, 0)?)
    }

    /// `(2a - 1) @ action_projection`, zeroed for items with no engagement: `[N, D]`.
    fn actions(&self, actions: &[f32], n: usize) -> Result<Tensor> {
        let a = self.cfg.num_actions;
        let signed: Vec<f32> = actions.iter().map(|&x| 2.0 * x - 1.0).collect();
        let engaged: Vec<f32> = actions
            .chunks_exact(a)
            .map(|row| f32::from(u8::from(row.iter().any(|&x| x != 0.0))))
            .collect();
        let emb = tensor(&signed, &[n, a])?.matmul(&self.w.action_projection)?;
        self.prec
            .round(emb.broadcast_mul(&tensor(&engaged, &[n, 1])?)?)
    }

    /// Context tokens `[user | history]`: `[B, 1 + S, D]`.
    pub fn context(&self, u: &UserInputs) -> Result<Tensor> {
        let (b, s, d) = (u.batch, u.history_len, self.cfg.emb_size);
        let (hu, hi, ha) = (
            self.cfg.num_user_hashes,
            self.cfg.num_item_hashes,
            self.cfg.num_author_hashes,
        );
        let user = tensor(&u.user_embeddings, &[b, hu * d])?.matmul(&self.w.proj_user)?;
        let user = self.prec.round(user)?.reshape((b, 1, d))?;
        let n = b * s;
        let parts = [
            tensor(&u.history_post_embeddings, &[n, hi * d])?,
            tensor(&u.history_author_embeddings, &[n, ha * d])?,
            self.actions(&u.history_actions, n)?,
            self.product_surface(&u.history_product_surface)?,
        ];
        let hist = Tensor::cat(&parts, 1)?.matmul(&self.w.proj_history)?;
        let hist = self.prec.round(hist)?.reshape((b, s, d))?;
        Tensor::cat(&[user, hist], 1)
    }

    /// Candidate tokens `[B, C, D]` through `proj` (`proj_mat_2`).
    pub fn candidates(&self, c: &CandidateInputs, proj: &Tensor) -> Result<Tensor> {
        let (b, n, d) = (c.batch, c.batch * c.count, self.cfg.emb_size);
        let (hi, ha) = (self.cfg.num_item_hashes, self.cfg.num_author_hashes);
        let parts = [
            tensor(&c.post_embeddings, &[n, hi * d])?,
            tensor(&c.author_embeddings, &[n, ha * d])?,
            self.product_surface(&c.product_surface)?,
        ];
        let tokens = Tensor::cat(&parts, 1)?.matmul(proj)?;
        self.prec.round(tokens)?.reshape((b, c.count, d))
    }
}
