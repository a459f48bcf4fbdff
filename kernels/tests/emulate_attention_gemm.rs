//! The GEMM attention path without a GPU: the real kernel source compiled
//! for the host (`tests/emulate/attention_gemm_host.cpp`, AddressSanitizer
//! on where the toolchain has it) executes the plan the device would run
//! (`attention_plan::plan`), and its output is held to the attention
//! contract and to the CPU twin. This checks the kernels' index arithmetic
//! and the plan's leading dimensions, strides, transposes and chunk
//! offsets; `gpu_contract` checks the same on a GPU. Needs a C++20
//! compiler (`c++`); skipped with a message without one, unless
//! FORYOU_REQUIRE_CXX=1.

use std::fmt::Write as _;
use std::path::Path;

mod emulate;

use foryou_kernels::attention_plan::{At, Plan, Step, plan};
use foryou_kernels::reference::attention::{AttentionShape, SelfKv, attention};
use foryou_kernels::reference::attention_gemm::attention_gemm;
use foryou_kernels::reference::{relative_error, to_bf16};
use half::bf16;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn operand(at: Option<At>) -> String {
    at.map_or("- 0".into(), |(buf, off)| format!("{} {off}", buf.name()))
}

/// The plan as the harness reads it: a header line (shape, workspace
/// sizes), then one line per step.
fn plan_text(s: &AttentionShape, p: &Plan) -> String {
    let mut t = format!(
        "{} {} {} {} {} {} {} {:e} {:e} {} {} {} {} {} {}\n",
        s.queries,
        s.q_heads,
        s.kv_heads,
        s.head_dim,
        s.context,
        p.ldx,
        u8::from(s.causal),
        s.mult,
        s.cap,
        u8::from(s.round_logits),
        u8::from(p.x_bf16),
        p.qs_len,
        p.x_len,
        p.pself_len,
        s.q_len()
    );
    for step in &p.steps {
        let line = match *step {
            Step::Stack { q, qs, batch, grid } => format!(
                "stack {} {} {batch} {grid}",
                operand(Some(q)),
                operand(Some(qs))
            ),
            Step::Gemm(g) => format!(
                "gemm {} {} {} {} {} {} {} {} {} {} {} {} {} {} {}",
                u8::from(g.transpose_a),
                g.m,
                g.n,
                g.k,
                operand(Some(g.a.0)),
                g.a.1,
                g.a.2,
                operand(Some(g.b.0)),
                g.b.1,
                g.b.2,
                operand(Some(g.c.0)),
                g.c.1,
                g.c.2,
                u8::from(g.c_bf16),
                g.batch
            ),
            Step::Softmax {
                x,
                qs,
                ks,
                self_valid,
                key_valid,
                p,
                pself,
                batch,
                grid,
            } => format!(
                "softmax {} {} {} {} {} {} {} {batch} {grid}",
                operand(Some(x)),
                operand(Some(qs)),
                operand(ks),
                operand(self_valid),
                operand(Some(key_valid)),
                operand(Some(p)),
                operand(Some(pself))
            ),
            Step::Unstack {
                o,
                pself,
                vs,
                out,
                batch,
                grid,
            } => format!(
                "unstack {} {} {} {} {batch} {grid}",
                operand(Some(o)),
                operand(Some(pself)),
                operand(vs),
                operand(Some(out))
            ),
        };
        let _ = writeln!(t, "{line}");
    }
    t
}

fn bits(x: &[bf16]) -> Vec<u8> {
    x.iter().flat_map(|v| v.to_bits().to_le_bytes()).collect()
}

