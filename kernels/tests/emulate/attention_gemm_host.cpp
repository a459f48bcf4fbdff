// Host emulation of the GEMM attention path: the real kernel source
// (src/cu/common.cuh + src/cu/attention_gemm.cu) compiled as C++, each
// launch run block by block with one OS thread per GPU thread (a warp's
// 32 lanes in lockstep at every shuffle), and cuBLAS's strided-batched
// product as a plain column-major loop with cuBLAS's argument meaning.
// It executes a plan written by kernels/tests/emulate_attention_gemm.rs
// (`attention_plan::plan`, the same steps the device runs), so the
// kernels' index arithmetic and the plan's leading dimensions, strides,
// transposes and chunk offsets are checked without a GPU.
//
//   attention_gemm_host DIR      reads DIR/plan.txt and DIR/<buffer>.bin,
//                                writes DIR/out.bin
//
// Not emulated: timing, memory ordering between warps (no kernel here
// shares memory across warps), tanh.approx (tanhf instead).

#define FY_HOST_EMULATION 1
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __launch_bounds__(n)

struct Dim3 {
    unsigned x = 0, y = 0, z = 0;
};
struct uint4 {
    unsigned x, y, z, w;
};
thread_local Dim3 threadIdx, blockIdx, gridDim;

// One warp's exchange slots and barrier, for __shfl_xor_sync.
struct Warp {
    float vals[32];
    std::barrier<> sync{32};
};
thread_local Warp* this_warp = nullptr;

inline float __shfl_xor_sync(unsigned, float v, int lane_mask) {
    const int lane = threadIdx.x & 31;
    this_warp->vals[lane] = v;
    this_warp->sync.arrive_and_wait();
    const float r = this_warp->vals[lane ^ lane_mask];
    this_warp->sync.arrive_and_wait();
    return r;
}
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
inline float __expf(float x) { return std::exp(x); }
using std::fmaxf;

#include "../../src/cu/common.cuh"
#include "../../src/cu/attention_gemm.cu"

// Runs `kernel` over `grid` blocks of 256 threads, a warp (32 threads) at
// a time, each thread with its own threadIdx/blockIdx/gridDim.
template <typename F>
static void launch(unsigned grid, F kernel) {
    for (unsigned b = 0; b < grid; ++b) {
        for (unsigned w = 0; w < 8; ++w) {
            Warp warp;
            std::vector<std::thread> lanes;
            for (unsigned l = 0; l < 32; ++l) {
                lanes.emplace_back([&, b, w, l] {
                    threadIdx.x = w * 32 + l;
                    blockIdx.x = b;
                    gridDim.x = grid;
                    this_warp = &warp;
                    kernel();
                });
            }
            for (auto& t : lanes) t.join();
        }
    }
}

static float bf(uint16_t h) { return bf16_to_f32(h); }

// Column-major C_i = op(A_i) B_i, bf16 A and B, f32 sums, C bf16 or f32:
// cublasGemmStridedBatchedEx's meaning of m, n, k, lda, ldb, ldc, strides.
static void gemm(bool ta, long m, long n, long k, const uint16_t* a, long lda, long sa,
                 const uint16_t* b, long ldb, long sb, void* c, bool c_bf16, long ldc, long sc,
                 long batch) {
    for (long i = 0; i < batch; ++i)
        for (long col = 0; col < n; ++col)
            for (long row = 0; row < m; ++row) {
                float acc = 0.0f;
                for (long e = 0; e < k; ++e) {
                    const float av = ta ? bf(a[i * sa + row * lda + e]) : bf(a[i * sa + e * lda + row]);
                    acc += av * bf(b[i * sb + col * ldb + e]);
                }
                const long at = i * sc + col * ldc + row;
                if (c_bf16)
                    static_cast<uint16_t*>(c)[at] = f32_to_bf16(acc);
                else
                    static_cast<float*>(c)[at] = acc;
            }
}

