// Shared helpers for every foryou kernel. Self-contained (no CUDA headers), so
// NVRTC compiles each source without include paths; the Rust side prepends
// this file to each kernel source, nvcc takes it with `-include`. The host
// emulation (kernels/tests/emulate/) compiles it as C++ with
// FY_HOST_EMULATION defined; only the helpers it uses need a host form.
//
// bf16 values travel as raw `unsigned short` bits: widening is a shift,
// narrowing rounds to nearest even (NaN stays a quiet NaN), exactly as the
// CPU references in `reference/` do.

typedef unsigned short bf16_t;
typedef unsigned int u32;
typedef unsigned long long u64;

#define FY_INF __int_as_float(0x7f800000)

__device__ __forceinline__ float bf16_to_f32(bf16_t h) {
    return __uint_as_float(((u32)h) << 16);
}

__device__ __forceinline__ bf16_t f32_to_bf16(float f) {
    u32 u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (bf16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (bf16_t)(u >> 16);
}

__device__ __forceinline__ float round_bf16(float f) { return bf16_to_f32(f32_to_bf16(f)); }

// Two floats packed as bf16x2 (`lo` in the low half), the mma operand format.
__device__ __forceinline__ u32 pack_bf16x2(float lo, float hi) {
    return (u32)f32_to_bf16(lo) | ((u32)f32_to_bf16(hi) << 16);
}

// D = A * B + D for one 16x8x16 tile: A 16x16 row-major bf16 (4 regs),
// B 16x8 column-major bf16 (2 regs), C/D 16x8 f32 (4 regs). Lane l holds
// A rows l/4 and l/4+8, columns 2(l%4)+{0,1} and +8; B rows 2(l%4)+{0,1}
// and +8 of column l/4; C rows l/4 and l/4+8, columns 2(l%4)+{0,1}.
__device__ __forceinline__ void mma_16816(float c[4], const u32 a[4], const u32 b[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// The reference's logit transform: `cap * tanh(x * mult / cap)`, or
// `x * mult` when cap is 0 (models without a soft cap).
// tanh.approx (one MUFU op, |error| < 2^-10.7 relative) is far below the
// bf16 rounding the reference applies around it.
// (FY_HOST_EMULATION: the host build of kernels/tests/emulate/, tanhf.)
__device__ __forceinline__ float tanh_fast(float x) {
#ifdef FY_HOST_EMULATION
    return tanhf(x);
#else
    float y;
    asm("tanh.approx.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
#endif
}

__device__ __forceinline__ float soft_cap(float x, float mult, float cap) {
    float y = x * mult;
    return cap > 0.0f ? cap * tanh_fast(y / cap) : y;
}

// Shared-memory address of a generic pointer, for ldmatrix / cp.async.
__device__ __forceinline__ u32 smem_u32(const void* p) {
    u32 a;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
    return a;
}

// Four 8x8 bf16 matrices from shared memory (lanes 8i..8i+7 give the row
// addresses of matrix i); `trans` delivers each transposed.
__device__ __forceinline__ void ldmatrix_x4(u32 r[4], const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(u32 r[4], const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p)));
}

// 16-byte asynchronous global -> shared copy; zero-fills when !pred.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool pred) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(smem)), "l"(gmem),
                 "r"(pred ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }
