//! Where the models compute: one small [`Backend`] trait, a [`Device`]
//! chosen once at start-up, and the implementations ([`cpu`], and `cuda`
//! behind the `cuda` feature).
//!
//! The models ([`crate::model`]) hold an `Arc<dyn Backend>` and never
//! branch on a device or a cargo feature: the chunk loop, the padding-user
//! route and the pooling are theirs, the arithmetic is the backend's. A
//! [`Device`] owns the opened GPU (one context, stream, cuBLAS handle and
//! one NVRTC compilation of every kernel), so a ranker and a retriever on
//! the same device share it. The shape follows huggingface/text-embeddings-
//! inference's `backends/core`: one trait, one typed error, the
//! implementation picked once.
//!
//! The operations:
//! * [`Backend::encode_context`]: user + history through every layer once,
//!   keeping each layer's K/V (an opaque [`Context`]);
//! * [`Backend::score_candidates`]: one chunk of candidates against it,
//!   through the head (logits and probabilities);
//! * [`Backend::user_hidden`]: the retriever's user tower (hidden states);
//! * [`Backend::candidate_tower`]: the retriever's candidate tower;
//! * [`Backend::top_k`]: exact top-k of query · corpus.

pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;

use std::any::Any;
use std::sync::Arc;

use crate::ComputeDevice;
use crate::config::{ModelConfig, ModelKind};
use crate::error::{EngineError, Result};
use crate::inputs::{CandidateInputs, UserInputs};
use crate::nn::transformer::Transformer;
use crate::numerics::{Precision, RankerOutput};
use crate::weights::PhoenixWeights;

/// What a model needs from a device. Implementations are shared by the
/// threads of a batcher, hence `Send + Sync` and `&self`.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Where it computes.
    fn device(&self) -> ComputeDevice;

    /// Where requests given by ids gather their hash-embedding rows:
    /// [`TablePlacement::Device`] when the tables are resident on the
    /// device (inputs then need only hashes), else the host.
    fn table_placement(&self) -> TablePlacement {
        TablePlacement::Host
    }

    /// Most candidate slots one [`Self::score_candidates`] call takes for
    /// `batch` rows (bounds a huge request's activations).
    fn max_chunk(&self, batch: usize) -> usize;

    /// User + history of every row through every layer, causal and
    /// padding-masked; the K/V of each layer are kept for the candidates.
    /// Every row's user token must be valid (the model routes the others to
    /// the dense path). `rows` says whether `user` carries its embeddings
    /// (`Host`) or only hashes for resident tables (`Device`).
    fn encode_context(&self, user: &UserInputs, rows: TablePlacement) -> Result<Context>;

    /// Candidates (slots `first_slot..` of the request, which sets their
    /// RoPE positions) against an encoded context, through the head.
    fn score_candidates(
        &self,
        ctx: &mut Context,
        cands: &CandidateInputs,
        first_slot: usize,
        rows: TablePlacement,
    ) -> Result<RankerOutput>;

    /// The user tower: hidden states after every layer, no final norm,
    /// `[B, 1 + S, D]` row-major. Every user token valid, as for
    /// [`Self::encode_context`].
    fn user_hidden(&self, user: &UserInputs, rows: TablePlacement) -> Result<Vec<f32>>;

    /// The candidate tower, `[B, C, D]` row-major, unit norm.
    fn candidate_tower(&self, cands: &CandidateInputs) -> Result<Vec<f32>>;

    /// Exact top-`k` of `queries · corpusᵀ` per query row (`queries:
    /// [B, D]` row-major, `corpus: [N, D]`): (row, score), best first, ties
    /// to the lower row.
    fn top_k(
        &self,
        queries: &[f32],
        corpus: &candle_core::Tensor,
        k: usize,
    ) -> Result<Vec<Vec<(u32, f32)>>>;

    /// Where the last ranker call spent its time, when the backend keeps
    /// such a split (the GPU).
    fn last_phases(&self) -> Option<Phases> {
        None
    }

    /// Whether [`Self::candidate_tokens`] and [`Self::score_tokens`] work
    /// (the CPU: tokens are built on the host), so a ranker may keep
    /// candidate tokens between requests.
    fn host_tokens(&self) -> bool {
        false
    }

    /// Candidate tokens `[B·C, D]`, the first layer's inputs (rounded as
    /// the forward dtype rounds them), from `cands`' embeddings.
    fn candidate_tokens(&self, _cands: &CandidateInputs) -> Result<Vec<f32>> {
        Err(BackendError::Unsupported("candidate tokens on the host".into()).into())
    }

    /// [`Self::score_candidates`] for tokens already built
    /// ([`Self::candidate_tokens`], `[B·C, D]`): `cands` gives the shape
    /// and which slots are real; its embeddings are not read.
    fn score_tokens(
        &self,
        _ctx: &mut Context,
        _tokens: Vec<f32>,
        _cands: &CandidateInputs,
        _first_slot: usize,
    ) -> Result<RankerOutput> {
        Err(BackendError::Unsupported("scoring host tokens".into()).into())
    }

    /// A device buffer for the live index's sealed segments, searched by
    /// the device's top-k (`crate::index::DeviceSegments`); `None` when
    /// the backend has no device memory of its own (the CPU).
    fn row_device(&self) -> Option<Box<dyn crate::index::RowDevice>> {
        None
    }
}

