// Fused elementwise and row ops of the decoder layer, each one pass over its
// tensor where candle's CPU path makes several. Rounding follows the
// reference's bf16 mode when `round_bf` is set (values rounded to bf16
// exactly where the reference rounds them); outputs that feed a matrix
// product are written as bf16.
//
// Launch: the row ops take one block of 256 threads per row (grid = rows);
// the elementwise ops a grid-stride loop of 256-thread blocks.
//
// Measured: these are memory-bound (one read, one write of the tensor);
// see benches/results/gpu_*.md.

#define OPS_THREADS 256

__device__ __forceinline__ float maybe_round(float x, int round_bf) {
    return round_bf ? round_bf16(x) : x;
}

// Sum over the block (OPS_THREADS threads); every thread gets the total.
__device__ __forceinline__ float block_sum(float v) {
    __shared__ float part[OPS_THREADS / 32];
    __shared__ float total;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    __syncthreads();
    if (lane == 0) part[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float t = lane < OPS_THREADS / 32 ? part[lane] : 0.0f;
        for (int o = 16; o > 0; o >>= 1) t += __shfl_xor_sync(0xffffffffu, t, o);
        if (lane == 0) total = t;
    }
    __syncthreads();
    return total;
}

// out[r, :] = bf16(x[r, :] / sqrt(mean(x[r, :]^2) + eps) * scale).
// x is rounded to bf16 first when round_in (a bf16 tensor kept in f32).
extern "C" __global__ void __launch_bounds__(OPS_THREADS)
    rms_norm_bf16(const float* __restrict__ x, const float* __restrict__ scale, float eps, int D,
                  int round_in, bf16_t* __restrict__ out) {
    const float* xr = x + (size_t)blockIdx.x * D;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < D; i += OPS_THREADS) {
        const float v = maybe_round(xr[i], round_in);
        ss += v * v;
    }
    const float r = rsqrtf(block_sum(ss) / (float)D + eps);
    bf16_t* orow = out + (size_t)blockIdx.x * D;
    for (int i = threadIdx.x; i < D; i += OPS_THREADS)
        orow[i] = f32_to_bf16(maybe_round(xr[i], round_in) * r * scale[i]);
}

// The residual half of the sandwich, plus the next pre-norm:
//   y' = round(y);  h = round(h + round(rms(y') * s_post))
//   x_next = bf16(rms(h) * s_next)            (skipped when s_next is null)
extern "C" __global__ void __launch_bounds__(OPS_THREADS)
    residual_rms_norm(float* __restrict__ h, const float* __restrict__ y,
                      const float* __restrict__ s_post, const float* __restrict__ s_next,
                      float eps, int D, int round_bf, bf16_t* __restrict__ x_next) {
    float* hr = h + (size_t)blockIdx.x * D;
    const float* yr = y + (size_t)blockIdx.x * D;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < D; i += OPS_THREADS) {
        const float v = maybe_round(yr[i], round_bf);
        ss += v * v;
    }
    const float r = rsqrtf(block_sum(ss) / (float)D + eps);
    float hh = 0.0f;
    for (int i = threadIdx.x; i < D; i += OPS_THREADS) {
        const float n = maybe_round(maybe_round(yr[i], round_bf) * r * s_post[i], round_bf);
        const float v = maybe_round(hr[i] + n, round_bf);
        hr[i] = v;
        hh += v * v;
    }
    if (s_next == nullptr) return;
    const float r2 = rsqrtf(block_sum(hh) / (float)D + eps);
    bf16_t* xr = x_next + (size_t)blockIdx.x * D;
    for (int i = threadIdx.x; i < D; i += OPS_THREADS) xr[i] = f32_to_bf16(hr[i] * r2 * s_next[i]);
}

// Splits a fused q|k|v projection row and applies RoPE (split halves:
// y1 = x1 cos - x2 sin, y2 = x2 cos + x1 sin, angle = pos * inv_freq[i]).
//   qkv   [B*T, (Hq + 2 Hkv) * K] f32 (q heads, then k heads, then v heads)
//   pos   [B*T] i32, inv_freq [K/2] f32
//   q_out [B*T, Hq, K] bf16;  k_out, v_out [B, Hkv, T, K] bf16
// Inputs are rounded to bf16 first when round_bf (the projections' outputs).
extern "C" __global__ void __launch_bounds__(OPS_THREADS)
    qkv_rope(const float* __restrict__ qkv, int T, int Hq, int Hkv, int K,
             const int* __restrict__ pos, const float* __restrict__ inv_freq, int round_bf,
             bf16_t* __restrict__ q_out, bf16_t* __restrict__ k_out, bf16_t* __restrict__ v_out) {
    const int r = blockIdx.x;
    const int b = r / T, t = r % T;
    const int half = K / 2;
    const size_t W = (size_t)(Hq + 2 * Hkv) * K;
    const float* src = qkv + (size_t)r * W;
    const float p = (float)pos[r];
    for (int idx = threadIdx.x; idx < (Hq + Hkv) * half; idx += OPS_THREADS) {
        const int h = idx / half, i = idx % half;
        const float* x = src + (size_t)h * K;
        const float x1 = maybe_round(x[i], round_bf), x2 = maybe_round(x[i + half], round_bf);
        float sn, cs;
        sincosf(p * inv_freq[i], &sn, &cs);
        const float y1 = x1 * cs - x2 * sn, y2 = x2 * cs + x1 * sn;
        bf16_t* dst;
        if (h < Hq) {
            dst = q_out + ((size_t)r * Hq + h) * K;
        } else {
            dst = k_out + (((size_t)b * Hkv + (h - Hq)) * T + t) * K;
        }
        dst[i] = f32_to_bf16(y1);
        dst[i + half] = f32_to_bf16(y2);
    }
    const float* v = src + (size_t)(Hq + Hkv) * K;
    for (int idx = threadIdx.x; idx < Hkv * K; idx += OPS_THREADS) {
        const int h = idx / K, j = idx % K;
        v_out[(((size_t)b * Hkv + h) * T + t) * K + j] = f32_to_bf16(v[idx]);
    }
}

