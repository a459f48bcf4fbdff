//! The two-tower retriever. User tower: the decoder stack over `[user | history]`
//! (causal, padding-masked, no final norm), mean over valid tokens, L2 norm.
//! Candidate tower: `concat(post, author hash embeddings) @ proj_1 -> SiLU ->
//! @ proj_2 -> L2 norm`. Retrieval: exact dot-product top-k over a corpus.

use candle_core::{Device, Tensor};

use super::Precision;
use super::tokens::TokenBuilder;
use super::transformer::{Transformer, causal_mask};
use crate::config::{FpropDtype, ModelConfig, ModelKind};
use crate::error::{EngineError, Result};
use crate::inputs::{CandidateInputs, UserInputs};
use crate::topk::top_k_rows;
use crate::weights::{CandidateTowerWeights, HeadWeights, PhoenixWeights};

/// Top-k results of one retrieval call.
#[derive(Debug, Clone, PartialEq)]
pub struct Retrieved {
    /// `[B, D]` unit-norm user vectors.
    pub user_representation: Vec<f32>,
    /// Per row: (corpus index, score), descending, ties to the lower index.
    pub top_k: Vec<Vec<(u32, f32)>>,
}

/// The retrieval model.
#[derive(Debug, Clone)]
pub struct PhoenixRetriever {
    cfg: ModelConfig,
    weights: PhoenixWeights,
    transformer: Transformer,
    prec: Precision,
}

/// `v / sqrt(max(|v|^2, eps))` over the last axis.
fn l2_normalize(v: &Tensor, eps: f32) -> candle_core::Result<Tensor> {
    let norm = v
        .sqr()?
        .sum_keepdim(candle_core::D::Minus1)?
        .clamp(eps, f32::MAX)?
        .sqrt()?;
    v.broadcast_div(&norm)
}

impl PhoenixRetriever {
    /// Builds a retriever computing in `dtype`.
    pub fn new(cfg: ModelConfig, weights: PhoenixWeights, dtype: FpropDtype) -> Result<Self> {
        if cfg.kind != ModelKind::Retrieval {
            return Err(EngineError::Input(format!(
                "config describes a {:?} model, expected a retrieval model",
                cfg.kind
            )));
        }
        let prec = Precision(dtype);
        let transformer = Transformer::new(&cfg, &weights.layers, prec)?;
        Ok(Self {
            cfg,
            weights,
            transformer,
            prec,
        })
    }

    /// The validated config.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The hash tables shipped with the weights, if any (to turn ids into
    /// inputs).
    pub fn hash_tables(&self) -> Option<&crate::hash_embed::HashTables> {
        self.weights.hash_tables.as_ref()
    }

    fn tower(&self) -> Result<&CandidateTowerWeights> {
        match &self.weights.head {
            HeadWeights::Retrieval(t) => Ok(t),
            HeadWeights::Ranker(_) => Err(EngineError::Input(
                "weights carry a ranker head, expected a candidate tower".into(),
            )),
        }
    }

    /// User representations `[B, D]`, unit norm.
    pub fn user_representation(&self, user: &UserInputs) -> Result<Tensor> {
        user.validate(&self.cfg)?;
        let x = TokenBuilder::new(&self.cfg, &self.weights, self.prec).context(user)?;
        let (b, len, _) = x.dims3()?;
        let valid = user.context_valid(&self.cfg);
        let mask = causal_mask(&valid, b, len, self.cfg.attn_mask_fill)?;
        let positions: Vec<usize> = (0..len).collect();
        let h = self.transformer.forward_dense(&x, &positions, &mask)?;
        let m: Vec<f32> = valid.iter().map(|&v| f32::from(u8::from(v))).collect();
        let counts: Vec<f32> = m
            .chunks_exact(len)
            .map(|r| r.iter().sum::<f32>().max(1.0))
            .collect();
        let m = Tensor::from_vec(m, (b, len, 1), &Device::Cpu)?;
        let sum = h.broadcast_mul(&m)?.sum(1)?; // [B, D]
        let mean = sum.broadcast_div(&Tensor::from_vec(counts, (b, 1), &Device::Cpu)?)?;
        Ok(l2_normalize(&mean, self.cfg.l2_eps)?)
    }

    /// Candidate-tower representations `[B, C, D]`, unit norm; the product
    /// surface is not used, padded candidates are encoded like any other.
    pub fn candidate_representation(&self, cands: &CandidateInputs) -> Result<Tensor> {
        cands.validate(&self.cfg, "candidate_")?;
        let tower = self.tower()?;
        let (b, c, d) = (cands.batch, cands.count, self.cfg.emb_size);
        let (hi, ha) = (self.cfg.num_item_hashes, self.cfg.num_author_hashes);
        let n = b * c;
        let post = Tensor::from_slice(&cands.post_embeddings, (n, hi * d), &Device::Cpu)?;
        let author = Tensor::from_slice(&cands.author_embeddings, (n, ha * d), &Device::Cpu)?;
        let x = Tensor::cat(&[post, author], 1)?;
        let hidden = candle_nn::ops::silu(&x.matmul(&tower.proj_1)?)?;
        let out = hidden.matmul(&tower.proj_2)?;
        Ok(l2_normalize(&out, self.cfg.l2_eps)?.reshape((b, c, d))?)
    }

    /// User tower, then exact top-`k` of `user . corpus` over `corpus: [N, D]`.
    pub fn retrieve(&self, user: &UserInputs, corpus: &Tensor, k: usize) -> Result<Retrieved> {
        let (n, d) = corpus.dims2()?;
        if d != self.cfg.emb_size {
            return Err(EngineError::Input(format!(
                "corpus has width {d}, expected emb_size {}",
                self.cfg.emb_size
            )));
        }
        let rep = self.user_representation(user)?;
        let scores = rep.matmul(&corpus.t()?)?; // [B, N]
        let scores: Vec<f32> = scores.flatten_all()?.to_vec1()?;
        Ok(Retrieved {
            user_representation: rep.flatten_all()?.to_vec1()?,
            top_k: top_k_rows(&scores, n, k),
        })
    }
}
