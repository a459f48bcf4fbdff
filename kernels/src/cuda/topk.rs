//! Exact batched top-k on the GPU (see `cu/topk.cu` for the flow): queries
//! in batches of up to 64, the corpus read once per batch, thresholds
//! bootstrapped from the first rows, survivors selected and sorted per query.

use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

use super::{Gpu, GpuError, GpuResult, as_i32, bf16_bits, expect_len};

/// Largest k one call returns (the select kernel sorts k keys in shared memory).
pub const MAX_K: usize = 16384;
/// Queries scored per pass over the corpus.
pub const QUERY_BATCH: usize = 64;

/// A bf16 corpus resident on the device, with an optional eligibility bitset.
pub struct GpuCorpus {
    data: CudaSlice<u16>,
    rows: usize,
    dim: usize,
    eligible: Option<CudaSlice<u32>>,
}

impl std::fmt::Debug for GpuCorpus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuCorpus({} x {})", self.rows, self.dim)
    }
}

impl GpuCorpus {
    /// Rows N.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Width D.
    pub fn dim(&self) -> usize {
        self.dim
    }
}

/// Decodes a candidate key (see `make_key` in topk.cu).
fn decode(key: u64) -> (u32, f32) {
    let idx = 0xffff_ffffu32 - (key & 0xffff_ffff) as u32;
    let o = (key >> 32) as u32;
    let bits = if o & 0x8000_0000 != 0 {
        o & 0x7fff_ffff
    } else {
        !o
    };
    (idx, f32::from_bits(bits))
}

impl Gpu {
    /// Uploads a corpus given as bf16 bits `[rows, dim]`; `eligible` is a
    /// bitset over rows (bit set = may be returned), `ceil(rows / 32)` words.
    pub fn upload_corpus(
        &self,
        bits: &[u16],
        dim: usize,
        eligible: Option<&[u32]>,
    ) -> GpuResult<GpuCorpus> {
        if !matches!(dim, 64 | 128 | 256) {
            return Err(GpuError::Shape(format!(
                "corpus width {dim} not in 64, 128, 256"
            )));
        }
        if !bits.len().is_multiple_of(dim) {
            return Err(GpuError::Shape(format!(
                "corpus of {} values is not a multiple of width {dim}",
                bits.len()
            )));
        }
        let rows = bits.len() / dim;
        if rows >= u32::MAX as usize {
            return Err(GpuError::Shape(format!(
                "{rows} corpus rows exceed u32 indices"
            )));
        }
        let eligible = match eligible {
            Some(e) if e.len() < rows.div_ceil(32) => {
                return Err(GpuError::Shape(format!(
                    "eligibility bitset has {} words, needs {}",
                    e.len(),
                    rows.div_ceil(32)
                )));
            }
            Some(e) => Some(self.upload(e)?),
            None => None,
        };
        Ok(GpuCorpus {
            data: self.upload(bits)?,
            rows,
            dim,
            eligible,
        })
    }

    /// A corpus of `rows` zero rows of width `dim` with an eligibility
    /// bitset that admits none, to be written in place
    /// ([`Self::write_rows`], [`Self::set_eligible`]): the live index's
    /// device arena.
    pub fn corpus_with_capacity(&self, rows: usize, dim: usize) -> GpuResult<GpuCorpus> {
        if !matches!(dim, 64 | 128 | 256) {
            return Err(GpuError::Shape(format!(
                "corpus width {dim} not in 64, 128, 256"
            )));
        }
        if rows >= u32::MAX as usize {
            return Err(GpuError::Shape(format!(
                "{rows} corpus rows exceed u32 indices"
            )));
        }
        let values = rows
            .checked_mul(dim)
            .ok_or_else(|| GpuError::Shape(format!("{rows} rows of width {dim} overflow")))?;
        Ok(GpuCorpus {
            data: self.zeros(values)?,
            rows,
            dim,
            eligible: Some(self.zeros(rows.div_ceil(32))?),
        })
    }

    /// Overwrites rows `first..` of `corpus` with `bits` (bf16, whole rows).
    pub fn write_rows(&self, corpus: &mut GpuCorpus, first: usize, bits: &[u16]) -> GpuResult<()> {
        let d = corpus.dim;
        let end = first
            .checked_mul(d)
            .and_then(|s| s.checked_add(bits.len()).map(|e| (s, e)));
        match end {
            Some((start, end)) if bits.len().is_multiple_of(d) && end <= corpus.rows * d => {
                if !bits.is_empty() {
                    let mut dst = corpus.data.slice_mut(start..end);
                    self.stream().memcpy_htod(bits, &mut dst)?;
                }
                Ok(())
            }
            _ => Err(GpuError::Shape(format!(
                "{} values at row {first} do not fit whole rows of a {} x {d} corpus",
                bits.len(),
                corpus.rows
            ))),
        }
    }

