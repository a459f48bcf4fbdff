//! Phoenix in the server: model directories (and the demo pair), and
//! [`PhoenixEngine`], which answers the `PhoenixRanker` /
//! `PhoenixRetrieval` messages over the engine's ranker, retriever and
//! retrieval corpus (`foryou_engine::Corpus`) on the device chosen at
//! start-up.

pub mod engine;
pub mod models;

pub use engine::{EngineFailure, PhoenixEngine};
pub use models::{PhoenixModels, demo_model_dir, ensure_demo_models, load_models};
