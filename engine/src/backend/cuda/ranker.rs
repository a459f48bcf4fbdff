//! The ranker's fast path on the GPU, the same computation as the CPU
//! backend in bf16 (inputs and token projections in `tokens.rs`, the layer
//! stack in `stack.rs`), as two calls the model's chunk loop drives:
//! [`GpuRanker::encode`] (steps 1-2) once, [`GpuRanker::score_chunk`]
//! (step 3) per chunk of candidates.
//!
//! 1. Inputs: hashes gathered into token rows on the device from resident
//!    tables, or bf16 rows built on the host into pinned memory and copied
//!    asynchronously; signed actions from the host.
//! 2. Device: token projections (cuBLAS), then the context (user + history)
//!    through every layer, causal and padding-masked, keeping each layer's
//!    K/V. The last layer's context needs only its K/V, so its attention and
//!    FFN are skipped.
//! 3. Candidates through every layer, attending to the cached context K/V
//!    plus themselves (the candidate-isolation kernel), then the final norm
//!    and the unembedding; logits come back and the sigmoid runs on the host.
//!
//! May 2026 rankers add a dwell block to history rows (the MLP's outer
//! product and GELU on the host, its second layer a GEMM into the row), a
//! post-age block to candidate rows (gathered from the device table), the
//! IP embeddings' sum as an extra user-row block (an identity block below
//! `proj_mat_1`), per-row RoPE positions, and the continuous head (a GEMM,
//! sigmoid on the host). Not yet run on a GPU.
//!
//! Every product is a bf16 GEMM with f32 accumulation; values are rounded to
//! bf16 where the reference rounds them in bf16 mode, whatever the config's
//! `fprop_dtype` (the GPU path computes in bf16).

use std::sync::{Arc, Mutex};

use foryou_kernels::cuda::attention_gemm::GemmAttentionScratch;
use foryou_kernels::cuda::cudarc::driver::sys::CUevent_flags;
use foryou_kernels::cuda::cudarc::driver::{CudaEvent, CudaSlice};
use foryou_kernels::cuda::staging::Pinned;
use foryou_kernels::cuda::{Gpu, GpuError, bf16_bits};
use foryou_kernels::reference::attention::AttentionShape;
use half::bf16;

use super::tables::{DeviceTable, GpuTables};
use super::weights::{GpuLayer, host, matrix, vector};
use crate::backend::{AttentionKernel, BackendError, DeviceOptions, Phases, TablePlacement};
use crate::config::ModelConfig;
use crate::error::{EngineError, Result};
use crate::inputs::{CandidateInputs, UserInputs};
use crate::numerics::RankerOutput;
use crate::weights::PhoenixWeights;

/// Candidate rows (batch x slots) per device pass: bounds the activations
/// (`rows x 2F` f32 for the FFN) of a huge request.
const MAX_CANDIDATE_ROWS: usize = 32_768;

/// The ranker's weights on one device.
pub struct GpuRanker {
    pub(super) gpu: Arc<Gpu>,
    pub(super) cfg: ModelConfig,
    pub(super) layers: Vec<GpuLayer>,
    pub(super) proj_user: CudaSlice<u16>,
    pub(super) proj_history: CudaSlice<u16>,
    pub(super) action_projection: CudaSlice<u16>,
    /// The ranker's head; `None` for the retriever's user tower.
    pub(super) head: Option<GpuHead>,
    pub(super) inv_freq: CudaSlice<f32>,
    /// Product-surface table `[V, D]` on the host, rounded like the reference.
    pub(super) surface_table: Vec<f32>,
    /// The same table on the device, bf16 (gathered with the hash tables).
    pub(super) surface_device: DeviceTable,
    /// Hash tables resident on the device, when they fit (`tables.rs`).
    pub(super) tables: Option<GpuTables>,
    /// May 2026 ranker blocks (post age, dwell, continuous head).
    pub(super) may: Option<GpuMay>,
    /// With IP hashes: `[proj_mat_1 ; I_D]` `[(Hu + 1) D, D]`, so the IP
    /// embeddings' sum, appended to the user row, is added by the product.
    pub(super) proj_user_ip: Option<CudaSlice<u16>>,
    /// One forward pass at a time on the stream, with its pinned buffers.
    lock: Mutex<Staging>,
    /// Where the last ranker call spent its time.
    last: Mutex<Phases>,
    /// Which attention implementation the layers run.
    pub(super) attention: AttentionKernel,
}

