//! [`RetrieverBatch`]: the retriever as a [`BatchModel`]. A batch runs the
//! user tower once for all its viewers, then one search of the corpus
//! (`PhoenixRetriever::search`: the top-k kernel on a GPU, one
//! `[B, D] x [D, N]` product on the CPU) deep enough for every row's k plus
//! the rows it excludes, which are then dropped. Every request has the
//! model's history length, so there is one bucket. On the CPU the corpus
//! product of a batch is one gemm rather than a gemv per viewer, so scores
//! can differ from an unbatched call in the last bits (≤ 1e-6, tested); the
//! rows returned match unless two scores lie within that distance.

use std::collections::HashSet;
use std::sync::Arc;

use candle_core::Tensor;

use super::BatchModel;
use crate::hash_embed::HistoryItem;
use crate::model::retriever::PhoenixRetriever;

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
        let users: Vec<(u64, &[HistoryItem])> = batch
            .iter()
            .map(|r| (r.user_id, r.history.as_slice()))
            .collect();
        let rep = self
            .retriever
            .represent_ids(&users)
            .map_err(|e| e.to_string())?;
        // One search for the batch, deep enough that every row keeps k
        // results after dropping the rows it excludes.
        let n = self.corpus.dim(0).map_err(|e| e.to_string())?;
        let depth = batch
            .iter()
            .map(|r| r.k.saturating_add(r.excluded_rows.len()))
            .max()
            .unwrap_or(0)
            .min(n);
        if depth == 0 {
            return Ok(vec![Vec::new(); batch.len()]);
        }
        let hits = self
            .retriever
            .search(&rep, &self.corpus, depth)
            .map_err(|e| e.to_string())?;
        Ok(batch
            .iter()
            .zip(hits)
            .map(|(r, row)| {
                let excluded: HashSet<u32> = r.excluded_rows.iter().copied().collect();
                row.into_iter()
                    .filter(|(i, s)| !excluded.contains(i) && s.is_finite())
                    .take(r.k)
                    .collect()
            })
            .collect())
    }
}
