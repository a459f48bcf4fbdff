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
use crate::hash_embed::HistoryItem;
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
    /// The user tower on a GPU, with the last corpus uploaded for top-k.
    #[cfg(feature = "cuda")]
    gpu: Option<GpuRetrieval>,
}

/// The retriever's device side: the user tower, and the corpus last
/// searched (uploaded once per corpus tensor, as bf16).
#[cfg(feature = "cuda")]
#[derive(Debug, Clone)]
struct GpuRetrieval {
    tower: std::sync::Arc<crate::gpu::GpuRanker>,
    corpus: std::sync::Arc<std::sync::Mutex<Option<UploadedCorpus>>>,
}

/// A corpus tensor's id and its device copy.
#[cfg(feature = "cuda")]
type UploadedCorpus = (
    candle_core::TensorId,
    std::sync::Arc<foryou_kernels::cuda::topk::GpuCorpus>,
);

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
            #[cfg(feature = "cuda")]
            gpu: None,
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

    /// Moves the user tower and top-k to `device`. On `Err(reason)` the
    /// retriever stays on the CPU, fully working.
    pub fn set_device(&mut self, device: crate::ComputeDevice) -> std::result::Result<(), String> {
        #[cfg(feature = "cuda")]
        {
            self.gpu = crate::gpu::model_on(device, &self.cfg, &self.weights, None)?.map(|tower| {
                GpuRetrieval {
                    tower,
                    corpus: Default::default(),
                }
            });
            Ok(())
        }
        #[cfg(not(feature = "cuda"))]
        crate::device::cpu_only(device)
    }

    /// Where the user tower runs.
    pub fn device(&self) -> crate::ComputeDevice {
        #[cfg(feature = "cuda")]
        if let Some(g) = &self.gpu {
            return crate::ComputeDevice::Cuda(g.tower.gpu().context().ordinal());
        }
        crate::ComputeDevice::Cpu
    }

    /// Hidden states of the user tower, `[B, 1 + S, D]`: on the GPU when
    /// there is one and every user token is valid (a padding user needs the
    /// reference's uniform-attention quirk, which the dense CPU path keeps).
    fn user_hidden(&self, user: &UserInputs, valid: &[bool]) -> Result<Tensor> {
        let (b, len) = (user.batch, 1 + user.history_len);
        #[cfg(feature = "cuda")]
        if let Some(g) = &self.gpu
            && (0..b).all(|r| user.user_valid(&self.cfg, r))
        {
            let h = g
                .tower
                .user_hidden(user, crate::gpu::TablePlacement::Host)?;
            return Ok(Tensor::from_vec(
                h,
                (b, len, self.cfg.emb_size),
                &Device::Cpu,
            )?);
        }
        let x = TokenBuilder::new(&self.cfg, &self.weights, self.prec).context(user)?;
        let mask = causal_mask(valid, b, len, self.cfg.attn_mask_fill)?;
        let positions: Vec<usize> = (0..len).collect();
        Ok(self.transformer.forward_dense(&x, &positions, &mask)?)
    }

    /// User representations `[B, D]`, unit norm.
    pub fn user_representation(&self, user: &UserInputs) -> Result<Tensor> {
        user.validate(&self.cfg)?;
        let valid = user.context_valid(&self.cfg);
        let h = self.user_hidden(user, &valid)?;
        self.pool(&h, &valid)
    }

    /// User representations for viewers given by ids (the serving path),
    /// `[B, D]`. When the hash tables are resident on the GPU the host only
    /// hashes and the device gathers the rows (a batch with a padding user
    /// takes the host gather and the dense CPU path, as in
    /// [`Self::user_representation`]).
    pub fn represent_ids(&self, users: &[(u64, &[HistoryItem])]) -> Result<Tensor> {
        let cfg = &self.cfg;
        let tables = self.hash_tables().ok_or_else(|| {
            EngineError::Input("the retriever's weights carry no hash tables".into())
        })?;
        let s = cfg.history_seq_len;
        #[cfg(feature = "cuda")]
        if let Some(g) = &self.gpu
            && g.tower.table_placement() == crate::gpu::TablePlacement::Device
        {
            let user = tables.user_hashes(cfg, users, s)?;
            if (0..user.batch).all(|r| user.user_valid(cfg, r)) {
                let valid = user.context_valid(cfg);
                let h = g
                    .tower
                    .user_hidden(&user, crate::gpu::TablePlacement::Device)?;
                let h = Tensor::from_vec(h, (user.batch, 1 + s, cfg.emb_size), &Device::Cpu)?;
                return self.pool(&h, &valid);
            }
        }
        self.user_representation(&tables.user_inputs(cfg, users, s)?)
    }

    /// Mean of the hidden states `h: [B, 1 + S, D]` over valid tokens, L2
    /// normalised.
    fn pool(&self, h: &Tensor, valid: &[bool]) -> Result<Tensor> {
        let (b, len, _) = h.dims3()?;
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
        self.corpus_shape(corpus)?;
        let rep = self.user_representation(user)?;
        let top_k = self.search(&rep, corpus, k)?;
        Ok(Retrieved {
            user_representation: rep.flatten_all()?.to_vec1()?,
            top_k,
        })
    }

    /// `(N, D)` of a corpus, or why it does not fit this model.
    fn corpus_shape(&self, corpus: &Tensor) -> Result<(usize, usize)> {
        let (n, d) = corpus.dims2()?;
        if d != self.cfg.emb_size {
            return Err(EngineError::Input(format!(
                "corpus has width {d}, expected emb_size {}",
                self.cfg.emb_size
            )));
        }
        Ok((n, d))
    }

    /// Exact top-`k` of `rep . corpus` per row of `rep: [B, D]` over
    /// `corpus: [N, D]`: on the GPU (bf16 inputs, the top-k kernel) when
    /// the retriever is there and the shape fits the kernel, otherwise one
    /// f32 product on the CPU.
    pub fn search(&self, rep: &Tensor, corpus: &Tensor, k: usize) -> Result<Vec<Vec<(u32, f32)>>> {
        let (n, _) = self.corpus_shape(corpus)?;
        #[cfg(feature = "cuda")]
        if let Some(g) = &self.gpu
            && k <= foryou_kernels::cuda::topk::MAX_K
            && matches!(self.cfg.emb_size, 64 | 128 | 256)
        {
            let q: Vec<f32> = rep.flatten_all()?.to_vec1()?;
            let gpu_corpus = g.corpus_for(corpus)?;
            return Ok(g.tower.gpu().top_k(&gpu_corpus, &q, k)?);
        }
        let scores = rep.matmul(&corpus.t()?)?; // [B, N]
        let scores: Vec<f32> = scores.flatten_all()?.to_vec1()?;
        Ok(top_k_rows(&scores, n, k))
    }
}

#[cfg(feature = "cuda")]
impl GpuRetrieval {
    /// The device copy of `corpus` (bf16), uploading it on first use.
    fn corpus_for(
        &self,
        corpus: &Tensor,
    ) -> Result<std::sync::Arc<foryou_kernels::cuda::topk::GpuCorpus>> {
        let mut slot = self
            .corpus
            .lock()
            .map_err(|_| EngineError::Gpu("an earlier corpus upload panicked".into()))?;
        if let Some((id, c)) = slot.as_ref()
            && *id == corpus.id()
        {
            return Ok(c.clone());
        }
        let (_, d) = corpus.dims2()?;
        let values: Vec<f32> = corpus.flatten_all()?.to_vec1()?;
        let gpu = self.tower.gpu();
        let up = gpu.upload_corpus(&foryou_kernels::cuda::bf16_bits(&values), d, None)?;
        let up = std::sync::Arc::new(up);
        *slot = Some((corpus.id(), up.clone()));
        Ok(up)
    }
}
