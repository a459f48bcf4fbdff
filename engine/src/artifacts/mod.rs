//! Reading X's released Phoenix artifacts (May 2026): the directory that
//! `run_pipeline.py` loads, its published id hash and the unified embedding
//! table it builds, and the two models as our configs and weights.
//!
//! * [`npz`]: `.npz` archives (`savez` / `savez_compressed`) as typed arrays.
//! * [`hash`]: the published hash and unified-table rows ([`PublishedHash`]).
//! * [`config`]: `retrieval/config.json`, `ranker/config.json`.
//! * [`layout`]: the directory ([`ArtifactDir`]), its archives and
//!   [`UnifiedTable`].
//! * [`corpus`]: the retrieval corpus `.npz` ([`ArtifactCorpus`]).
//! * [`sequence`]: the user's engagement sequence JSON ([`Sequence`]).
//! * [`pipeline`]: `run_pipeline.py` (retrieve, rank in chunks, weighted
//!   score, the printed table).
//! * [`model`]: the artifacts as our model configs and weights
//!   ([`model::load_pair`]).
//!
//! Limits: arrays are read whole into memory; `bfloat16` arrays (stored by
//! numpy as `|V2`) are refused. The fixture `tests/fixtures/phoenix-v2/
//! v2_artifacts` is a miniature of the released directory.

pub mod config;
pub mod corpus;
pub mod error;
pub mod hash;
pub mod layout;
pub mod model;
pub mod npz;
pub mod pipeline;
pub mod sequence;

pub use config::ArtifactConfig;
pub use corpus::ArtifactCorpus;
pub use error::{ArtifactError, HashParamsError};
pub use hash::{HashParams, PublishedHash, UNIFIED_PADDING_ROWS, VocabSizes};
pub use layout::{ArtifactDir, ModelArtifacts, ModelRole, UnifiedTable};
pub use npz::{Array, NpzFile};
pub use sequence::{HistoryItem, Sequence};
