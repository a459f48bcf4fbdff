//! Reference for the GEMM attention path (kernels/src/cu/attention_gemm.cu):
//! each of its steps on the CPU, on the same intermediate layouts (X and P
//! rows here are S apart; on the device `ldx`, S rounded up to 8), with the
//! same roundings (scores to bf16 when `round_logits`, softmax weights to
//! bf16 before the PV product, one bf16 rounding of the output). Composed,
//! it is the contract of [`super::attention::attention`]; the tests check
//! that, and the GPU contract test and the host emulation
//! (`tests/emulate_attention_gemm.rs`) check the kernels against both.

use half::bf16;

use super::attention::{AttentionShape, SelfKv, transform_logit};
use super::round_bf16;

/// `a . b` summed in f32, as the device's products accumulate (the
/// contract's reference sums in f64).
fn dot_f32(a: &[bf16], b: &[bf16]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x.to_f32() * y.to_f32()).sum()
}

/// Query heads per kv head, and stacked rows per (batch row, kv head).
fn stacked(s: &AttentionShape) -> (usize, usize) {
    let g = s.q_heads / s.kv_heads;
    (g, s.queries * g)
}

/// `gqa_stack_q`: `q [B, T, Hq, D]` to `Qs [B, Hkv, T*G, D]`, row
/// `t*G + g` of kv head h holding query head `h*G + g` of token t.
pub fn stack_q(s: &AttentionShape, q: &[bf16]) -> Vec<bf16> {
    let (g, r) = stacked(s);
    let d = s.head_dim;
    let mut out = vec![bf16::ZERO; s.q_len()];
    for b in 0..s.batch {
        for h in 0..s.kv_heads {
            for t in 0..s.queries {
                for gi in 0..g {
                    let dst = ((b * s.kv_heads + h) * r + t * g + gi) * d;
                    let src = ((b * s.queries + t) * s.q_heads + h * g + gi) * d;
                    out[dst..dst + d].copy_from_slice(&q[src..src + d]);
                }
            }
        }
    }
    out
}

/// The first GEMM: `X[b,h] = Qs[b,h] Kc[b,h]^T` (`[B, Hkv, T*G, S]`), f32
/// sums, rounded to bf16 when the kernel stores X as bf16.
pub fn scores(s: &AttentionShape, qs: &[bf16], kc: &[bf16]) -> Vec<f32> {
    let (_, r) = stacked(s);
    let (d, sl) = (s.head_dim, s.context);
    let mut x = vec![0f32; s.batch * s.kv_heads * r * sl];
    for bh in 0..s.batch * s.kv_heads {
        for row in 0..r {
            let qr = &qs[(bh * r + row) * d..][..d];
            for j in 0..sl {
                let kr = &kc[(bh * sl + j) * d..][..d];
                let dot = dot_f32(qr, kr);
                x[(bh * r + row) * sl + j] = if s.round_logits { round_bf16(dot) } else { dot };
            }
        }
    }
    x
}

/// `gqa_softmax_*`: per stacked row, the transformed and masked logits and
/// the self logit, softmax in f32; returns `P` (`[B, Hkv, T*G, S]`) and the
/// self weights (`[B, Hkv, T*G]`), both rounded to bf16.
pub fn softmax_rows(
    s: &AttentionShape,
    x: &[f32],
    qs: &[bf16],
    key_valid: &[u8],
    self_kv: Option<SelfKv<'_>>,
) -> (Vec<bf16>, Vec<f32>) {
    let (g, r) = stacked(s);
    let (d, sl, t_len) = (s.head_dim, s.context, s.queries);
    let rows = s.batch * s.kv_heads * r;
    let mut p = vec![bf16::ZERO; rows * sl];
    let mut pself = vec![0f32; rows];
    let mut logits = vec![0f32; sl];
    for row in 0..rows {
        let bh = row / r;
        let (b, t) = (bh / s.kv_heads, (row % r) / g);
        let self_logit = self_kv.map(|sk| {
            let kr = &sk.k[(bh * t_len + t) * d..][..d];
            let dot = dot_f32(&qs[row * d..][..d], kr);
            let ok = sk.valid.is_none_or(|v| v[b * t_len + t] != 0);
            if ok { transform_logit(dot, s) } else { -1e30 }
        });
        for (j, l) in logits.iter_mut().enumerate() {
            let visible = key_valid[b * sl + j] != 0 && !(s.causal && j > t);
            *l = if visible {
                transform_logit(x[row * sl + j], s)
            } else {
                -1e30
            };
        }
        let m = logits
            .iter()
            .copied()
            .chain(self_logit)
            .fold(f32::NEG_INFINITY, f32::max);
        let z: f32 = logits.iter().map(|&l| (l - m).exp()).sum::<f32>()
            + self_logit.map_or(0.0, |l| (l - m).exp());
        for (j, &l) in logits.iter().enumerate() {
            p[row * sl + j] = bf16::from_f32((l - m).exp() / z);
        }
        pself[row] = self_logit.map_or(0.0, |l| round_bf16((l - m).exp() / z));
    }
    (p, pself)
}

