// Candidate-isolation and causal attention as two cuBLAS GEMMs around a
// row softmax: the "GEMM path" beside the flash kernel of attention.cu,
// same contract (see there and reference/attention.rs).
//
// Math, per batch row b and kv head h (G = Hq / Hkv query heads share it;
// stacked row r = t*G + g is query token t, query head h*G + g):
//   1. gqa_stack_q     Qs[b,h][r, :] = q[b, t, h*G + g, :]
//   2. cuBLAS          X[b,h] = Qs[b,h] . Kc[b,h]^T      [T*G, S], f32
//                      accumulation; stored as bf16 when round_logits (the
//                      contract's rounding of q.k), else as f32
//   3. gqa_softmax_*   s_j = cap * tanh(x_j * mult / cap); -1e30 where key j
//                      is padding or (causal) j > t; the self logit q.ks_t
//                      the same way (-1e30 when the query's self is not
//                      valid); softmax over the S keys (+ self) in f32:
//                      P[b,h][r, j] = bf16(p_j), pself[b,h][r] = bf16(p_self)
//                      (the reference rounds the weights before the PV product)
//   4. cuBLAS          O[b,h] = P[b,h] . Vc[b,h]         [T*G, D], f32
//   5. gqa_unstack     out[b, t, h*G + g, :] = bf16(O[b,h][r, :] + pself * vs[b,h][t, :])
// The causal pass (T == S) has no self term and computes the masked half
// of X too: the GEMMs do not skip it.
//
// Layouts (bf16 as raw bits, row-major): q, out [B, T, Hq, D]; kc, vc
// [B, Hkv, S, D]; ks, vs [B, Hkv, T, D]; key_valid [B, S] u8; self_valid
// [B, T] u8 or null; Qs [B, Hkv, T*G, D]; X and P [B, Hkv, T*G, S];
// pself [B, Hkv, T*G] f32; O [B, Hkv, T*G, D] f32. D is a multiple of 8.
// X and P rows are `ldx` apart (S rounded up to a multiple of 8, so every
// row starts 16-byte aligned for cuBLAS's vector paths); the padding
// columns are never read.
//
// Launch: stack and unstack, one thread per 8 elements of a row, 256-thread
// blocks (grid-stride); softmax, one warp per stacked row, 8 rows per
// 256-thread block, two passes over the row (max and sum online, then the
// weights). All three are memory-bound: X, P and O are written
// and read once each (at the prod shape, 1400 candidates x 20/4 heads x
// history 1024, X and P are 57 MB each in bf16).
//
// Checked without a GPU: kernels/tests/emulate_attention_gemm.rs compiles
// this file for the host and runs the device's plan (attention_plan.rs)
// against the contract and the CPU twin (reference/attention_gemm.rs).
// Measured: not yet on a GPU (benches/gpu/run.sh times it beside the flash
// kernel; figures land in benches/results/gpu_*.md).

#define AG_THREADS 256
#define AG_ROWS_PER_BLOCK (AG_THREADS / 32)

__device__ __forceinline__ float score_at(const float* x, size_t i) { return x[i]; }
__device__ __forceinline__ float score_at(const bf16_t* x, size_t i) { return bf16_to_f32(x[i]); }

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Qs[b, h, t*G + g, :] = q[b, t, h*G + g, :], 8 bf16 (16 bytes) per thread.
// The stacked order is q's own order within a (b, t) run of Hq heads, so
// both sides move in runs of G*D contiguous elements.
extern "C" __global__ void __launch_bounds__(AG_THREADS)
    gqa_stack_q(const bf16_t* __restrict__ q, bf16_t* __restrict__ qs, int B, int T, int Hq,
                int Hkv, int D) {
    const int G = Hq / Hkv, V = D / 8;
    const size_t n = (size_t)B * T * Hq * V;
    for (size_t i = (size_t)blockIdx.x * AG_THREADS + threadIdx.x; i < n;
         i += (size_t)gridDim.x * AG_THREADS) {
        // Destination order: [b, h, t, g, v].
        size_t rest = i;
        const int v = (int)(rest % V); rest /= V;
        const int g = (int)(rest % G); rest /= G;
        const int t = (int)(rest % T); rest /= T;
        const int h = (int)(rest % Hkv);
        const size_t b = rest / Hkv;
        const size_t src = ((b * T + t) * Hq + (size_t)h * G + g) * D + (size_t)v * 8;
        reinterpret_cast<uint4*>(qs)[i] = *reinterpret_cast<const uint4*>(q + src);
    }
}

