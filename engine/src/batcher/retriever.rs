//! [`RetrieverBatch`]: the retriever as a [`BatchModel`]. A batch runs the
//! user tower once for all its viewers, then one search of the posts
//! ([`PostSearch`]: an immutable [`crate::Corpus`], whose search is the
//! top-k kernel on a GPU and one `[B, D] x [D, N]` product on the CPU,
//! deep enough for every row's k plus the posts it excludes; or the live
//! index's latest snapshot). Every request has the model's history length, so there is one
//! bucket. On the CPU the corpus product of a batch is one gemm rather than
//! a gemv per viewer, so scores can differ from an unbatched call in the
//! last bits (≤ 1e-6, tested); the posts returned match unless two scores
//! lie within that distance.

use std::sync::Arc;

use super::BatchModel;
use crate::corpus::{Hit, PostSearch, Query};
use crate::error::EngineError;
use crate::hash_embed::HistoryItem;
use crate::model::retriever::PhoenixRetriever;

/// One viewer's retrieval.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrieveRequest {
    /// The viewer.
    pub user_id: i64,
    /// Engagement history, oldest first (the last S items are used).
    pub history: Vec<HistoryItem>,
    /// Results wanted.
    pub k: usize,
    /// Posts never to return.
    pub excluded_posts: Vec<i64>,
    /// Authors whose posts are never returned.
    pub excluded_authors: Vec<i64>,
}

/// The retriever and the posts it searches, behind a batcher.
#[derive(Debug, Clone)]
pub struct RetrieverBatch {
    retriever: Arc<PhoenixRetriever>,
    corpus: Arc<dyn PostSearch>,
}

impl RetrieverBatch {
    /// Batches for `retriever` (with hash tables) over `corpus`.
    pub fn new(retriever: Arc<PhoenixRetriever>, corpus: Arc<dyn PostSearch>) -> Self {
        Self { retriever, corpus }
    }

    /// The posts searched.
    pub fn corpus(&self) -> &Arc<dyn PostSearch> {
        &self.corpus
    }
}

impl BatchModel for RetrieverBatch {
    type Request = RetrieveRequest;
    /// Posts, best first, ties to the older corpus row.
    type Response = Vec<Hit>;

    /// Runs on rayon's pool, input building and top-k included (as for
    /// the ranker's batches).
    fn run(&self, batch: Vec<RetrieveRequest>) -> Result<Vec<Vec<Hit>>, EngineError> {
        rayon::scope(|_| self.run_in_pool(&batch))
    }
}

impl RetrieverBatch {
    fn run_in_pool(&self, batch: &[RetrieveRequest]) -> Result<Vec<Vec<Hit>>, EngineError> {
        if self.corpus.is_empty() || batch.iter().all(|r| r.k == 0) {
            return Ok(vec![Vec::new(); batch.len()]);
        }
        let users: Vec<(i64, &[HistoryItem])> = batch
            .iter()
            .map(|r| (r.user_id, r.history.as_slice()))
            .collect();
        let reps = self.retriever.represent_ids(&users)?;
        let queries: Vec<Query<'_>> = batch
            .iter()
            .map(|r| Query {
                k: r.k,
                excluded_posts: &r.excluded_posts,
                excluded_authors: &r.excluded_authors,
            })
            .collect();
        self.corpus.search(&self.retriever, &reps, &queries)
    }
}
