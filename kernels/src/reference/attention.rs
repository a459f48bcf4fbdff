//! Reference for `attention_d*` (kernels/src/cu/attention.cu): candidate
//! isolation (queries against context keys plus their own key) and the causal
//! context pass.

use half::bf16;

use super::round_bf16;

/// Shapes and options of one attention call; the layouts are the kernel's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionShape {
    /// Batch rows B.
    pub batch: usize,
    /// Query tokens per row T (== `context` in the causal pass).
    pub queries: usize,
    /// Context keys per row S.
    pub context: usize,
    /// Query heads Hq.
    pub q_heads: usize,
    /// Key/value heads Hkv (divides Hq).
    pub kv_heads: usize,
    /// Head width D (32, 64 or 128 on the GPU).
    pub head_dim: usize,
    /// Causal pass: query t sees context keys j <= t.
    pub causal: bool,
    /// Logit multiplier.
    pub mult: f32,
    /// Soft cap (0: none).
    pub cap: f32,
    /// Round q.k to bf16 before the multiplier (the reference's bf16 mode).
    pub round_logits: bool,
}

impl AttentionShape {
    /// Elements of `q` and `out`: `B * T * Hq * D`.
    pub fn q_len(&self) -> usize {
        self.batch * self.queries * self.q_heads * self.head_dim
    }

    /// Elements of the context K (or V): `B * Hkv * S * D`.
    pub fn kv_len(&self) -> usize {
        self.batch * self.kv_heads * self.context * self.head_dim
    }

    /// Elements of the self K (or V): `B * Hkv * T * D`.
    pub fn self_kv_len(&self) -> usize {
        self.batch * self.kv_heads * self.queries * self.head_dim
    }

    /// Useful multiply-adds x 2 (QK and PV over the allowed pairs only).
    pub fn flops(&self, with_self: bool) -> f64 {
        let (t, s) = (self.queries as f64, self.context as f64);
        let pairs = if self.causal {
            t * (t + 1.0) / 2.0
        } else {
            t * (s + f64::from(u8::from(with_self)))
        };
        4.0 * pairs * (self.batch * self.q_heads * self.head_dim) as f64
    }
}

/// The logit transform of the contract.
pub fn transform_logit(x: f32, shape: &AttentionShape) -> f32 {
    let x = if shape.round_logits { round_bf16(x) } else { x };
    let y = x * shape.mult;
    if shape.cap > 0.0 {
        shape.cap * (y / shape.cap).tanh()
    } else {
        y
    }
}

fn dot(a: &[bf16], b: &[bf16]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(x.to_f32()) * f64::from(y.to_f32()))
        .sum::<f64>() as f32
}

/// The queries' own keys, values and validity (candidate isolation).
#[derive(Debug, Clone, Copy)]
pub struct SelfKv<'a> {
    /// `[B, Hkv, T, D]`.
    pub k: &'a [bf16],
    /// `[B, Hkv, T, D]`.
    pub v: &'a [bf16],
    /// `[B, T]`, 1 = valid; `None`: all valid.
    pub valid: Option<&'a [u8]>,
}

