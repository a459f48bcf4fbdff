//! The GPU ranker's inputs: token rows gathered on the device from the
//! resident hash tables (hashes uploaded), or built on the host as bf16
//! from the caller's embeddings (in parallel, into pinned memory) and
//! copied asynchronously (`staging.rs`); signed actions
//! come from the host. Then token projections by cuBLAS, the context pass and the
//! candidate pass through the layer stack (`stack.rs`).

use foryou_kernels::cuda::bf16_bits;
use foryou_kernels::cuda::cudarc::driver::CudaSlice;
use foryou_kernels::cuda::gemm::GemmOut;
use foryou_kernels::reference::ops::GatherShape;
use half::bf16;
use rayon::prelude::*;

use super::ranker::{ContextKv, GpuRanker, Staging, fill_bf16, ms_since};
use super::tables::{GpuTables, indices};
use crate::backend::{Phases, TablePlacement};
use crate::error::{EngineError, Result};
use crate::inputs::{CandidateInputs, UserInputs};
use crate::numerics::gelu::gelu_tanh_scalar;
use crate::numerics::rope::{candidate_positions, context_positions};
use foryou_kernels::cuda::staging::Pinned;

impl GpuRanker {
    /// Token projections of user + history, then every layer; keeps K/V.
    /// With `full` the last layer runs completely (the hidden states are
    /// wanted); otherwise it stops after its K/V, all candidates need.
    /// `rows` says where the hash-embedding rows come from: the inputs'
    /// embeddings (`Host`) or the resident tables, by hash (`Device`).
    pub(super) fn encode_context(
        &self,
        u: &UserInputs,
        full: bool,
        rows: TablePlacement,
        staging: &mut Staging,
        ph: &mut Phases,
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
        // One row per history slot: [post | author | actions | surface]
        // (+ [dwell] for a May 2026 ranker); the action and dwell blocks are
        // written on the device by their projections.
        let may = self.may.as_ref();
        let wh = (hi + ha + 2 + usize::from(may.is_some())) * d;
        let surface_at = (hi + ha + 1) * d;
        // The user row: [user hashes] (+ [sum of IP embeddings]).
        let wu = (hu + usize::from(self.proj_user_ip.is_some())) * d;
        let t = std::time::Instant::now();
        let acts = signed_actions(&u.history_actions, a);
        let valid = u.context_valid(cfg);
        let positions = per_row_i32(&context_positions(cfg, &valid, b, s1), b, s1);
        let key_valid: Vec<u8> = valid.into_iter().map(u8::from).collect();
        let ip = ip_sums(u, cfg);
        let (mut dx_hist, dx_user) = match rows {
            TablePlacement::Host => {
                rows_given(
                    "user side",
                    &[
                        (u.history_post_embeddings.len(), b * s * hi * d),
                        (u.history_author_embeddings.len(), b * s * ha * d),
                        (u.user_embeddings.len(), b * hu * d),
                    ],
                )?;
                // Written straight into pinned memory; the action block is
                // left for its projection to write on the device.
                let x_hist = self.stage_items(
                    &mut staging.history,
                    [&u.history_post_embeddings, &u.history_author_embeddings],
                    &u.history_product_surface,
                    (wh, surface_at),
                )?;
                let x_user = staging.user.upload(g, b * wu, |x| {
                    for (r, row) in x.chunks_mut(wu).enumerate() {
                        fill_bf16(
                            &mut row[..hu * d],
                            &u.user_embeddings[r * hu * d..][..hu * d],
                        );
                        if let Some(ip) = &ip {
                            fill_bf16(&mut row[hu * d..], &ip[r * d..][..d]);
                        }
                    }
                })?;
                ph.host_ms += ms_since(t);
                (x_hist, x_user)
            }
            TablePlacement::Device => {
                ph.host_ms += ms_since(t);
                let tables = self.resident()?;
                let x_hist = self.gather_items(
                    [
                        &u.history_post_hashes,
                        &u.history_author_hashes,
                        &u.history_product_surface,
                    ],
                    b * s,
                    (wh, surface_at),
                    ph,
                )?;
                let t = std::time::Instant::now();
                let user = g.upload(&indices(&u.user_hashes))?;
                ph.upload_ms += ms_since(t);
                let mut x_user = g.scratch::<u16>(b * wu)?;
                g.gather_rows(
                    &user,
                    &tables.user.data,
                    tables.user.shape(b, hu, wu, 0),
                    &mut x_user,
                )?;
                if let Some(ip) = &ip {
                    // Row r of the uploaded sums into row r's IP block.
                    let sums = g.upload(&bf16_bits(ip))?;
                    let rows: Vec<i32> = (0..b as i32).collect();
                    let shape = GatherShape {
                        rows: b,
                        per_row: 1,
                        dim: d,
                        table_rows: b,
                        skip_row0: false,
                        out_stride: wu,
                        out_offset: hu * d,
                    };
                    g.gather_rows(&g.upload(&rows)?, &sums, shape, &mut x_user)?;
                }
                (x_hist, x_user)
            }
        };
        let t = std::time::Instant::now();
        let dacts = g.upload(&acts)?;
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
        if let Some(m) = may {
            // May 2026: the dwell block, gelu(v * proj_1) on the host (an
            // outer product), then @ proj_2 on the device, rounded to bf16.
            let dwell = dwell_hidden(m, &u.history_dwell, b * s);
            let t = std::time::Instant::now();
            let dwell = g.upload(&dwell)?;
            ph.upload_ms += ms_since(t);
            g.gemm_bf16(
                b * s,
                d,
                m.dwell_proj1.len(),
                &dwell,
                0,
                &m.dwell_proj2,
                GemmOut::Bf16(&mut dx_hist),
                (hi + ha + 2) * d,
                wh,
            )?;
        }
        // User token of row r lands at h[r, 0]; history at h[r, 1..].
        g.gemm_bf16(
            b,
            d,
            wu,
            &dx_user,
            0,
            self.proj_user_ip.as_ref().unwrap_or(&self.proj_user),
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
        self.run_layers(
            &mut h,
            b,
            s1,
            &dpos,
            &shape,
            &mut kv,
            full,
            &mut staging.attention,
        )?;
        Ok((kv, h))
    }

    /// Candidate slots `first..first + C` of `cands` through every layer,
    /// then the head. Returns logits `[B, C, A]` and (May 2026) continuous
    /// logits `[B, C, NC]` (f32, not yet rounded or squashed).
    /// `rows` as for [`Self::encode_context`].
    pub(super) fn score(
        &self,
        ctx: &ContextKv,
        cands: &CandidateInputs,
        first: usize,
        rows: TablePlacement,
        staging: &mut Staging,
        ph: &mut Phases,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let cfg = &self.cfg;
        let g = &*self.gpu;
        let may = self.may.as_ref();
        let head = self
            .head
            .as_ref()
            .ok_or_else(|| EngineError::Input("a user tower has no ranker head".into()))?;
        let (b, c, d) = (cands.batch, cands.count, cfg.emb_size);
        let (hi, ha, a) = (cfg.num_item_hashes, cfg.num_author_hashes, cfg.num_actions);
        // [post | author | surface] (+ [post age] for a May 2026 ranker).
        let wc = (hi + ha + 1 + usize::from(may.is_some())) * d;
        let surface_at = (hi + ha) * d;
        let t = std::time::Instant::now();
        let valid = cands.valid_mask(cfg);
        let positions = per_row_i32(&candidate_positions(cfg, ctx.len, first, c, &valid), b, c);
        let valid: Vec<u8> = valid.into_iter().map(u8::from).collect();
        let dx = match rows {
            TablePlacement::Host => {
                rows_given(
                    "candidates",
                    &[
                        (cands.post_embeddings.len(), b * c * hi * d),
                        (cands.author_embeddings.len(), b * c * ha * d),
                    ],
                )?;
                let x = self.stage_items(
                    &mut staging.candidates,
                    [&cands.post_embeddings, &cands.author_embeddings],
                    &cands.product_surface,
                    (wc, surface_at),
                )?;
                ph.host_ms += ms_since(t);
                x
            }
            TablePlacement::Device => {
                ph.host_ms += ms_since(t);
                self.gather_items(
                    [
                        &cands.post_hashes,
                        &cands.author_hashes,
                        &cands.product_surface,
                    ],
                    b * c,
                    (wc, surface_at),
                    ph,
                )?
            }
        };
        let mut dx = dx;
        if let Some(m) = may {
            // May 2026: the post-age row of each candidate (bucket 0, a
            // real row, when the age is unknown) into the last block.
            let buckets: Vec<i32> = if cands.post_age_buckets.is_empty() {
                vec![0; b * c]
            } else {
                cands
                    .post_age_buckets
                    .iter()
                    .map(|&x| i32::try_from(x).unwrap_or(0))
                    .collect()
            };
            let idx = g.upload(&buckets)?;
            g.gather_rows(
                &idx,
                &m.post_age.data,
                m.post_age.shape(b * c, 1, wc, (hi + ha + 1) * d),
                &mut dx,
            )?;
        }
        let t = std::time::Instant::now();
        let dpos = g.upload(&positions)?;
        let dvalid = g.upload(&valid)?;
        ph.upload_ms += ms_since(t);
        let n = b * c;
        let mut h = g.scratch::<f32>(n * d)?;
        g.gemm_bf16(
            n,
            d,
            wc,
            &dx,
            0,
            &head.proj_candidate,
            GemmOut::F32(&mut h),
            0,
            d,
        )?;
        g.round_bf16_inplace(&mut h, n * d)?;
        let normed = self.run_layers_candidates(
            &mut h,
            b,
            c,
            &dpos,
            ctx,
            &dvalid,
            &head.final_norm,
            &mut staging.attention,
        )?;
        let mut logits = g.scratch::<f32>(n * a)?;
        g.gemm_bf16(
            n,
            a,
            d,
            &normed,
            0,
            &head.unembeddings,
            GemmOut::F32(&mut logits),
            0,
            a,
        )?;
        let continuous = match may {
            Some(m) => {
                let nc = m.num_continuous;
                let mut out = g.scratch::<f32>(n * nc)?;
                g.gemm_bf16(
                    n,
                    nc,
                    d,
                    &normed,
                    0,
                    &m.continuous,
                    GemmOut::F32(&mut out),
                    0,
                    nc,
                )?;
                g.download(&out)?
            }
            None => Vec::new(),
        };
        Ok((g.download(&logits)?, continuous))
    }

    /// The resident tables, or an error for a call that needs them.
    fn resident(&self) -> Result<&GpuTables> {
        self.tables.as_ref().ok_or_else(|| {
            EngineError::Input(
                "inputs without embeddings need the hash tables on the device".into(),
            )
        })
    }

    /// Token input rows of items given by their embeddings (`[post [n, Hi*D],
    /// author [n, Ha*D]]` f32, surface ids `[n]`), as bf16 in `pinned` and
    /// copied to a new `[n, stride]` device buffer: the layout of
    /// [`Self::gather_items`], built on the host.
    fn stage_items(
        &self,
        pinned: &mut Pinned,
        [post, author]: [&[f32]; 2],
        surface: &[i64],
        (stride, surface_at): (usize, usize),
    ) -> Result<CudaSlice<u16>> {
        let n = surface.len();
        let (wp, wa) = (post.len() / n.max(1), author.len() / n.max(1));
        Ok(pinned.upload(&self.gpu, n * stride, |x| {
            x.par_chunks_mut(stride).enumerate().for_each(|(r, row)| {
                let (head, tail) = row.split_at_mut(wp);
                fill_bf16(head, &post[r * wp..][..wp]);
                fill_bf16(&mut tail[..wa], &author[r * wa..][..wa]);
                let surface_row = self.surface_row(surface[r]);
                fill_bf16(&mut row[surface_at..][..surface_row.len()], surface_row);
            })
        })?)
    }

    /// Token input rows of `n` items gathered from the resident tables into
    /// a new `[n, stride]` bf16 buffer, from `[post hashes [n, Hi], author
    /// hashes [n, Ha], product surfaces [n]]`: post rows, then author rows
    /// from column 0, the surface row in the last D columns (every surface
    /// id is a row, validated to `[0, V)`). Columns between are left for
    /// the caller (a history row's action block).
    fn gather_items(
        &self,
        ids: [&[i64]; 3],
        n: usize,
        (stride, surface_at): (usize, usize),
        ph: &mut Phases,
    ) -> Result<CudaSlice<u16>> {
        let g = &*self.gpu;
        let tables = self.resident()?;
        let (hi, d) = (self.cfg.num_item_hashes, self.cfg.emb_size);
        let t = std::time::Instant::now();
        let [post, author, surface] = ids.map(indices);
        ph.host_ms += ms_since(t);
        let t = std::time::Instant::now();
        let (post, author, surface) = (g.upload(&post)?, g.upload(&author)?, g.upload(&surface)?);
        ph.upload_ms += ms_since(t);
        let mut x = g.scratch::<u16>(n * stride)?;
        let ha = self.cfg.num_author_hashes;
        let st = &self.surface_device;
        g.gather_rows(
            &post,
            &tables.post.data,
            tables.post.shape(n, hi, stride, 0),
            &mut x,
        )?;
        g.gather_rows(
            &author,
            &tables.author.data,
            tables.author.shape(n, ha, stride, hi * d),
            &mut x,
        )?;
        g.gather_rows(
            &surface,
            &st.data,
            st.shape(n, 1, stride, surface_at),
            &mut x,
        )?;
        Ok(x)
    }
}

/// Fails unless every (length, expected) pair matches: inputs without
/// their embeddings (hash-only) cannot take the host-rows path.
fn rows_given(what: &str, lens: &[(usize, usize)]) -> Result<()> {
    match lens.iter().find(|(len, want)| len != want) {
        Some((len, want)) => Err(EngineError::Input(format!(
            "{what}: {len} embedding values where {want} are needed (hash-only inputs need the tables on the device)"
        ))),
        None => Ok(()),
    }
}

/// Positions as the kernels' i32, one row of `t` per batch row: `t`
/// shared positions are repeated for each of the `b` rows; `b * t`
/// per-row positions (right-anchored RoPE) are taken as they are.
fn per_row_i32(positions: &[usize], b: usize, t: usize) -> Vec<i32> {
    let to = |&p: &usize| i32::try_from(p).unwrap_or(i32::MAX);
    if positions.len() == t {
        (0..b).flat_map(|_| positions.iter().map(to)).collect()
    } else {
        positions.iter().map(to).collect()
    }
}

/// May 2026: the sum over the IP-hash axis of each row's IP embeddings
/// `[B, D]` f32, or `None` for a model without IP hashes (zeros when the
/// request has none).
fn ip_sums(u: &UserInputs, cfg: &crate::config::ModelConfig) -> Option<Vec<f32>> {
    let (nip, d) = (cfg.num_ip_hashes, cfg.emb_size);
    if nip == 0 {
        return None;
    }
    let mut out = vec![0f32; u.batch * d];
    if !u.user_ip_embeddings.is_empty() {
        for (r, sum) in out.chunks_exact_mut(d).enumerate() {
            for e in u.user_ip_embeddings[r * nip * d..][..nip * d].chunks_exact(d) {
                for (s, &x) in sum.iter_mut().zip(e) {
                    *s += x;
                }
            }
        }
    }
    Some(out)
}

/// May 2026: `gelu_tanh(normalize(dwell) * proj_1)` for `n` history slots,
/// `[n, H]` as bf16 bits (dwell 0, or none given, is an exact zero row).
fn dwell_hidden(m: &super::ranker::GpuMay, dwell_s: &[f32], n: usize) -> Vec<u16> {
    let h = m.dwell_proj1.len();
    let mut out = vec![0u16; n * h];
    for (i, row) in out.chunks_exact_mut(h).enumerate() {
        let v = m.norm.normalize(dwell_s.get(i).copied().unwrap_or(0.0));
        for (o, &w) in row.iter_mut().zip(&m.dwell_proj1) {
            *o = bf16::from_f32(gelu_tanh_scalar(v * w)).to_bits();
        }
    }
    out
}

/// The history's action bits as signed bf16 (`2x - 1`), all zeros for a
/// slot with no action (the reference's padding of the action embedding).
fn signed_actions(actions: &[f32], a: usize) -> Vec<u16> {
    let mut out = vec![0u16; actions.len()];
    for (dst, taken) in out.chunks_exact_mut(a).zip(actions.chunks_exact(a)) {
        if taken.iter().any(|&x| x != 0.0) {
            for (d, &x) in dst.iter_mut().zip(taken) {
                *d = bf16::from_f32(2.0 * x - 1.0).to_bits();
            }
        }
    }
    out
}
