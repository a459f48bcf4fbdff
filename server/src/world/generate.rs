//! A seeded, believable demo world (`foryou world generate`, and what
//! `foryou serve` starts on by default).
//!
//! * Accounts have a popularity drawn from a Zipf law; each follows a
//!   Pareto-distributed number of accounts picked by popularity, so follower
//!   counts are power-law and a few accounts are followed by most users.
//! * Posts are spread over the last `hours`: an author posts in proportion
//!   to a Pareto activity. 20% are replies to recent posts (threads keep
//!   their root), 12% retweets of earlier originals; of the originals 15%
//!   carry a video (2 s to 3 min) and authors with subscribers make 5%
//!   subscriber-only. Text is drawn from the author's two topics of a fixed
//!   vocabulary, so muted keywords have something to match.
//! * Engagements follow the graph: 75% go to posts of followed accounts,
//!   the rest to popular posts; some are repeated within a minute (the user
//!   action sequence aggregates them).
//! * Some users block, mute and mute keywords; 1% of posts carry a
//!   visibility label; some users have already seen recent posts.
//!
//! Same spec, same world: everything comes from one ChaCha8 stream.

use std::collections::HashSet;

use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::model::{Engagement, Label, LabelAction, LabelScope, Post, World};
use crate::pipeline::home_mixer::Action;
use crate::pipeline::util::snowflake;

/// Sizes and seed of a generated world.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorldSpec {
    /// Seed of every random choice.
    pub seed: u64,
    /// The world's "now", unix ms.
    pub now_ms: i64,
    /// Accounts.
    pub users: usize,
    /// Mean accounts followed per user.
    pub mean_follows: f64,
    /// Mean posts per user over the window.
    pub posts_per_user: f64,
    /// Mean engagements per user.
    pub engagements_per_user: f64,
    /// Window of post times, hours before `now_ms`.
    pub hours: i64,
}

impl WorldSpec {
    /// The default demo sizes (2000 users, ~16k posts, ~100k engagements).
    pub fn demo(seed: u64, now_ms: i64) -> Self {
        Self {
            seed,
            now_ms,
            users: 2000,
            mean_follows: 40.0,
            posts_per_user: 8.0,
            engagements_per_user: 50.0,
            hours: 48,
        }
    }
}

impl WorldSpec {
    /// Checks the sizes, naming the first bad one (the CLI flag's name).
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=10_000_000).contains(&self.users) {
            return Err(format!("users must be in 1..=10000000, got {}", self.users));
        }
        for (name, v, max) in [
            ("follows", self.mean_follows, 100_000.0),
            ("posts-per-user", self.posts_per_user, 10_000.0),
            ("engagements-per-user", self.engagements_per_user, 100_000.0),
        ] {
            if !(v.is_finite() && (0.0..=max).contains(&v)) {
                return Err(format!("{name} must be a number in [0, {max}], got {v}"));
            }
        }
        if self.hours < 1 {
            return Err(format!("hours must be at least 1, got {}", self.hours));
        }
        Ok(())
    }
}

/// Words by topic; an author writes mostly about two topics.
/// Product surfaces the generated engagements use (ids 0 to 3); a ranker
/// with a smaller vocabulary needs a world file.
pub const GENERATED_SURFACES: u32 = 4;

const TOPICS: [&[&str]; 10] = [
    &[
        "rust", "compiler", "borrow", "cargo", "crate", "async", "trait", "macro", "lifetime",
        "unsafe",
    ],
    &[
        "gpu",
        "cuda",
        "kernel",
        "tensor",
        "matmul",
        "hopper",
        "bandwidth",
        "latency",
        "warp",
        "cache",
    ],
    &[
        "football", "goal", "match", "league", "coach", "striker", "derby", "penalty", "keeper",
        "season",
    ],
    &[
        "coffee", "espresso", "roast", "beans", "latte", "grinder", "brew", "barista", "crema",
        "pourover",
    ],
    &[
        "crypto", "token", "wallet", "airdrop", "chain", "mint", "staking", "defi", "ledger",
        "hodl",
    ],
    &[
        "election", "policy", "senate", "vote", "debate", "budget", "reform", "poll", "campaign",
        "bill",
    ],
    &[
        "cats", "kitten", "purr", "whiskers", "meow", "litter", "catnip", "tabby", "paws", "nap",
    ],
    &[
        "space",
        "rocket",
        "orbit",
        "launch",
        "mars",
        "booster",
        "satellite",
        "lunar",
        "payload",
        "starship",
    ],
    &[
        "cooking",
        "recipe",
        "pasta",
        "garlic",
        "oven",
        "sourdough",
        "spicy",
        "umami",
        "broth",
        "knife",
    ],
    &[
        "music", "album", "guitar", "concert", "vinyl", "synth", "chorus", "drummer", "remix",
        "tour",
    ],
];
const FILLER: [&str; 12] = [
    "the", "a", "today", "really", "new", "just", "my", "this", "great", "about", "love", "thread",
];
const ADJECTIVES: [&str; 12] = [
    "quiet", "rapid", "lucky", "cosmic", "brave", "sunny", "fuzzy", "clever", "wild", "calm",
    "bold", "tiny",
];
const NOUNS: [&str; 12] = [
    "otter", "falcon", "maple", "comet", "badger", "river", "pixel", "tiger", "cedar", "orbit",
    "lynx", "koala",
];

