//! [`World`]: the data behind the embedded external services (profiles, the
//! social graph, posts, engagement histories, impressions, visibility
//! labels). It is what `foryou world generate` writes and `foryou serve
//! --world` loads (`format.rs`), and what `services.rs` answers from.

use std::collections::{BTreeMap, HashMap};

use crate::clients::IdMap;
use crate::pipeline::home_mixer::Action;
use crate::thunder::LightPost;
use crate::thunder::light_post::opt_id;

/// An account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// User id (never 0).
    pub id: i64,
    /// Handle shown in the feed.
    pub screen_name: String,
}

/// A post: an original, a reply (`in_reply_to`) or a retweet (`retweet_of`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Post {
    /// Snowflake id (its time is the post's creation time, which AgeFilter reads).
    pub id: i64,
    /// Author (for a retweet, the retweeter).
    pub author: i64,
    /// Creation time, unix ms.
    pub created_ms: i64,
    /// Text (empty for a retweet: it shows its source's).
    pub text: std::sync::Arc<str>,
    /// The post replied to.
    pub in_reply_to: Option<i64>,
    /// Root of the reply thread (for replies).
    pub conversation_id: Option<i64>,
    /// The retweeted post.
    pub retweet_of: Option<i64>,
    /// Length of the attached video, ms.
    pub video_duration_ms: Option<i32>,
    /// Only the author's subscribers may see it.
    pub subscriber_only: bool,
}

/// One engagement of a user with a post (the raw user action sequence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engagement {
    /// The post.
    pub post: i64,
    /// Actions taken, as a bitmask over [`Action`] indices.
    pub actions: u32,
    /// When, unix ms.
    pub at_ms: i64,
    /// Product surface id (the ranker's vocabulary).
    pub surface: u32,
}

impl Engagement {
    /// The bitmask of a list of actions.
    pub fn mask(actions: &[Action]) -> u32 {
        actions.iter().fold(0, |m, a| m | 1 << (*a as u32))
    }
}

/// What a visibility label asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LabelAction {
    /// Remove the post from the feed.
    Drop,
    /// Show it behind an interstitial.
    Interstitial,
    /// Show it with a label.
    Label,
}

impl LabelAction {
    /// The wire/file name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Drop => "drop",
            Self::Interstitial => "interstitial",
            Self::Label => "label",
        }
    }
}

/// Where a label applies: every home timeline request, or only to
/// out-of-network recommendations (safety level TimelineHomeRecommendations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LabelScope {
    /// TimelineHome and TimelineHomeRecommendations.
    All,
    /// TimelineHomeRecommendations only.
    Recommendations,
}

/// A visibility-filtering label on a post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// Why (e.g. "spam", "nsfw").
    pub reason: String,
    /// What to do.
    pub action: LabelAction,
    /// Which safety levels see it.
    pub scope: LabelScope,
}

/// The world's posts by id.
pub type PostMap = IdMap<Post>;

/// The whole world. Build it with [`World::new`] and the `add_*` methods (or
/// load a file); lists keep insertion order.
#[derive(Debug, Clone, Default)]
pub struct World {
    /// The world's "now" when it was made, unix ms; serving runs its clock
    /// from here so a saved world stays fresh.
    pub now_ms: i64,
    /// Generator seed, if generated.
    pub seed: Option<u64>,
    /// Accounts by id.
    pub users: BTreeMap<i64, User>,
    /// Follows: user → accounts followed.
    pub follows: HashMap<i64, Vec<i64>>,
    /// Blocks: user → accounts blocked.
    pub blocks: HashMap<i64, Vec<i64>>,
    /// Mutes: user → accounts muted.
    pub mutes: HashMap<i64, Vec<i64>>,
    /// Muted keyword phrases per user.
    pub muted_keywords: HashMap<i64, Vec<String>>,
    /// Subscriptions: user → accounts subscribed to.
    pub subscriptions: HashMap<i64, Vec<i64>>,
    /// Posts by id. A hash map: each feed request looks up ~1000 posts in
    /// each of several hydrators, and nothing needs them in id order (the
    /// writers sort; `benches/results/feed_shell_cpu_2026-12-03.md`).
    pub posts: PostMap,
    /// Engagements per user, in time order.
    pub engagements: HashMap<i64, Vec<Engagement>>,
    /// Visibility labels by post id (looked up for every candidate).
    pub labels: IdMap<Label>,
    /// Posts each user has already seen (impressions).
    pub seen: HashMap<i64, Vec<i64>>,
    /// Follower counts, derived from `follows` (looked up for every
    /// candidate's author).
    followers: IdMap<i64>,
}

