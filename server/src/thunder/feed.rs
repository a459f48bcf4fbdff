//! [`PostFeed`]: another consumer of the post stream. Every way posts
//! enter the store (the world load, `IngestEvents`, `thunder replay`,
//! event files, Kafka) goes through `events::apply_events` or a load; a
//! feed attached to the store ([`PostStore::set_feed`]) receives each batch
//! as the store gets it, creates then deletes (the order the store applies
//! them in). It keeps its own state with its own rules, so it needs no
//! copy of the store's. The retrieval index is the one such consumer
//! (`crate::phoenix::LiveRetrieval`).
//!
//! [`PostStore::set_feed`]: super::PostStore::set_feed

use super::light_post::{LightPost, PostDelete};

/// Receives the post stream's batches. `publish` may block (back-pressure
/// on the ingest that called it) but must not fail: a consumer that cannot
/// keep a post counts and logs it.
pub trait PostFeed: Send + Sync + std::fmt::Debug {
    /// One batch: the creates as they arrived (the store's rules such as
    /// retention are not applied to them), then the deletes.
    fn publish(&self, creates: &[LightPost], deletes: &[PostDelete]);
}