/// Attention output `[B, T, Hq, D]` in f32 (softmax in f64).
pub fn attention(
    shape: &AttentionShape,
    q: &[bf16],
    kc: &[bf16],
    vc: &[bf16],
    key_valid: &[u8],
    self_kv: Option<SelfKv<'_>>,
) -> Vec<f32> {
    let AttentionShape {
        batch,
        queries: t_len,
        context: s_len,
        q_heads: hq,
        kv_heads: hkv,
        head_dim: d,
        causal,
        ..
    } = *shape;
    let g = hq / hkv;
    let mut out = vec![0f32; shape.q_len()];
    let mut logits = Vec::with_capacity(s_len + 1);
    for b in 0..batch {
        for t in 0..t_len {
            for h in 0..hq {
                let kvh = h / g;
                let qrow = &q[((b * t_len + t) * hq + h) * d..][..d];
                let kv_at = |j: usize| ((b * hkv + kvh) * s_len + j) * d;
                logits.clear();
                for j in 0..s_len {
                    let x = transform_logit(dot(qrow, &kc[kv_at(j)..][..d]), shape);
                    let visible = key_valid[b * s_len + j] != 0 && !(causal && j > t);
                    logits.push(if visible { f64::from(x) } else { -1e30 });
                }
                let self_at = ((b * hkv + kvh) * t_len + t) * d;
                if let Some(sk) = self_kv {
                    let x = transform_logit(dot(qrow, &sk.k[self_at..][..d]), shape);
                    let ok = sk.valid.is_none_or(|v| v[b * t_len + t] != 0);
                    logits.push(if ok { f64::from(x) } else { -1e30 });
                }
                let m = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let w: Vec<f64> = logits.iter().map(|&x| (x - m).exp()).collect();
                let z: f64 = w.iter().sum();
                let orow = &mut out[((b * t_len + t) * hq + h) * d..][..d];
                for (e, o) in orow.iter_mut().enumerate() {
                    let mut acc = 0f64;
                    for (j, wj) in w.iter().enumerate().take(s_len) {
                        acc += wj * f64::from(vc[kv_at(j) + e].to_f32());
                    }
                    if let Some(sk) = self_kv {
                        acc += w[s_len] * f64::from(sk.v[self_at + e].to_f32());
                    }
                    *o = (acc / z) as f32;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::to_bf16;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn rand_bf16(rng: &mut ChaCha8Rng, n: usize) -> Vec<bf16> {
        to_bf16(
            &(0..n)
                .map(|_| rng.random_range(-1.0f32..1.0))
                .collect::<Vec<_>>(),
        )
    }

    /// Candidate isolation equals dense masked attention over the sequence
    /// `[context | candidates]` where candidate i sees the context and itself.
    #[test]
    fn isolation_equals_dense_masked_attention_over_the_whole_sequence() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let (s, c, hq, hkv, d) = (6, 4, 4, 2, 8);
        let shape = AttentionShape {
            batch: 1,
            queries: c,
            context: s,
            q_heads: hq,
            kv_heads: hkv,
            head_dim: d,
            causal: false,
            mult: 0.5,
            cap: 30.0,
            round_logits: false,
        };
        let q = rand_bf16(&mut rng, shape.q_len());
        let kc = rand_bf16(&mut rng, shape.kv_len());
        let vc = rand_bf16(&mut rng, shape.kv_len());
        let ks = rand_bf16(&mut rng, shape.self_kv_len());
        let vs = rand_bf16(&mut rng, shape.self_kv_len());
        let key_valid = [1, 1, 0, 1, 1, 0];
        let self_valid = [1, 0, 1, 1];
        let got = attention(
            &shape,
            &q,
            &kc,
            &vc,
            &key_valid,
            Some(SelfKv {
                k: &ks,
                v: &vs,
                valid: Some(&self_valid),
            }),
        );
        // Dense: keys = context then candidates; mask by hand.
        let g = hq / hkv;
        for i in 0..c {
            for h in 0..hq {
                let kvh = h / g;
                let qrow = &q[(i * hq + h) * d..][..d];
                let mut logits = Vec::new();
                let mut vals = Vec::new();
                #[allow(clippy::needless_range_loop)]
                for j in 0..s + c {
                    let (k, v) = if j < s {
                        let at = (kvh * s + j) * d;
                        (&kc[at..at + d], &vc[at..at + d])
                    } else {
                        let at = (kvh * c + (j - s)) * d;
                        (&ks[at..at + d], &vs[at..at + d])
                    };
                    let allowed = if j < s {
                        key_valid[j] == 1
                    } else {
                        j - s == i && self_valid[i] == 1
                    };
                    let x = transform_logit(dot(qrow, k), &shape);
                    // Other candidates are not keys at all for this query.
                    if j >= s && j - s != i {
                        continue;
                    }
                    logits.push(if allowed { f64::from(x) } else { -1e30 });
                    vals.push(v);
                }
                let m = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let w: Vec<f64> = logits.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = w.iter().sum();
                for e in 0..d {
                    let want: f64 = w
                        .iter()
                        .zip(&vals)
                        .map(|(w, v)| w * f64::from(v[e].to_f32()))
                        .sum::<f64>()
                        / z;
                    let have = got[(i * hq + h) * d + e];
                    assert!((f64::from(have) - want).abs() < 1e-6, "{have} vs {want}");
                }
            }
        }
    }

    #[test]
    fn causal_pass_ignores_later_and_padded_keys() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let shape = AttentionShape {
            batch: 1,
            queries: 5,
            context: 5,
            q_heads: 2,
            kv_heads: 1,
            head_dim: 4,
            causal: true,
            mult: 1.0,
            cap: 0.0,
            round_logits: false,
        };
        let q = rand_bf16(&mut rng, shape.q_len());
        let k = rand_bf16(&mut rng, shape.kv_len());
        let mut v = rand_bf16(&mut rng, shape.kv_len());
        let valid = [1, 1, 0, 1, 1];
        let base = attention(&shape, &q, &k, &v, &valid, None);
        // Query 0 sees only key 0: its output is v_0 exactly.
        for e in 0..4 {
            assert!((base[e] - v[e].to_f32()).abs() < 1e-6);
        }
        // Changing a padded key's value, or the last key's value, leaves
        // every earlier query unchanged.
        v[2 * 4] = bf16::from_f32(9.0);
        v[4 * 4 + 1] = bf16::from_f32(-9.0);
        let after = attention(&shape, &q, &k, &v, &valid, None);
        assert_eq!(base[..4 * 2 * 4], after[..4 * 2 * 4]);
        assert_ne!(base[4 * 2 * 4..], after[4 * 2 * 4..]);
    }

    #[test]
    fn flops_count_only_allowed_pairs() {
        let mut shape = AttentionShape {
            batch: 2,
            queries: 10,
            context: 20,
            q_heads: 4,
            kv_heads: 2,
            head_dim: 8,
            causal: false,
            mult: 1.0,
            cap: 0.0,
            round_logits: false,
        };
        assert_eq!(shape.flops(true), 4.0 * 10.0 * 21.0 * 2.0 * 4.0 * 8.0);
        shape.causal = true;
        shape.context = 10;
        assert_eq!(shape.flops(false), 4.0 * 55.0 * 2.0 * 4.0 * 8.0);
    }
}
