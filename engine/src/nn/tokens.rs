//! Token embeddings from the batch (reference steps 1-6): product surface by
//! table lookup, signed action projection (zeroed without engagement), and the
//! per-entity concatenations projected by `proj_mat_1/2/3`. Projections run in
//! f32; the product-surface and action vectors and the finished tokens are
//! rounded to the forward dtype, as the reference does.

use candle_core::{Device, Result, Tensor};

use crate::config::ModelConfig;
use crate::inputs::{CandidateInputs, UserInputs};
use crate::numerics::Precision;
use crate::weights::{PhoenixWeights, RankerHead};

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
        let mut user = tensor(&u.user_embeddings, &[b, hu * d])?.matmul(&self.w.proj_user)?;
        let nip = self.cfg.num_ip_hashes;
        if nip > 0 && !u.user_ip_embeddings.is_empty() {
            // May 2026: the IP embeddings' sum, unprojected, in f32.
            user = (user + tensor(&u.user_ip_embeddings, &[b, nip, d])?.sum(1)?)?;
        }
        let user = self.prec.round(user)?.reshape((b, 1, d))?;
        let n = b * s;
        let mut parts = vec![
            tensor(&u.history_post_embeddings, &[n, hi * d])?,
            tensor(&u.history_author_embeddings, &[n, ha * d])?,
            self.actions(&u.history_actions, n)?,
            self.product_surface(&u.history_product_surface)?,
        ];
        if let Some(dwell) = self.dwell(&u.history_dwell, n)? {
            parts.push(dwell);
        }
        let hist = Tensor::cat(&parts, 1)?.matmul(&self.w.proj_history)?;
        let hist = self.prec.round(hist)?.reshape((b, s, d))?;
        Tensor::cat(&[user, hist], 1)
    }

    /// Candidate tokens `[B, C, D]` through the head's `proj_mat_2`.
    pub fn candidates(&self, c: &CandidateInputs, head: &RankerHead) -> Result<Tensor> {
        let (b, n, d) = (c.batch, c.batch * c.count, self.cfg.emb_size);
        let (hi, ha) = (self.cfg.num_item_hashes, self.cfg.num_author_hashes);
        let mut parts = vec![
            tensor(&c.post_embeddings, &[n, hi * d])?,
            tensor(&c.author_embeddings, &[n, ha * d])?,
            self.product_surface(&c.product_surface)?,
        ];
        if let Some(table) = &head.post_age_table {
            // May 2026: the post-age row of each candidate (bucket 0, a real
            // row, when the age is unknown).
            let buckets: Vec<u32> = if c.post_age_buckets.is_empty() {
                vec![0; n]
            } else {
                c.post_age_buckets
                    .iter()
                    .map(|&x| u32::try_from(x).unwrap_or(0))
                    .collect()
            };
            let idx = Tensor::from_vec(buckets, n, &Device::Cpu)?;
            parts.push(self.prec.round(table.index_select(&idx, 0)?)?);
        }
        let tokens = Tensor::cat(&parts, 1)?.matmul(&head.proj_candidate)?;
        self.prec.round(tokens)?.reshape((b, c.count, d))
    }

    /// May 2026: the dwell block `[N, D]` of history items,
    /// `gelu_tanh(v * proj_1[0]) @ proj_2` with `v` the normalised dwell
    /// (an exact zero row for dwell 0), computed in f32 and rounded; `None`
    /// for a model without it.
    fn dwell(&self, dwell_s: &[f32], n: usize) -> Result<Option<Tensor>> {
        let (Some(c), Some(w)) = (self.cfg.continuous, &self.w.dwell) else {
            return Ok(None);
        };
        let v: Vec<f32> = if dwell_s.is_empty() {
            vec![0.0; n]
        } else {
            dwell_s.iter().map(|&x| c.normalize(x)).collect()
        };
        let hidden = tensor(&v, &[n, 1])?.broadcast_mul(&w.proj_1)?; // [N, H]
        let emb = crate::numerics::gelu::gelu_tanh(&hidden)?.matmul(&w.proj_2)?;
        Ok(Some(self.prec.round(emb)?))
    }
}