// Gated GELU of a fused [gate | lin] projection:
//   out[r, j] = bf16(round(round(gelu(round(gate))) * round(lin)))
//   gl [rows, 2F] f32, out [rows, F] bf16; erf_kind 0: tanh form, 1: erf form.
extern "C" __global__ void __launch_bounds__(OPS_THREADS)
    gated_gelu(const float* __restrict__ gl, long long rows, int F, int erf_kind, int round_bf,
               bf16_t* __restrict__ out) {
    const long long n = rows * F;
    for (long long i = (long long)blockIdx.x * OPS_THREADS + threadIdx.x; i < n;
         i += (long long)gridDim.x * OPS_THREADS) {
        const long long r = i / F;
        const int j = (int)(i % F);
        const float g = maybe_round(gl[r * 2 * F + j], round_bf);
        const float l = maybe_round(gl[r * 2 * F + F + j], round_bf);
        float ge;
        if (erf_kind) {
            ge = 0.5f * g * (1.0f + erff(g * 0.70710678118654752f));
        } else {
            // 0.5 g (1 + tanh(u)) written as g / (1 + exp(-2u)), as the CPU path does.
            const float u = 0.7978845608028654f * g * (1.0f + 0.044715f * g * g);
            ge = g / (1.0f + expf(-2.0f * u));
        }
        out[i] = f32_to_bf16(maybe_round(maybe_round(ge, round_bf) * l, round_bf));
    }
}

// f32 -> bf16 (round to nearest even), for weights and inputs.
extern "C" __global__ void __launch_bounds__(OPS_THREADS)
    f32_to_bf16_copy(const float* __restrict__ x, long long n, bf16_t* __restrict__ out) {
    for (long long i = (long long)blockIdx.x * OPS_THREADS + threadIdx.x; i < n;
         i += (long long)gridDim.x * OPS_THREADS)
        out[i] = f32_to_bf16(x[i]);
}

// x = round_bf16(x) in place (a bf16 value kept in f32 storage).
extern "C" __global__ void __launch_bounds__(OPS_THREADS)
    round_bf16_inplace(float* __restrict__ x, long long n) {
    for (long long i = (long long)blockIdx.x * OPS_THREADS + threadIdx.x; i < n;
         i += (long long)gridDim.x * OPS_THREADS)
        x[i] = round_bf16(x[i]);
}

// Hash-embedding gather, so the tables stay on the device and a request
// uploads 4-byte hashes instead of D-wide embedding rows. For item
// i = r * H + j (row r < rows, hash j < H):
//   out[r * out_stride + out_offset + j * D + c] = table[idx[i] * D + c]   (c < D)
// or 0 when idx[i] is outside [lo, table_rows): lo = 1 for hash tables
// (hash 0 is padding, its row is never read), 0 for the product-surface
// table. Other columns of `out` are left as they are, so one buffer takes
// the post, author and surface blocks of a token row from three launches.
//   idx [rows, H] i32;  table [table_rows, D] bf16;  out bf16, row stride out_stride.
//
// Launch: grid-stride over rows * H * (D / W) chunks of W elements, 256
// threads per block; gather_rows_bf16x8 moves 16 bytes per chunk (W = 8:
// D, out_stride and out_offset multiples of 8, 16-byte aligned buffers),
// gather_rows_bf16 one element (any shape).
//
// Checked without a GPU: kernels/tests/emulate_gather.rs runs this source
// on the host in both forms with the wrapper's launch, bit-equal to the
// reference. Measured: memory-bound, a read and a write of the gathered
// rows; not yet timed on a GPU (see benches/results/ for the first run).
template <typename V, int W>
__device__ __forceinline__ void gather_rows(const int* __restrict__ idx, long long rows, int H,
                                            const V* __restrict__ table, int table_rows, int D,
                                            int lo, V* __restrict__ out, long long out_stride,
                                            long long out_offset) {
    const int chunks = D / W;
    const long long n = rows * H * chunks;
    for (long long i = (long long)blockIdx.x * OPS_THREADS + threadIdx.x; i < n;
         i += (long long)gridDim.x * OPS_THREADS) {
        const long long item = i / chunks;
        const int c = (int)(i % chunks);
        const long long r = item / H;
        const int j = (int)(item % H);
        const int h = idx[item];
        V v;
        if (h >= lo && h < table_rows) {
            v = table[(size_t)h * chunks + c];
        } else {
            v = V{};
        }
        out[(r * out_stride + out_offset) / W + (long long)j * chunks + c] = v;
    }
}

extern "C" __global__ void __launch_bounds__(OPS_THREADS)
    gather_rows_bf16(const int* __restrict__ idx, long long rows, int H,
                     const bf16_t* __restrict__ table, int table_rows, int D, int lo,
                     bf16_t* __restrict__ out, long long out_stride, long long out_offset) {
    gather_rows<bf16_t, 1>(idx, rows, H, table, table_rows, D, lo, out, out_stride, out_offset);
}

extern "C" __global__ void __launch_bounds__(OPS_THREADS)
    gather_rows_bf16x8(const int* __restrict__ idx, long long rows, int H,
                       const uint4* __restrict__ table, int table_rows, int D, int lo,
                       uint4* __restrict__ out, long long out_stride, long long out_offset) {
    gather_rows<uint4, 8>(idx, rows, H, table, table_rows, D, lo, out, out_stride, out_offset);
}
