#!/usr/bin/env bash
# Dynamic batching against no batching under open-loop load: starts
# `foryou serve` four times on the demo world and model (the CPU default,
# batches of 1 with a bounded queue; batches up to 2; batches up to 16; the
# batcher bypassed with --rank-batch-max 0 --retrieve-batch-max 0), drives
# PhoenixRanker.Predict with `foryou bench load` at the same offered rates,
# and prints the four tables; then the fixed-batch throughput of the same
# request shape from `foryou bench batch`, in process. Usage:
#   benches/load_batching.sh [FORYOU_BINARY] [OUT_DIR] [QPS_LIST]
set -euo pipefail
BIN=${1:-target/release/foryou}
OUT=${2:-benches/results/tmp/load_batching}
QPS=${3:-60,80,90,100,120,150}
ADDR=127.0.0.1:50091
mkdir -p "$OUT"

run_one() { # name, extra serve flags...
    local name=$1; shift
    "$BIN" serve --listen "$ADDR" --metrics-listen off "$@" >"$OUT/serve_$name.log" 2>&1 &
    local pid=$!
    trap 'kill $pid 2>/dev/null || true' EXIT
    for _ in $(seq 1 100); do
        "$BIN" feed --addr "http://$ADDR" --user 1 --json >/dev/null 2>&1 && break
        sleep 0.2
    done
    "$BIN" bench load --addr "http://$ADDR" --target rank --qps "$QPS" \
        --duration 8 --warmup 2 --candidates 1000 --out "$OUT/$name"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    trap - EXIT
}

echo "== the CPU default: batches of 1, queue of 16"
run_one default
echo "== batches up to 2, same queue bound"
run_one batch2 --rank-batch-max 2 --retrieve-batch-max 2 --batch-queue-max 16
echo "== batches up to 16 (queue 4 x 16 per worker)"
run_one batched16 --rank-batch-max 16 --retrieve-batch-max 16
echo "== the batcher bypassed (no queue bound: open-loop calls pile up)"
run_one unbatched --rank-batch-max 0 --retrieve-batch-max 0
echo "== fixed batches in process, 1000 candidates, 32 history"
CANDLE_NUM_THREADS=1 "$BIN" bench batch --batch 1,2,4,8,16 --candidates 1000 --history 32 \
    --requests 64 --corpus 1000 --top-k 10 | grep -E "^\| (stage|ranker)"
