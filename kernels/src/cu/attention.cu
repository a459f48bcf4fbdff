// Candidate-isolation attention (and the causal context pass), flash style.
//
// Math. For query row (b, t, head h) with kv head g = h / (Hq / Hkv):
//   x_j  = q . k_j                    (f32 accumulation of bf16 products)
//   x_j  = round_bf16(x_j)            when round_logits (the reference forms
//                                     q.k in bf16 in bf16 mode)
//   s_j  = cap * tanh(x_j * mult / cap)          (cap 0: s_j = x_j * mult)
//   s_j  = -1e30 where key j is padding, or j > t in the causal pass
//   out  = sum_j softmax(s)_j v_j, over the S context keys plus, when ks is
//          given, the row's own key/value (the candidate's self term,
//          masked by self_valid), merged by log-sum-exp.
// The -1e30 fill matches the reference: a row with no visible key averages
// every key uniformly. Keys past S are excluded outright.
//
// Layouts (bf16 as raw bits, row-major):
//   q, out      [B, T, Hq, D]     (token-major: a projection's output rows)
//   kc, vc      [B, Hkv, S, D]    context keys (after RoPE) and values
//   key_valid   [B, S]  u8        1 = real token
//   ks, vs      [B, Hkv, T, D]    the queries' own keys/values, or null
//   self_valid  [B, T]  u8        or null
// The causal pass has T == S (query t is token t).
//
// Launch: grid (ceil(T*G/64), Hkv, B), 128 threads (4 warps x 16 rows).
// Grouped-query aware: a block's 64 rows are (token, head) pairs of one kv
// head, token-major (row r = t*G + g), so each K/V tile loaded into shared
// memory serves all G query heads that share it. Per 64-key tile: S = QK^T
// and O += PV on tensor cores (mma.sync m16n8k16 bf16, f32 accumulate),
// online softmax in registers; K/V tiles stream through a two-stage
// cp.async pipeline and reach the tensor cores by ldmatrix. Dynamic shared
// memory: 2 stages x (K, V) x 64 x (D+8) bf16 = 68 KB at D=128.
//
// Measured: see benches/results/gpu_*.md (H100/H200 figures land there).

#define ATT_BM 64
#define ATT_BN 64
#define ATT_THREADS 128