/// The second GEMM: `O[b,h] = P[b,h] Vc[b,h]` (`[B, Hkv, T*G, D]`, f32).
pub fn weighted_values(s: &AttentionShape, p: &[bf16], vc: &[bf16]) -> Vec<f32> {
    let (_, r) = stacked(s);
    let (d, sl) = (s.head_dim, s.context);
    let mut o = vec![0f32; s.batch * s.kv_heads * r * d];
    for bh in 0..s.batch * s.kv_heads {
        for row in 0..r {
            let orow = &mut o[(bh * r + row) * d..][..d];
            for j in 0..sl {
                let w = p[(bh * r + row) * sl + j].to_f32();
                let vr = &vc[(bh * sl + j) * d..][..d];
                for (oe, ve) in orow.iter_mut().zip(vr) {
                    *oe += w * ve.to_f32();
                }
            }
        }
    }
    o
}

/// `gqa_unstack_out`: `out[b, t, h*G + g, :] = bf16(O[b,h][t*G + g, :] +
/// pself * vs[b,h][t, :])`, widened back to f32.
pub fn unstack_out(s: &AttentionShape, o: &[f32], pself: &[f32], vs: Option<&[bf16]>) -> Vec<f32> {
    let (g, r) = stacked(s);
    let d = s.head_dim;
    let mut out = vec![0f32; s.q_len()];
    for b in 0..s.batch {
        for t in 0..s.queries {
            for hq in 0..s.q_heads {
                let (h, gi) = (hq / g, hq % g);
                let row = (b * s.kv_heads + h) * r + t * g + gi;
                let dst = &mut out[((b * s.queries + t) * s.q_heads + hq) * d..][..d];
                for (e, oe) in dst.iter_mut().enumerate() {
                    let mut acc = o[row * d + e];
                    if let Some(vs) = vs {
                        acc += pself[row]
                            * vs[((b * s.kv_heads + h) * s.queries + t) * d + e].to_f32();
                    }
                    *oe = round_bf16(acc);
                }
            }
        }
    }
    out
}

/// The whole GEMM path: [`stack_q`], [`scores`], [`softmax_rows`],
/// [`weighted_values`], [`unstack_out`]. Output `[B, T, Hq, D]`.
pub fn attention_gemm(
    s: &AttentionShape,
    q: &[bf16],
    kc: &[bf16],
    vc: &[bf16],
    key_valid: &[u8],
    self_kv: Option<SelfKv<'_>>,
) -> Vec<f32> {
    let qs = stack_q(s, q);
    let x = scores(s, &qs, kc);
    let (p, pself) = softmax_rows(s, &x, &qs, key_valid, self_kv);
    let o = weighted_values(s, &p, vc);
    unstack_out(s, &o, &pself, self_kv.map(|sk| sk.v))
}

