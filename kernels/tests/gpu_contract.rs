//! Kernels against their CPU references on fresh random inputs, on a real
//! GPU. Skipped (with a message) where no GPU is usable, unless
//! FORYOU_REQUIRE_GPU=1, which `benches/gpu/run.sh` sets on the device.
//! Every output is poisoned with NaN bits before the launch, so an element
//! the kernel fails to write fails the check.
#![cfg(feature = "cuda")]

use foryou_kernels::cuda::attention::SelfKvGpu;
use foryou_kernels::cuda::attention_gemm::GemmAttentionScratch;
use foryou_kernels::cuda::cudarc::driver::CudaSlice;
use foryou_kernels::cuda::gemm::GemmOut;
use foryou_kernels::cuda::{Gpu, GpuError, bf16_bits, bf16_values};
use foryou_kernels::reference::attention::{AttentionShape, SelfKv, attention};
use foryou_kernels::reference::attention_gemm::attention_gemm;
use foryou_kernels::reference::ops::{self, QkvShape};
use foryou_kernels::reference::topk::{check_top_k, score, top_k};
use foryou_kernels::reference::{relative_error, to_bf16, to_f32};
use half::bf16;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const NAN_BF16: u16 = 0x7fc1;

fn gpu() -> Option<Gpu> {
    match Gpu::open(0) {
        Ok(g) => Some(g),
        Err(GpuError::Unavailable(why)) => {
            assert!(
                std::env::var_os("FORYOU_REQUIRE_GPU").is_none(),
                "FORYOU_REQUIRE_GPU is set but {why}"
            );
            eprintln!("skipped: {why}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

fn seed() -> u64 {
    // Fresh inputs each run; the seed is printed so a failure can be replayed.
    let s = std::env::var("FORYOU_TEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("seed {s}");
    s
}

fn normal(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            // Sum of uniforms: close enough to normal for test data.
            let u: f32 = (0..4).map(|_| rng.random_range(-1.0f32..1.0)).sum();
            u * scale * 0.866
        })
        .collect()
}

fn mask(rng: &mut ChaCha8Rng, n: usize, p_valid: f64, first_valid_every: usize) -> Vec<u8> {
    (0..n)
        .map(|i| u8::from(i % first_valid_every == 0 || rng.random_bool(p_valid)))
        .collect()
}

/// One attention call's random inputs on the host and on the device: key 0
/// of every row valid (the user token, as in serving), 80 % of the other
/// keys and of the queries' own keys valid.
struct AttentionCase {
    shape: AttentionShape,
    q: Vec<bf16>,
    kc: Vec<bf16>,
    vc: Vec<bf16>,
    key_valid: Vec<u8>,
    ks: Vec<bf16>,
    vs: Vec<bf16>,
    self_valid: Vec<u8>,
}

/// [`AttentionCase`]'s buffers on the device, the output poisoned with NaN.
struct DeviceCase {
    q: CudaSlice<u16>,
    kc: CudaSlice<u16>,
    vc: CudaSlice<u16>,
    key_valid: CudaSlice<u8>,
    ks: CudaSlice<u16>,
    vs: CudaSlice<u16>,
    self_valid: CudaSlice<u8>,
    out: CudaSlice<u16>,
}

/// The self term on the device, except in the causal pass.
fn self_kv_gpu<'a>(
    causal: bool,
    ks: &'a CudaSlice<u16>,
    vs: &'a CudaSlice<u16>,
    valid: &'a CudaSlice<u8>,
) -> Option<SelfKvGpu<'a>> {
    (!causal).then_some(SelfKvGpu {
        k: ks,
        v: vs,
        valid: Some(valid),
    })
}

impl AttentionCase {
    #[allow(clippy::too_many_arguments)]
    fn random(
        rng: &mut ChaCha8Rng,
        (b, t, s, hq, hkv, d): (usize, usize, usize, usize, usize, usize),
        causal: bool,
        round_logits: bool,
    ) -> Self {
        let shape = AttentionShape {
            batch: b,
            queries: t,
            context: s,
            q_heads: hq,
            kv_heads: hkv,
            head_dim: d,
            causal,
            mult: 1.0 / (d as f32).sqrt(),
            cap: 30.0,
            round_logits,
        };
        Self {
            q: to_bf16(&normal(rng, shape.q_len(), 1.5)),
            kc: to_bf16(&normal(rng, shape.kv_len(), 1.5)),
            vc: to_bf16(&normal(rng, shape.kv_len(), 1.0)),
            key_valid: mask(rng, b * s, 0.8, s),
            ks: to_bf16(&normal(rng, shape.self_kv_len(), 1.5)),
            vs: to_bf16(&normal(rng, shape.self_kv_len(), 1.0)),
            self_valid: mask(rng, b * t, 0.8, usize::MAX),
            shape,
        }
    }

    /// The self term, except in the causal pass.
    fn self_kv(&self) -> Option<SelfKv<'_>> {
        (!self.shape.causal).then_some(SelfKv {
            k: &self.ks,
            v: &self.vs,
            valid: Some(&self.self_valid),
        })
    }

    /// The contract's answer.
    fn want(&self) -> Vec<f32> {
        let c = self;
        attention(&c.shape, &c.q, &c.kc, &c.vc, &c.key_valid, c.self_kv())
    }

    fn upload(&self, g: &Gpu) -> DeviceCase {
        let up = |x: &[bf16]| {
            let bits: Vec<u16> = x.iter().map(|v| v.to_bits()).collect();
            g.upload(&bits).expect("gpu call")
        };
        DeviceCase {
            q: up(&self.q),
            kc: up(&self.kc),
            vc: up(&self.vc),
            key_valid: g.upload(&self.key_valid).expect("gpu call"),
            ks: up(&self.ks),
            vs: up(&self.vs),
            self_valid: g.upload(&self.self_valid).expect("gpu call"),
            out: g
                .upload(&vec![NAN_BF16; self.shape.q_len()])
                .expect("gpu call"),
        }
    }
}