// One warp per stacked row: transform, mask, softmax with the self term,
// P and pself out (see the header, step 3).
template <typename ST>
__device__ __forceinline__ void softmax_rows_body(
    const ST* __restrict__ x, const bf16_t* __restrict__ qs, const bf16_t* __restrict__ ks,
    const unsigned char* __restrict__ self_valid, const unsigned char* __restrict__ key_valid,
    bf16_t* __restrict__ p, float* __restrict__ pself, int B, int T, int S, int ldx, int Hq, int Hkv,
    int D, int causal, float mult, float cap, int round_logits) {
    const int G = Hq / Hkv, R = T * G;
    const int lane = threadIdx.x & 31;
    const size_t row = (size_t)blockIdx.x * AG_ROWS_PER_BLOCK + (threadIdx.x >> 5);
    const size_t rows = (size_t)B * Hkv * R;
    if (row >= rows) return;
    const size_t bh = row / R;  // b * Hkv + h
    const int r = (int)(row % R), t = r / G;
    const size_t b = bh / Hkv;
    const unsigned char* kv_ok = key_valid + b * S;
    const ST* xr = x + row * ldx;

    // The self logit: q . ks_t over D, reduced across the warp.
    const bool has_self = ks != nullptr;
    float self_logit = -1e30f;
    if (has_self) {
        const bf16_t* qr = qs + row * D;
        const bf16_t* kr = ks + (bh * T + t) * D;
        float dot = 0.0f;
        for (int e = lane; e < D; e += 32) dot += bf16_to_f32(qr[e]) * bf16_to_f32(kr[e]);
        dot = warp_sum(dot);
        if (round_logits) dot = round_bf16(dot);
        const bool ok = self_valid == nullptr || self_valid[b * T + t] != 0;
        self_logit = ok ? soft_cap(dot, mult, cap) : -1e30f;
    }
    auto logit = [&](int j) {
        float v = score_at(xr, j);
        if (round_logits) v = round_bf16(v);
        v = soft_cap(v, mult, cap);
        return (kv_ok[j] && !(causal && j > t)) ? v : -1e30f;
    };
    // One pass for the row's max and sum (online: the running sum is
    // rescaled when the max rises), combined across the warp; a second
    // pass writes the weights. Lanes start from a finite floor below any
    // logit (masked ones are -1e30), so combining two empty lanes stays 0.
    float m = -3e38f, z = 0.0f;
    for (int j = lane; j < S; j += 32) {
        // One exp per element: the sum is rescaled only when the max rises.
        const float l = logit(j);
        if (l > m) {
            z = z * __expf(m - l) + 1.0f;
            m = l;
        } else {
            z += __expf(l - m);
        }
    }
    for (int o = 16; o > 0; o >>= 1) {
        const float mo = __shfl_xor_sync(0xffffffffu, m, o);
        const float zo = __shfl_xor_sync(0xffffffffu, z, o);
        const float m2 = fmaxf(m, mo);
        z = z * __expf(m - m2) + zo * __expf(mo - m2);
        m = m2;
    }
    if (has_self) {
        const float m2 = fmaxf(m, self_logit);
        z = z * __expf(m - m2);
        m = m2;
    }
    const float e_self = has_self ? __expf(self_logit - m) : 0.0f;
    const float inv = 1.0f / (z + e_self);
    bf16_t* pr = p + row * ldx;
    for (int j = lane; j < S; j += 32) pr[j] = f32_to_bf16(__expf(logit(j) - m) * inv);
    if (lane == 0) pself[row] = has_self ? round_bf16(e_self * inv) : 0.0f;
}

// X stored as bf16 (round_logits) or as f32.
extern "C" __global__ void __launch_bounds__(AG_THREADS)
    gqa_softmax_bf16s(const bf16_t* __restrict__ x, const bf16_t* __restrict__ qs,
                      const bf16_t* __restrict__ ks, const unsigned char* __restrict__ self_valid,
                      const unsigned char* __restrict__ key_valid, bf16_t* __restrict__ p,
                      float* __restrict__ pself, int B, int T, int S, int ldx, int Hq, int Hkv,
                      int D, int causal, float mult, float cap, int round_logits) {
    softmax_rows_body<bf16_t>(x, qs, ks, self_valid, key_valid, p, pself, B, T, S, ldx, Hq, Hkv, D,
                              causal, mult, cap, round_logits);
}
extern "C" __global__ void __launch_bounds__(AG_THREADS)
    gqa_softmax_f32s(const float* __restrict__ x, const bf16_t* __restrict__ qs,
                     const bf16_t* __restrict__ ks, const unsigned char* __restrict__ self_valid,
                     const unsigned char* __restrict__ key_valid, bf16_t* __restrict__ p,
                     float* __restrict__ pself, int B, int T, int S, int ldx, int Hq, int Hkv,
                     int D, int causal, float mult, float cap, int round_logits) {
    softmax_rows_body<float>(x, qs, ks, self_valid, key_valid, p, pself, B, T, S, ldx, Hq, Hkv, D,
                             causal, mult, cap, round_logits);
}

// out[b, t, h*G + g, :] = bf16(O[b, h, t*G + g, :] + pself * vs[b, h, t, :]),
// 8 elements per thread, in out's order; vs null: no self term.
extern "C" __global__ void __launch_bounds__(AG_THREADS)
    gqa_unstack_out(const float* __restrict__ o, const float* __restrict__ pself,
                    const bf16_t* __restrict__ vs, bf16_t* __restrict__ out, int B, int T, int Hq,
                    int Hkv, int D) {
    const int G = Hq / Hkv, V = D / 8;
    const size_t n = (size_t)B * T * Hq * V;
    for (size_t i = (size_t)blockIdx.x * AG_THREADS + threadIdx.x; i < n;
         i += (size_t)gridDim.x * AG_THREADS) {
        // Output order: [b, t, hq, v], hq = h*G + g.
        size_t rest = i;
        const int v = (int)(rest % V); rest /= V;
        const int hq = (int)(rest % Hq); rest /= Hq;
        const int t = (int)(rest % T);
        const size_t b = rest / T;
        const int h = hq / G, g = hq % G;
        const size_t row = (b * Hkv + h) * ((size_t)T * G) + (size_t)t * G + g;
        const float* orow = o + row * D + (size_t)v * 8;
        float acc[8];
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[e] = orow[e];
        if (vs != nullptr) {
            const float w = pself[row];
            const bf16_t* vr = vs + ((b * Hkv + h) * T + t) * D + (size_t)v * 8;
#pragma unroll
            for (int e = 0; e < 8; ++e) acc[e] += w * bf16_to_f32(vr[e]);
        }
        uint4 packed;
        packed.x = pack_bf16x2(acc[0], acc[1]);
        packed.y = pack_bf16x2(acc[2], acc[3]);
        packed.z = pack_bf16x2(acc[4], acc[5]);
        packed.w = pack_bf16x2(acc[6], acc[7]);
        reinterpret_cast<uint4*>(out)[i] = packed;
    }
}
