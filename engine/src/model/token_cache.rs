//! [`TokenCache`]: the ranker's candidate tokens by candidate, kept
//! between requests. A candidate's token (its hash-embedding rows, product
//! surface and post-age rows through `proj_candidate`, rounded as the
//! forward dtype rounds it) depends on the candidate alone, never on the
//! viewer, and the same posts are ranked for many viewers; a hit skips the
//! hash-row gather and the projection (17 % of the CPU ranker's samples at
//! 1 150 candidates a request).
//!
//! Bounded: shards of two generations each. Lookups check the current
//! generation, then the previous one (a hit there moves the entry up);
//! when the current generation of a shard is full it becomes the previous
//! one and the oldest is dropped, so at most `capacity` tokens are held
//! and a candidate ranked again within a generation stays.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::PostAgeConfig;
use crate::hash_embed::CandidateItem;

/// Shards (independent locks).
const SHARDS: usize = 16;

/// What a candidate's token depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenKey {
    post_id: i64,
    author_id: i64,
    product_surface: u32,
    age_bucket: i64,
}

impl TokenKey {
    /// The key of `item` for a model with `post_age` (a padding
    /// candidate's author is ignored, as the gather ignores it; the age
    /// matters only as its bucket, for models with one).
    pub fn of(post_age: Option<PostAgeConfig>, item: &CandidateItem) -> Self {
        Self {
            post_id: item.post_id,
            author_id: if item.post_id == 0 { 0 } else { item.author_id },
            product_surface: item.product_surface,
            age_bucket: post_age.map_or(0, |a| a.bucket(item.impression_s, item.created_s)),
        }
    }

    fn shard(&self) -> usize {
        let h = (self.post_id as u64)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29)
            ^ (self.author_id as u64);
        (h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 60) as usize % SHARDS
    }
}

#[derive(Debug, Default)]
struct Generations {
    current: HashMap<TokenKey, Box<[f32]>>,
    previous: HashMap<TokenKey, Box<[f32]>>,
}

/// Hit and miss counts since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenCacheStats {
    /// Candidates whose token came from the cache.
    pub hits: u64,
    /// Candidates whose token was computed.
    pub misses: u64,
    /// Tokens held now.
    pub entries: usize,
}

/// Candidate tokens of width `dim`, at most `capacity` of them.
#[derive(Debug)]
pub struct TokenCache {
    dim: usize,
    /// Entries per generation per shard.
    generation_cap: usize,
    shards: Vec<Mutex<Generations>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl TokenCache {
    /// A cache of at most `capacity` tokens (at least one a shard
    /// generation) of width `dim`.
    pub fn new(capacity: usize, dim: usize) -> Self {
        Self {
            dim,
            generation_cap: (capacity / (2 * SHARDS)).max(1),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Width of a token.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Copies `key`'s token into `out` (`dim` values); false on a miss.
    pub fn get(&self, key: &TokenKey, out: &mut [f32]) -> bool {
        let Ok(mut g) = self.shards[key.shard()].lock() else {
            return false;
        };
        let found = if let Some(t) = g.current.get(key) {
            out.copy_from_slice(t);
            true
        } else if let Some(t) = g.previous.remove(key) {
            out.copy_from_slice(&t);
            self.insert_locked(&mut g, *key, t);
            true
        } else {
            false
        };
        drop(g);
        let counter = if found { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Keeps `token` (`dim` values) for `key`.
    pub fn insert(&self, key: TokenKey, token: &[f32]) {
        if token.len() != self.dim {
            return;
        }
        if let Ok(mut g) = self.shards[key.shard()].lock() {
            self.insert_locked(&mut g, key, token.into());
        }
    }

    fn insert_locked(&self, g: &mut Generations, key: TokenKey, token: Box<[f32]>) {
        if g.current.len() >= self.generation_cap && !g.current.contains_key(&key) {
            g.previous = std::mem::take(&mut g.current);
        }
        g.current.insert(key, token);
    }

    /// Hits and misses since start: two atomic loads, no lock (for a
    /// per-request metric).
    pub fn counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Counts and size now (locks every shard to count the entries).
    pub fn stats(&self) -> TokenCacheStats {
        let (hits, misses) = self.counts();
        TokenCacheStats {
            hits,
            misses,
            entries: self
                .shards
                .iter()
                .filter_map(|s| s.lock().ok().map(|g| g.current.len() + g.previous.len()))
                .sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(post_id: i64) -> TokenKey {
        TokenKey {
            post_id,
            author_id: 7,
            product_surface: 1,
            age_bucket: 0,
        }
    }

    #[test]
    fn a_token_comes_back_until_two_generations_have_passed() {
        let cache = TokenCache::new(2 * SHARDS * 4, 2);
        let mut out = [0.0; 2];
        assert!(!cache.get(&key(1), &mut out));
        cache.insert(key(1), &[1.0, 2.0]);
        assert!(cache.get(&key(1), &mut out));
        assert_eq!(out, [1.0, 2.0]);
        // Thousands of other posts pass through every shard: the first
        // one is gone, and the cache never holds more than its capacity.
        for p in 2..5_000 {
            cache.insert(key(p), &[p as f32, 0.0]);
            assert!(cache.stats().entries <= 2 * SHARDS * 4);
        }
        assert!(!cache.get(&key(1), &mut out));
        assert!(cache.get(&key(4_999), &mut out));
        assert_eq!(out, [4_999.0, 0.0]);
        let s = cache.stats();
        assert_eq!((s.hits, s.misses), (2, 2));
        // A token of the wrong width is not kept.
        cache.insert(key(9_999), &[1.0]);
        assert!(!cache.get(&key(9_999), &mut out));
    }

    #[test]
    fn keys_differ_by_every_input_of_the_token_and_ignore_a_padding_author() {
        let item = |post_id, author_id, product_surface| CandidateItem {
            post_id,
            author_id,
            product_surface,
            ..Default::default()
        };
        let a = TokenKey::of(None, &item(5, 6, 1));
        assert_ne!(a, TokenKey::of(None, &item(5, 7, 1)));
        assert_ne!(a, TokenKey::of(None, &item(5, 6, 2)));
        assert_ne!(a, TokenKey::of(None, &item(4, 6, 1)));
        assert_eq!(
            TokenKey::of(None, &item(0, 6, 1)),
            TokenKey::of(None, &item(0, 9, 1))
        );
    }
}