#[test]
fn attention_matches_the_reference_on_random_shapes() {
    let Some(g) = gpu() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(seed());
    // ((B, T, S, Hq, Hkv, D), causal, round_logits)
    let cases = [
        ((2, 37, 70, 4, 2, 32), false, false),
        ((1, 200, 129, 20, 4, 128), false, true),
        ((3, 75, 75, 8, 2, 64), true, false),
        ((1, 130, 130, 5, 1, 128), true, true),
        ((2, 9, 33, 2, 2, 64), false, false),
    ];
    for (dims, causal, round) in cases {
        let case = AttentionCase::random(&mut rng, dims, causal, round);
        let shape = case.shape;
        let DeviceCase {
            q,
            kc,
            vc,
            key_valid,
            ks,
            vs,
            self_valid,
            mut out,
        } = case.upload(&g);
        let sk = self_kv_gpu(causal, &ks, &vs, &self_valid);
        g.attention(&shape, &q, &kc, &vc, &key_valid, sk, &mut out)
            .expect("gpu call");
        let got = bf16_values(&g.download(&out).expect("gpu call"));
        let err = relative_error(&got, &case.want());
        eprintln!("attention {shape:?}: rel err {err:.2e}");
        assert!(err < 1e-2, "attention {shape:?}: rel err {err}");
    }
}