static std::vector<char> read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::vector<char>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: attention_gemm_host DIR\n");
        return 2;
    }
    const std::string dir = argv[1];
    std::ifstream plan(dir + "/plan.txt");
    // Header: shape and workspace sizes.
    int T, Hq, Hkv, D, S, ldx, causal, round_logits, x_bf16;
    long qs_len, x_len, pself_len, out_len;
    float mult, cap;
    plan >> T >> Hq >> Hkv >> D >> S >> ldx >> causal >> mult >> cap >> round_logits >> x_bf16 >>
        qs_len >> x_len >> pself_len >> out_len;
    if (!plan) {
        std::fprintf(stderr, "bad plan header\n");
        return 2;
    }
    // Buffers by name: inputs from files, workspace zero-filled with NaN
    // bits where a kernel must write (so a missed element shows).
    std::map<std::string, std::vector<char>> bufs;
    for (const char* name : {"q", "kc", "vc", "key_valid", "ks", "vs", "self_valid"})
        bufs[name] = read_file(dir + "/" + name + ".bin");
    auto nan_fill = [](long n, int bytes) {
        std::vector<char> v(n * bytes, (char)0xff);
        return v;
    };
    bufs["qs"] = nan_fill(qs_len, 2);
    bufs["x"] = nan_fill(x_len, x_bf16 ? 2 : 4);
    bufs["p"] = nan_fill(x_len, 2);
    bufs["pself"] = nan_fill(pself_len, 4);
    bufs["o"] = nan_fill(qs_len, 4);
    bufs["out"] = nan_fill(out_len, 2);
    auto elem = [&](const std::string& name) -> int {
        if (name == "key_valid" || name == "self_valid") return 1;
        if (name == "pself" || name == "o") return 4;
        if (name == "x") return x_bf16 ? 2 : 4;
        return 2;
    };
    // An operand "name offset" (name "-" for none: null).
    auto operand = [&](std::istringstream& in) -> void* {
        std::string name;
        long off;
        in >> name >> off;
        if (name == "-") return nullptr;
        auto& b = bufs.at(name);
        if (off < 0 || (size_t)(off * elem(name)) > b.size()) {
            std::fprintf(stderr, "operand %s+%ld outside its buffer\n", name.c_str(), off);
            std::exit(3);
        }
        return b.data() + off * elem(name);
    };
    std::string line;
    std::getline(plan, line);
    while (std::getline(plan, line)) {
        if (line.empty()) continue;
        std::istringstream in(line);
        std::string op;
        in >> op;
        if (op == "stack") {
            auto q = (const bf16_t*)operand(in);
            auto qs = (bf16_t*)operand(in);
            int batch;
            unsigned grid;
            in >> batch >> grid;
            launch(grid, [&] { gqa_stack_q(q, qs, batch, T, Hq, Hkv, D); });
        } else if (op == "gemm") {
            int ta, c_bf16;
            long m, n, k, lda, sa, ldb, sb, ldc, sc, batch;
            in >> ta >> m >> n >> k;
            auto a = (const uint16_t*)operand(in);
            in >> lda >> sa;
            auto b = (const uint16_t*)operand(in);
            in >> ldb >> sb;
            void* c = operand(in);
            in >> ldc >> sc >> c_bf16 >> batch;
            if ((ta ? lda < k : lda < m) || ldb < k || ldc < m) {
                std::fprintf(stderr, "leading dimension too small: %s\n", line.c_str());
                return 4;
            }
            gemm(ta, m, n, k, a, lda, sa, b, ldb, sb, c, c_bf16, ldc, sc, batch);
        } else if (op == "softmax") {
            void* x = operand(in);
            auto qs = (const bf16_t*)operand(in);
            auto ks = (const bf16_t*)operand(in);
            auto sv = (const unsigned char*)operand(in);
            auto kv = (const unsigned char*)operand(in);
            auto p = (bf16_t*)operand(in);
            auto pself = (float*)operand(in);
            int batch;
            unsigned grid;
            in >> batch >> grid;
            launch(grid, [&] {
                if (x_bf16)
                    gqa_softmax_bf16s((const bf16_t*)x, qs, ks, sv, kv, p, pself, batch, T, S, ldx, Hq,
                                      Hkv, D, causal, mult, cap, round_logits);
                else
                    gqa_softmax_f32s((const float*)x, qs, ks, sv, kv, p, pself, batch, T, S, ldx, Hq,
                                     Hkv, D, causal, mult, cap, round_logits);
            });
        } else if (op == "unstack") {
            auto o = (const float*)operand(in);
            auto pself = (const float*)operand(in);
            auto vs = (const bf16_t*)operand(in);
            auto out = (bf16_t*)operand(in);
            int batch;
            unsigned grid;
            in >> batch >> grid;
            launch(grid, [&] { gqa_unstack_out(o, pself, vs, out, batch, T, Hq, Hkv, D); });
        } else {
            std::fprintf(stderr, "unknown step %s\n", op.c_str());
            return 2;
        }
        if (!in) {
            std::fprintf(stderr, "bad step: %s\n", line.c_str());
            return 2;
        }
    }
    std::ofstream(dir + "/out.bin", std::ios::binary)
        .write(bufs["out"].data(), (std::streamsize)bufs["out"].size());
    return 0;
}
