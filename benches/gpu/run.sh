#!/usr/bin/env bash
# The GPU test suite and benchmarks, in one call on a lent H100/H200
# (benches/gpu/README.md). Run from the repository root on the device, with
# what `benches/gpu/build.sh` built here carried in .gpu/, and for the JAX
# comparison the dm-haiku wheels in .whl/ and the reference's phoenix/
# folder in .ref/phoenix:
#
#   OUT=/some/dir bash benches/gpu/run.sh [quick]
#
# `quick` runs only the correctness tests, `ours` adds our benchmarks but
# not the PyTorch / JAX baselines, `thunder` runs only the Thunder CPU
# benchmark on the host's CPU (issue 19 wants it on an Intel CPU with AMX
# as well as on AMD; `ours` and `full` run it too, last). Each step has its own time limit,
# so one hang cannot eat the lease. $OUT gets summary.txt, gpu_bench.json
# and logs.tgz (every log and JSON), refreshed after each step.
set -uo pipefail
OUT=${OUT:-/tmp/foryou-gpu}
W=${W:-/tmp/foryou-gpu-work}
MODE=${1:-full}
mkdir -p "$OUT" "$W"
BIN=${BIN:-$W/bin}
if [ -f .gpu/bins.tar.xz ]; then mkdir -p "$BIN" && tar xJf .gpu/bins.tar.xz -C "$BIN"; fi
start=$SECONDS
step() { echo "== [$((SECONDS - start))s] $*" | tee -a "$W/steps.txt"; }
note() { echo "$*" | tee -a "$W/summary.txt"; }
pack() {
    cp "$W/summary.txt" "$OUT/summary.txt" 2>/dev/null
    [ -f "$W/gpu_bench.json" ] && cp "$W/gpu_bench.json" "$OUT/"
    tar czf "$OUT/logs.tgz" -C "$W" --exclude=./bin . 2>/dev/null
}
: >"$W/summary.txt"

# The CUDA libraries the binaries load at run time: NVRTC and cuBLAS (from
# the image's CUDA or its Python wheels).
# libcuda comes from the system loader (never CUDA's compat/ or stubs/
# copies: those break the driver for every process, torch's too).
libdirs=$(find /usr/local/cuda*/ /opt \( -name 'libnvrtc.so*' -o -name 'libcublas.so*' \) \
    -printf '%h\n' 2>/dev/null | grep -vE '/(compat|stubs)' | sort -u | tr '\n' ':')
export LD_LIBRARY_PATH="${libdirs}${LD_LIBRARY_PATH:-}"
# The engine's tests find the fixtures at the path they were built in.
if [ ! -e /work/main ]; then mkdir -p /work && ln -s "$PWD" /work/main; fi
export FORYOU_REQUIRE_GPU=1 RUST_BACKTRACE=1 PYTHONUNBUFFERED=1

# Thunder on the host's CPU (no GPU involved): GetInNetworkPosts at 1000
# follows and ingest on one against two threads (thunder-profile).
thunder_on_host() {
    step "Thunder on the host's CPU: requests at 1000 follows, ingest on 2 threads"
    note "cpu: $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1), $(nproc) cores, amx: $(grep -qw amx_tile /proc/cpuinfo && echo yes || echo no)"
    timeout 60 "$BIN/thunder-profile" >"$W/thunder_request.log" 2>&1 \
        || note "thunder-profile failed (thunder_request.log)"
    timeout 180 "$BIN/thunder-profile" ingest 2 >"$W/thunder_ingest.log" 2>&1 \
        || note "thunder-profile ingest failed (thunder_ingest.log)"
    cat "$W/thunder_request.log" "$W/thunder_ingest.log" | tee -a "$W/summary.txt"
    pack
}
if [ "$MODE" = thunder ]; then thunder_on_host; step done; exit 0; fi

step "device"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv | tee "$W/device.txt"
note "device: $(tail -1 "$W/device.txt")"
note "libs: $LD_LIBRARY_PATH"

step "kernel contract tests (kernels vs CPU references, fresh random inputs)"
if timeout 150 "$BIN/gpu_contract" --test-threads=1 --nocapture --skip attention_gemm >"$W/contract.log" 2>&1; then
    note "kernel contract tests: PASS"
else
    note "kernel contract tests: FAIL (contract.log)"
fi
# The GEMM attention path (never run on a GPU before) in a process of its
# own: a device fault there cannot take the other tests' context with it.
if timeout 60 "$BIN/gpu_contract" --test-threads=1 --nocapture attention_gemm >>"$W/contract.log" 2>&1; then
    note "GEMM attention path contract: PASS"
else
    note "GEMM attention path contract: FAIL (contract.log)"
fi
grep -E "rel err|top_k n|gather|seed|panicked|test result" "$W/contract.log" | tee -a "$W/summary.txt"
pack