/// The GEMM path against the contract and against its CPU twin (same
/// roundings), including a batch split into chunks by a small workspace
/// and the scratch reused across shapes. (`benches/gpu/run.sh` runs the
/// tests named `attention_gemm` in a process of their own.)
#[test]
fn attention_gemm_path_matches_the_reference_and_its_twin() {
    let Some(g) = gpu() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(seed());
    let mut scratch = GemmAttentionScratch::default();
    // ((B, T, S, Hq, Hkv, D), causal, round_logits, workspace limit)
    let cases = [
        ((2, 37, 70, 4, 2, 32), false, false, None),
        ((1, 200, 129, 20, 4, 128), false, true, None),
        ((3, 75, 75, 8, 2, 64), true, false, None),
        ((1, 130, 130, 5, 1, 128), true, true, None),
        ((2, 9, 33, 2, 2, 64), false, false, None),
        ((3, 50, 40, 6, 2, 128), false, true, Some(1usize)),
        ((2, 24, 24, 4, 4, 8), true, true, Some(1usize)),
    ];
    for (dims, causal, round, limit) in cases {
        let case = AttentionCase::random(&mut rng, dims, causal, round);
        let shape = case.shape;
        let c = &case;
        let twin = attention_gemm(&shape, &c.q, &c.kc, &c.vc, &c.key_valid, c.self_kv());
        let DeviceCase {
            q,
            kc,
            vc,
            key_valid,
            ks,
            vs,
            self_valid,
            mut out,
        } = case.upload(&g);
        let sk = self_kv_gpu(causal, &ks, &vs, &self_valid);
        let mut small;
        let scratch = match limit {
            Some(bytes) => {
                small = GemmAttentionScratch::with_workspace_limit(bytes);
                &mut small
            }
            None => &mut scratch,
        };
        g.attention_gemm(&shape, &q, &kc, &vc, &key_valid, sk, &mut out, scratch)
            .expect("gpu call");
        let got = bf16_values(&g.download(&out).expect("gpu call"));
        let (err, err_twin) = (
            relative_error(&got, &case.want()),
            relative_error(&got, &twin),
        );
        eprintln!(
            "attention_gemm {shape:?} limit {limit:?}: rel err {err:.2e}, vs twin {err_twin:.2e}"
        );
        assert!(err < 1e-2, "attention_gemm {shape:?}: rel err {err}");
        assert!(
            err_twin < 1e-2,
            "attention_gemm {shape:?}: vs twin {err_twin}"
        );
    }
    // A shape the kernels cannot take is an error, not a launch.
    let bad = AttentionShape {
        batch: 1,
        queries: 4,
        context: 4,
        q_heads: 2,
        kv_heads: 1,
        head_dim: 12,
        causal: false,
        mult: 1.0,
        cap: 0.0,
        round_logits: true,
    };
    let z = g.zeros::<u16>(bad.q_len()).expect("gpu call");
    let mut o = g.zeros::<u16>(bad.q_len()).expect("gpu call");
    let v = g.upload(&[1u8; 4]).expect("gpu call");
    let kv = g.zeros::<u16>(bad.kv_len()).expect("gpu call");
    assert!(matches!(
        g.attention_gemm(&bad, &z, &kv, &kv, &v, None, &mut o, &mut scratch),
        Err(GpuError::Shape(_))
    ));
}

#[test]
fn top_k_matches_the_reference_with_ties_eligibility_and_any_k() {
    let Some(g) = gpu() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(seed());
    for (n, d, b, k, with_bits) in [
        (20_000, 128, 5, 10, false),
        (100_000, 64, 3, 1, true),
        (150_000, 128, 70, 300, true),
        (5_000, 256, 2, 6_000, false), // k above N: every row comes back
        (90_000, 128, 2, 16_384, false),
    ] {
        let mut corpus = normal(&mut rng, n * d, 0.3);
        // Duplicate some rows so exact ties occur.
        for i in (0..n).step_by(97).skip(1) {
            let (src, dst) = corpus.split_at_mut(i * d);
            dst[..d].copy_from_slice(&src[..d]);
        }
        let corpus = to_bf16(&corpus);
        let queries = normal(&mut rng, b * d, 1.0);
        let bits: Option<Vec<u32>> = with_bits.then(|| {
            (0..n.div_ceil(32))
                .map(|_| rng.random::<u32>() | 0x8000_0001)
                .collect()
        });
        let dc = g
            .upload_corpus(
                &corpus.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                d,
                bits.as_deref(),
            )
            .expect("gpu call");
        let got = g.top_k(&dc, &queries, k).expect("gpu call");
        let qb = to_bf16(&queries);
        let want = top_k(&qb, &corpus, d, bits.as_deref(), k);
        assert_eq!(got.len(), b);
        for (i, (gq, wq)) in got.iter().zip(&want).enumerate() {
            let q = &qb[i * d..][..d];
            let exact = |r: u32| score(q, &corpus[r as usize * d..][..d]);
            check_top_k(gq, wq, exact, bits.as_deref(), 1e-3)
                .unwrap_or_else(|e| panic!("n {n} d {d} k {k} query {i}: {e}"));
        }
        eprintln!("top_k n {n} d {d} b {b} k {k}: ok");
    }
}

