//! The ends of the two models on candle: the ranker's head (final RMSNorm,
//! unembedding, sigmoid), and the retriever's candidate tower and user
//! pooling (masked mean, L2 norm).

use candle_core::{Device, Tensor};

use super::layers::{linear, rms_norm};
use crate::config::ModelConfig;
use crate::error::Result;
use crate::inputs::CandidateInputs;
use crate::numerics::{Precision, RankerOutput};
use crate::weights::{CandidateTowerWeights, RankerHead};

/// Final norm, unembedding and sigmoid for candidate states `h: [B, C, D]`;
/// logits and probabilities are rounded to the forward dtype.
pub fn rank_head(
    cfg: &ModelConfig,
    head: &RankerHead,
    prec: Precision,
    h: &Tensor,
) -> Result<RankerOutput> {
    let (b, c, _) = h.dims3()?;
    let normed = rms_norm(h, &head.final_norm, cfg.rms_norm_eps, prec)?;
    let logits = prec.round(linear(&normed, &head.unembeddings)?)?;
    let probs = prec.round(candle_nn::ops::sigmoid(&logits)?)?;
    // May 2026: sigmoid(normed @ continuous_unembeddings) in f32, then
    // rounded to the forward dtype.
    let (num_continuous, continuous) = match &head.continuous_unembeddings {
        Some(w) => {
            let p = prec.round(candle_nn::ops::sigmoid(&linear(&normed, w)?)?)?;
            (w.dim(1)?, p.flatten_all()?.to_vec1()?)
        }
        None => (0, Vec::new()),
    };
    Ok(RankerOutput {
        batch: b,
        count: c,
        num_actions: cfg.num_actions,
        logits: logits.flatten_all()?.to_vec1()?,
        probs: probs.flatten_all()?.to_vec1()?,
        num_continuous,
        continuous,
    })
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

/// Mean of the hidden states `h: [B, T, D]` (row-major) over the tokens
/// `valid` marks (`[B, T]`), L2 normalised: `[B, D]` row-major.
pub fn pool_users(
    cfg: &ModelConfig,
    h: Vec<f32>,
    (b, len): (usize, usize),
    valid: &[bool],
) -> Result<Vec<f32>> {
    let h = Tensor::from_vec(h, (b, len, cfg.emb_size), &Device::Cpu)?;
    let m: Vec<f32> = valid.iter().map(|&v| f32::from(u8::from(v))).collect();
    let counts: Vec<f32> = m
        .chunks_exact(len.max(1))
        .map(|r| r.iter().sum::<f32>().max(1.0))
        .collect();
    let m = Tensor::from_vec(m, (b, len, 1), &Device::Cpu)?;
    let sum = h.broadcast_mul(&m)?.sum(1)?; // [B, D]
    let mean = sum.broadcast_div(&Tensor::from_vec(counts, (b, 1), &Device::Cpu)?)?;
    Ok(l2_normalize(&mean, cfg.l2_eps)?.flatten_all()?.to_vec1()?)
}

/// Candidate-tower representations `[B, C, D]` row-major, unit norm:
/// `concat(post, author hash embeddings) @ proj_1 -> SiLU -> @ proj_2 ->
/// L2 norm`, or without the MLP (`tower` None) the mean of the hash
/// embeddings, L2 normalised. The product surface is not used; padded candidates are
/// encoded like any other.
pub fn candidate_tower(
    cfg: &ModelConfig,
    tower: Option<&CandidateTowerWeights>,
    cands: &CandidateInputs,
) -> Result<Vec<f32>> {
    let (b, c, d) = (cands.batch, cands.count, cfg.emb_size);
    let (hi, ha) = (cfg.num_item_hashes, cfg.num_author_hashes);
    let n = b * c;
    let post = Tensor::from_slice(&cands.post_embeddings, (n, hi * d), &Device::Cpu)?;
    let author = Tensor::from_slice(&cands.author_embeddings, (n, ha * d), &Device::Cpu)?;
    let x = Tensor::cat(&[post, author], 1)?; // [N, (Hi + Ha) D]
    let out = match tower {
        Some(t) => candle_nn::ops::silu(&x.matmul(&t.proj_1)?)?.matmul(&t.proj_2)?,
        // May 2026 without the projection: the mean over the Hi + Ha rows.
        None => x.reshape((n, hi + ha, d))?.mean(1)?,
    }; // [N, D]
    Ok(l2_normalize(&out, cfg.l2_eps)?.flatten_all()?.to_vec1()?)
}
