//! [`RetrieverBatch`]: the retriever as a [`BatchModel`]. A batch runs the
//! user tower once for all its viewers, then one `[B, D] x [D, N]` product
//! against the corpus, then a top-k per row that skips the rows that
//! viewer excludes. Every request has the model's history length, so there
//! is one bucket. The corpus product of a batch is one gemm rather than a
//! gemv per viewer, so scores can differ from an unbatched call in the last
//! bits (≤ 1e-6, tested); the rows returned match unless two scores lie
//! within that distance of each other.

use std::sync::Arc;

use candle_core::Tensor;

use super::BatchModel;
use crate::hash_embed::HistoryItem;
use crate::model::retriever::PhoenixRetriever;
use crate::topk::top_k;

/// One viewer's retrieval.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrieveRequest {
    /// The viewer.
    pub user_id: u64,
    /// Engagement history, oldest first (the last S items are used).
    pub history: Vec<HistoryItem>,
    /// Results wanted.
    pub k: usize,
    /// Corpus rows never to return (sorted or not; duplicates are fine).
    pub excluded_rows: Vec<u32>,
}

/// The retriever and a corpus `[N, D]` behind a batcher.
#[derive(Debug, Clone)]
pub struct RetrieverBatch {
    retriever: Arc<PhoenixRetriever>,
    corpus: Tensor,
}

impl RetrieverBatch {
    /// Batches for `retriever` (with hash tables) over `corpus: [N, D]`.
    pub fn new(retriever: Arc<PhoenixRetriever>, corpus: Tensor) -> Self {
        Self { retriever, corpus }
    }
}

impl BatchModel for RetrieverBatch {
    type Request = RetrieveRequest;
    /// (corpus row, score), best first, ties to the lower row.
    type Response = Vec<(u32, f32)>;

    /// Runs on rayon's pool, input building and top-k included (as for
    /// the ranker's batches).
    fn run(&self, batch: Vec<RetrieveRequest>) -> Result<Vec<Vec<(u32, f32)>>, String> {
        rayon::scope(|_| self.run_in_pool(&batch))
    }
}

impl RetrieverBatch {
    fn run_in_pool(&self, batch: &[RetrieveRequest]) -> Result<Vec<Vec<(u32, f32)>>, String> {
        let cfg = self.retriever.config();
        let tables = self
            .retriever
            .hash_tables()
            .ok_or_else(|| "retriever has no hash tables".to_string())?;
        let users: Vec<(u64, &[HistoryItem])> = batch
            .iter()
            .map(|r| (r.user_id, r.history.as_slice()))
            .collect();
        let inputs = tables
            .user_inputs(cfg, &users, cfg.history_seq_len)
            .map_err(|e| e.to_string())?;
        let scores: Vec<f32> = (|| -> candle_core::Result<Vec<f32>> {
            let rep = self
                .retriever
                .user_representation(&inputs)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            rep.matmul(&self.corpus.t()?)?.flatten_all()?.to_vec1()
        })()
        .map_err(|e| e.to_string())?;
        let n = self.corpus.dim(0).map_err(|e| e.to_string())?;
        Ok(batch
            .iter()
            .enumerate()
            .map(|(b, r)| {
                let mut row = scores[b * n..(b + 1) * n].to_vec();
                for &x in &r.excluded_rows {
                    if let Some(s) = row.get_mut(x as usize) {
                        *s = f32::NEG_INFINITY;
                    }
                }
                top_k(&row, r.k)
                    .into_iter()
                    .filter(|(_, s)| s.is_finite())
                    .collect()
            })
            .collect())
    }
}