#[test]
fn top_k_survives_adversarial_order_through_its_overflow_path() {
    let Some(g) = gpu() else { return };
    // Scores rise with the index, so every row beats the running threshold
    // and the candidate buffer overflows until the range is halved enough.
    let (n, d, k) = (400_000, 64, 50);
    let corpus: Vec<f32> = (0..n)
        .flat_map(|i| {
            let mut row = vec![0.0f32; d];
            row[0] = 1.0 + i as f32 / n as f32;
            row[1] = (i % 7) as f32 * 1e-3;
            row
        })
        .collect();
    let corpus = to_bf16(&corpus);
    let mut q = vec![0.0f32; d];
    q[0] = 1.0;
    q[1] = 1.0;
    let dc = g
        .upload_corpus(
            &corpus.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            d,
            None,
        )
        .expect("gpu call");
    let got = g.top_k(&dc, &q, k).expect("gpu call");
    let qb = to_bf16(&q);
    let want = top_k(&qb, &corpus, d, None, k);
    let exact = |r: u32| score(&qb, &corpus[r as usize * d..][..d]);
    check_top_k(&got[0], &want[0], exact, None, 1e-3).expect("top-k agrees");
    assert_eq!(
        got[0].iter().map(|x| x.0).collect::<Vec<_>>(),
        want[0].iter().map(|x| x.0).collect::<Vec<_>>()
    );
}

#[test]
fn fused_ops_match_their_references() {
    let Some(g) = gpu() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(seed());
    let (rows, d) = (67, 2560);
    let eps = 1e-5;
    let x = normal(&mut rng, rows * d, 2.0);
    let scale: Vec<f32> = normal(&mut rng, d, 0.1).iter().map(|v| 1.0 + v).collect();
    let (dx, ds) = (
        g.upload(&x).expect("gpu call"),
        g.upload(&scale).expect("gpu call"),
    );

    let mut out = g.upload(&vec![NAN_BF16; rows * d]).expect("gpu call");
    g.rms_norm(&dx, &ds, eps, rows, true, &mut out)
        .expect("gpu call");
    let want = to_f32(&ops::rms_norm(&x, &scale, eps, true));
    let err = relative_error(&bf16_values(&g.download(&out).expect("gpu call")), &want);
    assert!(err < 5e-3, "rms_norm rel err {err}");

    let y = normal(&mut rng, rows * d, 3.0);
    let s2: Vec<f32> = normal(&mut rng, d, 0.1).iter().map(|v| 1.0 + v).collect();
    let (dy, ds2) = (
        g.upload(&y).expect("gpu call"),
        g.upload(&s2).expect("gpu call"),
    );
    let mut dh = g.upload(&x).expect("gpu call");
    let mut next = g.upload(&vec![NAN_BF16; rows * d]).expect("gpu call");
    g.residual_rms_norm(&mut dh, &dy, &ds, Some(&ds2), eps, rows, true, &mut next)
        .expect("gpu call");
    let mut h = x.clone();
    let want_next = to_f32(&ops::residual_rms_norm(
        &mut h,
        &y,
        &scale,
        Some(&s2),
        eps,
        true,
    ));
    let err_h = relative_error(&g.download(&dh).expect("gpu call"), &h);
    let err_n = relative_error(
        &bf16_values(&g.download(&next).expect("gpu call")),
        &want_next,
    );
    assert!(
        err_h < 5e-3 && err_n < 5e-3,
        "residual rel err h {err_h} next {err_n}"
    );

    let s = QkvShape {
        batch: 2,
        tokens: 19,
        q_heads: 4,
        kv_heads: 2,
        head_dim: 64,
    };
    let r = s.batch * s.tokens;
    let qkv = normal(&mut rng, r * (s.q_heads + 2 * s.kv_heads) * s.head_dim, 1.0);
    let pos: Vec<i32> = (0..r as i32).map(|i| (i * 37) % 2500).collect();
    let inv_freq: Vec<f32> = (0..s.head_dim / 2)
        .map(|i| 1.0 / 10000f32.powf((2 * i) as f32 / s.head_dim as f32))
        .collect();
    let (dqkv, dpos, dinv) = (
        g.upload(&qkv).expect("gpu call"),
        g.upload(&pos).expect("gpu call"),
        g.upload(&inv_freq).expect("gpu call"),
    );
    let mut q = g
        .upload(&vec![NAN_BF16; r * s.q_heads * s.head_dim])
        .expect("gpu call");
    let mut k = g
        .upload(&vec![NAN_BF16; r * s.kv_heads * s.head_dim])
        .expect("gpu call");
    let mut v = g
        .upload(&vec![NAN_BF16; r * s.kv_heads * s.head_dim])
        .expect("gpu call");
    g.qkv_rope(s, &dqkv, &dpos, &dinv, true, &mut q, &mut k, &mut v)
        .expect("gpu call");
    let (wq, wk, wv) = ops::qkv_rope(s, &qkv, &pos, &inv_freq, true);
    for (name, dev, want) in [("q", &q, wq), ("k", &k, wk), ("v", &v, wv)] {
        let err = relative_error(
            &bf16_values(&g.download(dev).expect("gpu call")),
            &to_f32(&want),
        );
        assert!(err < 5e-3, "qkv_rope {name} rel err {err}");
    }

    let f = 344;
    let gl = normal(&mut rng, rows * 2 * f, 2.0);
    let dgl = g.upload(&gl).expect("gpu call");
    for erf_kind in [false, true] {
        let mut out = g.upload(&vec![NAN_BF16; rows * f]).expect("gpu call");
        g.gated_gelu(&dgl, rows, f, erf_kind, true, &mut out)
            .expect("gpu call");
        let want = to_f32(&ops::gated_gelu(&gl, f, erf_kind, true));
        let err = relative_error(&bf16_values(&g.download(&out).expect("gpu call")), &want);
        assert!(err < 5e-3, "gated_gelu erf={erf_kind} rel err {err}");
    }
}

