//! [`PostCandidate`] (spec §2.1) and the Phoenix action heads.

use std::sync::Arc;

use crate::pipeline::util::tokenizer::TweetTokens;

/// The 18 probability heads of the Phoenix ranker, in the Python ranker's
/// head order (spec §4.2): the discriminant is the logit index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Like.
    Favorite = 0,
    /// Reply.
    Reply = 1,
    /// Repost.
    Retweet = 2,
    /// Photo expand.
    PhotoExpand = 3,
    /// Click.
    Click = 4,
    /// Profile click.
    ProfileClick = 5,
    /// Video quality view.
    Vqv = 6,
    /// Share.
    Share = 7,
    /// Share via DM.
    ShareViaDm = 8,
    /// Share via copied link.
    ShareViaCopyLink = 9,
    /// Dwell.
    Dwell = 10,
    /// Quote.
    Quote = 11,
    /// Click on the quoted post.
    QuotedClick = 12,
    /// Follow the author.
    FollowAuthor = 13,
    /// "Not interested".
    NotInterested = 14,
    /// Block the author.
    BlockAuthor = 15,
    /// Mute the author.
    MuteAuthor = 16,
    /// Report.
    Report = 17,
}

impl Action {
    /// Every head in index order.
    pub const ALL: [Action; 18] = [
        Action::Favorite,
        Action::Reply,
        Action::Retweet,
        Action::PhotoExpand,
        Action::Click,
        Action::ProfileClick,
        Action::Vqv,
        Action::Share,
        Action::ShareViaDm,
        Action::ShareViaCopyLink,
        Action::Dwell,
        Action::Quote,
        Action::QuotedClick,
        Action::FollowAuthor,
        Action::NotInterested,
        Action::BlockAuthor,
        Action::MuteAuthor,
        Action::Report,
    ];

    /// The field name of spec §2.7 (also the proto field name).
    pub fn name(self) -> &'static str {
        match self {
            Action::Favorite => "favorite",
            Action::Reply => "reply",
            Action::Retweet => "retweet",
            Action::PhotoExpand => "photo_expand",
            Action::Click => "click",
            Action::ProfileClick => "profile_click",
            Action::Vqv => "vqv",
            Action::Share => "share",
            Action::ShareViaDm => "share_via_dm",
            Action::ShareViaCopyLink => "share_via_copy_link",
            Action::Dwell => "dwell",
            Action::Quote => "quote",
            Action::QuotedClick => "quoted_click",
            Action::FollowAuthor => "follow_author",
            Action::NotInterested => "not_interested",
            Action::BlockAuthor => "block_author",
            Action::MuteAuthor => "mute_author",
            Action::Report => "report",
        }
    }
}

/// PhoenixScorer's output: 18 probabilities and the continuous dwell time,
/// each optional (a candidate the ranker did not answer has none).
///
/// Stored as f32 with a bit per value set: the ranker answers in f32, so
/// nothing is lost, and the struct is 80 bytes instead of 19 `Option<f64>`
/// (304). The framework moves whole candidates between stages and keeps
/// a copy of the hydrated list, and this was half of a candidate.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PhoenixScores {
    /// Probability per [`Action`], indexed by its discriminant (0 unless
    /// its bit in `present` is set).
    probs: [f32; 18],
    /// Continuous dwell time (0 unless bit [`DWELL_BIT`] is set).
    dwell: f32,
    /// Bit `i`: `probs[i]` was set; bit [`DWELL_BIT`]: `dwell` was.
    present: u32,
}

/// The `present` bit of the dwell time.
const DWELL_BIT: u32 = 18;

impl PhoenixScores {
    /// The probability of `a`, if scored.
    pub fn get(&self, a: Action) -> Option<f64> {
        let i = a as usize;
        (self.present & (1 << i) != 0).then(|| f64::from(self.probs[i]))
    }

    /// Sets the probability of `a` (kept as f32, the ranker's precision).
    pub fn set(&mut self, a: Action, p: f64) {
        let i = a as usize;
        self.probs[i] = p as f32;
        self.present |= 1 << i;
    }

    /// The continuous dwell time, if scored.
    pub fn dwell_time(&self) -> Option<f64> {
        (self.present & (1 << DWELL_BIT) != 0).then(|| f64::from(self.dwell))
    }

    /// Sets or clears the dwell time (kept as f32).
    pub fn set_dwell_time(&mut self, v: Option<f64>) {
        match v {
            Some(v) => {
                self.dwell = v as f32;
                self.present |= 1 << DWELL_BIT;
            }
            None => {
                self.dwell = 0.0;
                self.present &= !(1 << DWELL_BIT);
            }
        }
    }
}

/// How a post got into the feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServedType {
    /// From Thunder (followed accounts).
    ForYouInNetwork = 1,
    /// From Phoenix retrieval (out of network).
    ForYouPhoenixRetrieval = 2,
}

/// A feed candidate.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PostCandidate {
    /// The post (for a retweet, the retweet's own id).
    pub tweet_id: i64,
    /// The author (for a retweet, the retweeter).
    pub author_id: i64,
    /// The post's text (CoreData hydrator), shared with the world's post: a
    /// candidate is cloned in the pipeline (the retrieved list), and a
    /// clone must not copy the text.
    pub tweet_text: Arc<str>,
    /// The tokens of `tweet_text` (spec §4.2 tokenizer), made once per post
    /// and shared by every request (CoreData hydrator). MutedKeywordFilter
    /// uses them only while their text is `tweet_text`.
    pub tweet_tokens: Option<Arc<TweetTokens>>,
    /// Reply chain ids (parent, then root), shared like `tweet_text`.
    pub ancestors: Arc<[i64]>,
    /// The parent post, for replies.
    pub in_reply_to_tweet_id: Option<i64>,
    /// For retweets: the source post.
    pub retweeted_tweet_id: Option<i64>,
    /// For retweets: the source post's author.
    pub retweeted_user_id: Option<i64>,
    /// Ranker output.
    pub phoenix_scores: PhoenixScores,
    /// The ranker call that scored this candidate.
    pub prediction_request_id: Option<u64>,
    /// When it was scored, unix ms.
    pub last_scored_at_ms: Option<i64>,
    /// WeightedScorer output.
    pub weighted_score: Option<f64>,
    /// Final score (diversity and OON applied).
    pub score: Option<f64>,
    /// Which source found it.
    pub served_type: Option<ServedType>,
    /// Author is the viewer or followed by the viewer.
    pub in_network: Option<bool>,
    /// Length of the first video, ms.
    pub video_duration_ms: Option<i32>,
    /// Author's follower count.
    pub author_followers_count: Option<i64>,
    /// Author's screen name.
    pub author_screen_name: Option<Arc<str>>,
    /// Retweeted author's screen name.
    pub retweeted_screen_name: Option<Arc<str>>,
    /// For subscriber-only posts: the author one must subscribe to.
    pub subscription_author_id: Option<i64>,
    /// The visibility verdict (VFCandidateHydrator).
    pub visibility_reason: Option<crate::clients::VisibilityReason>,
}

impl PostCandidate {
    /// The post a ranker or dedup should look at: the source of a retweet,
    /// else the post itself.
    pub fn original_tweet_id(&self) -> i64 {
        self.retweeted_tweet_id.unwrap_or(self.tweet_id)
    }

    /// Spec §4.2 related ids: the post, its retweet source and its parent.
    pub fn related_ids(&self) -> impl Iterator<Item = i64> + '_ {
        std::iter::once(self.tweet_id)
            .chain(self.retweeted_tweet_id)
            .chain(self.in_reply_to_tweet_id)
    }
}
