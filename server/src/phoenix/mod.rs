//! Phoenix in the server: model directories (and the demo pair), the
//! retrieval corpus and [`PhoenixEngine`], which answers the
//! `PhoenixRanker` / `PhoenixRetrieval` messages on the CPU engine.

pub mod corpus;
pub mod engine;
pub mod models;

pub use corpus::{Corpus, CorpusPost};
pub use engine::{EngineFailure, PhoenixEngine};
pub use models::{PhoenixModels, demo_model_dir, ensure_demo_models, load_models};
