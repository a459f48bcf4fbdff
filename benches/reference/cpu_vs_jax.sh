#!/usr/bin/env bash
# Our ranker (f32, and bf16 on AMX tiles) against the public JAX Phoenix
# model (jit, f32) on this CPU, in alternating rounds so the machine's drift
# hits every side alike; prints per-batch medians over the rounds and the
# speed-ups (JAX p50 / ours p50), and writes them to OUT/summary.md.
#
#   benches/reference/cpu_vs_jax.sh PHOENIX_DIR MODEL_DIR OUT_DIR \
#       [BATCHES] [REQUESTS] [ROUNDS] [THREADS]
#
# PHOENIX_DIR: the phoenix/ folder of an x-algorithm checkout (never
# committed here). MODEL_DIR: a ranker from `foryou phoenix init` (its
# config's fprop_dtype is overridden per side). Needs the Python packages
# of benches/reference/requirements.txt on `python` (or $PYTHON).
set -euo pipefail
PHOENIX=$1
MODEL=$2
OUT=$3
BATCHES=${4:-1,2,4,8}
REQUESTS=${5:-24}
ROUNDS=${6:-3}
THREADS=${7:-2}
BIN=${FORYOU:-target/release/foryou}
PY=${PYTHON:-python}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT/models"

# The same weights in both dtypes (only config.json differs).
for dt in float32 bfloat16; do
    mkdir -p "$OUT/models/$dt"
    cp "$MODEL/params.safetensors" "$OUT/models/$dt/"
    sed -E "s/\"fprop_dtype\": *\"[a-z0-9]+\"/\"fprop_dtype\": \"$dt\"/" \
        "$MODEL/config.json" >"$OUT/models/$dt/config.json"
done

for r in $(seq 1 "$ROUNDS"); do
    echo "== round $r of $ROUNDS"
    for dt in float32 bfloat16; do
        CANDLE_NUM_THREADS=$THREADS "$BIN" bench batch --model "$OUT/models/$dt" \
            --batch "$BATCHES" --requests "$REQUESTS" --out "$OUT/ours_${dt}_r$r" >/dev/null
    done
    "$PY" "$HERE/jax_phoenix_bench.py" --phoenix "$PHOENIX" --model "$OUT/models/float32" \
        --batch "$BATCHES" --requests "$REQUESTS" --json "$OUT/jax_r$r.json" >/dev/null
done

"$PY" - "$OUT" "$ROUNDS" "$BATCHES" "$THREADS" "$REQUESTS" <<'EOF'
import glob, json, statistics, sys
out, rounds, batches, threads, requests = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
def p50s(paths, key="rows"):
    by = {}
    for p in paths:
        d = json.load(open(p))
        rows = d[key] if isinstance(d, dict) else d
        for row in rows:
            if row.get("stage", "ranker") == "ranker":
                by.setdefault(row["batch"], []).append(row["p50_ms"])
    return by
jax = p50s(sorted(glob.glob(f"{out}/jax_r*.json")))
ours = {dt: p50s(sorted(glob.glob(f"{out}/ours_{dt}_r*/batch_cpu_*.json"))) for dt in ("float32", "bfloat16")}
lines = [
    f"Ranker p50 ms, median over {rounds} alternating rounds ({requests} requests per batch size, "
    f"ours with {threads} threads per op, JAX jit on every core); speed-up = JAX / ours.",
    "",
    "| batch | JAX f32 | ours f32 | speed-up f32 | ours bf16 (AMX) | speed-up bf16 | per-round speed-ups f32 / bf16 |",
    "|---|---|---|---|---|---|---|",
]
for b in sorted(jax):
    j = statistics.median(jax[b])
    f = statistics.median(ours["float32"].get(b, [float("nan")]))
    h = statistics.median(ours["bfloat16"].get(b, [float("nan")]))
    per = " ".join(
        f"{jr / fr:.2f}/{jr / hr:.2f}"
        for jr, fr, hr in zip(jax[b], ours["float32"].get(b, []), ours["bfloat16"].get(b, []))
    )
    lines.append(f"| {b} | {j:.2f} | {f:.2f} | {j / f:.2f}x | {h:.2f} | {j / h:.2f}x | {per} |")
text = "\n".join(lines) + "\n"
open(f"{out}/summary.md", "w").write(text)
print(text)
EOF
