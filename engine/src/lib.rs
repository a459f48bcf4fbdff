//! foryou engine: the Phoenix ranker and retriever of X's "For You" feed.
//!
//! Layers, each depending only on those above it:
//!
//! * [`config`], [`weights`], [`hash_embed`], [`inputs`], [`tensor_io`]:
//!   `config.json` (reference key names), parameters under the reference
//!   (haiku) names, hash-embedding tables and our documented hash, the
//!   model batch.
//! * [`numerics`]: precision, soft-cap, fused GELU, RoPE tables, vectorisable
//!   scalar math, [`RankerOutput`] (a leaf shared by every path).
//! * [`nn`]: the model's blocks on candle (tokens, decoder layers, masked
//!   attention, dense stack, heads and towers).
//! * [`cpu`]: the ranker's layer stack on plain buffers (gemm, AMX).
//! * [`backend`]: the [`Backend`](backend::Backend) trait, the
//!   [`Device`](backend::Device) chosen once, the CPU backend and (feature
//!   `cuda`) the CUDA one on foryou-kernels.
//! * [`model`]: [`PhoenixRanker`] (fast path, dense reference, requests by
//!   ids) and [`PhoenixRetriever`], each holding one backend.
//! * [`corpus`]: the retrieval corpus (ids and representations) and its
//!   search with exclusions.
//! * [`batcher`]: dynamic request batching in front of a model.
//! * [`topk`]: exact top-k with ties to the lower index.
//! * [`init`]: seeded random weights (`foryou phoenix init`).
//! * [`fixture`]: reading and writing the reference fixture format.
//! * [`device`]: the `--device` value (`cpu`, `cuda:N`).
//!
//! The engine knows nothing of gRPC; the server crate wraps it.

pub mod artifacts;
pub mod backend;
pub mod batcher;
pub mod config;
pub mod corpus;
pub mod cpu;
pub mod device;
pub mod error;
pub mod fixture;
pub mod hash_embed;
pub mod index;
pub mod init;
pub mod inputs;
pub mod model;
pub mod nn;
pub mod numerics;
pub mod tensor_io;
pub mod topk;
pub mod weights;

pub use backend::{BackendError, Device, DeviceOptions};
pub use config::{CandidatePositions, FpropDtype, ModelConfig, ModelKind, PhoenixConfig};
pub use corpus::{Corpus, CorpusItem, Hit, PostSearch, Retrieved, encode_posts};
pub use device::ComputeDevice;
pub use error::{EngineError, Result};
pub use model::ranker::{PhoenixRanker, SERVING_CHUNK};
pub use model::retriever::PhoenixRetriever;
pub use numerics::RankerOutput;