/// Pareto sample with minimum `min` and shape `alpha`, capped at `cap`.
fn pareto(rng: &mut ChaCha8Rng, min: f64, alpha: f64, cap: f64) -> f64 {
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    (min / u.powf(1.0 / alpha)).min(cap)
}

/// Generates a world (deterministic in `spec`).
pub fn generate(spec: &WorldSpec) -> World {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let mut w = World::new(spec.now_ms);
    w.seed = Some(spec.seed);
    let n = spec.users.max(2);
    let ids: Vec<i64> = (1..=n as i64).collect();

    for &id in &ids {
        let name = format!(
            "{}_{}{}",
            ADJECTIVES[rng.random_range(0..ADJECTIVES.len())],
            NOUNS[rng.random_range(0..NOUNS.len())],
            id
        );
        w.add_user(id, name);
    }
    let topics: Vec<[usize; 2]> = ids
        .iter()
        .map(|_| {
            [
                rng.random_range(0..TOPICS.len()),
                rng.random_range(0..TOPICS.len()),
            ]
        })
        .collect();

    // Popularity: Zipf over a random permutation of the accounts.
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    let mut popularity = vec![0.0; n];
    for (rank, &u) in order.iter().enumerate() {
        popularity[u] = 1.0 / (rank as f64 + 1.0).powf(0.9);
    }
    // Cannot fail: every weight is 1/(rank+1)^0.9 > 0, whatever the flags.
    let by_popularity = WeightedIndex::new(&popularity).expect("positive weights");

    // Follows: Pareto out-degree with the requested mean (alpha 1.6 → mean 2.67·min).
    let min_follows = (spec.mean_follows / 2.67).max(1.0);
    let mut follows: Vec<Vec<usize>> = vec![Vec::new(); n];
    for u in 0..n {
        let want = pareto(&mut rng, min_follows, 1.6, (n - 1) as f64 * 0.5).round() as usize;
        let mut set = HashSet::new();
        let mut tries = 0;
        while set.len() < want && tries < want * 20 {
            tries += 1;
            let t = by_popularity.sample(&mut rng);
            if t != u {
                set.insert(t);
            }
        }
        let mut list: Vec<usize> = set.into_iter().collect();
        list.sort_unstable();
        for &t in &list {
            w.add_follow(ids[u], ids[t]);
        }
        follows[u] = list;
    }

    // Subscriptions (to popular accounts), blocks, mutes, muted keywords.
    let mut has_subscribers = vec![false; n];
    for u in 0..n {
        if rng.random_bool(0.05) {
            for _ in 0..rng.random_range(1..=3) {
                let t = by_popularity.sample(&mut rng);
                if t != u {
                    w.subscriptions.entry(ids[u]).or_default().push(ids[t]);
                    has_subscribers[t] = true;
                }
            }
        }
        if rng.random_bool(0.03) {
            for _ in 0..rng.random_range(1..=3) {
                let t = by_popularity.sample(&mut rng);
                if t != u {
                    w.blocks.entry(ids[u]).or_default().push(ids[t]);
                }
            }
        }
        if rng.random_bool(0.05) && !follows[u].is_empty() {
            let t = follows[u][rng.random_range(0..follows[u].len())];
            w.mutes.entry(ids[u]).or_default().push(ids[t]);
        }
        if rng.random_bool(0.10) {
            let topic = TOPICS[rng.random_range(0..TOPICS.len())];
            let word = topic[rng.random_range(0..topic.len())];
            w.muted_keywords
                .entry(ids[u])
                .or_default()
                .push(word.to_owned());
        }
    }

    // Posts, oldest first, so parents and sources exist before their children.
    let activity: Vec<f64> = (0..n).map(|_| pareto(&mut rng, 1.0, 1.5, 200.0)).collect();
    // Cannot fail: Pareto draws with minimum 1 are finite and >= 1.
    let by_activity = WeightedIndex::new(&activity).expect("positive weights");
    let total = (spec.posts_per_user * n as f64).round() as usize;
    let span_ms = spec.hours.max(1) * 3_600_000;
    let mut times: Vec<i64> = (0..total)
        .map(|_| spec.now_ms - span_ms + rng.random_range(0..span_ms))
        .collect();
    times.sort_unstable();
    let mut post_ids: Vec<i64> = Vec::with_capacity(total);
    let mut originals: Vec<i64> = Vec::new();
    let mut by_author: Vec<Vec<i64>> = vec![Vec::new(); n];
    for (seq, &t) in times.iter().enumerate() {
        let a = by_activity.sample(&mut rng);
        let id = snowflake::id_at(t) + (seq as i64 & 0x3f_ffff);
        let roll: f64 = rng.random();
        let mut post = Post {
            id,
            author: ids[a],
            created_ms: t,
            ..Post::default()
        };
        if roll < 0.20 && !post_ids.is_empty() {
            // A reply to one of the last 300 posts.
            let lo = post_ids.len().saturating_sub(300);
            let parent_id = post_ids[rng.random_range(lo..post_ids.len())];
            let parent = &w.posts[&parent_id];
            let parent_id = parent.retweet_of.unwrap_or(parent_id);
            let root = w.posts[&parent_id].conversation_id.unwrap_or(parent_id);
            post.in_reply_to = Some(parent_id);
            post.conversation_id = Some(root);
            post.text = sentence(&mut rng, &topics[a]).into();
        } else if roll < 0.32 && !originals.is_empty() {
            post.retweet_of = Some(originals[rng.random_range(0..originals.len())]);
        } else {
            post.text = sentence(&mut rng, &topics[a]).into();
            if rng.random_bool(0.15) {
                post.video_duration_ms = Some(rng.random_range(2_000..180_000));
            }
            post.subscriber_only = has_subscribers[a] && rng.random_bool(0.05);
            if !post.subscriber_only {
                originals.push(id);
            }
        }
        post_ids.push(id);
        by_author[a].push(id);
        w.add_post(post);
    }

    // Engagements, mostly with followed accounts' posts.
    for u in 0..n {
        let count = pareto(&mut rng, spec.engagements_per_user / 3.0, 1.5, 1000.0).round() as usize;
        for _ in 0..count {
            let pick = if rng.random_bool(0.75) && !follows[u].is_empty() {
                let f = follows[u][rng.random_range(0..follows[u].len())];
                let theirs = &by_author[f];
                (!theirs.is_empty()).then(|| theirs[rng.random_range(0..theirs.len())])
            } else {
                let a = by_popularity.sample(&mut rng);
                let theirs = &by_author[a];
                (!theirs.is_empty()).then(|| theirs[rng.random_range(0..theirs.len())])
            };
            let Some(post_id) = pick else { continue };
            let post = &w.posts[&post_id];
            if post.author == ids[u] {
                continue;
            }
            let has_video = post.video_duration_ms.is_some();
            let at = (post.created_ms + rng.random_range(0..6 * 3_600_000)).min(spec.now_ms);
            let e = Engagement {
                post: post_id,
                actions: actions(&mut rng, has_video),
                at_ms: at,
                surface: rng.random_range(0..GENERATED_SURFACES),
            };
            if rng.random_bool(0.15) {
                // A second event on the same post a few seconds later.
                let again = Engagement {
                    actions: actions(&mut rng, has_video),
                    at_ms: (at + rng.random_range(1_000..60_000)).min(spec.now_ms),
                    ..e.clone()
                };
                w.add_engagement(ids[u], again);
            }
            w.add_engagement(ids[u], e);
        }
    }

    // Labels and impressions.
    for &id in &post_ids {
        if rng.random_bool(0.01) {
            let (reason, action) = match rng.random_range(0..10) {
                0..4 => ("spam", LabelAction::Drop),
                4..7 => ("sensitive_media", LabelAction::Interstitial),
                _ => ("misleading", LabelAction::Label),
            };
            let scope = if rng.random_bool(0.3) {
                LabelScope::Recommendations
            } else {
                LabelScope::All
            };
            w.labels.insert(
                id,
                Label {
                    reason: reason.into(),
                    action,
                    scope,
                },
            );
        }
    }
    let recent = &post_ids[post_ids.len().saturating_sub(2000)..];
    for &id in &ids {
        if rng.random_bool(0.3) && !recent.is_empty() {
            let seen = w.seen.entry(id).or_default();
            for _ in 0..rng.random_range(5..20) {
                seen.push(recent[rng.random_range(0..recent.len())]);
            }
        }
    }
    w
}

