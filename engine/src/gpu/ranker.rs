//! The ranker's fast path on the GPU, the same computation as
//! `model::ranker` in bf16:
//!
//! 1. Host: the token inputs as bf16 rows (hash embeddings, product-surface
//!    rows, signed actions), one upload per tensor.
//! 2. Device: token projections (cuBLAS), then the context (user + history)
//!    through every layer, causal and padding-masked, keeping each layer's
//!    K/V. The last layer's context needs only its K/V, so its attention and
//!    FFN are skipped.
//! 3. Candidates through every layer, attending to the cached context K/V
//!    plus themselves (the candidate-isolation kernel), then the final norm
//!    and the unembedding; logits come back and the sigmoid runs on the host.
//!
//! Every product is a bf16 GEMM with f32 accumulation; values are rounded to
//! bf16 where the reference rounds them in bf16 mode, whatever the config's
//! `fprop_dtype` (the GPU path computes in bf16).

use std::sync::{Arc, Mutex};

use foryou_kernels::cuda::attention::SelfKvGpu;
use foryou_kernels::cuda::cudarc::driver::sys::CUevent_flags;
use foryou_kernels::cuda::cudarc::driver::{CudaEvent, CudaSlice};
use foryou_kernels::cuda::gemm::GemmOut;
use foryou_kernels::cuda::{Gpu, bf16_bits};
use foryou_kernels::reference::attention::AttentionShape;
use foryou_kernels::reference::ops::QkvShape;
use half::bf16;
use rayon::prelude::*;

use super::weights::{GpuLayer, host, matrix, vector};
use crate::config::{CandidatePositions, GeluKind, ModelConfig};
use crate::error::{EngineError, Result};
use crate::inputs::{CandidateInputs, UserInputs};
use crate::model::ranker::RankerOutput;
use crate::weights::PhoenixWeights;

/// Candidate rows (batch x slots) per device pass: bounds the activations
/// (`rows x 2F` f32 for the FFN) of a huge request.
const MAX_CANDIDATE_ROWS: usize = 32_768;

/// The ranker's weights on one device.
pub struct GpuRanker {
    gpu: Arc<Gpu>,
    cfg: ModelConfig,
    layers: Vec<GpuLayer>,
    proj_user: CudaSlice<u16>,
    proj_history: CudaSlice<u16>,
    action_projection: CudaSlice<u16>,
    /// The ranker's head; `None` for the retriever's user tower.
    head: Option<GpuHead>,
    inv_freq: CudaSlice<f32>,
    /// Product-surface table `[V, D]` on the host, rounded like the reference.
    surface_table: Vec<f32>,
    /// One forward pass at a time on the stream.
    lock: Mutex<()>,
    /// Where the last ranker call spent its time.
    last: Mutex<GpuPhases>,
}

/// Wall-clock split of one ranker call, ms: building the bf16 inputs on the
/// host, uploading them (pageable copies, synchronous), and the whole call.
/// The rest of `total` is device work and the logits' download; host work
/// for the candidates overlaps the context's device work.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GpuPhases {
    /// Input assembly (bf16 conversion, in parallel).
    pub host_ms: f32,
    /// Host to device copies of the inputs.
    pub upload_ms: f32,
    /// The whole call.
    pub total_ms: f32,
    /// GPU timeline (CUDA events) from the call's start to the end of the
    /// context pass: input copies plus the context's layers.
    pub gpu_context_ms: f32,
    /// GPU timeline from there to the logits' arrival on the host.
    pub gpu_candidates_ms: f32,
}