template <int D>
__device__ __forceinline__ void attention_body(
    const bf16_t* __restrict__ q, const bf16_t* __restrict__ kc, const bf16_t* __restrict__ vc,
    const unsigned char* __restrict__ key_valid, const bf16_t* __restrict__ ks,
    const bf16_t* __restrict__ vs, const unsigned char* __restrict__ self_valid,
    bf16_t* __restrict__ out, int T, int S, int Hq, int Hkv, int causal, float mult, float cap,
    int round_logits) {
    constexpr int LD = D + 8;  // padded shared row: conflict-free fragment reads
    constexpr int KC = D / 16; // k-chunks of the QK^T product
    constexpr int DN = D / 8;  // n-tiles of the PV product
    constexpr int NT = ATT_BN / 8;
    constexpr int TILE = ATT_BN * LD;  // one K or V stage, bf16 elements
    extern __shared__ __align__(16) bf16_t smem[];  // [stage][K, V][ATT_BN][LD]

    const int G = Hq / Hkv;
    const int kvh = blockIdx.y, b = blockIdx.z;
    const int rows = T * G;
    const int row0 = blockIdx.x * ATT_BM;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int gid = lane >> 2, tig = lane & 3;
    const int ra = row0 + warp * 16 + gid, rb = ra + 8;
    const bool va = ra < rows, vb = rb < rows;
    const int ta = va ? ra / G : 0, tb = vb ? rb / G : 0;
    const int ha = kvh * G + (va ? ra % G : 0), hb = kvh * G + (vb ? rb % G : 0);
    const bf16_t* qa = q + (((size_t)b * T + ta) * Hq + ha) * D;
    const bf16_t* qb = q + (((size_t)b * T + tb) * Hq + hb) * D;

    u32 qf[KC][4];
#pragma unroll
    for (int c = 0; c < KC; ++c) {
        const int c0 = c * 16 + tig * 2;
        qf[c][0] = va ? *(const u32*)(qa + c0) : 0u;
        qf[c][1] = vb ? *(const u32*)(qb + c0) : 0u;
        qf[c][2] = va ? *(const u32*)(qa + c0 + 8) : 0u;
        qf[c][3] = vb ? *(const u32*)(qb + c0 + 8) : 0u;
    }
    float o[DN][4];
#pragma unroll
    for (int n = 0; n < DN; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    float ma = -FY_INF, mb = -FY_INF, la = 0.0f, lb = 0.0f;

    int kend = S;
    if (causal) {
        const int last = min(rows, row0 + ATT_BM) - 1;
        kend = min(S, last / G + 1);
    }
    const size_t kvbase = ((size_t)b * Hkv + kvh) * (size_t)S * D;
    const unsigned char* kvalid = key_valid + (size_t)b * S;

    // Two-stage cp.async pipeline: tile i+1 streams into shared memory
    // while tile i is multiplied.
    auto load_tile = [&](int stage, int k0) {
        constexpr int VPR = D / 8;
        bf16_t* Kd = smem + stage * 2 * TILE;
        bf16_t* Vd = Kd + TILE;
        for (int i = threadIdx.x; i < ATT_BN * VPR; i += ATT_THREADS) {
            const int r = i / VPR, cv = i % VPR;
            const bool in = k0 + r < S;
            const size_t off = in ? kvbase + (size_t)(k0 + r) * D + cv * 8 : 0;
            cp_async16(Kd + r * LD + cv * 8, kc + off, in);
            cp_async16(Vd + r * LD + cv * 8, vc + off, in);
        }
    };
    const int ntiles = (kend + ATT_BN - 1) / ATT_BN;
    const int lm = lane >> 3, lr = lane & 7;
    load_tile(0, 0);
    cp_async_commit();
    for (int it = 0; it < ntiles; ++it) {
        const int k0 = it * ATT_BN;
        if (it + 1 < ntiles) {
            load_tile((it + 1) & 1, k0 + ATT_BN);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const bf16_t* Ks = smem + (it & 1) * 2 * TILE;
        const bf16_t* Vs = Ks + TILE;

        float s[NT][4];
#pragma unroll
        for (int n = 0; n < NT; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
        // K fragments by ldmatrix: matrices (keys n*8.., dims c*16 + {0, 8}),
        // then the same for key tile n+1.
#pragma unroll
        for (int c = 0; c < KC; ++c) {
#pragma unroll
            for (int n = 0; n < NT; n += 2) {
                u32 r[4];
                ldmatrix_x4(r, Ks + ((n + (lm >> 1)) * 8 + lr) * LD + c * 16 + (lm & 1) * 8);
                const u32 b0[2] = {r[0], r[1]}, b1[2] = {r[2], r[3]};
                mma_16816(s[n], qf[c], b0);
                mma_16816(s[n + 1], qf[c], b1);
            }
        }

        float mxa = -FY_INF, mxb = -FY_INF;
#pragma unroll
        for (int n = 0; n < NT; ++n) {
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                const int j = k0 + n * 8 + tig * 2 + e;
                float xa = s[n][e], xb = s[n][2 + e];
                if (round_logits) {
                    xa = round_bf16(xa);
                    xb = round_bf16(xb);
                }
                xa = soft_cap(xa, mult, cap);
                xb = soft_cap(xb, mult, cap);
                if (j >= S) {
                    xa = -FY_INF;
                    xb = -FY_INF;
                } else {
                    const bool kv = kvalid[j] != 0;
                    if (!kv || (causal && j > ta)) xa = -1e30f;
                    if (!kv || (causal && j > tb)) xb = -1e30f;
                }
                s[n][e] = xa;
                s[n][2 + e] = xb;
                mxa = fmaxf(mxa, xa);
                mxb = fmaxf(mxb, xb);
            }
        }
        mxa = fmaxf(mxa, __shfl_xor_sync(0xffffffffu, mxa, 1));
        mxa = fmaxf(mxa, __shfl_xor_sync(0xffffffffu, mxa, 2));
        mxb = fmaxf(mxb, __shfl_xor_sync(0xffffffffu, mxb, 1));
        mxb = fmaxf(mxb, __shfl_xor_sync(0xffffffffu, mxb, 2));
        const float mna = fmaxf(ma, mxa), mnb = fmaxf(mb, mxb);
        const float sca = __expf(ma - mna), scb = __expf(mb - mnb);
        la *= sca;
        lb *= scb;
#pragma unroll
        for (int n = 0; n < DN; ++n) {
            o[n][0] *= sca;
            o[n][1] *= sca;
            o[n][2] *= scb;
            o[n][3] *= scb;
        }
#pragma unroll
        for (int n = 0; n < NT; ++n) {
            s[n][0] = __expf(s[n][0] - mna);
            s[n][1] = __expf(s[n][1] - mna);
            s[n][2] = __expf(s[n][2] - mnb);
            s[n][3] = __expf(s[n][3] - mnb);
            la += s[n][0] + s[n][1];
            lb += s[n][2] + s[n][3];
        }
#pragma unroll
        for (int kk = 0; kk < ATT_BN / 16; ++kk) {
            const u32 pf[4] = {
                pack_bf16x2(s[2 * kk][0], s[2 * kk][1]),
                pack_bf16x2(s[2 * kk][2], s[2 * kk][3]),
                pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                pack_bf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3]),
            };
            // V fragments by ldmatrix.trans: matrices (keys kk*16 + {0, 8},
            // dims n*8..), then dims (n+1)*8.
#pragma unroll
            for (int n = 0; n < DN; n += 2) {
                u32 r[4];
                ldmatrix_x4_trans(r, Vs + (kk * 16 + (lm & 1) * 8 + lr) * LD + (n + (lm >> 1)) * 8);
                const u32 b0[2] = {r[0], r[1]}, b1[2] = {r[2], r[3]};
                mma_16816(o[n], pf, b0);
                mma_16816(o[n + 1], pf, b1);
            }
        }
        ma = mna;
        mb = mnb;
        __syncthreads();  // this stage is reloaded two tiles later
    }
    la += __shfl_xor_sync(0xffffffffu, la, 1);
    la += __shfl_xor_sync(0xffffffffu, la, 2);
    lb += __shfl_xor_sync(0xffffffffu, lb, 1);
    lb += __shfl_xor_sync(0xffffffffu, lb, 2);

    if (ks != nullptr) {
        // Self term: q . k_self from the q fragments this lane holds, summed over the quad.
        const size_t sa = (((size_t)b * Hkv + kvh) * T + ta) * D;
        const size_t sb = (((size_t)b * Hkv + kvh) * T + tb) * D;
        float da = 0.0f, db = 0.0f;
#pragma unroll
        for (int c = 0; c < KC; ++c) {
            const int c0 = c * 16 + tig * 2;
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int cc = c0 + 8 * h;
                const u32 fa = qf[c][2 * h], fb = qf[c][2 * h + 1];
                da += bf16_to_f32((bf16_t)(fa & 0xffffu)) * bf16_to_f32(ks[sa + cc]) +
                      bf16_to_f32((bf16_t)(fa >> 16)) * bf16_to_f32(ks[sa + cc + 1]);
                db += bf16_to_f32((bf16_t)(fb & 0xffffu)) * bf16_to_f32(ks[sb + cc]) +
                      bf16_to_f32((bf16_t)(fb >> 16)) * bf16_to_f32(ks[sb + cc + 1]);
            }
        }
        da += __shfl_xor_sync(0xffffffffu, da, 1);
        da += __shfl_xor_sync(0xffffffffu, da, 2);
        db += __shfl_xor_sync(0xffffffffu, db, 1);
        db += __shfl_xor_sync(0xffffffffu, db, 2);
        if (round_logits) {
            da = round_bf16(da);
            db = round_bf16(db);
        }
        da = soft_cap(da, mult, cap);
        db = soft_cap(db, mult, cap);
        if (self_valid != nullptr) {
            if (!self_valid[(size_t)b * T + ta]) da = -1e30f;
            if (!self_valid[(size_t)b * T + tb]) db = -1e30f;
        }
        const float mna = fmaxf(ma, da), mnb = fmaxf(mb, db);
        const float sca = __expf(ma - mna), scb = __expf(mb - mnb);
        const float pa = __expf(da - mna), pb = __expf(db - mnb);
        la = la * sca + pa;
        lb = lb * scb + pb;
#pragma unroll
        for (int n = 0; n < DN; ++n) {
            const int d0 = n * 8 + tig * 2;
            // The reference rounds softmax weights to bf16 before the PV product.
            o[n][0] = o[n][0] * sca + round_bf16(pa) * bf16_to_f32(vs[sa + d0]);
            o[n][1] = o[n][1] * sca + round_bf16(pa) * bf16_to_f32(vs[sa + d0 + 1]);
            o[n][2] = o[n][2] * scb + round_bf16(pb) * bf16_to_f32(vs[sb + d0]);
            o[n][3] = o[n][3] * scb + round_bf16(pb) * bf16_to_f32(vs[sb + d0 + 1]);
        }
    }

    const float ia = 1.0f / la, ib = 1.0f / lb;
    bf16_t* oa = out + (((size_t)b * T + ta) * Hq + ha) * D;
    bf16_t* ob = out + (((size_t)b * T + tb) * Hq + hb) * D;
#pragma unroll
    for (int n = 0; n < DN; ++n) {
        const int d0 = n * 8 + tig * 2;
        if (va) *(u32*)(oa + d0) = pack_bf16x2(o[n][0] * ia, o[n][1] * ia);
        if (vb) *(u32*)(ob + d0) = pack_bf16x2(o[n][2] * ib, o[n][3] * ib);
    }
}

#define FY_ATTENTION(DIM)                                                                        \
    extern "C" __global__ void __launch_bounds__(ATT_THREADS) attention_d##DIM(                  \
        const bf16_t* q, const bf16_t* kc, const bf16_t* vc, const unsigned char* key_valid,    \
        const bf16_t* ks, const bf16_t* vs, const unsigned char* self_valid, bf16_t* out, int T, \
        int S, int Hq, int Hkv, int causal, float mult, float cap, int round_logits) {           \
        attention_body<DIM>(q, kc, vc, key_valid, ks, vs, self_valid, out, T, S, Hq, Hkv,       \
                            causal, mult, cap, round_logits);                                    \
    }

FY_ATTENTION(32)
FY_ATTENTION(64)
FY_ATTENTION(128)