step "engine on the GPU vs the reference fixtures and the CPU path"
if timeout 150 "$BIN/gpu_parity" --test-threads=1 --nocapture --skip gemm_attention >"$W/parity.log" 2>&1; then
    note "ranker on the GPU vs fixtures and CPU: PASS"
else
    note "ranker on the GPU vs fixtures and CPU: FAIL (parity.log)"
fi
if timeout 90 "$BIN/gpu_parity" --test-threads=1 --nocapture gemm_attention >>"$W/parity.log" 2>&1; then
    note "ranker on the GPU with the GEMM attention path: PASS"
else
    note "ranker on the GPU with the GEMM attention path: FAIL (parity.log)"
fi
grep -E "max\|d|rank_ids|panicked|test result" "$W/parity.log" | tee -a "$W/summary.txt"
pack
[ "$MODE" = quick ] && { step done; pack; exit 0; }

step "models: demo and prod-like (seeded random weights)"
mkdir -p /tmp/models
"$BIN/foryou" phoenix init --preset demo --seed 1 --out /tmp/models/demo >"$W/init.log" 2>&1
timeout 120 "$BIN/foryou" phoenix init --preset prod-like --seed 1 --table-rows 1024 --out /tmp/models/prod >>"$W/init.log" 2>&1 \
    || note "prod-like init failed (init.log)"

step "gpu-bench: ceilings, attention, top-k, ranker end to end (flash attention)"
timeout 200 "$BIN/gpu-bench" --json "$W/gpu_bench.json" --ranker /tmp/models/demo --ranker /tmp/models/prod \
    --ranker-batch 1,4,16 --reps 10 --attention flash >"$W/gpu_bench.log" 2>&1 || note "gpu-bench failed (gpu_bench.log)"
grep -vE "^\s*$" "$W/gpu_bench.log" | tee -a "$W/summary.txt"
pack

# The GEMM attention path in processes of its own (it has never run on a
# GPU before: a fault there must not cost the figures above): the two
# paths side by side at the prod shapes, then the ranker on the GEMM path.
step "gpu-bench: attention, flash kernel vs GEMM path; ranker end to end on the GEMM path"
timeout 60 "$BIN/gpu-bench" --only attention --attention flash,gemm --reps 10 \
    --json "$W/gpu_bench_attention.json" >"$W/gpu_bench_attention.log" 2>&1 \
    || note "gpu-bench attention flash,gemm failed (gpu_bench_attention.log)"
timeout 120 "$BIN/gpu-bench" --only ranker --attention gemm --ranker /tmp/models/demo --ranker /tmp/models/prod \
    --ranker-batch 1,4,16 --reps 10 --json "$W/gpu_bench_ranker_gemm.json" >"$W/gpu_bench_ranker_gemm.log" 2>&1 \
    || note "gpu-bench ranker gemm failed (gpu_bench_ranker_gemm.log)"
cat "$W/gpu_bench_attention.log" "$W/gpu_bench_ranker_gemm.log" | grep -vE "^\s*$" | tee -a "$W/summary.txt"
pack

step "live index: sealed segments on the GPU vs the CPU scan (1M, 10M posts)"
timeout 240 "$BIN/index-device" --device cuda --n 1000000,10000000 --reps 20 \
    --json "$W/index_device.json" >"$W/index_device.log" 2>&1 || note "index-device failed (index_device.log)"
grep -vE "^\s*$" "$W/index_device.log" | tee -a "$W/summary.txt"
pack

thunder_on_host

[ "$MODE" = ours ] && { step done; pack; exit 0; }

step "PyTorch baselines: FlexAttention / SDPA, torch.topk"
timeout 120 python3 benches/gpu/attention_torch.py --json "$W/attention_torch.json" >"$W/attention_torch.log" 2>&1 \
    || note "attention_torch.py failed or timed out"
tail -14 "$W/attention_torch.log" | tee -a "$W/summary.txt"
pack
timeout 120 python3 benches/gpu/topk_torch.py --no-ceilings --k 100,1000,16384 --json "$W/topk_torch.json" >"$W/topk_torch.log" 2>&1 \
    || note "topk_torch.py failed or timed out"
tail -14 "$W/topk_torch.log" | tee -a "$W/summary.txt"
pack

step "JAX reference (jit, bf16) at the prod-like shape"
if [ -d .whl ] && [ -d .ref/phoenix ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site
    timeout 200 python3 benches/reference/jax_phoenix_bench.py --phoenix .ref/phoenix --platform gpu \
        --model /tmp/models/prod --dtype bf16 --batch 1,4 --requests 16 --json "$W/jax_prod.json" >"$W/jax_prod.log" 2>&1 \
        || note "JAX prod-like failed or timed out"
    tail -12 "$W/jax_prod.log" | tee -a "$W/summary.txt"
else
    note "JAX reference: skipped (.whl or .ref/phoenix not carried)"
fi
step done
pack