fn random_bf16(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<bf16> {
    to_bf16(
        &(0..n)
            .map(|_| rng.random_range(-scale..scale))
            .collect::<Vec<_>>(),
    )
}

/// One case: the harness's output for random inputs, against the contract
/// and the twin.
#[allow(clippy::too_many_arguments)]
fn run_case(
    exe: &Path,
    rng: &mut ChaCha8Rng,
    (b, t, sl, hq, hkv, d): (usize, usize, usize, usize, usize, usize),
    causal: bool,
    round: bool,
    with_self: bool,
    with_valid: bool,
    limit: usize,
) -> Plan {
    let s = AttentionShape {
        batch: b,
        queries: t,
        context: sl,
        q_heads: hq,
        kv_heads: hkv,
        head_dim: d,
        causal,
        mult: 1.0 / (d as f32).sqrt(),
        cap: 30.0,
        round_logits: round,
    };
    let q = random_bf16(rng, s.q_len(), 3.0);
    let kc = random_bf16(rng, s.kv_len(), 3.0);
    let vc = random_bf16(rng, s.kv_len(), 1.0);
    let ks = random_bf16(rng, s.self_kv_len(), 3.0);
    let vs = random_bf16(rng, s.self_kv_len(), 1.0);
    // Key 0 valid in every row; row 1's keys all padding when S allows
    // (with its self invalid too, the uniform average of the contract).
    let key_valid: Vec<u8> = (0..b * sl)
        .map(|i| u8::from(i / sl != 1 && (i % sl == 0 || rng.random_bool(0.8))))
        .collect();
    let self_valid: Vec<u8> = (0..b * t).map(|i| u8::from(i % 5 != 2)).collect();
    let self_kv = (with_self && !causal).then_some(SelfKv {
        k: &ks,
        v: &vs,
        valid: with_valid.then_some(&self_valid[..]),
    });
    let want = attention(&s, &q, &kc, &vc, &key_valid, self_kv);
    let twin = attention_gemm(&s, &q, &kc, &vc, &key_valid, self_kv);
    let p = plan(
        &s,
        self_kv.is_some(),
        with_valid && self_kv.is_some(),
        limit,
    );

    let dir = emulate::case_dir(&format!(
        "emulate_{b}_{t}_{sl}_{hq}_{hkv}_{d}_{causal}_{round}_{with_self}_{with_valid}_{limit}"
    ));
    for (name, data) in [
        ("q", bits(&q)),
        ("kc", bits(&kc)),
        ("vc", bits(&vc)),
        ("ks", bits(&ks)),
        ("vs", bits(&vs)),
        ("key_valid", key_valid.clone()),
        ("self_valid", self_valid.clone()),
    ] {
        std::fs::write(dir.join(format!("{name}.bin")), data).expect("write input");
    }
    std::fs::write(dir.join("plan.txt"), plan_text(&s, &p)).expect("write plan");
    emulate::run(exe, &dir);
    let out = std::fs::read(dir.join("out.bin")).expect("harness output");
    let got: Vec<f32> = out
        .chunks_exact(2)
        .map(|c| bf16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
        .collect();
    let (err, err_twin) = (relative_error(&got, &want), relative_error(&got, &twin));
    eprintln!(
        "{s:?} self {with_self} valid {with_valid} chunk {}: rel err {err:.2e}, vs twin {err_twin:.2e}",
        p.chunk
    );
    assert!(err < 1e-2, "{s:?}: rel err {err}");
    assert!(err_twin < 5e-3, "{s:?}: vs twin {err_twin}");
    p
}

#[test]
fn host_emulation_of_the_gemm_path_meets_the_contract() {
    let Some(exe) = emulate::build("attention_gemm_host") else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let big = 1 << 30;
    // ((B, T, S, Hq, Hkv, D), causal, round_logits, self, self validity, workspace)
    let cases = [
        ((2, 7, 13, 4, 2, 32), false, true, true, true, big),
        ((1, 9, 9, 6, 2, 16), true, true, false, false, big),
        ((3, 5, 11, 2, 1, 8), false, false, true, false, big),
        ((1, 12, 12, 3, 3, 24), true, false, false, false, big),
        ((2, 4, 6, 4, 2, 16), false, true, false, false, big),
    ];
    for (dims, causal, round, with_self, with_valid, limit) in cases {
        let p = run_case(
            &exe, &mut rng, dims, causal, round, with_self, with_valid, limit,
        );
        assert_eq!(p.chunk, dims.0, "one chunk");
    }
    // A workspace of one batch row: three chunks, each at its offsets.
    let p = run_case(
        &exe,
        &mut rng,
        (3, 6, 10, 4, 2, 16),
        false,
        true,
        true,
        true,
        1,
    );
    assert_eq!(p.chunk, 1);
    assert_eq!(p.steps.len(), 15);
}
