//! Thunder: the in-memory store of recent in-network posts (spec §3).
//!
//! - [`post_store`]: the store, inserts and deletes; [`retrieval`]: the
//!   newest-first passes and `score_recent`; [`timelines`]: the sharded
//!   per-author timelines; [`maintenance`]: trimming,
//!   `finalize_init`, periodic tasks.
//! - [`events`], [`event_file`], [`synth`]: post events, their file form and
//!   a seeded generator; `kafka` (feature `kafka`): the Kafka consumer;
//!   [`feed`]: the stream's other consumer (the retrieval index).
//! - The gRPC service is `crate::grpc::in_network_posts`.

pub mod consumer_plan;
pub mod event_file;
pub mod event_sink;
pub mod events;
pub mod feed;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod light_post;
pub mod maintenance;
pub mod metrics;
pub mod params;
pub mod post_store;
pub mod retrieval;
pub mod synth;
pub mod timelines;

pub use event_sink::EventSink;
pub use feed::PostFeed;
pub use light_post::{LightPost, PostDelete, TinyPost};
pub use params::{DELETE_EVENT_KEY, MAX_INPUT_LIST_SIZE, ThunderParams};
pub use post_store::{InsertSummary, PostStore, StoreSnapshot, StoreStats};
pub use retrieval::{IdSet, RetrievalQuery, Retrieved, score_recent};