fn sentence(rng: &mut ChaCha8Rng, topics: &[usize; 2]) -> String {
    let len = rng.random_range(6..14);
    let words: Vec<&str> = (0..len)
        .map(|_| {
            if rng.random_bool(0.3) {
                FILLER[rng.random_range(0..FILLER.len())]
            } else {
                let t = TOPICS[topics[rng.random_range(0..2)]];
                t[rng.random_range(0..t.len())]
            }
        })
        .collect();
    let mut s = words.join(" ");
    if rng.random_bool(0.2) {
        let t = TOPICS[topics[0]];
        s.push_str(&format!(" #{}", t[rng.random_range(0..t.len())]));
    }
    s
}

/// Action flags of one engagement: never empty.
fn actions(rng: &mut ChaCha8Rng, has_video: bool) -> u32 {
    let odds: [(Action, f64); 12] = [
        (Action::Favorite, 0.55),
        (Action::Click, 0.35),
        (Action::Dwell, 0.45),
        (Action::Reply, 0.05),
        (Action::Retweet, 0.08),
        (Action::Quote, 0.02),
        (Action::Share, 0.02),
        (Action::ProfileClick, 0.05),
        (Action::PhotoExpand, 0.05),
        (Action::FollowAuthor, 0.01),
        (Action::NotInterested, 0.01),
        (Action::Vqv, if has_video { 0.4 } else { 0.0 }),
    ];
    let mut mask = 0u32;
    for (a, p) in odds {
        if rng.random_bool(p) {
            mask |= 1 << (a as u32);
        }
    }
    if mask == 0 {
        mask = 1 << (Action::Dwell as u32);
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(seed: u64) -> World {
        generate(&WorldSpec {
            users: 300,
            ..WorldSpec::demo(seed, 1_800_000_000_000)
        })
    }

    #[test]
    fn bad_sizes_are_errors_naming_the_flag() {
        let ok = WorldSpec::demo(1, 0);
        assert!(ok.validate().is_ok());
        let bad = [
            (WorldSpec { users: 0, ..ok }, "users"),
            (
                WorldSpec {
                    posts_per_user: f64::INFINITY,
                    ..ok
                },
                "posts-per-user",
            ),
            (
                WorldSpec {
                    mean_follows: f64::NAN,
                    ..ok
                },
                "follows",
            ),
            (
                WorldSpec {
                    engagements_per_user: -1.0,
                    ..ok
                },
                "engagements-per-user",
            ),
        ];
        for (spec, flag) in bad {
            let e = spec.validate().expect_err("invalid");
            assert!(e.starts_with(flag), "{e}");
        }
    }

    #[test]
    fn same_seed_same_world_other_seed_other_world() {
        let (a, b, c) = (small(1), small(1), small(2));
        assert_eq!(a.posts, b.posts);
        assert_eq!(a.follows, b.follows);
        assert_eq!(a.engagements, b.engagements);
        assert_ne!(a.posts, c.posts);
    }

    #[test]
    fn the_world_is_believable() {
        let w = small(3);
        let now = w.now_ms;
        // Posts lie in the window and their ids carry their time.
        for p in w.posts.values() {
            assert!(p.created_ms <= now && p.created_ms > now - 48 * 3_600_000);
            assert_eq!(snowflake::created_ms(p.id), Some(p.created_ms));
            if let Some(parent) = p.in_reply_to {
                assert!(w.posts[&parent].created_ms <= p.created_ms, "parent first");
                assert!(p.conversation_id.is_some());
            }
            if let Some(src) = p.retweet_of {
                assert!(
                    w.posts[&src].retweet_of.is_none(),
                    "no retweet of a retweet"
                );
            }
        }
        let count = |f: &dyn Fn(&Post) -> bool| w.posts.values().filter(|p| f(p)).count();
        let n = w.posts.len();
        assert!(count(&|p| p.in_reply_to.is_some()) * 10 > n, "replies");
        assert!(count(&|p| p.retweet_of.is_some()) * 20 > n, "retweets");
        assert!(count(&|p| p.video_duration_ms.is_some()) * 20 > n, "videos");
        // Power law: the most followed account has far more followers than the median.
        let mut followers: Vec<i64> = w.users.keys().map(|u| w.followers_count(*u)).collect();
        followers.sort_unstable();
        let (median, max) = (
            followers[followers.len() / 2],
            followers[followers.len() - 1],
        );
        assert!(max > 5 * median.max(1), "max {max} vs median {median}");
        // Engagements mostly follow the graph.
        let (mut followed, mut total) = (0, 0);
        for (u, list) in &w.engagements {
            let f = World::list(&w.follows, *u);
            for e in list {
                total += 1;
                if f.contains(&w.posts[&e.post].author) {
                    followed += 1;
                }
                assert_ne!(e.actions, 0);
            }
        }
        assert!(
            followed * 2 > total,
            "{followed} of {total} on followed accounts"
        );
        assert!(!w.muted_keywords.is_empty() && !w.blocks.is_empty() && !w.labels.is_empty());
    }
}