/// An encoded context: its shape, and the backend's own state (the K/V of
/// every layer), which only the backend that made it can read.
pub struct Context {
    /// Rows B.
    pub batch: usize,
    /// Context tokens per row, S1 = 1 + S.
    pub len: usize,
    state: Box<dyn Any + Send>,
}

impl Context {
    /// Wraps a backend's state.
    pub(crate) fn new(batch: usize, len: usize, state: impl Any + Send) -> Self {
        Self {
            batch,
            len,
            state: Box::new(state),
        }
    }

    /// The backend's state, if this context is of type `T`.
    pub(crate) fn state_mut<T: Any>(&mut self) -> Result<&mut T> {
        self.state
            .downcast_mut()
            .ok_or(EngineError::Backend(BackendError::ForeignContext))
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("batch", &self.batch)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

pub use foryou_kernels::AttentionKernel;

/// Where hash-embedding rows are gathered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TablePlacement {
    /// On the device, from resident tables (requests upload hashes).
    Device,
    /// On the host (the inputs carry their embeddings).
    Host,
}

/// Wall-clock split of one ranker call on a device, ms.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Phases {
    /// Input assembly on the host: hashing to indices, or bf16 rows written
    /// into pinned memory with their asynchronous copies started.
    pub host_ms: f32,
    /// Synchronous (pageable) copies: indices, positions, masks, actions.
    pub upload_ms: f32,
    /// The whole call.
    pub total_ms: f32,
    /// Device timeline (events) from the call's start to the end of the
    /// context pass: input copies plus the context's layers.
    pub device_context_ms: f32,
    /// Device timeline from there to the last logits on the host.
    pub device_candidates_ms: f32,
}

/// How a backend may use its device; set from the command line (no
/// library code reads the environment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceOptions {
    /// bf16 products of the CPU stack on Intel AMX tiles when the CPU has
    /// them.
    pub cpu_amx: bool,
    /// Whether the hash tables may be resident on a GPU.
    pub gpu_tables: GpuTables,
    /// The attention implementation on a GPU.
    pub gpu_attention: AttentionKernel,
}

impl Default for DeviceOptions {
    fn default() -> Self {
        Self {
            cpu_amx: true,
            gpu_tables: GpuTables::Auto,
            gpu_attention: AttentionKernel::Flash,
        }
    }
}

/// Placement policy of the hash tables on a GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GpuTables {
    /// On the device when they fit with a reserve left (a quarter of its
    /// memory, at least 4 GiB); otherwise on the host.
    #[default]
    Auto,
    /// Always on the host (rows gathered and uploaded per request).
    Host,
}

impl std::str::FromStr for GpuTables {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "host" => Ok(Self::Host),
            other => Err(format!(
                "unknown table placement '{other}', expected auto or host"
            )),
        }
    }
}

/// Why a device cannot be opened or cannot run a model.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The binary lacks the device's support.
    #[error("{0}: this binary was built without the `cuda` feature")]
    NotBuilt(ComputeDevice),
    /// The GPU or one of its calls failed (driver, compiler, cuBLAS).
    #[cfg(feature = "cuda")]
    #[error(transparent)]
    Gpu(#[from] foryou_kernels::cuda::GpuError),
    /// The model's shape has no implementation on this device.
    #[error("{0}")]
    Unsupported(String),
    /// A context went to a backend other than the one that encoded it.
    #[error("the context was encoded by another backend")]
    ForeignContext,
    /// An earlier call on the device panicked while holding it.
    #[error("an earlier call on this device panicked")]
    Poisoned,
    /// A broken invariant of the backend (a bug, not bad input).
    #[error("internal: {0}")]
    Internal(String),
}

/// What a backend is built from: the model's config, its weights (shared
/// with the model, not copied), the rounding policy, and the dense stack
/// (the CPU backend's user tower is the dense pass).
#[derive(Debug, Clone)]
pub struct ModelParts {
    /// The validated config.
    pub cfg: ModelConfig,
    /// The parameters and hash tables.
    pub weights: Arc<PhoenixWeights>,
    /// Where values are rounded.
    pub prec: Precision,
    /// The decoder stack on candle, prepared for `prec`.
    pub dense: Arc<Transformer>,
}

