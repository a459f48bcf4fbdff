//! The GEMM attention path as data: every launch and cuBLAS product of one
//! call, with its arguments and its operands as element offsets into named
//! buffers. `cuda::attention_gemm` (feature `cuda`) executes a plan on the
//! device; `kernels/tests/emulate_attention_gemm.rs` executes the same plan
//! with the real kernel source compiled for the host (so the leading
//! dimensions, strides, transposes and chunk offsets are checked without a
//! GPU). Always built: planning needs no CUDA.

use crate::reference::attention::AttentionShape;

/// Most workspace bytes the GEMM path holds by default; a batch that needs
/// more runs in chunks of batch rows.
pub const GEMM_ATTENTION_WORKSPACE: usize = 1 << 30;

/// The buffers a plan names: the call's arguments, then its workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buf {
    /// Queries `[B, T, Hq, D]` bf16.
    Q,
    /// Context keys `[B, Hkv, S, D]` bf16.
    Kc,
    /// Context values `[B, Hkv, S, D]` bf16.
    Vc,
    /// `[B, S]` u8.
    KeyValid,
    /// The queries' own keys `[B, Hkv, T, D]` bf16.
    Ks,
    /// The queries' own values `[B, Hkv, T, D]` bf16.
    Vs,
    /// `[B, T]` u8.
    SelfValid,
    /// Output `[B, T, Hq, D]` bf16.
    Out,
    /// Stacked queries (workspace) `[chunk, Hkv, T*G, D]` bf16.
    Qs,
    /// Scores (workspace) `[chunk, Hkv, T*G, ldx]`, bf16 or f32.
    X,
    /// Weights (workspace) `[chunk, Hkv, T*G, ldx]` bf16.
    P,
    /// Self weights (workspace) `[chunk, Hkv, T*G]` f32.
    Pself,
    /// Weighted values (workspace) `[chunk, Hkv, T*G, D]` f32.
    O,
}

impl Buf {
    /// Bytes per element (`x_bf16`: whether X is stored as bf16).
    pub fn elem_bytes(self, x_bf16: bool) -> usize {
        match self {
            Buf::KeyValid | Buf::SelfValid => 1,
            Buf::Pself | Buf::O => 4,
            Buf::X if !x_bf16 => 4,
            _ => 2,
        }
    }

    /// The name the host emulation uses.
    pub fn name(self) -> &'static str {
        match self {
            Buf::Q => "q",
            Buf::Kc => "kc",
            Buf::Vc => "vc",
            Buf::KeyValid => "key_valid",
            Buf::Ks => "ks",
            Buf::Vs => "vs",
            Buf::SelfValid => "self_valid",
            Buf::Out => "out",
            Buf::Qs => "qs",
            Buf::X => "x",
            Buf::P => "p",
            Buf::Pself => "pself",
            Buf::O => "o",
        }
    }
}

/// An operand: a buffer and an element offset into it.
pub type At = (Buf, usize);

/// One column-major strided-batched product `C_i = op(A_i) B_i` (bf16
/// operands, f32 accumulation), cuBLAS's `GemmStridedBatchedEx` arguments.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GemmStep {
    /// `op(A) = A^T` when set.
    pub transpose_a: bool,
    /// Rows of op(A) and C.
    pub m: usize,
    /// Columns of B and C.
    pub n: usize,
    /// The inner dimension.
    pub k: usize,
    /// A, its leading dimension and batch stride.
    pub a: (At, usize, usize),
    /// B, its leading dimension and batch stride.
    pub b: (At, usize, usize),
    /// C, its leading dimension and batch stride.
    pub c: (At, usize, usize),
    /// C is bf16 (else f32).
    pub c_bf16: bool,
    /// Products.
    pub batch: usize,
}