fn ms_since(t: std::time::Instant) -> f32 {
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

/// The ranker head on the device.
struct GpuHead {
    proj_candidate: CudaSlice<u16>,
    final_norm: CudaSlice<f32>,
    unembeddings: CudaSlice<u16>,
}

/// `dst = bf16 bits of src` (round to nearest even).
fn fill_bf16(dst: &mut [u16], src: &[f32]) {
    for (d, &v) in dst.iter_mut().zip(src) {
        *d = bf16::from_f32(v).to_bits();
    }
}

/// The context's per-layer keys and values, `[B, Hkv, S1, K]` each.
struct ContextKv {
    k: Vec<CudaSlice<u16>>,
    v: Vec<CudaSlice<u16>>,
    key_valid: CudaSlice<u8>,
    len: usize,
}

impl GpuRanker {
    /// Uploads the model's weights to `gpu`: a ranker with its `head`, or
    /// the retriever's user tower (`head` None: no candidate scoring).
    pub fn new(
        gpu: Arc<Gpu>,
        cfg: &ModelConfig,
        w: &PhoenixWeights,
        head: Option<&crate::weights::RankerHead>,
    ) -> Result<Self> {
        if !matches!(cfg.key_size, 32 | 64 | 128) {
            return Err(EngineError::Gpu(format!(
                "key_size {} has no GPU attention kernel (32, 64 or 128)",
                cfg.key_size
            )));
        }
        if w.layers.is_empty() {
            return Err(EngineError::Gpu("a model with no layers".into()));
        }
        let k = cfg.key_size;
        let inv_freq: Vec<f32> = (0..k / 2)
            .map(|i| 1.0f32 / cfg.rope_base.powf((2 * i) as f32 / k as f32))
            .collect();
        let surface_table = host(&w.product_surface_table)?
            .into_iter()
            .map(|v| bf16::from_f32(v).to_f32())
            .collect();
        let layers = w
            .layers
            .iter()
            .map(|l| GpuLayer::upload(&gpu, l))
            .collect::<Result<Vec<_>>>()?;
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
            layers,
            cfg: cfg.clone(),
            gpu,
            lock: Mutex::new(()),
            last: Mutex::new(GpuPhases::default()),
        })
    }

    /// The device.
    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    /// Three timing events on this device.
    fn marks(&self) -> Result<[CudaEvent; 3]> {
        let ctx = self.gpu.context();
        let ev = || ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT));
        Ok([ev()?, ev()?, ev()?])
    }

    /// Where the last ranker call spent its time.
    pub fn last_phases(&self) -> GpuPhases {
        self.last.lock().map(|p| *p).unwrap_or_default()
    }

    fn surface_row(&self, id: i64) -> &[f32] {
        let d = self.cfg.emb_size;
        &self.surface_table[id as usize * d..][..d]
    }

    fn attention_shape(
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

    /// Scores `cands` against `user` (every row's user token valid; the
    /// caller routes other rows to the dense CPU path). `[B, C, A]` out.
    pub fn fast_rows(&self, user: &UserInputs, cands: &CandidateInputs) -> Result<RankerOutput> {
        if cands.batch == 0 || cands.count == 0 {
            return Ok(RankerOutput {
                batch: cands.batch,
                count: cands.count,
                num_actions: self.cfg.num_actions,
                logits: Vec::new(),
                probs: Vec::new(),
            });
        }
        let _one = self.claim()?;
        let t0 = std::time::Instant::now();
        let mut ph = GpuPhases::default();
        let marks = self.marks()?;
        marks[0].record(self.gpu.stream())?;
        let ctx = self.encode_context(user, false, &mut ph)?.0;
        marks[1].record(self.gpu.stream())?;
        let (b, c) = (cands.batch, cands.count);
        let a = self.cfg.num_actions;
        let mut logits = vec![0f32; b * c * a];
        let chunk = (MAX_CANDIDATE_ROWS / b.max(1)).max(1);
        let mut c0 = 0;
        while c0 < c {
            let c1 = c.min(c0 + chunk);
            let part = if c0 == 0 && c1 == c {
                self.score(&ctx, cands, 0, &mut ph)?
            } else {
                self.score(&ctx, &cands.slots(&self.cfg, c0, c1), c0, &mut ph)?
            };
            let n = c1 - c0;
            for r in 0..b {
                logits[(r * c + c0) * a..(r * c + c1) * a]
                    .copy_from_slice(&part[r * n * a..(r + 1) * n * a]);
            }
            c0 = c1;
        }
        // The reference rounds the logits and the probabilities to bf16.
        let logits: Vec<f32> = logits.iter().map(|&x| bf16::from_f32(x).to_f32()).collect();
        let probs = logits
            .iter()
            .map(|&x| bf16::from_f32(1.0 / (1.0 + (-x).exp())).to_f32())
            .collect();
        marks[2].record(self.gpu.stream())?;
        marks[2].synchronize()?;
        ph.gpu_context_ms = marks[0].elapsed_ms(&marks[1])?;
        ph.gpu_candidates_ms = marks[1].elapsed_ms(&marks[2])?;
        ph.total_ms = ms_since(t0);
        if let Ok(mut last) = self.last.lock() {
            *last = ph;
        }
        Ok(RankerOutput {
            batch: b,
            count: c,
            num_actions: a,
            logits,
            probs,
        })
    }

    /// Takes the stream for one call and makes the context current on this
    /// thread (cuBLAS runs on whatever context is current).
    fn claim(&self) -> Result<std::sync::MutexGuard<'_, ()>> {
        let guard = self
            .lock
            .lock()
            .map_err(|_| EngineError::Gpu("an earlier GPU call panicked".into()))?;
        self.gpu
            .context()
            .bind_to_thread()
            .map_err(|e| EngineError::Gpu(e.to_string()))?;
        Ok(guard)
    }

    /// The user tower's hidden states after every layer (no final norm),
    /// `[B, 1 + S, D]` row-major, for the retriever's mean pooling.
    pub fn user_hidden(&self, user: &UserInputs) -> Result<Vec<f32>> {
        if user.batch == 0 {
            return Ok(Vec::new());
        }
        let _one = self.claim()?;
        let (_, h) = self.encode_context(user, true, &mut GpuPhases::default())?;
        Ok(self.gpu.download(&h)?)
    }

    /// Token projections of user + history, then every layer; keeps K/V.
    /// With `full` the last layer runs completely (the hidden states are
    /// wanted); otherwise it stops after its K/V, all candidates need.
    fn encode_context(
        &self,
        u: &UserInputs,
        full: bool,
        ph: &mut GpuPhases,
    ) -> Result<(ContextKv, CudaSlice<f32>)> {
        let cfg = &self.cfg;
        let g = &*self.gpu;
        let (b, s, d) = (u.batch, u.history_len, cfg.emb_size);
        let s1 = s + 1;
        let (hu, hi, ha, a) = (
            cfg.num_user_hashes,
            cfg.num_item_hashes,
            cfg.num_author_hashes,
            cfg.num_actions,
        );
        let wh = (hi + ha + 2) * d;
        // Host: [post | author | (actions, filled on the device) | surface],
        // one row per history slot, converted to bf16 in parallel.
        let t = std::time::Instant::now();
        let mut x_hist = vec![0u16; b * s * wh];
        let mut acts = vec![0u16; b * s * a];
        x_hist
            .par_chunks_mut(wh)
            .zip(acts.par_chunks_mut(a))
            .enumerate()
            .for_each(|(r, (row, act))| {
                let (post, rest) = row.split_at_mut(hi * d);
                let (author, rest) = rest.split_at_mut(ha * d);
                fill_bf16(post, &u.history_post_embeddings[r * hi * d..][..hi * d]);
                fill_bf16(author, &u.history_author_embeddings[r * ha * d..][..ha * d]);
                fill_bf16(
                    &mut rest[d..],
                    self.surface_row(u.history_product_surface[r]),
                );
                let taken = &u.history_actions[r * a..][..a];
                if taken.iter().any(|&x| x != 0.0) {
                    for (dst, &x) in act.iter_mut().zip(taken) {
                        *dst = bf16::from_f32(2.0 * x - 1.0).to_bits();
                    }
                }
            });
        let x_user = bf16_bits(&u.user_embeddings);
        let positions: Vec<i32> = (0..b).flat_map(|_| 0..s1 as i32).collect();
        let key_valid: Vec<u8> = u.context_valid(cfg).into_iter().map(u8::from).collect();

        ph.host_ms += ms_since(t);
        let t = std::time::Instant::now();
        let mut dx_hist = g.upload(&x_hist)?;
        let dacts = g.upload(&acts)?;
        let dx_user = g.upload(&x_user)?;
        let dpos = g.upload(&positions)?;
        let key_valid = g.upload(&key_valid)?;
        ph.upload_ms += ms_since(t);
        let rows = b * s1;
        let mut h = g.scratch::<f32>(rows * d)?;
        // Signed actions @ action_projection, rounded to bf16, into the action block.
        g.gemm_bf16(
            b * s,
            d,
            a,
            &dacts,
            0,
            &self.action_projection,
            GemmOut::Bf16(&mut dx_hist),
            (hi + ha) * d,
            wh,
        )?;
        // User token of row r lands at h[r, 0]; history at h[r, 1..].
        g.gemm_bf16(
            b,
            d,
            hu * d,
            &dx_user,
            0,
            &self.proj_user,
            GemmOut::F32(&mut h),
            0,
            s1 * d,
        )?;
        for r in 0..b {
            g.gemm_bf16(
                s,
                d,
                wh,
                &dx_hist,
                r * s * wh,
                &self.proj_history,
                GemmOut::F32(&mut h),
                (r * s1 + 1) * d,
                d,
            )?;
        }
        g.round_bf16_inplace(&mut h, rows * d)?;

        let mut kv = ContextKv {
            k: Vec::with_capacity(self.layers.len()),
            v: Vec::with_capacity(self.layers.len()),
            key_valid,
            len: s1,
        };
        let shape = self.attention_shape(b, s1, s1, true);
        self.run_layers(&mut h, b, s1, &dpos, &shape, &mut kv, full)?;
        Ok((kv, h))
    }

    /// Candidate slots `first..first + C` of `cands` through every layer,
    /// then the head. Returns logits `[B, C, A]` (f32, not yet rounded).
    fn score(
        &self,
        ctx: &ContextKv,
        cands: &CandidateInputs,
        first: usize,
        ph: &mut GpuPhases,
    ) -> Result<Vec<f32>> {
        let cfg = &self.cfg;
        let g = &*self.gpu;
        let head = self
            .head
            .as_ref()
            .ok_or_else(|| EngineError::Gpu("a user tower has no ranker head".into()))?;
        let (b, c, d) = (cands.batch, cands.count, cfg.emb_size);
        let (hi, ha, a) = (cfg.num_item_hashes, cfg.num_author_hashes, cfg.num_actions);
        let wc = (hi + ha + 1) * d;
        let t = std::time::Instant::now();
        let mut x = vec![0u16; b * c * wc];
        x.par_chunks_mut(wc).enumerate().for_each(|(r, row)| {
            let (post, rest) = row.split_at_mut(hi * d);
            let (author, surface) = rest.split_at_mut(ha * d);
            fill_bf16(post, &cands.post_embeddings[r * hi * d..][..hi * d]);
            fill_bf16(author, &cands.author_embeddings[r * ha * d..][..ha * d]);
            fill_bf16(surface, self.surface_row(cands.product_surface[r]));
        });
        let positions: Vec<i32> = (0..b)
            .flat_map(|_| {
                (0..c).map(move |i| match cfg.candidate_positions {
                    CandidatePositions::Absolute => (ctx.len + first + i) as i32,
                    CandidatePositions::Shared => ctx.len as i32,
                })
            })
            .collect();
        let valid: Vec<u8> = cands.valid_mask(cfg).into_iter().map(u8::from).collect();
        ph.host_ms += ms_since(t);
        let t = std::time::Instant::now();
        let dx = g.upload(&x)?;
        let dpos = g.upload(&positions)?;
        let dvalid = g.upload(&valid)?;
        ph.upload_ms += ms_since(t);
        let rows = b * c;
        let mut h = g.scratch::<f32>(rows * d)?;
        g.gemm_bf16(
            rows,
            d,
            wc,
            &dx,
            0,
            &head.proj_candidate,
            GemmOut::F32(&mut h),
            0,
            d,
        )?;
        g.round_bf16_inplace(&mut h, rows * d)?;
        let normed =
            self.run_layers_candidates(&mut h, b, c, &dpos, ctx, &dvalid, &head.final_norm)?;
        let mut logits = g.scratch::<f32>(rows * a)?;
        g.gemm_bf16(
            rows,
            a,
            d,
            &normed,
            0,
            &head.unembeddings,
            GemmOut::F32(&mut logits),
            0,
            a,
        )?;
        Ok(g.download(&logits)?)
    }

    /// The activations of one pass over `rows` tokens, reused layer to layer.
    fn scratch(&self, rows: usize) -> Result<Scratch> {
        let c = &self.cfg;
        let g = &*self.gpu;
        let (d, k, hq, hkv, f) = (
            c.emb_size,
            c.key_size,
            c.num_q_heads,
            c.num_kv_heads,
            c.ffn_size,
        );
        Ok(Scratch {
            rows,
            x: g.scratch(rows * d)?,
            qkv: g.scratch(rows * (hq + 2 * hkv) * k)?,
            q: g.scratch(rows * hq * k)?,
            attn: g.scratch(rows * hq * k)?,
            y: g.scratch(rows * d)?,
            gl: g.scratch(rows * 2 * f)?,
            u: g.scratch(rows * f)?,
        })
    }

    /// Pre-norm of layer 0, then every layer's fused q|k|v projection and
    /// RoPE into `k`/`v` (`[B, Hkv, T, K]` each, per layer, from `kv_out`),
    /// with `attend(i, scratch, k, v)` filling `scratch.attn`; `last_norm`
    /// is the pre-norm after the last layer (None: stop after the last
    /// layer's K/V, the context pass of the ranker).
    #[allow(clippy::too_many_arguments)]
    fn run_stack(
        &self,
        h: &mut CudaSlice<f32>,
        b: usize,
        t: usize,
        pos: &CudaSlice<i32>,
        mut kv_out: impl FnMut(usize) -> Result<(CudaSlice<u16>, CudaSlice<u16>)>,
        mut attend: impl FnMut(usize, &mut Scratch, CudaSlice<u16>, CudaSlice<u16>) -> Result<()>,
        last_norm: Option<Option<&CudaSlice<f32>>>,
    ) -> Result<Scratch> {
        let c = &self.cfg;
        let g = &*self.gpu;
        let qs = QkvShape {
            batch: b,
            tokens: t,
            q_heads: c.num_q_heads,
            kv_heads: c.num_kv_heads,
            head_dim: c.key_size,
        };
        let width = (c.num_q_heads + 2 * c.num_kv_heads) * c.key_size;
        let mut s = self.scratch(b * t)?;
        g.rms_norm(
            h,
            &self.layers[0].attn_norm,
            c.rms_norm_eps,
            s.rows,
            false,
            &mut s.x,
        )?;
        let n = self.layers.len();
        for (i, layer) in self.layers.iter().enumerate() {
            g.gemm_bf16(
                s.rows,
                width,
                c.emb_size,
                &s.x,
                0,
                &layer.w_qkv,
                GemmOut::F32(&mut s.qkv),
                0,
                width,
            )?;
            let (mut kl, mut vl) = kv_out(i)?;
            g.qkv_rope(
                qs,
                &s.qkv,
                pos,
                &self.inv_freq,
                true,
                &mut s.q,
                &mut kl,
                &mut vl,
            )?;
            let last = i + 1 == n;
            let next = match (last, last_norm) {
                (true, None) => {
                    attend(i, &mut s, kl, vl)?; // hands the K/V over, no attention
                    break;
                }
                (true, Some(norm)) => norm,
                (false, _) => Some(&self.layers[i + 1].attn_norm),
            };
            attend(i, &mut s, kl, vl)?;
            self.finish_layer(layer, next, h, &mut s)?;
        }
        Ok(s)
    }

    /// The context pass: every layer over `h: [B*S1, D]`, K/V kept in `kv`;
    /// without `full` the last layer stops after its K/V.
    #[allow(clippy::too_many_arguments)]
    fn run_layers(
        &self,
        h: &mut CudaSlice<f32>,
        b: usize,
        t: usize,
        pos: &CudaSlice<i32>,
        shape: &AttentionShape,
        kv: &mut ContextKv,
        full: bool,
    ) -> Result<()> {
        let g = &*self.gpu;
        let kv_len = b * t * self.cfg.num_kv_heads * self.cfg.key_size;
        let key_valid = &kv.key_valid;
        let (mut ks, mut vs) = (Vec::new(), Vec::new());
        let n = self.layers.len();
        self.run_stack(
            h,
            b,
            t,
            pos,
            |_| Ok((g.scratch(kv_len)?, g.scratch(kv_len)?)),
            |i, s, kl, vl| {
                if i + 1 < n || full {
                    g.attention(shape, &s.q, &kl, &vl, key_valid, None, &mut s.attn)?;
                }
                ks.push(kl);
                vs.push(vl);
                Ok(())
            },
            full.then_some(None),
        )?;
        kv.k = ks;
        kv.v = vs;
        Ok(())
    }

    /// Candidates through every layer against the context K/V; returns the
    /// final-normed states `[B*C, D]` as bf16.
    #[allow(clippy::too_many_arguments)]
    fn run_layers_candidates(
        &self,
        h: &mut CudaSlice<f32>,
        b: usize,
        c: usize,
        pos: &CudaSlice<i32>,
        ctx: &ContextKv,
        valid: &CudaSlice<u8>,
        final_norm: &CudaSlice<f32>,
    ) -> Result<CudaSlice<u16>> {
        let g = &*self.gpu;
        let shape = self.attention_shape(b, c, ctx.len, false);
        let kv_len = b * c * self.cfg.num_kv_heads * self.cfg.key_size;
        // The candidates' own K/V: one pair of buffers serves every layer.
        let pool = std::cell::RefCell::new(Some((g.scratch(kv_len)?, g.scratch(kv_len)?)));
        let s = self.run_stack(
            h,
            b,
            c,
            pos,
            |_| {
                pool.borrow_mut()
                    .take()
                    .ok_or_else(|| EngineError::Gpu("self K/V buffers in use".into()))
            },
            |i, s, ks, vs| {
                let self_kv = SelfKvGpu {
                    k: &ks,
                    v: &vs,
                    valid: Some(valid),
                };
                g.attention(
                    &shape,
                    &s.q,
                    &ctx.k[i],
                    &ctx.v[i],
                    &ctx.key_valid,
                    Some(self_kv),
                    &mut s.attn,
                )?;
                *pool.borrow_mut() = Some((ks, vs));
                Ok(())
            },
            Some(Some(final_norm)),
        )?;
        Ok(s.x)
    }

    /// Output projection, post-attention norm + residual, the FFN sandwich;
    /// leaves `bf16(rms(h) * next_norm)` in `s.x` (nothing without a next norm).
    fn finish_layer(
        &self,
        layer: &GpuLayer,
        next_norm: Option<&CudaSlice<f32>>,
        h: &mut CudaSlice<f32>,
        s: &mut Scratch,
    ) -> Result<()> {
        let cfg = &self.cfg;
        let g = &*self.gpu;
        let (d, hqk, f, eps, rows) = (
            cfg.emb_size,
            cfg.num_q_heads * cfg.key_size,
            cfg.ffn_size,
            cfg.rms_norm_eps,
            s.rows,
        );
        g.gemm_bf16(
            rows,
            d,
            hqk,
            &s.attn,
            0,
            &layer.wo,
            GemmOut::F32(&mut s.y),
            0,
            d,
        )?;
        g.residual_rms_norm(
            h,
            &s.y,
            &layer.attn_out_norm,
            Some(&layer.ffn_norm),
            eps,
            rows,
            true,
            &mut s.x,
        )?;
        g.gemm_bf16(
            rows,
            2 * f,
            d,
            &s.x,
            0,
            &layer.w_gl,
            GemmOut::F32(&mut s.gl),
            0,
            2 * f,
        )?;
        g.gated_gelu(&s.gl, rows, f, cfg.gelu == GeluKind::Erf, true, &mut s.u)?;
        g.gemm_bf16(
            rows,
            d,
            f,
            &s.u,
            0,
            &layer.w_down,
            GemmOut::F32(&mut s.y),
            0,
            d,
        )?;
        g.residual_rms_norm(
            h,
            &s.y,
            &layer.ffn_out_norm,
            next_norm,
            eps,
            rows,
            true,
            &mut s.x,
        )?;
        Ok(())
    }
}

/// Activations of one pass (`rows` tokens), reused by every layer.
struct Scratch {
    rows: usize,
    /// The next GEMM's bf16 input `[rows, D]` (a pre-norm).
    x: CudaSlice<u16>,
    /// Fused q|k|v projection `[rows, (Hq + 2 Hkv) K]`.
    qkv: CudaSlice<f32>,
    /// Queries after RoPE `[rows, Hq, K]`.
    q: CudaSlice<u16>,
    /// Attention output `[rows, Hq K]`.
    attn: CudaSlice<u16>,
    /// A projection's f32 output `[rows, D]`.
    y: CudaSlice<f32>,
    /// Fused gelu|lin projection `[rows, 2F]`.
    gl: CudaSlice<f32>,
    /// Gated GELU `[rows, F]`.
    u: CudaSlice<u16>,
}