/// A ranker call in progress: the context's K/V, the call's timing events
/// (start, context done, last chunk done) and its phase split so far.
pub struct GpuContext {
    kv: ContextKv,
    marks: [CudaEvent; 3],
    started: std::time::Instant,
    phases: Phases,
}

pub(super) fn ms_since(t: std::time::Instant) -> f32 {
    t.elapsed().as_secs_f32() * 1e3
}

impl std::fmt::Debug for GpuRanker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "GpuRanker({}, {} layers)",
            self.gpu.name(),
            self.layers.len()
        )
    }
}

/// A model's pinned input buffers and attention workspace (used under its
/// call lock).
#[derive(Debug, Default)]
pub(super) struct Staging {
    /// History rows of the context.
    pub(super) history: Pinned,
    /// The user token's rows.
    pub(super) user: Pinned,
    /// Candidate rows.
    pub(super) candidates: Pinned,
    /// The GEMM attention path's workspace (`--gpu-attention gemm`), kept
    /// from call to call; never allocated on the flash path.
    pub(super) attention: GemmAttentionScratch,
}

/// The May 2026 ranker's extra parameters on the device.
pub(super) struct GpuMay {
    /// The dwell MLP's first layer `[1, H]`, on the host (an outer product
    /// with the normalised dwell, then GELU, before the upload).
    pub(super) dwell_proj1: Vec<f32>,
    /// The dwell MLP's second layer `[H, D]`.
    pub(super) dwell_proj2: CudaSlice<u16>,
    /// The post-age table `[P, D]` (row 0, "age unknown", a real row).
    pub(super) post_age: DeviceTable,
    /// The continuous head `[D, NC]`.
    pub(super) continuous: CudaSlice<u16>,
    /// NC.
    pub(super) num_continuous: usize,
    /// Dwell normalisation.
    pub(super) norm: crate::config::ContinuousConfig,
}

/// The ranker head on the device.
pub(super) struct GpuHead {
    pub(super) proj_candidate: CudaSlice<u16>,
    pub(super) final_norm: CudaSlice<f32>,
    pub(super) unembeddings: CudaSlice<u16>,
}

/// A model the GPU path cannot run.
pub(super) fn unsupported(why: String) -> EngineError {
    EngineError::Backend(BackendError::Unsupported(why))
}

/// `dst = bf16 bits of src` (round to nearest even).
pub(super) fn fill_bf16(dst: &mut [u16], src: &[f32]) {
    for (d, &v) in dst.iter_mut().zip(src) {
        *d = bf16::from_f32(v).to_bits();
    }
}

/// The context's per-layer keys and values, `[B, Hkv, S1, K]` each.
pub(super) struct ContextKv {
    pub(super) k: Vec<CudaSlice<u16>>,
    pub(super) v: Vec<CudaSlice<u16>>,
    pub(super) key_valid: CudaSlice<u8>,
    pub(super) len: usize,
}

