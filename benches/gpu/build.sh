#!/usr/bin/env bash
# Builds, on this (GPU-less) machine, everything benches/gpu/run.sh runs on
# the device and packs it, stripped and xz-compressed, into .gpu/bins.tar.xz
# (git-ignored; carry .gpu with the call): the `foryou`, `gpu-bench`,
# `index-device` and `thunder-profile` binaries and the GPU test executables,
# all with the `cuda` feature (the
# CUDA libraries are loaded at run time, so nothing CUDA is linked).
set -euo pipefail
cd "$(dirname "$0")/../.."
rm -rf .gpu && mkdir -p .gpu/bin
cargo build --release -p foryou-server -p foryou-benches --features foryou-server/cuda,foryou-benches/cuda \
    --bin foryou --bin gpu-bench --bin index-device --bin thunder-profile
cp target/release/foryou target/release/gpu-bench target/release/index-device \
    target/release/thunder-profile .gpu/bin/
cargo test --release -p foryou-kernels -p foryou-engine --features foryou-kernels/cuda,foryou-engine/cuda \
    --test gpu_contract --test gpu_parity --no-run --message-format=json \
    | python3 -c '
import json, shutil, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] in ("gpu_contract", "gpu_parity"):
        shutil.copy(m["executable"], ".gpu/bin/" + m["target"]["name"])
        print("copied", m["target"]["name"])
'
strip .gpu/bin/*
tar cJf .gpu/bins.tar.xz -C .gpu/bin .
rm -rf .gpu/bin
ls -la .gpu
