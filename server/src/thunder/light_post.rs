//! The post record Thunder keeps ([`LightPost`]) and the timeline entry
//! ([`TinyPost`]). Spec §3.1.
//!
//! Optional ids are `Option<NonZeroI64>`: id 0 never names a post or user (as
//! in the original's compact form, where 0 stands for "absent"), and the niche
//! keeps a `LightPost` at 72 bytes instead of 112, which matters for a store
//! of millions of posts and for the per-request candidate copies.

use std::num::{NonZeroI64, NonZeroU32};

/// A post as Thunder stores and returns it: the create-event fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LightPost {
    /// The post's id (snowflake).
    pub post_id: i64,
    /// The author's user id.
    pub author_id: i64,
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// The post replied to, for replies.
    pub in_reply_to_post_id: Option<NonZeroI64>,
    /// The user replied to, for replies.
    pub in_reply_to_user_id: Option<NonZeroI64>,
    /// For a retweet: the retweeted post.
    pub source_post_id: Option<NonZeroI64>,
    /// For a retweet: the retweeted post's author.
    pub source_user_id: Option<NonZeroI64>,
    /// The root of the conversation.
    pub conversation_id: Option<NonZeroI64>,
    /// Video length in milliseconds, when known.
    pub video_duration_ms: Option<NonZeroU32>,
    /// True for a retweet.
    pub is_retweet: bool,
    /// True for a reply.
    pub is_reply: bool,
    /// True when the post carries a (long enough) video.
    pub has_video: bool,
    /// Set on timeline copies of a post that has since been deleted, so a
    /// reader skips it without a lookup in the deleted set. Always false in
    /// the posts map and on the wire.
    pub deleted: bool,
}

/// `Some(id)` for a non-zero id, `None` for 0 (the "absent" id).
pub fn opt_id(id: i64) -> Option<NonZeroI64> {
    NonZeroI64::new(id)
}

impl LightPost {
    /// An original post (neither reply nor retweet).
    pub fn original(post_id: i64, author_id: i64, created_at: i64) -> Self {
        Self {
            post_id,
            author_id,
            created_at,
            ..Self::default()
        }
    }

    /// A reply by `author_id` to `parent_post_id` (written by `parent_user_id`)
    /// in the conversation rooted at `conversation_id`.
    pub fn reply(
        post_id: i64,
        author_id: i64,
        created_at: i64,
        parent_post_id: i64,
        parent_user_id: i64,
        conversation_id: i64,
    ) -> Self {
        Self {
            in_reply_to_post_id: opt_id(parent_post_id),
            in_reply_to_user_id: opt_id(parent_user_id),
            conversation_id: opt_id(conversation_id),
            is_reply: true,
            ..Self::original(post_id, author_id, created_at)
        }
    }

    /// A retweet by `author_id` of `source_post_id` (by `source_user_id`).
    pub fn retweet(
        post_id: i64,
        author_id: i64,
        created_at: i64,
        source_post_id: i64,
        source_user_id: i64,
    ) -> Self {
        Self {
            source_post_id: opt_id(source_post_id),
            source_user_id: opt_id(source_user_id),
            is_retweet: true,
            ..Self::original(post_id, author_id, created_at)
        }
    }

    /// The same post, carrying a video.
    pub fn with_video(self) -> Self {
        Self {
            has_video: true,
            ..self
        }
    }

    /// True for a post that is neither a reply nor a retweet.
    pub fn is_original(&self) -> bool {
        !self.is_reply && !self.is_retweet
    }

    /// The timeline entry for this post.
    pub fn tiny(&self) -> TinyPost {
        TinyPost {
            post_id: self.post_id,
            created_at: self.created_at,
        }
    }
}

/// A timeline entry: the id and the creation time (deques are ordered by it).
/// Under [`DELETE_EVENT_KEY`](super::params::DELETE_EVENT_KEY), `created_at`
/// holds the deletion time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TinyPost {
    /// The post's id.
    pub post_id: i64,
    /// Creation time (deletion time for delete markers), unix seconds.
    pub created_at: i64,
}

/// A deletion: the post and when it was deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostDelete {
    /// The deleted post.
    pub post_id: i64,
    /// Deletion time, unix seconds.
    pub deleted_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn light_post_stays_compact() {
        assert_eq!(std::mem::size_of::<LightPost>(), 72);
        assert_eq!(std::mem::size_of::<TinyPost>(), 16);
    }

    #[test]
    fn constructors_set_the_kind_flags() {
        assert!(LightPost::original(1, 2, 3).is_original());
        let r = LightPost::reply(4, 2, 5, 1, 9, 1);
        assert!(r.is_reply && !r.is_original());
        assert_eq!(r.in_reply_to_post_id, opt_id(1));
        let rt = LightPost::retweet(6, 2, 7, 1, 9).with_video();
        assert!(rt.is_retweet && rt.has_video && !rt.is_original());
        assert_eq!(opt_id(0), None);
    }
}