#[test]
fn gemm_matches_a_plain_product_and_writes_only_its_column_block() {
    let Some(g) = gpu() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(seed());
    let (m, k, n, ldy, off) = (77, 320, 96, 200, 40);
    let x = to_bf16(&normal(&mut rng, m * k, 1.0));
    let w = to_bf16(&normal(&mut rng, k * n, 0.05));
    let (dx, dw) = (
        g.upload(&x.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
            .expect("gpu call"),
        g.upload(&w.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
            .expect("gpu call"),
    );
    let mut y = g.upload(&vec![-7.0f32; m * ldy]).expect("gpu call");
    g.gemm_bf16(m, n, k, &dx, 0, &dw, GemmOut::F32(&mut y), off, ldy)
        .expect("gpu call");
    let y = g.download(&y).expect("gpu call");
    let mut got = Vec::new();
    let mut want = Vec::new();
    for i in 0..m {
        for j in 0..ldy {
            let v = y[i * ldy + j];
            if j < off || j >= off + n {
                assert_eq!(v, -7.0, "wrote outside its block at ({i}, {j})");
                continue;
            }
            got.push(v);
            let jj = j - off;
            want.push(
                (0..k)
                    .map(|c| f64::from(x[i * k + c].to_f32()) * f64::from(w[c * n + jj].to_f32()))
                    .sum::<f64>() as f32,
            );
        }
    }
    let err = relative_error(&got, &want);
    assert!(err < 1e-5, "gemm rel err {err}");
    let _ = bf16_bits(&[1.0]);
}

#[test]
fn gather_matches_its_reference_in_both_forms_and_touches_only_its_block() {
    let Some(g) = gpu() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(seed());
    // (dim, stride, offset): 16-byte form, then element form (odd shapes).
    for (dim, stride, offset, skip_row0) in [
        (128, 3 * 128 + 64, 64, true),
        (2560, 2 * 2560, 2560, true),
        (20, 71, 9, false),
    ] {
        let (rows, per_row, table_rows) = (53, 2, 37);
        let table: Vec<u16> = to_bf16(&normal(&mut rng, table_rows * dim, 1.0))
            .iter()
            .map(|v| v.to_bits())
            .collect();
        // Hashes in range, 0 (padding), and out of range both ways.
        let idx: Vec<i32> = (0..rows * per_row)
            .map(|_| match rng.random_range(0..10) {
                0 => 0,
                1 => table_rows as i32 + rng.random_range(0..5),
                2 => -rng.random_range(1..5),
                _ => rng.random_range(1..table_rows as i32),
            })
            .collect();
        let s = ops::GatherShape {
            rows,
            per_row,
            dim,
            table_rows,
            skip_row0,
            out_stride: stride,
            out_offset: offset,
        };
        let (didx, dtable) = (
            g.upload(&idx).expect("gpu call"),
            g.upload(&table).expect("gpu call"),
        );
        let mut out = g.upload(&vec![NAN_BF16; rows * stride]).expect("gpu call");
        g.gather_rows(&didx, &dtable, s, &mut out)
            .expect("gpu call");
        let mut want = vec![bf16::from_bits(NAN_BF16); rows * stride];
        let table_bf: Vec<bf16> = table.iter().map(|&b| bf16::from_bits(b)).collect();
        ops::gather_rows(&idx, &table_bf, s, &mut want);
        let got = g.download(&out).expect("gpu call");
        let want: Vec<u16> = want.iter().map(|v| v.to_bits()).collect();
        assert!(
            got == want,
            "gather D {dim} stride {stride} offset {offset}: first difference at {:?}",
            got.iter().zip(&want).position(|(a, b)| a != b)
        );
        eprintln!("gather D {dim} stride {stride} offset {offset}: bit-exact");
    }
}

#[test]
fn pinned_uploads_arrive_whole_when_reused_and_grown() {
    let Some(g) = gpu() else { return };
    let mut pinned = foryou_kernels::cuda::staging::Pinned::default();
    // Back to back, without a sync in between: each refill must wait for
    // the copy before it, then grow past the first allocation.
    let sizes = [1000usize, 333, (1 << 20) + 17, 5];
    let mut bufs = Vec::new();
    for (i, &n) in sizes.iter().enumerate() {
        let buf = pinned
            .upload(&g, n, |x| {
                for (j, v) in x.iter_mut().enumerate() {
                    *v = (j as u16).wrapping_mul(7).wrapping_add(i as u16);
                }
            })
            .expect("gpu call");
        bufs.push(buf);
    }
    for (i, (buf, &n)) in bufs.iter().zip(&sizes).enumerate() {
        let got = g.download(buf).expect("gpu call");
        assert_eq!(got.len(), n);
        assert!(
            got.iter()
                .enumerate()
                .all(|(j, &v)| v == (j as u16).wrapping_mul(7).wrapping_add(i as u16)),
            "upload {i} of {n} elements arrived changed"
        );
    }
}

#[test]
fn top_k_over_an_arena_written_in_place_sees_only_its_prefix_and_mask() {
    let Some(g) = gpu() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(seed());
    let (cap, d, b, k) = (50_000, 128, 4, 200);
    let mut arena = g.corpus_with_capacity(cap, d).expect("gpu call");
    // Nothing is eligible before a mask is set.
    let q = normal(&mut rng, b * d, 1.0);
    let none = g.top_k_prefix(&arena, cap, &q, k).expect("gpu call");
    assert!(none.iter().all(Vec::is_empty));
    // Two runs written at offsets, a gap between them, rows past the
    // prefix written but not asked for.
    let rows = to_bf16(&normal(&mut rng, cap * d, 0.3));
    let bits: Vec<u16> = rows.iter().map(|v| v.to_bits()).collect();
    g.write_rows(&mut arena, 0, &bits[..10_000 * d])
        .expect("gpu call");
    g.write_rows(&mut arena, 12_000, &bits[12_000 * d..40_000 * d])
        .expect("gpu call");
    g.write_rows(&mut arena, 45_000, &bits[45_000 * d..])
        .expect("gpu call");
    let prefix = 40_000;
    let mask: Vec<u32> = (0..cap.div_ceil(32))
        .map(|w| {
            let mut word = 0u32;
            for i in 0..32 {
                let r = w * 32 + i;
                // Live: written rows, one in 5 tombstoned.
                if r < cap && !(10_000..12_000).contains(&r) && r % 5 != 3 {
                    word |= 1 << i;
                }
            }
            word
        })
        .collect();
    g.set_eligible(&mut arena, &mask).expect("gpu call");
    let got = g.top_k_prefix(&arena, prefix, &q, k).expect("gpu call");
    let qb = to_bf16(&q);
    let want = top_k(&qb, &rows[..prefix * d], d, Some(&mask), k);
    for (i, (gq, wq)) in got.iter().zip(&want).enumerate() {
        assert!(gq.iter().all(|&(r, _)| (r as usize) < prefix));
        let qi = &qb[i * d..][..d];
        let exact = |r: u32| score(qi, &rows[r as usize * d..][..d]);
        check_top_k(gq, wq, exact, Some(&mask), 1e-3)
            .unwrap_or_else(|e| panic!("arena query {i}: {e}"));
    }
    // A write past the end is refused, not clipped.
    assert!(matches!(
        g.write_rows(&mut arena, cap - 1, &bits[..2 * d]),
        Err(GpuError::Shape(_))
    ));
}