/// One step of a plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// `gqa_stack_q` over `batch` rows: `qs` from `q`.
    Stack {
        /// Source queries.
        q: At,
        /// Destination.
        qs: At,
        /// Batch rows of this chunk.
        batch: usize,
        /// Blocks of 256 threads (a grid-stride loop).
        grid: usize,
    },
    /// A cuBLAS product.
    Gemm(GemmStep),
    /// `gqa_softmax_bf16s` (X bf16) or `gqa_softmax_f32s`.
    Softmax {
        /// Scores.
        x: At,
        /// Stacked queries.
        qs: At,
        /// The self keys and validity, or none (null).
        ks: Option<At>,
        /// Self validity, or none (all valid).
        self_valid: Option<At>,
        /// Key validity.
        key_valid: At,
        /// Weights out.
        p: At,
        /// Self weights out.
        pself: At,
        /// Batch rows of this chunk.
        batch: usize,
        /// Blocks of 256 threads (8 rows each).
        grid: usize,
    },
    /// `gqa_unstack_out` over `batch` rows.
    Unstack {
        /// Weighted values.
        o: At,
        /// Self weights.
        pself: At,
        /// Self values, or none (no self term).
        vs: Option<At>,
        /// Output.
        out: At,
        /// Batch rows of this chunk.
        batch: usize,
        /// Blocks of 256 threads (a grid-stride loop).
        grid: usize,
    },
}

/// Every step of one call and the workspace they need.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The steps, in stream order.
    pub steps: Vec<Step>,
    /// Batch rows per chunk.
    pub chunk: usize,
    /// Row pitch of X and P: S rounded up to a multiple of 8, so each row
    /// starts 16-byte aligned for cuBLAS's vector paths.
    pub ldx: usize,
    /// Elements of Qs and of O.
    pub qs_len: usize,
    /// Elements of X and of P.
    pub x_len: usize,
    /// Elements of pself.
    pub pself_len: usize,
    /// X is stored as bf16 (`round_logits`), else f32.
    pub x_bf16: bool,
}

/// Per batch row: stacked rows R = T * G, and the workspace bytes.
pub fn per_batch_row(s: &AttentionShape) -> (usize, usize) {
    let r = s.queries * (s.q_heads / s.kv_heads.max(1));
    let score_bytes = if s.round_logits { 2 } else { 4 };
    let rows = s.kv_heads * r;
    let ldx = s.context.next_multiple_of(8);
    let bytes = rows * (s.head_dim * 2 + ldx * (score_bytes + 2) + 4 + s.head_dim * 4);
    (r, bytes)
}

/// Grid of a grid-stride loop over `n` items, 256 per block.
fn stride_grid(n: usize) -> usize {
    n.div_ceil(256).clamp(1, 1 << 20)
}

