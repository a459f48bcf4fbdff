//! foryou engine: the Phoenix ranker and retriever of X's "For You" feed.
//!
//! * [`batcher`]: dynamic request batching in front of a model.
//! * [`config`]: `config.json` (reference key names) and its validation.
//! * [`weights`]: parameters under the reference (haiku) names, from safetensors.
//! * [`hash_embed`]: hash-embedding tables and our documented hash.
//! * [`inputs`]: the model batch (hashes, actions, surfaces, embeddings).
//! * [`model`]: the CPU model on candle: dense reference path, fast
//!   candidate-isolation path, two-tower retriever.
//! * [`cpu`]: the fast path's layer stack on plain buffers (gemm, AMX).
//! * [`device`]: `cpu` or `cuda:N`; `gpu` (feature `cuda`): the GPU
//!   ranker on foryou-kernels.
//! * [`topk`]: exact top-k with ties to the lower index.
//! * [`init`]: seeded random weights (`foryou phoenix init`).
//! * [`fixture`]: reading and writing the reference fixture format.
//!
//! The engine knows nothing of gRPC; the server crate wraps it.

pub mod batcher;
pub mod config;
pub mod cpu;
pub mod device;
pub mod error;
pub mod fixture;
#[cfg(feature = "cuda")]
pub mod gpu;
pub mod hash_embed;
pub mod init;
pub mod inputs;
pub mod model;
pub mod tensor_io;
pub mod topk;
pub mod weights;

pub use config::{CandidatePositions, FpropDtype, ModelConfig, ModelKind, PhoenixConfig};
pub use device::ComputeDevice;
pub use error::{EngineError, Result};
pub use model::ranker::{PhoenixRanker, RankerOutput, SERVING_CHUNK};
pub use model::retriever::{PhoenixRetriever, Retrieved};