impl GpuRanker {
    /// Uploads the model's weights to `gpu`: a ranker with its `head`, or
    /// the retriever's user tower (`head` None: no candidate scoring). The
    /// weights' hash tables go too when they fit (`tables.rs`).
    pub fn new(
        gpu: Arc<Gpu>,
        cfg: &ModelConfig,
        w: &PhoenixWeights,
        head: Option<&crate::weights::RankerHead>,
        options: DeviceOptions,
    ) -> Result<Self> {
        let policy = options.gpu_tables;
        if !matches!(cfg.key_size, 32 | 64 | 128) {
            return Err(unsupported(format!(
                "key_size {} has no GPU attention kernel (32, 64 or 128)",
                cfg.key_size
            )));
        }
        if w.layers.is_empty() {
            return Err(unsupported("a model with no layers".into()));
        }
        let inv_freq = crate::numerics::rope::Rope::new(cfg).inv_freq().to_vec();
        let surface_table: Vec<f32> = host(&w.product_surface_table)?
            .into_iter()
            .map(|v| bf16::from_f32(v).to_f32())
            .collect();
        // Every product-surface id is a row (ids are validated to [0, V)).
        let surface_device = DeviceTable {
            data: gpu.upload(&bf16_bits(&surface_table))?,
            rows: cfg.product_surface_vocab_size,
            dim: cfg.emb_size,
            skip_row0: false,
        };
        let tables = match &w.hash_tables {
            Some(t) => GpuTables::place(&gpu, t, policy)?,
            None => None,
        };
        let layers = w
            .layers
            .iter()
            .map(|l| GpuLayer::upload(&gpu, l))
            .collect::<Result<Vec<_>>>()?;
        let may = match (head, &w.dwell, cfg.continuous, cfg.post_age) {
            (Some(h), Some(dw), Some(norm), Some(age)) => {
                let (Some(table), Some(cont)) = (&h.post_age_table, &h.continuous_unembeddings)
                else {
                    return Err(unsupported(
                        "a May 2026 ranker without its post-age table or continuous head".into(),
                    ));
                };
                let table: Vec<f32> = host(table)?;
                Some(GpuMay {
                    dwell_proj1: host(&dw.proj_1)?,
                    dwell_proj2: matrix(&gpu, &dw.proj_2)?,
                    post_age: DeviceTable {
                        data: gpu.upload(&bf16_bits(&table))?,
                        rows: age.vocab,
                        dim: cfg.emb_size,
                        skip_row0: false,
                    },
                    continuous: matrix(&gpu, cont)?,
                    num_continuous: norm.num_actions,
                    norm,
                })
            }
            _ => None,
        };
        let proj_user_ip = if cfg.num_ip_hashes > 0 {
            let d = cfg.emb_size;
            let mut m = host(&w.proj_user)?;
            m.extend((0..d * d).map(|i| f32::from(u8::from(i / d == i % d))));
            Some(gpu.upload(&bf16_bits(&m))?)
        } else {
            None
        };
        let head = match head {
            Some(h) => Some(GpuHead {
                proj_candidate: matrix(&gpu, &h.proj_candidate)?,
                final_norm: vector(&gpu, &h.final_norm)?,
                unembeddings: matrix(&gpu, &h.unembeddings)?,
            }),
            None => None,
        };
        Ok(Self {
            proj_user: matrix(&gpu, &w.proj_user)?,
            proj_history: matrix(&gpu, &w.proj_history)?,
            action_projection: matrix(&gpu, &w.action_projection)?,
            head,
            inv_freq: gpu.upload(&inv_freq)?,
            surface_table,
            surface_device,
            tables,
            may,
            proj_user_ip,
            layers,
            cfg: cfg.clone(),
            gpu,
            lock: Mutex::new(Staging::default()),
            last: Mutex::new(Phases::default()),
            attention: options.gpu_attention,
        })
    }

    /// The device.
    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    /// Where this model gathers hash-embedding rows for requests given by
    /// ids (`Device` when its tables are resident).
    pub fn table_placement(&self) -> TablePlacement {
        if self.tables.is_some() {
            TablePlacement::Device
        } else {
            TablePlacement::Host
        }
    }