    /// Replaces `corpus`'s eligibility bitset (bit set = may be returned):
    /// `ceil(rows / 32)` words.
    pub fn set_eligible(&self, corpus: &mut GpuCorpus, words: &[u32]) -> GpuResult<()> {
        expect_len("eligibility bitset", words.len(), corpus.rows.div_ceil(32))?;
        let words = &words[..corpus.rows.div_ceil(32)];
        match &mut corpus.eligible {
            Some(e) if !words.is_empty() => self.stream().memcpy_htod(words, e)?,
            Some(_) => {}
            None => corpus.eligible = Some(self.upload(words)?),
        }
        Ok(())
    }

    /// Per query (`queries: [B, D]` f32, rounded to bf16): the best `k`
    /// corpus rows by dot product, score descending, ties to the lower index.
    pub fn top_k(
        &self,
        corpus: &GpuCorpus,
        queries: &[f32],
        k: usize,
    ) -> GpuResult<Vec<Vec<(u32, f32)>>> {
        self.top_k_prefix(corpus, corpus.rows, queries, k)
    }

    /// [`Self::top_k`] over the first `rows` rows of `corpus` only (an
    /// arena's filled part).
    pub fn top_k_prefix(
        &self,
        corpus: &GpuCorpus,
        rows: usize,
        queries: &[f32],
        k: usize,
    ) -> GpuResult<Vec<Vec<(u32, f32)>>> {
        let d = corpus.dim;
        if rows > corpus.rows {
            return Err(GpuError::Shape(format!(
                "{rows} rows asked of a corpus of {}",
                corpus.rows
            )));
        }
        if !queries.len().is_multiple_of(d) {
            return Err(GpuError::Shape(format!(
                "{} query values are not a multiple of width {d}",
                queries.len()
            )));
        }
        if k == 0 || k > MAX_K {
            return Err(GpuError::Shape(format!("k = {k} not in 1..={MAX_K}")));
        }
        let mut out = Vec::with_capacity(queries.len() / d);
        if rows == 0 {
            out.resize(queries.len() / d, Vec::new());
            return Ok(out);
        }
        for chunk in queries.chunks(QUERY_BATCH * d) {
            out.extend(self.top_k_batch(corpus, rows, chunk, k)?);
        }
        Ok(out)
    }

