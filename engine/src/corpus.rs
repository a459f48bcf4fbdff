//! The retrieval corpus: candidate-tower representations of posts, one row
//! per post, with the posts' ids. Built from `(post_id, author_id)` items
//! by the retriever's candidate tower, or from representations computed
//! elsewhere. A search takes user representations and, per user, how many
//! posts are wanted and which posts and authors to leave out; it returns
//! ids and scores. The scan is exact (the backend's top-k: one f32 product
//! on the CPU, the top-k kernel on a GPU).
//!
//! [`PostSearch`] is what a retrieval batch searches: this immutable
//! corpus, or the live index's latest snapshot ([`crate::index::IndexReader`]).

use std::collections::{HashMap, HashSet};

use candle_core::{Device, Tensor};

use crate::error::{EngineError, Result};
use crate::hash_embed::CandidateItem;
use crate::inputs::UserInputs;
use crate::model::retriever::PhoenixRetriever;

/// Posts encoded per candidate-tower call while building.
const BUILD_CHUNK: usize = 4096;

/// One post of the corpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorpusItem {
    /// The post.
    pub post_id: i64,
    /// Its author.
    pub author_id: i64,
}

/// One search result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// The post.
    pub post_id: i64,
    /// Its author.
    pub author_id: i64,
    /// `user · post` representation.
    pub score: f32,
}

/// What one user asks of a search.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<'a> {
    /// Results wanted.
    pub k: usize,
    /// Posts never to return (ids not in the corpus are ignored).
    pub excluded_posts: &'a [i64],
    /// Authors whose posts are never returned.
    pub excluded_authors: &'a [i64],
}

/// User representations and the corpus rows nearest them.
#[derive(Debug, Clone, PartialEq)]
pub struct Retrieved {
    /// `[B, D]` unit-norm user vectors.
    pub user_representation: Vec<f32>,
    /// Per user: (corpus row, score), descending, ties to the lower row.
    pub top_k: Vec<Vec<(u32, f32)>>,
}

/// Something a retrieval searches: posts with unit-norm representations.
pub trait PostSearch: Send + Sync + std::fmt::Debug {
    /// Posts searchable now.
    fn len(&self) -> usize;

    /// True when a search would return nothing.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// For each user representation (`reps: [B, D]`, row `b` for
    /// `queries[b]`): the `k` best posts by score, without its excluded
    /// posts and authors; best first, ties to the older post.
    fn search(
        &self,
        retriever: &PhoenixRetriever,
        reps: &[f32],
        queries: &[Query<'_>],
    ) -> Result<Vec<Vec<Hit>>>;
}

/// The candidate-tower representations (`[N, D]`, unit norm) of `items`
/// (product surface 0), encoded in chunks of [`BUILD_CHUNK`] posts.
pub fn encode_posts(retriever: &PhoenixRetriever, items: &[CorpusItem]) -> Result<Vec<f32>> {
    let cfg = retriever.config();
    let tables = retriever
        .hash_tables()
        .ok_or_else(|| EngineError::Input("the retriever has no hash tables".into()))?;
    let mut reps = Vec::with_capacity(items.len() * cfg.emb_size);
    for chunk in items.chunks(BUILD_CHUNK) {
        let cands: Vec<CandidateItem> = chunk
            .iter()
            .map(|p| CandidateItem {
                post_id: p.post_id,
                author_id: p.author_id,
                product_surface: 0,
                ..Default::default()
            })
            .collect();
        let inputs = tables.candidate_inputs(cfg, &[&cands], cands.len())?;
        reps.extend(retriever.candidate_representation(&inputs)?); // [1, n, D]
    }
    Ok(reps)
}

/// Encoded posts: row `i` of the representations is `items[i]`.
#[derive(Debug)]
pub struct Corpus {
    items: Vec<CorpusItem>,
    /// `[N, D]` unit-norm candidate representations.
    reps: Tensor,
    row_by_post: HashMap<i64, u32>,
    rows_by_author: HashMap<i64, Vec<u32>>,
}

impl Corpus {
    /// Encodes `items` with the retriever's candidate tower (product
    /// surface 0), in chunks.
    pub fn build(retriever: &PhoenixRetriever, items: Vec<CorpusItem>) -> Result<Self> {
        let reps = encode_posts(retriever, &items)?;
        Self::from_representations(items, reps, retriever.config().emb_size)
    }

    /// A corpus of representations computed elsewhere: `reps` holds
    /// `items.len()` rows of width `dim`, every value finite.
    pub fn from_representations(
        items: Vec<CorpusItem>,
        reps: Vec<f32>,
        dim: usize,
    ) -> Result<Self> {
        if dim == 0 || reps.len() != items.len() * dim {
            return Err(EngineError::Input(format!(
                "{} representation values for {} posts of width {dim}",
                reps.len(),
                items.len()
            )));
        }
        if let Some(i) = reps.iter().position(|v| !v.is_finite()) {
            return Err(EngineError::Input(format!(
                "corpus representation of post {} holds a non-finite value",
                items[i / dim].post_id
            )));
        }
        if u32::try_from(items.len()).is_err() {
            return Err(EngineError::Input(format!(
                "{} posts exceed the corpus' u32 rows",
                items.len()
            )));
        }
        let mut row_by_post = HashMap::with_capacity(items.len());
        let mut rows_by_author: HashMap<i64, Vec<u32>> = HashMap::new();
        for (row, p) in (0u32..).zip(&items) {
            row_by_post.insert(p.post_id, row);
            rows_by_author.entry(p.author_id).or_default().push(row);
        }
        let reps = Tensor::from_vec(reps, (items.len(), dim), &Device::Cpu)?;
        Ok(Self {
            items,
            reps,
            row_by_post,
            rows_by_author,
        })
    }

