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

#include "cuda_host.h"

#include "../../src/cu/common.cuh"
#include "../../src/cu/attention_gemm.cu"

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
