// Host emulation of the hash-embedding gather (src/cu/ops.cu): the real
// kernel source compiled as C++ (cuda_host.h), run with the launch the
// Rust wrapper makes (kernels/src/cuda/ops.rs: the 16-byte form when D,
// the row stride and the column offset are multiples of 8, else the
// element form; a grid-stride loop). Driven by kernels/tests/emulate_gather.rs.
//
//   ops_host DIR     reads DIR/gather.txt, DIR/idx.bin, DIR/table.bin and
//                    DIR/out.bin (the output's prior contents), writes
//                    DIR/out.bin

#include "cuda_host.h"

#include "../../src/cu/common.cuh"
#include "../../src/cu/ops.cu"

static std::vector<char> read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::vector<char>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: ops_host DIR\n");
        return 2;
    }
    const std::string dir = argv[1];
    std::ifstream spec(dir + "/gather.txt");
    std::string form;
    long long rows, out_stride, out_offset;
    int H, D, table_rows, lo;
    unsigned grid;
    spec >> form >> rows >> H >> D >> table_rows >> lo >> out_stride >> out_offset >> grid;
    if (!spec) {
        std::fprintf(stderr, "bad gather.txt\n");
        return 2;
    }
    // Exact-size copies, so AddressSanitizer sees any read or write past
    // the end of a buffer.
    auto idx_bytes = read_file(dir + "/idx.bin");
    auto table_bytes = read_file(dir + "/table.bin");
    auto out_bytes = read_file(dir + "/out.bin");
    std::vector<int> idx(idx_bytes.size() / 4);
    std::memcpy(idx.data(), idx_bytes.data(), idx_bytes.size());
    if (form == "x8") {
        std::vector<uint4> table(table_bytes.size() / 16), out(out_bytes.size() / 16);
        std::memcpy(table.data(), table_bytes.data(), table_bytes.size());
        std::memcpy(out.data(), out_bytes.data(), out_bytes.size());
        launch(grid, [&] {
            gather_rows_bf16x8(idx.data(), rows, H, table.data(), table_rows, D, lo, out.data(),
                               out_stride, out_offset);
        });
        std::memcpy(out_bytes.data(), out.data(), out_bytes.size());
    } else if (form == "x1") {
        std::vector<bf16_t> table(table_bytes.size() / 2), out(out_bytes.size() / 2);
        std::memcpy(table.data(), table_bytes.data(), table_bytes.size());
        std::memcpy(out.data(), out_bytes.data(), out_bytes.size());
        launch(grid, [&] {
            gather_rows_bf16(idx.data(), rows, H, table.data(), table_rows, D, lo, out.data(),
                             out_stride, out_offset);
        });
        std::memcpy(out_bytes.data(), out.data(), out_bytes.size());
    } else {
        std::fprintf(stderr, "unknown form %s\n", form.c_str());
        return 2;
    }
    std::ofstream(dir + "/out.bin", std::ios::binary)
        .write(out_bytes.data(), (std::streamsize)out_bytes.size());
    return 0;
}