#[cfg(test)]
mod tests {
    use super::super::attention::attention;
    use super::*;
    use crate::reference::{relative_error, to_bf16};
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn rand_bf16(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<bf16> {
        to_bf16(
            &(0..n)
                .map(|_| rng.random_range(-scale..scale))
                .collect::<Vec<_>>(),
        )
    }

    fn shape(b: usize, t: usize, s: usize, hq: usize, hkv: usize, causal: bool) -> AttentionShape {
        AttentionShape {
            batch: b,
            queries: t,
            context: s,
            q_heads: hq,
            kv_heads: hkv,
            head_dim: 16,
            causal,
            mult: 0.25,
            cap: 30.0,
            round_logits: true,
        }
    }

    #[test]
    fn stack_puts_each_query_head_under_its_kv_head() {
        let s = shape(2, 3, 4, 6, 2, false);
        // Element value = its index in q, so the source of each stacked
        // element can be read back.
        let q: Vec<bf16> = (0..s.q_len()).map(|i| bf16::from_f32(i as f32)).collect();
        let qs = stack_q(&s, &q);
        let (g, r, d) = (3, 9, 16);
        for b in 0..2 {
            for h in 0..2 {
                for t in 0..3 {
                    for gi in 0..g {
                        let got = qs[((b * 2 + h) * r + t * g + gi) * d].to_f32() as usize;
                        assert_eq!(got, ((b * 3 + t) * 6 + h * g + gi) * d);
                    }
                }
            }
        }
        // Unstacking (no self term) is the inverse of stacking.
        let back = unstack_out(&s, &crate::reference::to_f32(&qs), &[], None);
        assert_eq!(back, crate::reference::to_f32(&q));
    }

    #[test]
    fn gemm_path_matches_the_attention_contract() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        // (B, T, S, Hq, Hkv, causal, round_logits, cap)
        for (b, t, sl, hq, hkv, causal, round, cap) in [
            (2, 5, 7, 4, 2, false, true, 30.0),
            (1, 9, 9, 6, 2, true, true, 30.0),
            (3, 4, 6, 2, 2, false, false, 0.0),
            (1, 6, 6, 3, 1, true, false, 30.0),
        ] {
            let s = AttentionShape {
                round_logits: round,
                cap,
                ..shape(b, t, sl, hq, hkv, causal)
            };
            let q = rand_bf16(&mut rng, s.q_len(), 2.0);
            let kc = rand_bf16(&mut rng, s.kv_len(), 2.0);
            let vc = rand_bf16(&mut rng, s.kv_len(), 1.0);
            let ks = rand_bf16(&mut rng, s.self_kv_len(), 2.0);
            let vs = rand_bf16(&mut rng, s.self_kv_len(), 1.0);
            // Key 0 always valid; some padding; one invalid self.
            let key_valid: Vec<u8> = (0..b * sl)
                .map(|i| u8::from(i % sl == 0 || i % 3 != 1))
                .collect();
            let self_valid: Vec<u8> = (0..b * t).map(|i| u8::from(i != 1)).collect();
            let self_kv = (!causal).then_some(SelfKv {
                k: &ks,
                v: &vs,
                valid: Some(&self_valid),
            });
            let want = attention(&s, &q, &kc, &vc, &key_valid, self_kv);
            let got = attention_gemm(&s, &q, &kc, &vc, &key_valid, self_kv);
            let err = relative_error(&got, &want);
            assert!(err < 1e-2, "{s:?}: rel err {err}");
        }
    }

    #[test]
    fn a_row_with_no_visible_key_averages_every_key_as_the_contract_does() {
        let s = shape(1, 2, 3, 2, 1, false);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let q = rand_bf16(&mut rng, s.q_len(), 2.0);
        let kc = rand_bf16(&mut rng, s.kv_len(), 2.0);
        let vc = rand_bf16(&mut rng, s.kv_len(), 1.0);
        let ks = rand_bf16(&mut rng, s.self_kv_len(), 2.0);
        let vs = rand_bf16(&mut rng, s.self_kv_len(), 1.0);
        let self_kv = Some(SelfKv {
            k: &ks,
            v: &vs,
            valid: Some(&[0, 0]),
        });
        let got = attention_gemm(&s, &q, &kc, &vc, &[0, 0, 0], self_kv);
        let want = attention(&s, &q, &kc, &vc, &[0, 0, 0], self_kv);
        assert!(relative_error(&got, &want) < 1e-2);
        // Uniform over the 3 keys and the self: (v0 + v1 + v2 + vs_t) / 4.
        for t in 0..2 {
            for e in 0..16 {
                let mean =
                    (0..3).map(|j| vc[j * 16 + e].to_f32()).sum::<f32>() + vs[t * 16 + e].to_f32();
                let have = got[(t * 2) * 16 + e];
                assert!((have - mean / 4.0).abs() < 2e-2, "{have} vs {}", mean / 4.0);
            }
        }
    }

    #[test]
    fn weights_of_a_row_sum_to_one() {
        let s = shape(1, 3, 5, 4, 2, false);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let q = rand_bf16(&mut rng, s.q_len(), 2.0);
        let kc = rand_bf16(&mut rng, s.kv_len(), 2.0);
        let ks = rand_bf16(&mut rng, s.self_kv_len(), 2.0);
        let vs = rand_bf16(&mut rng, s.self_kv_len(), 1.0);
        let qs = stack_q(&s, &q);
        let x = scores(&s, &qs, &kc);
        let self_kv = Some(SelfKv {
            k: &ks,
            v: &vs,
            valid: None,
        });
        let (p, pself) = softmax_rows(&s, &x, &qs, &[1, 0, 1, 1, 1], self_kv);
        for row in 0..pself.len() {
            let w = &p[row * 5..][..5];
            assert_eq!(w[1].to_f32(), 0.0, "padding gets no weight");
            let total: f32 = w.iter().map(|v| v.to_f32()).sum::<f32>() + pself[row];
            assert!((total - 1.0).abs() < 1e-2, "row {row}: {total}");
            assert!(pself[row] > 0.0);
        }
    }
}
