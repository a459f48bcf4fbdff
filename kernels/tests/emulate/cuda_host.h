// The CUDA device environment on the host, for running foryou's kernel
// sources as C++ (kernels/tests/emulate/*.cpp): the qualifiers compile away,
// each GPU thread is an OS thread with its own threadIdx/blockIdx/gridDim,
// and a warp's 32 lanes meet at every shuffle (a barrier), so warp-level
// code runs as on the device. Blocks run one after another, a warp at a
// time (the kernels emulated here share nothing across warps; __shared__
// and __syncthreads are provided for sources that only need to compile).
// Include this, then src/cu/common.cuh, then the kernel source.
#pragma once
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
#define __shared__ static
inline void __syncthreads() {}

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

inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }

// Runs `kernel` over `grid` blocks of 256 threads, a warp (32 threads) at
// a time, each thread with its own threadIdx/blockIdx/gridDim.
template <typename F>
inline void launch(unsigned grid, F kernel) {
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

