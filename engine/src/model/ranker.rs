//! The Phoenix ranker, fast path: the context (user + history) runs once,
//! causal and padding-masked, and keeps every layer's K/V; candidates then
//! attend to that cache plus themselves, in chunks of any size with the
//! same result. No T x T mask is ever built. The arithmetic runs on the
//! model's [`Backend`] (CPU or GPU, chosen once); the chunk loop, the
//! padding-user route and the id path are here, once.
//!
//! One reference quirk needs the dense path: a row whose user token is padding
//! has a fully masked query at position 0, which the reference's -1e30 fill
//! turns into uniform attention over the *whole* sequence, candidates included.
//! Such rows (garbage in any real request) are computed by the dense path so
//! the result still matches the reference number for number.

use std::collections::HashMap;
use std::sync::Arc;

use crate::backend::{Backend, Context, Device, ModelParts, Phases, TablePlacement};
use crate::config::{FpropDtype, ModelConfig, ModelKind};
use crate::error::{EngineError, Result};
use crate::hash_embed::{CandidateItem, HistoryItem};
use crate::inputs::{CandidateInputs, RecsysInputs, UserInputs};
use crate::nn::tokens::TokenBuilder;
use crate::numerics::{Precision, RankerOutput};
use crate::weights::{PhoenixWeights, RankerHead};

use super::token_cache::{TokenCache, TokenCacheStats, TokenKey};

/// Candidate slots a serving call scores per chunk of the fast path: bounds
/// the activations of a request with a huge candidate list (4096 x D floats
/// per tensor), while serving-size requests (Thunder's 1200 plus Phoenix's
/// 1000) run as one chunk.
pub const SERVING_CHUNK: usize = 4096;

/// The ranker: weights prepared for one forward dtype, on one backend.
#[derive(Debug, Clone)]
pub struct PhoenixRanker {
    /// Config, shared weights, precision and the dense stack (the
    /// reference path).
    pub(crate) parts: ModelParts,
    /// Where the fast path computes.
    backend: Arc<dyn Backend>,
    /// Candidate tokens kept between [`Self::rank_ids`] calls, when on.
    token_cache: Option<Arc<TokenCache>>,
}

impl PhoenixRanker {
    /// Builds a ranker on the CPU computing in `dtype` (the config's
    /// `fprop_dtype` is only a default).
    pub fn new(cfg: ModelConfig, weights: PhoenixWeights, dtype: FpropDtype) -> Result<Self> {
        Self::on(&Device::cpu(), cfg, weights, dtype)
    }

    /// Builds a ranker on `device` computing in `dtype`.
    pub fn on(
        device: &Device,
        cfg: ModelConfig,
        weights: PhoenixWeights,
        dtype: FpropDtype,
    ) -> Result<Self> {
        let parts = ModelParts::new(ModelKind::Ranker, cfg, weights, Precision(dtype))?;
        let backend = device.load(&parts)?;
        Ok(Self {
            parts,
            backend,
            token_cache: None,
        })
    }

    /// Keeps up to `capacity` candidate tokens between [`Self::rank_ids`]
    /// calls (0: none). Used where the backend builds tokens on the host
    /// (the CPU); the answers are the same, a hit skips the candidate's
    /// hash-row gather and projection.
    pub fn with_token_cache(mut self, capacity: usize) -> Self {
        self.token_cache =
            (capacity > 0).then(|| Arc::new(TokenCache::new(capacity, self.parts.cfg.emb_size)));
        self
    }

    /// The token cache's counts and size, when it is on.
    pub fn token_cache_stats(&self) -> Option<TokenCacheStats> {
        self.token_cache.as_ref().map(|c| c.stats())
    }

    /// The token cache's hits and misses, when it is on (no lock).
    pub fn token_cache_counts(&self) -> Option<(u64, u64)> {
        self.token_cache.as_ref().map(|c| c.counts())
    }

    /// Moves the fast path to `device`. On error (an unsupported shape, a
    /// failed upload) the ranker stays where it was, fully working; the
    /// caller reports the reason.
    pub fn set_device(&mut self, device: &Device) -> Result<()> {
        self.backend = device.load(&self.parts)?;
        Ok(())
    }

    /// Where the fast path runs.
    pub fn device(&self) -> crate::ComputeDevice {
        self.backend.device()
    }