impl World {
    /// An empty world whose clock starts at `now_ms`.
    pub fn new(now_ms: i64) -> Self {
        Self {
            now_ms,
            ..Self::default()
        }
    }

    /// Adds a user.
    pub fn add_user(&mut self, id: i64, screen_name: impl Into<String>) {
        self.users.insert(
            id,
            User {
                id,
                screen_name: screen_name.into(),
            },
        );
    }

    /// `user` follows `target`.
    pub fn add_follow(&mut self, user: i64, target: i64) {
        self.follows.entry(user).or_default().push(target);
        *self.followers.entry(target).or_default() += 1;
    }

    /// Adds a post.
    pub fn add_post(&mut self, post: Post) {
        self.posts.insert(post.id, post);
    }

    /// Records an engagement (kept in time order).
    pub fn add_engagement(&mut self, user: i64, e: Engagement) {
        let list = self.engagements.entry(user).or_default();
        let at = list.partition_point(|x| x.at_ms <= e.at_ms);
        list.insert(at, e);
    }

    /// Number of accounts following `user`.
    pub fn followers_count(&self, user: i64) -> i64 {
        self.followers.get(&user).copied().unwrap_or(0)
    }

    /// What a list-valued relation holds for `user` (empty if none).
    pub fn list<T>(map: &HashMap<i64, Vec<T>>, user: i64) -> &[T] {
        map.get(&user).map_or(&[], Vec::as_slice)
    }

    /// The text a reader sees: a retweet shows "RT @source: text". An
    /// original's text is shared, not copied (every feed request looks up
    /// ~1000 of them).
    pub fn display_text(&self, post: &Post) -> std::sync::Arc<str> {
        match post.retweet_of.and_then(|s| self.posts.get(&s)) {
            Some(src) => {
                let name = self
                    .users
                    .get(&src.author)
                    .map_or("unknown", |u| u.screen_name.as_str());
                format!("RT @{name}: {}", src.text).into()
            }
            None => post.text.clone(),
        }
    }

    /// The post as Thunder stores it: reply and retweet fields resolved from
    /// the parent and source posts; `has_video` when the video is longer
    /// than `min_video_ms`.
    pub fn light_post(&self, post: &Post, min_video_ms: i32) -> LightPost {
        let parent = post.in_reply_to.and_then(|p| self.posts.get(&p));
        let source = post.retweet_of.and_then(|s| self.posts.get(&s));
        LightPost {
            post_id: post.id,
            author_id: post.author,
            created_at: post.created_ms.div_euclid(1000),
            in_reply_to_post_id: post.in_reply_to.and_then(opt_id),
            in_reply_to_user_id: parent.and_then(|p| opt_id(p.author)),
            source_post_id: post.retweet_of.and_then(opt_id),
            source_user_id: source.and_then(|s| opt_id(s.author)),
            conversation_id: post.conversation_id.and_then(opt_id),
            video_duration_ms: post
                .video_duration_ms
                .and_then(|d| u32::try_from(d).ok())
                .and_then(std::num::NonZeroU32::new),
            is_retweet: post.retweet_of.is_some(),
            is_reply: post.in_reply_to.is_some(),
            has_video: post.video_duration_ms.is_some_and(|d| d > min_video_ms),
            deleted: false,
        }
    }

    /// Every post as Thunder stores it, oldest first.
    pub fn light_posts(&self, min_video_ms: i32) -> Vec<LightPost> {
        let mut v: Vec<LightPost> = self
            .posts
            .values()
            .map(|p| self.light_post(p, min_video_ms))
            .collect();
        v.sort_by_key(|p| (p.created_at, p.post_id));
        v
    }

    /// Counts for logs.
    pub fn summary(&self) -> String {
        let n = |m: &HashMap<i64, Vec<i64>>| m.values().map(Vec::len).sum::<usize>();
        format!(
            "{} users, {} follows, {} posts, {} engagements, {} blocks, {} mutes, {} labels",
            self.users.len(),
            n(&self.follows),
            self.posts.len(),
            self.engagements.values().map(Vec::len).sum::<usize>(),
            n(&self.blocks),
            n(&self.mutes),
            self.labels.len()
        )
    }
}