    fn top_k_batch(
        &self,
        corpus: &GpuCorpus,
        n: usize,
        queries: &[f32],
        k: usize,
    ) -> GpuResult<Vec<Vec<(u32, f32)>>> {
        let d = corpus.dim;
        let nq = queries.len() / d;
        let m0 = n.min((4 * k).max(1 << 16));
        let cap = m0.max(k + (8 * k).max(1 << 16));
        let q = self.upload(&bf16_bits(queries))?;
        // Only the appended slots of `keys` are ever read, and the select
        // writes all of `out`: neither needs zeroing (`keys` is up to
        // 64 x cap x 8 bytes, tens of MB, per call).
        let mut keys = self.scratch::<u64>(nq * cap)?;
        let mut counts = self.zeros::<u32>(nq)?;
        let mut kept = self.zeros::<u32>(nq)?;
        let mut thr = self.zeros::<f32>(nq)?;
        let mut out = self.scratch::<u64>(nq * k)?;
        let nq_i = as_i32("queries", nq)?;
        let small = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (QUERY_BATCH as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        let init = self.function("topk_init")?;
        let mut b = self.stream().launch_builder(init);
        b.arg(&mut counts).arg(&mut kept).arg(&mut thr).arg(&nq_i);
        // SAFETY: matches topk_init(u32*, u32*, float*, int); nq <= 64 threads.
        unsafe { b.launch(small) }?;

        self.score_filter(corpus, &q, nq, 0, m0, &thr, &mut keys, &mut counts, cap)?;
        self.select(
            &mut keys,
            &mut counts,
            &mut kept,
            &mut thr,
            &mut out,
            nq,
            cap,
            k,
        )?;
        let mut start = m0;
        let mut span = n - m0;
        while start < n {
            let end = n.min(start + span);
            self.score_filter(
                corpus,
                &q,
                nq,
                start,
                end,
                &thr,
                &mut keys,
                &mut counts,
                cap,
            )?;
            let c = self.download(&counts)?;
            if c.iter().any(|&x| x as usize > cap) {
                // Too many survivors for the buffer: forget them, halve the range.
                let reset = self.function("topk_reset")?;
                let mut b = self.stream().launch_builder(reset);
                b.arg(&mut counts).arg(&kept).arg(&nq_i);
                // SAFETY: matches topk_reset(u32*, const u32*, int).
                unsafe { b.launch(small) }?;
                span = (span / 2).max(1);
                continue;
            }
            self.select(
                &mut keys,
                &mut counts,
                &mut kept,
                &mut thr,
                &mut out,
                nq,
                cap,
                k,
            )?;
            start = end;
        }
        let kept = self.download(&kept)?;
        let all = self.download(&out)?;
        Ok((0..nq)
            .map(|i| {
                all[i * k..][..kept[i] as usize]
                    .iter()
                    .map(|&key| decode(key))
                    .collect()
            })
            .collect())
    }

    #[allow(clippy::too_many_arguments)]
    fn score_filter(
        &self,
        corpus: &GpuCorpus,
        q: &CudaSlice<u16>,
        nq: usize,
        r0: usize,
        r1: usize,
        thr: &CudaSlice<f32>,
        keys: &mut CudaSlice<u64>,
        counts: &mut CudaSlice<u32>,
        cap: usize,
    ) -> GpuResult<()> {
        if r1 <= r0 {
            return Ok(());
        }
        let name = match corpus.dim {
            64 => "topk_score_filter_d64",
            128 => "topk_score_filter_d128",
            _ => "topk_score_filter_d256",
        };
        let tiles = (r1 - r0).div_ceil(16);
        let blocks = tiles.div_ceil(4).min(self.sm_count() as usize * 8).max(1);
        let cfg = LaunchConfig {
            grid_dim: (blocks as u32, 1, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: 0,
        };
        let (nq, r0, r1, cap) = (
            as_i32("queries", nq)?,
            r0 as i64,
            r1 as i64,
            as_i32("cap", cap)?,
        );
        let null = 0u64;
        let func = self.function(name)?;
        let mut b = self.stream().launch_builder(func);
        b.arg(q).arg(&nq).arg(&corpus.data);
        match &corpus.eligible {
            Some(e) => b.arg(e),
            None => b.arg(&null),
        };
        b.arg(&r0).arg(&r1).arg(thr).arg(keys).arg(counts).arg(&cap);
        // SAFETY: matches topk_score_filter_d*(const bf16*, int, const bf16*,
        // const u32*, long long, long long, const float*, u64*, u32*, int);
        // rows are bounded by r1 <= corpus rows, queries by nq <= 64.
        unsafe { b.launch(cfg) }?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn select(
        &self,
        keys: &mut CudaSlice<u64>,
        counts: &mut CudaSlice<u32>,
        kept: &mut CudaSlice<u32>,
        thr: &mut CudaSlice<f32>,
        out: &mut CudaSlice<u64>,
        nq: usize,
        cap: usize,
        k: usize,
    ) -> GpuResult<()> {
        // Within the limit raised once at load (8 x MAX_K bytes).
        let smem = 8 * k.next_power_of_two();
        self.check_smem(&format!("top-k with k = {k}"), smem)?;
        let func = self.function("topk_select")?;
        let cfg = LaunchConfig {
            grid_dim: (nq as u32, 1, 1),
            block_dim: (1024, 1, 1),
            shared_mem_bytes: smem as u32,
        };
        let (cap, k) = (as_i32("cap", cap)?, as_i32("k", k)?);
        let mut b = self.stream().launch_builder(func);
        b.arg(keys)
            .arg(counts)
            .arg(kept)
            .arg(thr)
            .arg(&cap)
            .arg(&k)
            .arg(out);
        // SAFETY: matches topk_select(u64*, u32*, u32*, float*, int, int, u64*);
        // `out` holds nq * k keys;
        // the dynamic shared memory holds next_pow2(k) keys.
        unsafe { b.launch(cfg) }?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn keys_decode_to_index_and_score() {
        // make_key(-1.5, 7) and make_key(2.0, 0), built as topk.cu does.
        let order = |f: f32| {
            let u = f.to_bits();
            if u & 0x8000_0000 != 0 {
                !u
            } else {
                u | 0x8000_0000
            }
        };
        let key = |s: f32, i: u32| (u64::from(order(s)) << 32) | u64::from(0xffff_ffff - i);
        assert_eq!(decode(key(-1.5, 7)), (7, -1.5));
        assert_eq!(decode(key(2.0, 0)), (0, 2.0));
        assert!(key(2.0, 0) > key(2.0, 1) && key(2.0, 1) > key(-1.5, 0));
    }
}