    /// Where requests given by ids ([`Self::rank_ids`]) gather their
    /// hash-embedding rows.
    pub fn table_placement(&self) -> TablePlacement {
        self.backend.table_placement()
    }

    /// Where the last fast-path call spent its time, when the backend keeps
    /// such a split (the GPU).
    pub fn last_phases(&self) -> Option<Phases> {
        self.backend.last_phases()
    }

    /// The validated config.
    pub fn config(&self) -> &ModelConfig {
        &self.parts.cfg
    }

    /// The hash tables that came with the weights, if any.
    pub fn hash_tables(&self) -> Option<&crate::hash_embed::HashTables> {
        self.parts.weights.hash_tables.as_ref()
    }

    pub(crate) fn head(&self) -> Result<&RankerHead> {
        self.parts.weights.ranker_head()
    }

    pub(crate) fn tokens(&self) -> TokenBuilder<'_> {
        TokenBuilder::new(&self.parts.cfg, &self.parts.weights, self.parts.prec)
    }

    /// Runs user + history once on the backend; the result serves any
    /// number of candidate chunks ([`Self::score_candidates`]). Every row's
    /// user token must be valid (see the module doc).
    pub fn encode_context(&self, user: &UserInputs) -> Result<Context> {
        self.encode(user, TablePlacement::Host)
    }

    fn encode(&self, user: &UserInputs, rows: TablePlacement) -> Result<Context> {
        if let Some(b) = (0..user.batch).find(|&b| !user.user_valid(&self.parts.cfg, b)) {
            return Err(EngineError::Input(format!(
                "row {b} has a padding user token; the cached-context path needs a valid user"
            )));
        }
        self.backend.encode_context(user, rows)
    }

    /// Scores candidates against an encoded context; `first_slot` is the slot
    /// index of the first candidate (it sets RoPE positions in absolute mode).
    pub fn score_candidates(
        &self,
        ctx: &mut Context,
        cands: &CandidateInputs,
        first_slot: usize,
    ) -> Result<RankerOutput> {
        self.score(ctx, cands, first_slot, TablePlacement::Host)
    }

    fn score(
        &self,
        ctx: &mut Context,
        cands: &CandidateInputs,
        first_slot: usize,
        rows: TablePlacement,
    ) -> Result<RankerOutput> {
        if cands.batch != ctx.batch {
            return Err(EngineError::Input(format!(
                "candidates have {} rows, the context {}",
                cands.batch, ctx.batch
            )));
        }
        self.backend.score_candidates(ctx, cands, first_slot, rows)
    }

    /// Context once, then candidates `chunk` slots at a time (at most what
    /// the backend takes per call), for rows with valid users. `rows` says
    /// whether the inputs carry embeddings or hashes only.
    fn fast_rows(
        &self,
        user: &UserInputs,
        cands: &CandidateInputs,
        chunk: usize,
        rows: TablePlacement,
    ) -> Result<RankerOutput> {
        self.over_chunks(user, cands.count, chunk, rows, |ctx, slots| {
            if slots.len() == cands.count {
                return self.score(ctx, cands, 0, rows); // one chunk: no copy
            }
            let part = cands.slots(&self.parts.cfg, slots.start, slots.end);
            self.score(ctx, &part, slots.start, rows)
        })
    }

    /// Context once (rows placed as `rows` say), then `score(ctx, slots)`
    /// for the candidate slots `0..count` in chunks of `chunk` (at most
    /// what the backend takes per call; all of them in one call when they
    /// fit), answers concatenated.
    fn over_chunks(
        &self,
        user: &UserInputs,
        count: usize,
        chunk: usize,
        rows: TablePlacement,
        mut score: impl FnMut(&mut Context, std::ops::Range<usize>) -> Result<RankerOutput>,
    ) -> Result<RankerOutput> {
        if user.batch == 0 || count == 0 {
            return Ok(self.empty_output(user.batch));
        }
        let chunk = chunk.min(self.backend.max_chunk(user.batch)).max(1);
        let mut ctx = self.encode(user, rows)?;
        if chunk >= count {
            return score(&mut ctx, 0..count);
        }
        let mut chunks = Vec::with_capacity(count.div_ceil(chunk));
        for c0 in (0..count).step_by(chunk) {
            chunks.push(score(&mut ctx, c0..(c0 + chunk).min(count))?);
        }
        Ok(RankerOutput::concat_slots(&chunks))
    }

    /// No candidates for `batch` rows.
    fn empty_output(&self, batch: usize) -> RankerOutput {
        let nc = self.parts.cfg.continuous.map_or(0, |c| c.num_actions);
        RankerOutput::empty(batch, self.parts.cfg.num_actions, nc)
    }

    /// [`Self::fast_rows`] for candidates whose tokens are built already
    /// (`tokens: [B·C, D]`, `cands` by hashes only).
    fn fast_tokens(
        &self,
        user: &UserInputs,
        cands: &CandidateInputs,
        tokens: Vec<f32>,
        chunk: usize,
    ) -> Result<RankerOutput> {
        let (c, d) = (cands.count, self.parts.cfg.emb_size);
        let mut tokens = tokens;
        self.over_chunks(user, c, chunk, TablePlacement::Host, |ctx, slots| {
            if slots.len() == c {
                let all = std::mem::take(&mut tokens); // one chunk: no copy
                return self.backend.score_tokens(ctx, all, cands, 0);
            }
            let part: Vec<f32> = (0..cands.batch)
                .flat_map(|b| {
                    tokens[(b * c + slots.start) * d..(b * c + slots.end) * d]
                        .iter()
                        .copied()
                })
                .collect();
            let picked = cands.slots(&self.parts.cfg, slots.start, slots.end);
            self.backend.score_tokens(ctx, part, &picked, slots.start)
        })
    }

    /// The candidate tokens `[B·width, D]` of `cands` (padded to `width`
    /// slots): from `cache` where held, the rest built in one call (each
    /// distinct candidate once) and kept.
    fn cached_tokens(
        &self,
        cache: &TokenCache,
        tables: &crate::hash_embed::HashTables,
        cands: &[&[CandidateItem]],
        width: usize,
    ) -> Result<Vec<f32>> {
        let cfg = &self.parts.cfg;
        let d = cfg.emb_size;
        let pad = CandidateItem::default();
        let mut out = vec![0.0f32; cands.len() * width * d];
        let mut missing: Vec<(TokenKey, CandidateItem)> = Vec::new();
        let mut index: HashMap<TokenKey, usize> = HashMap::new();
        let mut fill: Vec<(usize, usize)> = Vec::new();
        for (r, items) in cands.iter().enumerate() {
            for c in 0..width {
                let item = items.get(c).unwrap_or(&pad);
                let slot = r * width + c;
                let key = TokenKey::of(cfg.post_age, item);
                if cache.get(&key, &mut out[slot * d..(slot + 1) * d]) {
                    continue;
                }
                let i = *index.entry(key).or_insert_with(|| {
                    missing.push((key, item.clone()));
                    missing.len() - 1
                });
                fill.push((slot, i));
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let items: Vec<CandidateItem> = missing.iter().map(|(_, item)| item.clone()).collect();
        let inputs = tables.candidate_inputs(cfg, &[&items], items.len())?;
        let built = self.backend.candidate_tokens(&inputs)?;
        if built.len() != missing.len() * d {
            return Err(EngineError::Input(format!(
                "{} token values for {} candidates",
                built.len(),
                missing.len()
            )));
        }
        for &(slot, i) in &fill {
            out[slot * d..(slot + 1) * d].copy_from_slice(&built[i * d..(i + 1) * d]);
        }
        for ((key, _), token) in missing.iter().zip(built.chunks_exact(d)) {
            cache.insert(*key, token);
        }
        Ok(out)
    }

    /// Fast path over the whole batch, all candidates in one chunk (as far
    /// as the backend takes them).
    pub fn forward(&self, inputs: &RecsysInputs) -> Result<RankerOutput> {
        self.forward_chunked(inputs, inputs.candidates.count.max(1))
    }

    /// Fast path, scoring candidates `chunk` slots at a time.
    pub fn forward_chunked(&self, inputs: &RecsysInputs, chunk: usize) -> Result<RankerOutput> {
        if chunk == 0 {
            return Err(EngineError::Input("candidate chunk size is 0".into()));
        }
        inputs.validate(&self.parts.cfg)?;
        self.split_padded_users(
            &inputs.user,
            &inputs.candidates,
            |user, cands| self.fast_rows(user, cands, chunk, TablePlacement::Host),
            |dense| {
                self.dense_unchecked(&RecsysInputs {
                    user: inputs.user.select_rows(&self.parts.cfg, dense),
                    candidates: inputs.candidates.select_rows(&self.parts.cfg, dense),
                })
            },
        )
    }

    /// Rows with a valid user through `fast` (all of them in one call, the
    /// common case, with no row copies), rows with a padding user through
    /// `dense` (given their indices; the dense path's quirk), answers
    /// scattered back into row order.
    fn split_padded_users(
        &self,
        user: &UserInputs,
        cands: &CandidateInputs,
        fast: impl Fn(&UserInputs, &CandidateInputs) -> Result<RankerOutput>,
        dense: impl Fn(&[usize]) -> Result<RankerOutput>,
    ) -> Result<RankerOutput> {
        let cfg = &self.parts.cfg;
        let b = user.batch;
        let (fast_rows, dense_rows): (Vec<usize>, Vec<usize>) =
            (0..b).partition(|&r| user.user_valid(cfg, r));
        if dense_rows.is_empty() {
            return fast(user, cands);
        }
        let mut parts = Vec::new();
        if !fast_rows.is_empty() {
            let out = fast(
                &user.select_rows(cfg, &fast_rows),
                &cands.select_rows(cfg, &fast_rows),
            )?;
            parts.push((fast_rows, out));
        }
        let out = dense(&dense_rows)?;
        parts.push((dense_rows, out));
        Ok(RankerOutput::scatter_rows(b, &parts))
    }

    /// Ranks requests given by ids, the serving path: row `r` is viewer
    /// `users[r]` (id, history oldest first) with candidates `cands[r]`,
    /// padded to `width` slots and scored `chunk` slots at a time. Needs the
    /// weights' hash tables. When the backend holds them on its device the
    /// host only hashes and the device gathers the rows; otherwise the host
    /// gathers them. The same numbers either way (device tables hold the
    /// values the host path uploads). Padding users take the dense path
    /// with host-gathered rows.
    pub fn rank_ids(
        &self,
        users: &[(i64, &[HistoryItem])],
        cands: &[&[CandidateItem]],
        width: usize,
        chunk: usize,
    ) -> Result<RankerOutput> {
        let cfg = &self.parts.cfg;
        if chunk == 0 {
            return Err(EngineError::Input("candidate chunk size is 0".into()));
        }
        let tables = self.hash_tables().ok_or_else(|| {
            EngineError::Input("the ranker's weights carry no hash tables".into())
        })?;
        if users.len() != cands.len() {
            return Err(EngineError::Input(format!(
                "{} viewers but {} candidate lists",
                users.len(),
                cands.len()
            )));
        }
        let s = cfg.history_seq_len;
        let rows = self.backend.table_placement();
        if let Some(cache) = &self.token_cache
            && rows == TablePlacement::Host
            && self.backend.host_tokens()
        {
            let user = tables.user_inputs(cfg, users, s)?;
            if (0..user.batch).all(|b| user.user_valid(cfg, b)) {
                let hashes = tables.candidate_hashes(cfg, cands, width)?;
                let tokens = self.cached_tokens(cache, tables, cands, width)?;
                return self.fast_tokens(&user, &hashes, tokens, chunk);
            }
        }
        let (user, candidates) = match rows {
            TablePlacement::Device => (
                tables.user_hashes(cfg, users, s)?,
                tables.candidate_hashes(cfg, cands, width)?,
            ),
            TablePlacement::Host => (
                tables.user_inputs(cfg, users, s)?,
                tables.candidate_inputs(cfg, cands, width)?,
            ),
        };
        self.split_padded_users(
            &user,
            &candidates,
            |user, cand| self.fast_rows(user, cand, chunk, rows),
            |dense| {
                let du: Vec<_> = dense.iter().map(|&r| users[r]).collect();
                let dc: Vec<_> = dense.iter().map(|&r| cands[r]).collect();
                self.dense_unchecked(&RecsysInputs {
                    user: tables.user_inputs(cfg, &du, s)?,
                    candidates: tables.candidate_inputs(cfg, &dc, width)?,
                })
            },
        )
    }
}
