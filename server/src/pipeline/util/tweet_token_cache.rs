//! [`TweetTokenCache`]: each post's text tokenised once (spec §4.2
//! tokenizer) and the tokens kept beside the post id, so that the requests
//! that hydrate the post share them instead of tokenising it again.
//!
//! - An entry is used only for the very text it was made from: a post whose
//!   text the entity service now returns differently is tokenised again.
//! - Bounded: two generations of `capacity` entries each. New entries go to
//!   the current one; when it is full it becomes the previous one and the
//!   old previous one is dropped. A hit in the previous generation moves the
//!   entry back to the current one, so posts that keep being candidates
//!   stay.
//! - One lock: a batch takes the read lock once for its lookups, tokenises
//!   what was missing without any lock, and takes the write lock once to
//!   keep it (not at all when everything was found).

use std::collections::HashMap;
use std::sync::Arc;

use foldhash::fast::RandomState;
use parking_lot::RwLock;

use super::tokenizer::TweetTokens;

/// Post id → the tokens of its text, shared across requests.
pub struct TweetTokenCache {
    /// Entries per generation.
    capacity: usize,
    generations: RwLock<Generations>,
}

/// The two generations.
#[derive(Default)]
struct Generations {
    current: HashMap<i64, Arc<TweetTokens>, RandomState>,
    previous: HashMap<i64, Arc<TweetTokens>, RandomState>,
}

impl TweetTokenCache {
    /// Entries per generation by default: 64 Ki posts, about 32 MB for the
    /// demo world's 70-byte texts of a dozen tokens (some 500 bytes an
    /// entry: text, tokens, offsets, hashes, map slot), so at most about
    /// twice that. A request brings at most 2200 candidates
    /// (PHOENIX_MAX_RESULTS + THUNDER_MAX_RESULTS), and the demo world has
    /// about 16 000 posts, all of which fit.
    pub const DEFAULT_CAPACITY: usize = 1 << 16;

    /// A cache of up to `capacity` entries per generation (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            generations: RwLock::new(Generations::default()),
        }
    }

    /// The tokens of each `(post id, text)`, in order: kept ones when they
    /// are of that text, otherwise made now (sharing the text) and kept.
    pub fn tokens(&self, posts: &[(i64, &Arc<str>)]) -> Vec<Arc<TweetTokens>> {
        let mut found: Vec<Option<Arc<TweetTokens>>> = Vec::with_capacity(posts.len());
        // Entries to (re)insert into the current generation: promoted from
        // the previous one, or made below.
        let mut keep: Vec<(i64, Arc<TweetTokens>)> = Vec::new();
        {
            let g = self.generations.read();
            for &(id, text) in posts {
                let of_text = |t: &&Arc<TweetTokens>| t.is_of(text);
                if let Some(t) = g.current.get(&id).filter(of_text) {
                    found.push(Some(t.clone()));
                } else if let Some(t) = g.previous.get(&id).filter(of_text) {
                    keep.push((id, t.clone()));
                    found.push(Some(t.clone()));
                } else {
                    found.push(None);
                }
            }
        }
        let tokens: Vec<Arc<TweetTokens>> = posts
            .iter()
            .zip(found)
            .map(|(&(id, text), t)| {
                t.unwrap_or_else(|| {
                    let made = Arc::new(TweetTokens::of_shared(text.clone()));
                    keep.push((id, made.clone()));
                    made
                })
            })
            .collect();
        if !keep.is_empty() {
            let mut g = self.generations.write();
            for (id, t) in keep {
                if g.current.len() >= self.capacity && !g.current.contains_key(&id) {
                    g.previous = std::mem::take(&mut g.current);
                }
                g.current.insert(id, t);
            }
        }
        tokens
    }

    /// Entries held (both generations; a post can be in both).
    pub fn len(&self) -> usize {
        let g = self.generations.read();
        g.current.len() + g.previous.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for TweetTokenCache {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

impl std::fmt::Debug for TweetTokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TweetTokenCache")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cache.tokens` of `(id, text)` pairs given as literals.
    fn tokens(cache: &TweetTokenCache, posts: &[(i64, &str)]) -> Vec<Arc<TweetTokens>> {
        let texts: Vec<(i64, Arc<str>)> = posts.iter().map(|&(id, t)| (id, t.into())).collect();
        let refs: Vec<(i64, &Arc<str>)> = texts.iter().map(|(id, t)| (*id, t)).collect();
        cache.tokens(&refs)
    }

    #[test]
    fn an_entry_made_from_a_shared_text_is_recognised_by_its_address() {
        let cache = TweetTokenCache::default();
        let text: Arc<str> = "New York".into();
        let made = cache.tokens(&[(1, &text)]);
        assert!(std::ptr::eq(made[0].text().as_ptr(), text.as_ptr()));
        assert!(made[0].is_of(&text));
        assert!(made[0].is_of("New York"), "an equal copy is its text too");
        assert!(!made[0].is_of("New Yorc"));
        assert!(
            !made[0].is_of(&text[..3]),
            "a prefix at the same address is not"
        );
    }

    #[test]
    fn a_post_is_tokenised_once_and_shared() {
        let cache = TweetTokenCache::default();
        let first = tokens(&cache, &[(1, "New York"), (2, "#cats")]);
        let again = tokens(&cache, &[(2, "#cats"), (1, "New York")]);
        assert!(Arc::ptr_eq(&first[0], &again[1]));
        assert!(Arc::ptr_eq(&first[1], &again[0]));
        assert_eq!(again[1].iter().collect::<Vec<_>>(), ["new", "york"]);
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn a_changed_text_is_tokenised_again() {
        let cache = TweetTokenCache::default();
        let old = tokens(&cache, &[(1, "cats")]);
        let new = tokens(&cache, &[(1, "dogs")]);
        assert_eq!(new[0].text(), "dogs");
        assert_eq!(new[0].iter().collect::<Vec<_>>(), ["dogs"]);
        assert!(!Arc::ptr_eq(&old[0], &new[0]));
        assert!(Arc::ptr_eq(&new[0], &tokens(&cache, &[(1, "dogs")])[0]));
    }

    #[test]
    fn holds_at_most_two_generations_and_keeps_posts_in_use() {
        let cache = TweetTokenCache::new(2);
        let first = tokens(&cache, &[(1, "a"), (2, "b")]);
        tokens(&cache, &[(3, "c")]); // {3} and previous {1, 2}
        let promoted = tokens(&cache, &[(1, "a")]); // {3, 1} and previous {1, 2}
        assert!(Arc::ptr_eq(&first[0], &promoted[0]));
        tokens(&cache, &[(4, "d")]); // {4} and previous {3, 1}: 2 is gone
        assert!(cache.len() <= 4);
        assert!(Arc::ptr_eq(&first[0], &tokens(&cache, &[(1, "a")])[0]));
        assert!(!Arc::ptr_eq(&first[1], &tokens(&cache, &[(2, "b")])[0]));
    }
}