/// The plan of one call: `self_kv` and `self_valid` say whether the self
/// term (and its validity mask) are given; `limit` bounds the workspace.
/// The shape must already be checked (kv heads divide query heads, D a
/// multiple of 8, nothing empty).
pub fn plan(s: &AttentionShape, self_kv: bool, self_valid: bool, limit: usize) -> Plan {
    let (r, bytes) = per_batch_row(s);
    let chunk = (limit / bytes.max(1)).clamp(1, s.batch.max(1));
    let (hkv, d, t, sl, hq) = (s.kv_heads, s.head_dim, s.queries, s.context, s.q_heads);
    let ldx = sl.next_multiple_of(8);
    let mut steps = Vec::new();
    let mut b0 = 0;
    while b0 < s.batch {
        let nb = chunk.min(s.batch - b0);
        let vecs = nb * t * hq * d / 8;
        steps.push(Step::Stack {
            q: (Buf::Q, b0 * t * hq * d),
            qs: (Buf::Qs, 0),
            batch: nb,
            grid: stride_grid(vecs),
        });
        // X[i] = Qs[i] Kc[i]^T for i = (b, h): column-major
        // X^T[S, R] = Kc[S, D] (the transposed view) x Qs^T[D, R].
        steps.push(Step::Gemm(GemmStep {
            transpose_a: true,
            m: sl,
            n: r,
            k: d,
            a: ((Buf::Kc, b0 * hkv * sl * d), d, sl * d),
            b: ((Buf::Qs, 0), d, r * d),
            c: ((Buf::X, 0), ldx, r * ldx),
            c_bf16: s.round_logits,
            batch: nb * hkv,
        }));
        steps.push(Step::Softmax {
            x: (Buf::X, 0),
            qs: (Buf::Qs, 0),
            ks: self_kv.then_some((Buf::Ks, b0 * hkv * t * d)),
            self_valid: (self_kv && self_valid).then_some((Buf::SelfValid, b0 * t)),
            key_valid: (Buf::KeyValid, b0 * sl),
            p: (Buf::P, 0),
            pself: (Buf::Pself, 0),
            batch: nb,
            grid: (nb * hkv * r).div_ceil(8),
        });
        // O[i] = P[i] Vc[i]: column-major O^T[D, R] = Vc^T[D, S] x P^T[S, R].
        steps.push(Step::Gemm(GemmStep {
            transpose_a: false,
            m: d,
            n: r,
            k: sl,
            a: ((Buf::Vc, b0 * hkv * sl * d), d, sl * d),
            b: ((Buf::P, 0), ldx, r * ldx),
            c: ((Buf::O, 0), d, r * d),
            c_bf16: false,
            batch: nb * hkv,
        }));
        steps.push(Step::Unstack {
            o: (Buf::O, 0),
            pself: (Buf::Pself, 0),
            vs: self_kv.then_some((Buf::Vs, b0 * hkv * t * d)),
            out: (Buf::Out, b0 * t * hq * d),
            batch: nb,
            grid: stride_grid(vecs),
        });
        b0 += nb;
    }
    Plan {
        steps,
        chunk,
        ldx,
        qs_len: chunk * hkv * r * d,
        x_len: chunk * hkv * r * ldx,
        pself_len: chunk * hkv * r,
        x_bf16: s.round_logits,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(b: usize, t: usize, s: usize, round: bool) -> AttentionShape {
        AttentionShape {
            batch: b,
            queries: t,
            context: s,
            q_heads: 20,
            kv_heads: 4,
            head_dim: 128,
            causal: false,
            mult: 1.0,
            cap: 30.0,
            round_logits: round,
        }
    }

    #[test]
    fn workspace_per_batch_row_counts_every_intermediate() {
        // Prod shape: R = 1400 * 5; per kv head row: Qs 256 B, X 2 B and P
        // 2 B per key (1025 keys, rows padded to 1032), pself 4 B, O 512 B.
        let (r, bytes) = per_batch_row(&shape(1, 1400, 1025, true));
        assert_eq!(r, 7000);
        assert_eq!(bytes, 4 * 7000 * (256 + 1032 * 4 + 4 + 512));
        // f32 scores take two more bytes per key.
        let (_, wide) = per_batch_row(&shape(1, 1400, 1025, false));
        assert_eq!(wide - bytes, 4 * 7000 * 1032 * 2);
        // 64 prod rows do not fit in one workspace: they run in chunks.
        assert!(64 * bytes > GEMM_ATTENTION_WORKSPACE);
        assert!(bytes < GEMM_ATTENTION_WORKSPACE);
    }

    #[test]
    fn chunks_cover_every_batch_row_once_within_the_workspace() {
        let s = shape(64, 1400, 1025, true);
        let p = plan(&s, true, true, GEMM_ATTENTION_WORKSPACE);
        let (_, bytes) = per_batch_row(&s);
        assert_eq!(p.chunk, GEMM_ATTENTION_WORKSPACE / bytes);
        assert!(p.chunk * bytes <= GEMM_ATTENTION_WORKSPACE);
        let mut next_row = 0;
        for step in &p.steps {
            if let Step::Stack { q, batch, .. } = step {
                // Each chunk starts where the last one ended.
                assert_eq!(q.1, next_row * 1400 * 20 * 128);
                next_row += batch;
            }
        }
        assert_eq!(next_row, 64);
        assert_eq!(p.steps.len(), 5 * 64usize.div_ceil(p.chunk));
        // One chunk when it fits; the smallest workspace still makes progress.
        assert_eq!(plan(&shape(2, 10, 9, true), true, true, 1 << 30).chunk, 2);
        assert_eq!(plan(&shape(2, 10, 9, true), true, true, 1).chunk, 1);
    }

    #[test]
    fn products_read_whole_rows_and_padded_pitches() {
        let p = plan(&shape(1, 3, 9, false), false, false, 1 << 30);
        assert_eq!(p.ldx, 16);
        let gemms: Vec<&GemmStep> = p
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Gemm(g) => Some(g),
                _ => None,
            })
            .collect();
        let (qk, pv) = (gemms[0], gemms[1]);
        assert!(qk.transpose_a && !pv.transpose_a);
        assert_eq!((qk.m, qk.n, qk.k), (9, 15, 128));
        assert_eq!(qk.c.1, 16, "X rows are ldx apart");
        assert_eq!(
            (pv.m, pv.n, pv.k),
            (128, 15, 9),
            "P's padding is never read"
        );
        assert_eq!(pv.b.1, 16);
        assert!(!qk.c_bf16, "f32 scores without round_logits");
        assert!(p.steps.iter().all(|s| !matches!(
            s,
            Step::Softmax { ks: Some(_), .. } | Step::Unstack { vs: Some(_), .. }
        )));
    }
}
