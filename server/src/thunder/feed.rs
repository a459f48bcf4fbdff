//! [`PostFeed`]: another consumer of the post stream. Every way posts
//! enter the store (the world load, `IngestEvents`, `thunder replay`,
//! event files, Kafka) goes through [`PostStore::insert_posts`] and
//! [`PostStore::mark_as_deleted`] by way of `events::apply_events` or a
//! load; a feed attached to the store ([`PostStore::set_feed`]) receives
//! each batch after the store applied it, in the store's order (creates,
//! then deletes). The retrieval index is the one such consumer
//! (`crate::phoenix::LiveRetrieval`).
//!
//! [`PostStore::insert_posts`]: super::PostStore::insert_posts
//! [`PostStore::mark_as_deleted`]: super::PostStore::mark_as_deleted
//! [`PostStore::set_feed`]: super::PostStore::set_feed

use super::light_post::{LightPost, PostDelete};

/// Receives the post stream's batches. `publish` may block (back-pressure
/// on the ingest that called it) but must not fail: a consumer that cannot
/// keep a post counts and logs it.
pub trait PostFeed: Send + Sync + std::fmt::Debug {
    /// One batch: the creates as they arrived (the store's rules such as
    /// retention were applied to the store's copy, not to these), then the
    /// deletes.
    fn publish(&self, creates: &[LightPost], deletes: &[PostDelete]);
}
