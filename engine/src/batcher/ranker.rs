//! [`RankerBatch`]: the ranker as a [`BatchModel`]. Each request is one
//! viewer (history, candidates); a batch stacks them as rows of one
//! forward pass, candidates padded to the batch's shape bucket.
//!
//! Buckets: candidate counts round up to the next power of two up to 64
//! (at least 8), then to the next multiple of 64, so serving-size requests
//! (1000-2200 candidates) waste at most 63 slots (a power-of-two rounding
//! nearly doubled their compute). Padded slots are masked candidates:
//! candidate isolation keeps them out of every real candidate's attention,
//! so padding does not change a result (tested bit for bit in f32).
//!
//! The forward pass runs on rayon's pool (the engine's norms and gemm
//! splits then stay in-pool instead of being handed over per op).

use std::sync::Arc;

use super::{BatchModel, PADDING_RATIO};
use crate::error::EngineError;
use crate::hash_embed::{CandidateItem, HistoryItem};
use crate::model::ranker::{PhoenixRanker, SERVING_CHUNK};
use crate::numerics::RankerOutput;

/// One viewer's ranking request.
#[derive(Debug, Clone, PartialEq)]
pub struct RankRequest {
    /// The viewer.
    pub user_id: i64,
    /// Engagement history, oldest first (the last S items are used).
    pub history: Vec<HistoryItem>,
    /// Candidates to score.
    pub candidates: Vec<CandidateItem>,
}

/// The ranker behind a batcher.
#[derive(Debug, Clone)]
pub struct RankerBatch {
    ranker: Arc<PhoenixRanker>,
}

impl RankerBatch {
    /// Batches for `ranker` (which must carry hash tables).
    pub fn new(ranker: Arc<PhoenixRanker>) -> Self {
        Self { ranker }
    }

    /// Runs one forward pass per bucket of `candidate_counts` (a dummy
    /// viewer, empty history), so the first real request of each bucket
    /// finds its buffers sized and its pages touched. Returns the buckets
    /// warmed, in order, without repeats.
    pub fn warm_up(&self, candidate_counts: &[usize]) -> Result<Vec<usize>, EngineError> {
        let mut done: Vec<usize> = Vec::new();
        for &n in candidate_counts {
            let width = candidate_bucket(n.max(1));
            if done.contains(&width) {
                continue;
            }
            let request = RankRequest {
                user_id: 1,
                history: Vec::new(),
                candidates: (1..)
                    .take(width)
                    .map(|i| CandidateItem {
                        post_id: i,
                        author_id: i,
                        product_surface: 0,
                        ..Default::default()
                    })
                    .collect(),
            };
            self.run(vec![request])?;
            done.push(width);
        }
        Ok(done)
    }
}

/// Slot granularity of buckets above 64 candidates.
const BUCKET_STEP: usize = 64;

/// The padded candidate count of a request with `n` candidates.
pub fn candidate_bucket(n: usize) -> usize {
    if n <= BUCKET_STEP {
        n.max(8).next_power_of_two()
    } else {
        n.div_ceil(BUCKET_STEP) * BUCKET_STEP
    }
}

impl BatchModel for RankerBatch {
    type Request = RankRequest;
    type Response = RankerOutput;

    fn bucket(r: &RankRequest) -> u64 {
        candidate_bucket(r.candidates.len()) as u64
    }

    /// The whole batch, input building included, runs on rayon's pool: a
    /// batch worker thread only waits, so the batcher's threads never
    /// compete with the pool's for the cores.
    fn run(&self, batch: Vec<RankRequest>) -> Result<Vec<RankerOutput>, EngineError> {
        rayon::scope(|_| self.run_in_pool(&batch))
    }
}

impl RankerBatch {
    fn run_in_pool(&self, batch: &[RankRequest]) -> Result<Vec<RankerOutput>, EngineError> {
        // A lone request runs at its own size (padding it to its bucket
        // would only add work: 65 candidates would cost 128); a batch pads
        // every request to the widest bucket.
        let width = match batch {
            [one] => one.candidates.len(),
            _ => batch
                .iter()
                .map(|r| candidate_bucket(r.candidates.len()))
                .max()
                .unwrap_or(8),
        };
        let users: Vec<(i64, &[HistoryItem])> = batch
            .iter()
            .map(|r| (r.user_id, r.history.as_slice()))
            .collect();
        let cands: Vec<&[CandidateItem]> = batch.iter().map(|r| r.candidates.as_slice()).collect();
        let slots = width * batch.len();
        let real: usize = cands.iter().map(|c| c.len()).sum();
        if slots > 0 {
            metrics::histogram!(PADDING_RATIO)
                .record((slots - real.min(slots)) as f64 / slots as f64);
        }
        let out = self.ranker.rank_ids(&users, &cands, width, SERVING_CHUNK)?;
        Ok(split_rows(&out, batch))
    }
}

/// Row `b` of `out`, cut to the request's own candidates.
fn split_rows(out: &RankerOutput, batch: &[RankRequest]) -> Vec<RankerOutput> {
    batch
        .iter()
        .enumerate()
        .map(|(b, r)| out.row(b, r.candidates.len()))
        .collect()
}