    /// Three timing events on this device.
    fn marks(&self) -> Result<[CudaEvent; 3]> {
        let ctx = self.gpu.context();
        let ev = || ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT));
        Ok([ev()?, ev()?, ev()?])
    }

    /// Where the last ranker call spent its time.
    pub fn last_phases(&self) -> Phases {
        self.last.lock().map(|p| *p).unwrap_or_default()
    }

    pub(super) fn surface_row(&self, id: i64) -> &[f32] {
        let d = self.cfg.emb_size;
        &self.surface_table[id as usize * d..][..d]
    }

    pub(super) fn attention_shape(
        &self,
        batch: usize,
        queries: usize,
        context: usize,
        causal: bool,
    ) -> AttentionShape {
        let c = &self.cfg;
        AttentionShape {
            batch,
            queries,
            context,
            q_heads: c.num_q_heads,
            kv_heads: c.num_kv_heads,
            head_dim: c.key_size,
            causal,
            mult: c.attn_output_multiplier,
            cap: c.attn_logit_softcap.unwrap_or(0.0),
            round_logits: true,
        }
    }

    /// Most candidate slots per scoring pass for `batch` rows.
    pub fn max_chunk(&self, batch: usize) -> usize {
        (MAX_CANDIDATE_ROWS / batch.max(1)).max(1)
    }

    /// Starts a ranker call: user + history through every layer (every
    /// row's user token valid; the model routes other rows to the dense
    /// CPU path), K/V kept for [`Self::score_chunk`]. With `rows` =
    /// `Device` the inputs' embeddings are not read (they may be empty):
    /// rows are gathered from the resident tables by hash.
    pub fn encode(&self, user: &UserInputs, rows: TablePlacement) -> Result<GpuContext> {
        let mut staging = self.claim()?;
        let started = std::time::Instant::now();
        let mut phases = Phases::default();
        let marks = self.marks()?;
        marks[0].record(self.gpu.stream())?;
        let kv = self
            .encode_context(user, false, rows, &mut staging, &mut phases)?
            .0;
        marks[1].record(self.gpu.stream())?;
        Ok(GpuContext {
            kv,
            marks,
            started,
            phases,
        })
    }

    /// Scores candidate slots `first..first + C` of `cands` against an
    /// encoded context: `[B, C, A]` logits and probabilities, rounded to
    /// bf16 as the reference rounds them. Updates the call's phase split.
    pub fn score_chunk(
        &self,
        ctx: &mut GpuContext,
        cands: &CandidateInputs,
        first: usize,
        rows: TablePlacement,
    ) -> Result<RankerOutput> {
        let (b, c, a) = (cands.batch, cands.count, self.cfg.num_actions);
        if b == 0 || c == 0 {
            return Ok(RankerOutput {
                batch: b,
                count: c,
                num_actions: a,
                ..RankerOutput::default()
            });
        }
        let mut staging = self.claim()?;
        let (logits, continuous) =
            self.score(&ctx.kv, cands, first, rows, &mut staging, &mut ctx.phases)?;
        let sigmoid = |x: f32| bf16::from_f32(1.0 / (1.0 + (-x).exp())).to_f32();
        // The reference rounds the logits and the probabilities to bf16; the
        // continuous head's sigmoid is taken in f32, then rounded.
        let logits: Vec<f32> = logits.iter().map(|&x| bf16::from_f32(x).to_f32()).collect();
        let probs = logits.iter().map(|&x| sigmoid(x)).collect();
        let continuous: Vec<f32> = continuous.into_iter().map(sigmoid).collect();
        let num_continuous = self.may.as_ref().map_or(0, |m| m.num_continuous);
        let [_, context_done, done] = &ctx.marks;
        done.record(self.gpu.stream())?;
        done.synchronize()?;
        ctx.phases.device_context_ms = ctx.marks[0].elapsed_ms(context_done)?;
        ctx.phases.device_candidates_ms = context_done.elapsed_ms(done)?;
        ctx.phases.total_ms = ms_since(ctx.started);
        if let Ok(mut last) = self.last.lock() {
            *last = ctx.phases;
        }
        Ok(RankerOutput {
            batch: b,
            count: c,
            num_actions: a,
            logits,
            probs,
            num_continuous,
            continuous,
        })
    }

    /// Takes the stream for one call and makes the context current on this
    /// thread (cuBLAS runs on whatever context is current).
    fn claim(&self) -> Result<std::sync::MutexGuard<'_, Staging>> {
        let guard = self
            .lock
            .lock()
            .map_err(|_| EngineError::Backend(BackendError::Poisoned))?;
        self.gpu
            .context()
            .bind_to_thread()
            .map_err(GpuError::from)?;
        Ok(guard)
    }

    /// The user tower's hidden states after every layer (no final norm),
    /// `[B, 1 + S, D]` row-major, for the retriever's mean pooling. `rows`
    /// as for [`Self::fast_rows`].
    pub fn user_hidden(&self, user: &UserInputs, rows: TablePlacement) -> Result<Vec<f32>> {
        if user.batch == 0 {
            return Ok(Vec::new());
        }
        let mut staging = self.claim()?;
        let (_, h) = self.encode_context(user, true, rows, &mut staging, &mut Phases::default())?;
        Ok(self.gpu.download(&h)?)
    }
}
