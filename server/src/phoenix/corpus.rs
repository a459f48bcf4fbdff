//! The retrieval corpus: candidate-tower representations of recent posts,
//! one row per post, built once at start-up (and rebuilt by whoever owns
//! the post stream). Retrieval is an exact dot-product scan over it.

use std::collections::HashMap;

use candle_core::Tensor;
use foryou_engine::PhoenixRetriever;
use foryou_engine::hash_embed::CandidateItem;

use super::engine::EngineFailure;

/// Posts encoded per candidate-tower call while building.
const BUILD_CHUNK: usize = 4096;

/// One post of the corpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorpusPost {
    /// The post.
    pub post_id: i64,
    /// Its author.
    pub author_id: i64,
}

/// Encoded posts: `reps` row i is `posts[i]`.
#[derive(Debug)]
pub struct Corpus {
    /// The posts, in row order.
    pub posts: Vec<CorpusPost>,
    /// `[N, D]` unit-norm candidate representations.
    pub reps: Tensor,
    /// Row of each post.
    row_by_post: HashMap<i64, u32>,
    /// Rows of each author's posts.
    rows_by_author: HashMap<i64, Vec<u32>>,
}

impl Corpus {
    /// Encodes `posts` with the retriever's candidate tower.
    pub fn build(
        retriever: &PhoenixRetriever,
        posts: Vec<CorpusPost>,
    ) -> Result<Self, EngineFailure> {
        let cfg = retriever.config();
        let tables = retriever
            .hash_tables()
            .ok_or_else(|| EngineFailure::Model("retriever has no hash tables".into()))?;
        let mut parts = Vec::new();
        for chunk in posts.chunks(BUILD_CHUNK) {
            let items: Vec<CandidateItem> = chunk
                .iter()
                .map(|p| CandidateItem {
                    post_id: p.post_id as u64,
                    author_id: p.author_id as u64,
                    product_surface: 0,
                })
                .collect();
            let inputs = tables.candidate_inputs(cfg, &[&items], items.len())?;
            let rep = retriever.candidate_representation(&inputs)?; // [1, n, D]
            parts.push(rep.squeeze(0)?);
        }
        let reps = if parts.is_empty() {
            Tensor::zeros(
                (0, cfg.emb_size),
                candle_core::DType::F32,
                &candle_core::Device::Cpu,
            )?
        } else {
            Tensor::cat(&parts, 0)?
        };
        let mut row_by_post = HashMap::with_capacity(posts.len());
        let mut rows_by_author: HashMap<i64, Vec<u32>> = HashMap::new();
        for (i, p) in posts.iter().enumerate() {
            row_by_post.insert(p.post_id, i as u32);
            rows_by_author
                .entry(p.author_id)
                .or_default()
                .push(i as u32);
        }
        Ok(Self {
            posts,
            reps,
            row_by_post,
            rows_by_author,
        })
    }

    /// The rows holding these posts or posts by these authors (ids not in
    /// the corpus are ignored).
    pub fn rows_of(&self, posts: &[i64], authors: &[i64]) -> Vec<u32> {
        let mut rows: Vec<u32> = posts
            .iter()
            .filter_map(|p| self.row_by_post.get(p).copied())
            .collect();
        for a in authors {
            if let Some(r) = self.rows_by_author.get(a) {
                rows.extend_from_slice(r);
            }
        }
        rows
    }

    /// Number of posts.
    pub fn len(&self) -> usize {
        self.posts.len()
    }

    /// True when there is nothing to retrieve.
    pub fn is_empty(&self) -> bool {
        self.posts.is_empty()
    }
}
