//! A seeded stream of synthetic post events: the embedded default for
//! `foryou thunder` (`synth`), benchmarks and tests. The home-mixer world
//! generator builds richer worlds; this one only needs believable timelines.
//!
//! Posts are spread uniformly over the `span_s` seconds before `now_s`, in
//! creation order, each by a uniformly drawn author (ids 1..=authors), so each
//! author gets about `posts_per_author`. Mix: 60 % originals (12 % of them
//! with a video), 25 % replies to an earlier post (same conversation), 15 %
//! retweets of an earlier post by someone else; `delete_ratio` of the posts
//! are deleted later in the stream. Ids are snowflakes of the creation time,
//! so ages derived from ids agree with `created_at`.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::events::PostEvent;
use super::light_post::{LightPost, PostDelete};

/// Twitter's snowflake epoch, milliseconds.
pub const SNOWFLAKE_EPOCH_MS: i64 = 1_288_834_974_657;

/// Size and shape of a synthetic stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SynthSpec {
    /// Number of authors (ids 1..=authors).
    pub authors: u32,
    /// Average posts per author.
    pub posts_per_author: u32,
    /// Posts are created in `[now_s - span_s, now_s]`.
    pub span_s: i64,
    /// "Now", unix seconds.
    pub now_s: i64,
    /// Fraction of posts deleted later in the stream.
    pub delete_ratio: f64,
    /// RNG seed.
    pub seed: u64,
}

impl SynthSpec {
    /// 1000 authors × 50 posts over the last 47 h, 2 % deleted.
    pub fn new(now_s: i64, seed: u64) -> Self {
        Self {
            authors: 1000,
            posts_per_author: 50,
            span_s: 47 * 3600,
            now_s,
            delete_ratio: 0.02,
            seed,
        }
    }
}

/// The snowflake id of a post created at `created_ms` with sequence `seq`.
pub fn snowflake(created_ms: i64, seq: i64) -> i64 {
    ((created_ms - SNOWFLAKE_EPOCH_MS) << 22) | (seq & 0x3f_ffff)
}

/// Generates the stream (creates in time order, deletes interleaved after
/// the post they delete).
pub fn synth_events(spec: &SynthSpec) -> Vec<PostEvent> {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let n = u64::from(spec.authors) * u64::from(spec.posts_per_author);
    let start_ms = (spec.now_s - spec.span_s) * 1000;
    let span_ms = (spec.span_s * 1000).max(1);
    let mut times: Vec<i64> = (0..n)
        .map(|_| start_ms + rng.random_range(0..span_ms))
        .collect();
    times.sort_unstable();
    let authors = i64::from(spec.authors.max(1));
    let mut posts: Vec<LightPost> = Vec::with_capacity(times.len());
    let mut events = Vec::with_capacity(times.len() + times.len() / 20);
    for (seq, created_ms) in times.into_iter().enumerate() {
        let id = snowflake(created_ms, seq as i64);
        let author = rng.random_range(1..=authors);
        let created_at = created_ms / 1000;
        let roll: f64 = rng.random();
        let post = if posts.is_empty() || roll < 0.60 {
            let p = LightPost::original(id, author, created_at);
            if rng.random_bool(0.12) {
                p.with_video()
            } else {
                p
            }
        } else {
            let earlier = posts[rng.random_range(0..posts.len())];
            if roll < 0.85 {
                let root = earlier.conversation_id.map_or(earlier.post_id, |c| c.get());
                LightPost::reply(
                    id,
                    author,
                    created_at,
                    earlier.post_id,
                    earlier.author_id,
                    root,
                )
            } else if earlier.author_id != author && !earlier.is_retweet {
                LightPost::retweet(id, author, created_at, earlier.post_id, earlier.author_id)
            } else {
                LightPost::original(id, author, created_at)
            }
        };
        posts.push(post);
        events.push(PostEvent::Create(post));
        if spec.delete_ratio > 0.0 && rng.random_bool(spec.delete_ratio.min(1.0)) {
            let victim = posts[rng.random_range(0..posts.len())];
            events.push(PostEvent::Delete(PostDelete {
                post_id: victim.post_id,
                deleted_at: created_at,
            }));
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_ids_are_unique_snowflakes() {
        let spec = SynthSpec {
            authors: 50,
            posts_per_author: 20,
            ..SynthSpec::new(1_800_000_000, 7)
        };
        let a = synth_events(&spec);
        assert_eq!(a, synth_events(&spec));
        assert_ne!(a, synth_events(&SynthSpec { seed: 8, ..spec }));
        let creates: Vec<LightPost> = a
            .iter()
            .filter_map(|e| match e {
                PostEvent::Create(p) => Some(*p),
                PostEvent::Delete(_) => None,
            })
            .collect();
        assert_eq!(creates.len(), 1000);
        let mut ids: Vec<i64> = creates.iter().map(|p| p.post_id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 1000, "ids are unique");
        for p in &creates {
            let ms = (p.post_id >> 22) + SNOWFLAKE_EPOCH_MS;
            assert_eq!(ms / 1000, p.created_at, "snowflake encodes created_at");
            assert!(p.created_at <= spec.now_s && p.created_at >= spec.now_s - spec.span_s);
        }
        let replies = creates.iter().filter(|p| p.is_reply).count();
        let retweets = creates.iter().filter(|p| p.is_retweet).count();
        assert!((150..350).contains(&replies), "{replies} replies");
        assert!((60..200).contains(&retweets), "{retweets} retweets");
    }
}
