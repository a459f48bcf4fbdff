// Batched dot-product top-k over a bf16 corpus, exact, streaming.
//
// Math. score(q, n) = sum_d q[q, d] * corpus[n, d] (bf16 operands, f32
// accumulation). For each query keep the k best (score desc, ties to the
// lower index) among eligible rows (bit n of `eligible` set, or all rows
// when it is null); NaN scores are never kept.
//
// A candidate is one u64 key: order-preserving bits of the score in the high
// word, 0xffffffff - index in the low word, so "larger key" is exactly
// "better candidate" and keys are unique.
//
// Flow (host side in kernels/src/cuda/topk.rs), per batch of <= 64 queries:
//   1. topk_init: counts = 0, thresholds = -inf.
//   2. topk_score_filter over a bootstrap range [0, M0): every eligible row
//      is appended to the query's candidate buffer.
//   3. topk_select: per query, radix-select the k-th largest key, sort the
//      k survivors in shared memory, keep them at the buffer's head and set
//      the query's threshold to the k-th score.
//   4. topk_score_filter over the rest [M0, N): only scores strictly above
//      the threshold are appended (a later row tying the k-th score loses the
//      tie), so the corpus is read once and the B x N score matrix is never
//      written. On random data a handful of k*ln(N/M0) rows qualify.
//   5. topk_select again. If a buffer overflowed, the host resets the counts
//      to the kept k (topk_reset) and redoes that range in halves.
//
// topk_score_filter launch: grid min(row tiles, 8 x SMs) (grid-stride), 128
// threads; each warp scores 16 corpus rows against all queries with
// mma.sync m16n8k16 (corpus rows as A straight from global memory, queries
// as B from shared memory). topk_select: one block of 1024 threads per
// query, dynamic shared memory 8 x next_pow2(k) bytes; it also writes the
// sorted survivors to a compact [B, k] buffer, the only thing copied back.
//
// Measured: see benches/results/gpu_*.md.

#define TK_QMAX 64
#define TK_THREADS 128
#define SEL_THREADS 1024

__device__ __forceinline__ u32 order_f32(float f) {
    const u32 u = __float_as_uint(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ u64 make_key(float s, u32 idx) {
    return ((u64)order_f32(s) << 32) | (u64)(0xffffffffu - idx);
}

__device__ __forceinline__ float key_score(u64 key) {
    const u32 o = (u32)(key >> 32);
    return __uint_as_float((o & 0x80000000u) ? (o & 0x7fffffffu) : ~o);
}

extern "C" __global__ void topk_init(u32* counts, u32* kept, float* thr, int nq) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < nq) {
        counts[i] = 0u;
        kept[i] = 0u;
        thr[i] = -FY_INF;
    }
}

// After an overflow: forget what the last filter appended.
extern "C" __global__ void topk_reset(u32* counts, const u32* kept, int nq) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < nq) counts[i] = kept[i];
}

template <int D>
__device__ __forceinline__ void score_filter_body(
    const bf16_t* __restrict__ queries, int nq, const bf16_t* __restrict__ corpus,
    const u32* __restrict__ eligible, long long r0, long long r1, const float* __restrict__ thr,
    u64* __restrict__ keys, u32* __restrict__ counts, int cap) {
    constexpr int LD = D + 8;
    constexpr int KC = D / 16;
    __shared__ __align__(16) bf16_t Qs[TK_QMAX * LD];
    __shared__ float Ts[TK_QMAX];
    for (int i = threadIdx.x; i < TK_QMAX * (D / 8); i += TK_THREADS) {
        const int r = i / (D / 8), cv = i % (D / 8);
        uint4 v = make_uint4(0u, 0u, 0u, 0u);
        if (r < nq) v = *(const uint4*)(queries + (size_t)r * D + cv * 8);
        *(uint4*)(Qs + r * LD + cv * 8) = v;
    }
    for (int i = threadIdx.x; i < TK_QMAX; i += TK_THREADS) Ts[i] = i < nq ? thr[i] : FY_INF;
    __syncthreads();

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int gid = lane >> 2, tig = lane & 3;
    const int qtiles = (nq + 7) / 8;
    const long long tiles = (r1 - r0 + 15) / 16;
    const long long stride = (long long)gridDim.x * (TK_THREADS / 32);
    for (long long t = (long long)blockIdx.x * (TK_THREADS / 32) + warp; t < tiles; t += stride) {
        const long long ra = r0 + t * 16 + gid, rb = ra + 8;
        bool va = ra < r1, vb = rb < r1;
        if (eligible != nullptr) {
            va = va && ((eligible[ra >> 5] >> (ra & 31)) & 1u);
            vb = vb && ((eligible[rb >> 5] >> (rb & 31)) & 1u);
        }
        const bf16_t* pa = corpus + ra * D;
        const bf16_t* pb = corpus + rb * D;
        u32 af[KC][4];
#pragma unroll
        for (int c = 0; c < KC; ++c) {
            const int c0 = c * 16 + tig * 2;
            af[c][0] = va ? __ldg((const unsigned int*)(pa + c0)) : 0u;
            af[c][1] = vb ? __ldg((const unsigned int*)(pb + c0)) : 0u;
            af[c][2] = va ? __ldg((const unsigned int*)(pa + c0 + 8)) : 0u;
            af[c][3] = vb ? __ldg((const unsigned int*)(pb + c0 + 8)) : 0u;
        }
        if (!__any_sync(0xffffffffu, va || vb)) continue;
        for (int qt = 0; qt < qtiles; ++qt) {
            float c4[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
            for (int c = 0; c < KC; ++c) {
                const bf16_t* qr = Qs + (qt * 8 + gid) * LD + c * 16 + tig * 2;
                const u32 bf[2] = {*(const u32*)qr, *(const u32*)(qr + 8)};
                mma_16816(c4, af[c], bf);
            }
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                // The 8 lanes with this lane's tig share query qi: one atomic
                // per (warp, query) reserves their slots, in lane order.
                const int qi = qt * 8 + tig * 2 + e;
                const float tq = Ts[qi];
                const bool pa = va && c4[e] > tq, pb = vb && c4[2 + e] > tq;
                const u32 ba = __ballot_sync(0xffffffffu, pa), bb = __ballot_sync(0xffffffffu, pb);
                const u32 group = 0x11111111u << tig;
                const u32 ga = ba & group, gb = bb & group;
                const u32 total = __popc(ga) + __popc(gb);
                u32 base = 0u;
                if (gid == 0 && total > 0u) base = atomicAdd(&counts[qi], total);
                base = __shfl_sync(0xffffffffu, base, tig);
                const u32 below = (1u << lane) - 1u;
                if (pa) {
                    const u32 pos = base + __popc(ga & below);
                    if (pos < (u32)cap) keys[(size_t)qi * cap + pos] = make_key(c4[e], (u32)ra);
                }
                if (pb) {
                    const u32 pos = base + __popc(ga) + __popc(gb & below);
                    if (pos < (u32)cap) keys[(size_t)qi * cap + pos] = make_key(c4[2 + e], (u32)rb);
                }
            }
        }
    }
}

