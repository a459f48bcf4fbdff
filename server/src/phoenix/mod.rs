//! Phoenix in the server: model directories (and the demo pair),
//! [`PhoenixEngine`], which answers the `PhoenixRanker` /
//! `PhoenixRetrieval` messages over the engine's ranker, retriever and
//! retrieval corpus on the device chosen at start-up, and
//! [`LiveRetrieval`], the corpus that follows the post stream (the live
//! index, its writer thread and metrics).

pub mod engine;
pub mod index_args;
pub mod index_metrics;
pub mod index_sink;
mod index_writer;
pub mod live_retrieval;
pub mod models;
pub mod scoring_health;

pub use engine::{EngineFailure, PhoenixEngine};
pub use index_sink::IndexSink;
pub use index_writer::{ENCODE_BATCH, IndexedPost};
pub use live_retrieval::{LiveRetrieval, Preencoded};
pub use models::{PhoenixModels, demo_model_dir, ensure_demo_models, load_models};
pub use scoring_health::ScoringHealth;
