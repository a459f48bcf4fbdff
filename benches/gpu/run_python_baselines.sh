#!/usr/bin/env bash
# Runs the Python GPU baselines (see PYTHON_BASELINES.md) on a machine with one
# CUDA GPU, from the repository root:
#
#   bash benches/gpu/run_python_baselines.sh OUTDIR [MODEL_DIR]
#
# OUTDIR gets attention_torch.json, topk_torch.json, jax_phoenix_gpu.json,
# jax_phoenix_gpu.md and one combined log (baselines.log): 5 files.
# MODEL_DIR (config.json + params.safetensors, e.g. made by
# `foryou phoenix init --preset prod-like`) is timed by the JAX reference when
# it exists; the JAX fixture check runs either way.
# dm-haiku / jmp come from .whl/ and the reference source from .ref/phoenix
# (both ignored by git; see PYTHON_BASELINES.md).
# Environment: SKIP="attention topk jax" skips parts; JAX_BATCH (default 1,4);
# TORCH_ARGS is appended to both torch scripts and JAX_PLATFORM (default gpu)
# is passed to the JAX script (CPU smoke test: TORCH_ARGS="--device cpu --small"
# JAX_PLATFORM=cpu).
set -u
OUT_DIR=${1:?usage: run_python_baselines.sh OUTDIR [MODEL_DIR]}
MODEL=${2:-}
SKIP=${SKIP:-}
JAX_BATCH=${JAX_BATCH:-1,4}
TORCH_ARGS=${TORCH_ARGS:-}
JAX_PLATFORM=${JAX_PLATFORM:-gpu}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/baselines.log"
: >"$LOG"
say() { echo "== $*" | tee -a "$LOG"; }
run() {  # run NAME TIMEOUT CMD...
    local name=$1 t=$2; shift 2
    say "$name: $*"
    local t0=$SECONDS
    timeout "$t" "$@" 2>&1 | tee -a "$LOG"
    local rc=${PIPESTATUS[0]}
    say "$name: rc=$rc in $((SECONDS - t0)) s"
}

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,temperature.gpu,power.draw \
    --format=csv 2>&1 | tee -a "$LOG"
python3 -c 'import torch, triton; print("torch", torch.__version__, "triton", triton.__version__, torch.cuda.get_device_name())' 2>&1 | tee -a "$LOG"

case " $SKIP " in *" attention "*) ;; *)
    run attention 240 python3 benches/gpu/attention_torch.py --json "$OUT_DIR/attention_torch.json" $TORCH_ARGS ;;
esac
case " $SKIP " in *" topk "*) ;; *)
    run topk 180 python3 benches/gpu/topk_torch.py --json "$OUT_DIR/topk_torch.json" $TORCH_ARGS ;;
esac
case " $SKIP " in *" jax "*) ;; *)
    if ! python3 -c 'import haiku' 2>/dev/null; then
        if ls .whl/*.whl >/dev/null 2>&1; then
            python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
                --target /tmp/site .whl/*.whl 2>&1 | tee -a "$LOG"
            export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
        fi
    fi
    F=engine/tests/fixtures/phoenix-reference
    run jax-fixtures 180 python3 benches/reference/jax_phoenix_bench.py --phoenix .ref/phoenix --platform "$JAX_PLATFORM" \
        --check-fixture $F/ranker_demo_f32 --check-fixture $F/ranker_gqa_f32 --check-fixture $F/ranker_demo_bf16
    if [ -n "$MODEL" ] && [ -f "$MODEL/config.json" ]; then
        run jax-model 300 python3 benches/reference/jax_phoenix_bench.py --phoenix .ref/phoenix --platform "$JAX_PLATFORM" \
            --model "$MODEL" --batch "$JAX_BATCH" --requests 32 \
            --out "$OUT_DIR" --name phoenix_gpu
    else
        say "jax-model: skipped (no MODEL_DIR/config.json: '${MODEL}')"
    fi ;;
esac
say "done"