#define FY_SCORE_FILTER(DIM)                                                                   \
    extern "C" __global__ void __launch_bounds__(TK_THREADS) topk_score_filter_d##DIM(         \
        const bf16_t* queries, int nq, const bf16_t* corpus, const u32* eligible, long long r0, \
        long long r1, const float* thr, u64* keys, u32* counts, int cap) {                     \
        score_filter_body<DIM>(queries, nq, corpus, eligible, r0, r1, thr, keys, counts, cap);  \
    }

FY_SCORE_FILTER(64)
FY_SCORE_FILTER(128)
FY_SCORE_FILTER(256)

// One block per query: keep the best min(k, n) of the n buffered keys, sorted
// best first, at the head of the buffer.
extern "C" __global__ void __launch_bounds__(SEL_THREADS)
    topk_select(u64* keys, u32* counts, u32* kept, float* thr, int cap, int k, u64* out) {
    extern __shared__ u64 sbuf[];
    __shared__ u32 hist[256];
    __shared__ u32 s_digit, s_rem, s_cnt;
    const int qi = blockIdx.x, tid = threadIdx.x;
    u64* kq = keys + (size_t)qi * cap;
    const u32 n = min(counts[qi], (u32)cap);
    const u32 want = min((u32)k, n);
    if (want == 0u) {
        for (int i = tid; i < k; i += SEL_THREADS) out[(size_t)qi * k + i] = 0ull;
        if (tid == 0) {
            counts[qi] = 0u;
            kept[qi] = 0u;
            thr[qi] = -FY_INF;
        }
        return;
    }
    u64 prefix = 0ull, mask = 0ull;
    u32 remaining = want;
    for (int shift = 56; shift >= 0; shift -= 8) {
        for (int i = tid; i < 256; i += SEL_THREADS) hist[i] = 0u;
        __syncthreads();
        for (u32 i = tid; i < n; i += SEL_THREADS) {
            const u64 key = kq[i];
            if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255ull], 1u);
        }
        __syncthreads();
        if (tid == 0) {
            u32 acc = 0u;
            int d = 255;
            for (; d > 0; --d) {
                if (acc + hist[d] >= remaining) break;
                acc += hist[d];
            }
            s_digit = (u32)d;
            s_rem = remaining - acc;
        }
        __syncthreads();
        prefix |= (u64)s_digit << shift;
        mask |= 255ull << shift;
        remaining = s_rem;
        __syncthreads();
    }
    // `prefix` is now the want-th largest key; exactly `want` keys are >= it.
    if (tid == 0) s_cnt = 0u;
    __syncthreads();
    for (u32 i = tid; i < n; i += SEL_THREADS) {
        const u64 key = kq[i];
        if (key >= prefix) sbuf[atomicAdd(&s_cnt, 1u)] = key;
    }
    u32 p2 = 1u;
    while (p2 < want) p2 <<= 1;
    __syncthreads();
    for (u32 i = want + tid; i < p2; i += SEL_THREADS) sbuf[i] = 0ull;
    __syncthreads();
    // Bitonic sort, descending.
    for (u32 size = 2; size <= p2; size <<= 1) {
        for (u32 stride = size >> 1; stride > 0; stride >>= 1) {
            for (u32 i = tid; i < p2; i += SEL_THREADS) {
                const u32 j = i ^ stride;
                if (j > i) {
                    const bool desc = (i & size) == 0;
                    const u64 x = sbuf[i], y = sbuf[j];
                    if (desc ? (x < y) : (x > y)) {
                        sbuf[i] = y;
                        sbuf[j] = x;
                    }
                }
            }
            __syncthreads();
        }
    }
    for (u32 i = tid; i < want; i += SEL_THREADS) kq[i] = sbuf[i];
    // The compact answer, [query, k]; key 0 marks an empty slot (fewer than
    // k eligible rows).
    for (u32 i = tid; i < (u32)k; i += SEL_THREADS) out[(size_t)qi * k + i] = i < want ? sbuf[i] : 0ull;
    if (tid == 0) {
        counts[qi] = want;
        kept[qi] = want;
        thr[qi] = want == (u32)k ? key_score(prefix) : -FY_INF;
    }
}