impl ModelParts {
    /// Checks that `cfg` and `weights` describe a model of `kind` (config
    /// kind and head), shares `weights` and prepares the dense stack for
    /// `prec`.
    pub fn new(
        kind: ModelKind,
        cfg: ModelConfig,
        weights: PhoenixWeights,
        prec: Precision,
    ) -> Result<Self> {
        if cfg.kind != kind {
            let want = match kind {
                ModelKind::Ranker => "a ranker",
                ModelKind::Retrieval => "a retrieval model",
            };
            return Err(EngineError::Input(format!(
                "config describes a {:?} model, expected {want}",
                cfg.kind
            )));
        }
        match kind {
            ModelKind::Ranker => weights.ranker_head().map(drop)?,
            ModelKind::Retrieval => weights.candidate_tower().map(drop)?,
        }
        Ok(Self {
            dense: Arc::new(Transformer::new(&cfg, &weights.layers, prec)?),
            weights: Arc::new(weights),
            cfg,
            prec,
        })
    }
}

/// The device the engine runs on, chosen once (`--device`): the CPU, or an
/// opened GPU shared by every model placed on it.
#[derive(Debug, Clone)]
pub struct Device {
    options: DeviceOptions,
    kind: DeviceKind,
}

#[derive(Debug, Clone)]
enum DeviceKind {
    Cpu,
    #[cfg(feature = "cuda")]
    Cuda(Arc<foryou_kernels::cuda::Gpu>),
}

impl Device {
    /// The CPU with default options.
    pub fn cpu() -> Self {
        Self::cpu_with(DeviceOptions::default())
    }

    /// The CPU with `options` (it always opens).
    pub fn cpu_with(options: DeviceOptions) -> Self {
        Self {
            options,
            kind: DeviceKind::Cpu,
        }
    }

    /// Opens `spec`: loads the CUDA libraries, creates the context and
    /// compiles every kernel, once. The error says why the device cannot
    /// be used (no `cuda` feature, no driver, no such device).
    pub fn open(
        spec: ComputeDevice,
        options: DeviceOptions,
    ) -> std::result::Result<Self, BackendError> {
        match spec {
            ComputeDevice::Cpu => Ok(Self::cpu_with(options)),
            #[cfg(feature = "cuda")]
            ComputeDevice::Cuda(n) => Ok(Self {
                options,
                kind: DeviceKind::Cuda(cuda::open(n)?),
            }),
            #[cfg(not(feature = "cuda"))]
            ComputeDevice::Cuda(_) => Err(BackendError::NotBuilt(spec)),
        }
    }

    /// Which device this is.
    pub fn spec(&self) -> ComputeDevice {
        match &self.kind {
            DeviceKind::Cpu => ComputeDevice::Cpu,
            #[cfg(feature = "cuda")]
            DeviceKind::Cuda(gpu) => ComputeDevice::Cuda(gpu.context().ordinal()),
        }
    }

    /// The options it was opened with.
    pub fn options(&self) -> DeviceOptions {
        self.options
    }

    /// A backend for one model on this device (its weights uploaded).
    pub fn load(&self, parts: &ModelParts) -> Result<Arc<dyn Backend>> {
        Ok(match &self.kind {
            DeviceKind::Cpu => Arc::new(cpu::CpuBackend::new(parts, self.options)?),
            #[cfg(feature = "cuda")]
            DeviceKind::Cuda(gpu) => {
                Arc::new(cuda::CudaBackend::new(gpu.clone(), parts, self.options)?)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_context_reads_back_only_as_the_type_it_was_made_with() {
        let mut ctx = Context::new(2, 5, 7u32);
        assert_eq!((ctx.batch, ctx.len), (2, 5));
        assert_eq!(ctx.state_mut::<u32>().map(|v| *v).ok(), Some(7));
        let err = ctx
            .state_mut::<crate::cpu::CpuContext>()
            .expect_err("foreign");
        assert!(matches!(
            err,
            EngineError::Backend(BackendError::ForeignContext)
        ));
    }

    #[test]
    fn the_cpu_opens_with_its_options_and_table_policies_parse() {
        let opts = DeviceOptions {
            cpu_amx: false,
            gpu_tables: GpuTables::Host,
            gpu_attention: AttentionKernel::Gemm,
        };
        let cpu = Device::open(ComputeDevice::Cpu, opts).expect("the cpu");
        assert_eq!((cpu.spec(), cpu.options()), (ComputeDevice::Cpu, opts));
        assert_eq!("host".parse(), Ok(GpuTables::Host));
        assert_eq!("auto".parse(), Ok(GpuTables::Auto));
        assert!("gpu".parse::<GpuTables>().is_err());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn without_the_cuda_feature_a_gpu_is_refused_with_the_reason() {
        let e =
            Device::open(ComputeDevice::Cuda(1), DeviceOptions::default()).expect_err("not built");
        assert_eq!(
            e.to_string(),
            "cuda:1: this binary was built without the `cuda` feature"
        );
    }
}