    /// The posts, in row order.
    pub fn items(&self) -> &[CorpusItem] {
        &self.items
    }

    /// Number of posts.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when there is nothing to retrieve.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Width D of a representation.
    pub fn dim(&self) -> usize {
        self.reps.dims().get(1).copied().unwrap_or(0)
    }

    /// The exact top-`k` (row, score) of each user representation (`reps:
    /// [B, D]`), no exclusions: best first, ties to the lower row.
    pub fn search_rows(
        &self,
        retriever: &PhoenixRetriever,
        reps: &[f32],
        k: usize,
    ) -> Result<Vec<Vec<(u32, f32)>>> {
        retriever.top_k(reps, &self.reps, k)
    }

    /// The user tower over `user`, then the exact top-`k` corpus rows of
    /// each user, no exclusions (the reference's retrieval, as fixtures
    /// record it: rows, not ids).
    pub fn retrieve(
        &self,
        retriever: &PhoenixRetriever,
        user: &UserInputs,
        k: usize,
    ) -> Result<Retrieved> {
        let rep = retriever.user_representation(user)?;
        let top_k = self.search_rows(retriever, &rep, k)?;
        Ok(Retrieved {
            user_representation: rep,
            top_k,
        })
    }

    /// The rows holding these posts or posts by these authors.
    fn excluded_rows(&self, q: &Query<'_>) -> HashSet<u32> {
        let mut rows: HashSet<u32> = q
            .excluded_posts
            .iter()
            .filter_map(|p| self.row_by_post.get(p).copied())
            .collect();
        for a in q.excluded_authors {
            if let Some(r) = self.rows_by_author.get(a) {
                rows.extend(r);
            }
        }
        rows
    }

    /// For each user representation (`reps: [B, D]`, row `b` for
    /// `queries[b]`): the `k` best posts by score, leaving out its
    /// excluded posts and authors; best first, ties to the older row. One
    /// search serves the batch (the backend's top-k, so a GPU's kernel),
    /// deep enough that every user keeps `k` results after its exclusions.
    pub fn search(
        &self,
        retriever: &PhoenixRetriever,
        reps: &[f32],
        queries: &[Query<'_>],
    ) -> Result<Vec<Vec<Hit>>> {
        if reps.len() != queries.len() * self.dim() {
            return Err(EngineError::Input(format!(
                "{} representation values for {} queries of width {}",
                reps.len(),
                queries.len(),
                self.dim()
            )));
        }
        let excluded: Vec<HashSet<u32>> = queries.iter().map(|q| self.excluded_rows(q)).collect();
        let depth = queries
            .iter()
            .zip(&excluded)
            .map(|(q, e)| q.k.saturating_add(e.len()))
            .max()
            .unwrap_or(0)
            .min(self.len());
        if depth == 0 {
            return Ok(vec![Vec::new(); queries.len()]);
        }
        let rows = retriever.top_k(reps, &self.reps, depth)?;
        Ok(rows
            .into_iter()
            .zip(queries.iter().zip(&excluded))
            .map(|(row, (q, excluded))| {
                row.into_iter()
                    .filter(|(i, s)| !excluded.contains(i) && s.is_finite())
                    .filter_map(|(i, score)| {
                        let item = self.items.get(usize::try_from(i).ok()?)?;
                        Some(Hit {
                            post_id: item.post_id,
                            author_id: item.author_id,
                            score,
                        })
                    })
                    .take(q.k)
                    .collect()
            })
            .collect())
    }
}

impl PostSearch for Corpus {
    fn len(&self) -> usize {
        self.items.len()
    }

    fn search(
        &self,
        retriever: &PhoenixRetriever,
        reps: &[f32],
        queries: &[Query<'_>],
    ) -> Result<Vec<Vec<Hit>>> {
        Corpus::search(self, retriever, reps, queries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: i64) -> Vec<CorpusItem> {
        (1..=n)
            .map(|i| CorpusItem {
                post_id: 100 + i,
                author_id: i % 3,
            })
            .collect()
    }

    #[test]
    fn representations_must_fill_every_row_with_finite_values() {
        let short = Corpus::from_representations(items(3), vec![0.0; 5], 2);
        assert!(
            short
                .expect_err("5 values for 3 rows")
                .to_string()
                .contains("5 representation values")
        );
        let mut reps = vec![0.5; 6];
        reps[3] = f32::NAN;
        let nan = Corpus::from_representations(items(3), reps, 2).expect_err("nan");
        assert!(nan.to_string().contains("post 102"), "{nan}");
        let ok = Corpus::from_representations(items(3), vec![0.5; 6], 2).expect("valid");
        assert_eq!((ok.len(), ok.dim()), (3, 2));
    }

    #[test]
    fn excluded_rows_cover_posts_and_every_post_of_an_author() {
        let c = Corpus::from_representations(items(6), vec![0.0; 12], 2).expect("valid");
        let q = Query {
            k: 1,
            excluded_posts: &[101, 999],
            excluded_authors: &[2],
        };
        let mut rows: Vec<u32> = c.excluded_rows(&q).into_iter().collect();
        rows.sort_unstable();
        // Post 101 is row 0; author 2 wrote posts 102 and 105 (rows 1, 4).
        assert_eq!(rows, vec![0, 1, 4]);
    }
}
