#!/usr/bin/env python3
"""Time the public JAX + dm-haiku Phoenix ranker on this machine, next to ours.

The model code is NOT part of this repository. Point ``--phoenix`` at the
``phoenix/`` folder of a checkout of the public x-algorithm repository; this
script puts that folder on ``sys.path`` and imports ``grok`` and
``recsys_model`` from it. Everything here (parameter loading, random inputs,
timing, tables) is our own code.

Modes (they can be combined):

* ``--check-fixture DIR``: run the jitted reference on one of our golden
  fixture sets (``config.json``, ``params.safetensors``, ``inputs.safetensors``,
  ``outputs.safetensors``) and print max |diff| of logits and probabilities.
  Exits non-zero when the logits differ by more than the tolerance. This proves
  that the parameter and input mapping below is right.
* ``--model DIR``: time the jitted reference at each ``--batch`` size on fresh
  random inputs, print a markdown table (side by side with ``--ours``, our
  engine's ``foryou bench batch`` JSON), and write ``jax_<name>.{json,md}``
  under ``--out`` (and/or the JSON to ``--json PATH``).

Platform: ``--platform auto`` (default) leaves JAX's choice alone (the GPU when
jaxlib has a CUDA plugin and sees one, else the CPU; ``JAX_PLATFORMS`` is
respected); ``--platform cpu`` / ``gpu`` force one.

See README.md next to this file for the exact commands.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# Tolerances on ranker logits for --check-fixture (the fixture README's
# suggested test tolerances: f32 1e-4, bf16 0.1).
DEFAULT_TOL = {"float32": 1e-4, "bfloat16": 0.1}

# Constants the reference hard-codes; config.json repeats them. We only check.
REFERENCE_CONSTANTS = {
    "rms_norm_eps": 1e-5,
    "rope_base": 10000.0,
    "attn_logit_softcap": 30.0,
    "attn_mask_fill": -1e30,
}

# Extra tensors our model directories may carry; the JAX model never reads them.
SKIP_PREFIXES = ("hash_embeddings/",)

# Inputs: the RecsysBatch fields, then the RecsysEmbeddings fields.
BATCH_FIELDS = (
    "user_hashes",
    "history_post_hashes",
    "history_author_hashes",
    "history_actions",
    "history_product_surface",
    "candidate_post_hashes",
    "candidate_author_hashes",
    "candidate_product_surface",
)
EMBEDDING_FIELDS = (
    "user_embeddings",
    "history_post_embeddings",
    "candidate_post_embeddings",
    "history_author_embeddings",
    "candidate_author_embeddings",
)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Arguments and environment (before jax is imported)
# ---------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Time the public JAX Phoenix ranker (jax.jit) and compare with foryou's engine.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--phoenix", required=True, type=Path,
                   help="the phoenix/ folder of an x-algorithm checkout (holds grok.py, recsys_model.py)")
    p.add_argument("--model", type=Path,
                   help="model directory in the reference layout: config.json + params.safetensors")
    p.add_argument("--check-fixture", type=Path, action="append", default=[], metavar="DIR",
                   help="fixture set to check the jitted reference against (repeatable)")
    p.add_argument("--tol", type=float, default=None,
                   help="max |diff| in logits for --check-fixture (default: 1e-4 f32, 0.1 bf16)")
    p.add_argument("--dtype", choices=["f32", "bf16"], default=None,
                   help="override the config's fprop_dtype")
    p.add_argument("--batch", default="1,2,4,8,16,32,64",
                   help="comma-separated batch sizes")
    p.add_argument("--history", type=int, default=None, help="history length S (default: config.json)")
    p.add_argument("--candidates", type=int, default=None, help="candidates per request C (default: config.json)")
    p.add_argument("--requests", type=int, default=64,
                   help="requests per batch size; timed calls = max(5, requests // batch)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls after the compiling call")
    p.add_argument("--seed", type=int, default=0, help="seed for the random inputs")
    p.add_argument("--output", choices=["probs", "logits", "rank"], default="probs",
                   help="what the timed function returns: logits; logits + sigmoid probs "
                        "(what our engine's forward returns); or the reference runner's rank "
                        "(probs + argsort by favorite)")
    p.add_argument("--no-jit", action="store_true",
                   help="time plain haiku apply (op-by-op, as the reference runner calls it) instead of jax.jit")
    p.add_argument("--cpus", default=None, metavar="LIST",
                   help="opt-in: pin this process to these CPUs (e.g. 0 or 0,1) before jax loads, "
                        "like `taskset -c`; XLA:CPU sizes its thread pools from the CPUs it may use. "
                        "Default: leave JAX's threading alone")
    p.add_argument("--platform", choices=["auto", "cpu", "gpu"], default="auto",
                   help="auto: whatever jax.default_backend() is (JAX_PLATFORMS is respected); "
                        "cpu / gpu: force that backend (gpu fails if JAX cannot use one)")
    p.add_argument("--input-sets", type=int, default=None, metavar="N",
                   help="0: generate fresh random inputs before every call (host numpy, then device_put); "
                        "N > 0: generate N sets once per batch size and rotate through them (much less "
                        "host time at big shapes). Default: 0 on the CPU, 3 on a GPU")
    p.add_argument("--matmul-precision", choices=["default", "high", "highest"], default=None,
                   help="jax_default_matmul_precision for the timed model (default: the backend's own; "
                        "on GPUs float32 dots may use TF32)")
    p.add_argument("--check-precision", choices=["default", "high", "highest"], default="highest",
                   help="matmul precision for --check-fixture (highest keeps f32 checks at f32 on GPUs; "
                        "the CPU backend computes f32 either way)")
    p.add_argument("--ours", type=Path, help="our engine's JSON from `foryou bench batch` (rows with stage == ranker)")
    p.add_argument("--out", type=Path, help="write jax_<name>.json and jax_<name>.md here")
    p.add_argument("--name", default=None, help="<name> in the output files (default: basename of --model)")
    p.add_argument("--json", type=Path, default=None, metavar="PATH",
                   help="also write the JSON document (rows + metadata) to this exact path")
    args = p.parse_args(argv)
    if args.model is None and not args.check_fixture:
        p.error("nothing to do: give --model and/or --check-fixture")
    try:
        args.batch_sizes = [int(x) for x in args.batch.split(",") if x.strip()]
    except ValueError:
        p.error(f"--batch {args.batch!r}: expected comma-separated integers")
    if not args.batch_sizes or min(args.batch_sizes) < 1:
        p.error("--batch: sizes must be >= 1")
    if args.requests < 1:
        p.error("--requests must be >= 1")
    if args.input_sets is not None and args.input_sets < 0:
        p.error("--input-sets must be >= 0")
    return args


def setup_environment(args) -> None:
    # --platform auto leaves JAX_PLATFORMS (and so jax.default_backend()) alone:
    # on a CPU-only jaxlib that is the CPU, as before; with a CUDA plugin and a
    # GPU, the GPU. cpu / gpu force the backend (the CPU stays available for
    # host-side arrays in gpu mode).
    if args.platform == "cpu":
        os.environ["JAX_PLATFORMS"] = "cpu"
    elif args.platform == "gpu":
        os.environ["JAX_PLATFORMS"] = "cuda,cpu"
    if args.cpus is not None:
        try:
            cpus = {int(c) for c in args.cpus.split(",") if c.strip()}
            os.sched_setaffinity(0, cpus)
        except (ValueError, OSError, AttributeError) as e:
            raise SystemExit(f"--cpus {args.cpus!r}: {e}")


# ---------------------------------------------------------------------------
# Reference model
# ---------------------------------------------------------------------------


class Reference:
    """The imported reference modules plus helpers to build and run the ranker."""

    def __init__(self, phoenix_dir: Path):
        phoenix_dir = phoenix_dir.resolve()
        for f in ("grok.py", "recsys_model.py"):
            if not (phoenix_dir / f).is_file():
                raise SystemExit(f"--phoenix {phoenix_dir}: no {f} there (expected the x-algorithm phoenix/ folder)")
        sys.path.insert(0, str(phoenix_dir))
        import haiku as hk  # noqa: E402
        import jax  # noqa: E402
        import jax.numpy as jnp  # noqa: E402
        import grok  # noqa: E402
        import recsys_model  # noqa: E402

        self.dir = phoenix_dir
        self.hk, self.jax, self.jnp = hk, jax, jnp
        self.grok, self.recsys = grok, recsys_model

    def provenance(self) -> dict:
        info = {"phoenix_dir": str(self.dir)}
        info["git_commit"] = None
        marker = self.dir / "SOURCE_COMMIT"  # copies outside a checkout (e.g. carried to a GPU machine)
        if marker.is_file():
            info["git_commit"] = marker.read_text().strip() or None
            info["git_commit_from"] = "SOURCE_COMMIT file"
        else:
            try:
                top = subprocess.run(
                    ["git", "-C", str(self.dir), "rev-parse", "--show-toplevel"],
                    capture_output=True, text=True, check=True, timeout=10,
                ).stdout.strip()
                # Only trust the commit if phoenix/ sits directly in that checkout
                # (a copy inside another repository would report that repository).
                if Path(top).resolve() == self.dir.parent:
                    info["git_commit"] = subprocess.run(
                        ["git", "-C", str(self.dir), "rev-parse", "HEAD"],
                        capture_output=True, text=True, check=True, timeout=10,
                    ).stdout.strip()
            except Exception:  # not a git checkout, or no git
                pass
        for f in ("grok.py", "recsys_model.py"):
            info[f"sha256_{f}"] = hashlib.sha256((self.dir / f).read_bytes()).hexdigest()
        return info

    def fprop_dtype(self, cfg: dict, override: str | None):
        jnp = self.jnp
        name = {"f32": "float32", "bf16": "bfloat16"}.get(override or "", cfg.get("fprop_dtype", "float32"))
        if name not in ("float32", "bfloat16"):
            raise SystemExit(f"fprop_dtype {name!r}: expected float32 or bfloat16")
        return name, (jnp.float32 if name == "float32" else jnp.bfloat16)

    def model_config(self, cfg: dict, fprop_dtype, history: int, candidates: int):
        """The reference's PhoenixModelConfig for our config.json."""
        kind = cfg.get("model_kind", "ranker")
        if kind != "ranker":
            raise SystemExit(f"model_kind {kind!r}: this script times the ranker only")
        for key, ref in REFERENCE_CONSTANTS.items():
            if key in cfg and float(cfg[key]) != ref:
                log(f"warning: config {key} = {cfg[key]} but the reference hard-codes {ref}; "
                    "the JAX model uses the reference value")
        pos = cfg.get("candidate_positions", "absolute")
        if pos != "absolute":
            log(f"warning: candidate_positions = {pos!r}; the reference always uses absolute positions")
        D = int(cfg["emb_size"])
        ffn = self.grok.ffn_size(D, cfg["widening_factor"])
        if "ffn_size" in cfg and int(cfg["ffn_size"]) != ffn:
            raise SystemExit(f"config ffn_size {cfg['ffn_size']} but the reference derives {ffn} "
                             f"from emb_size {D} and widening_factor {cfg['widening_factor']}")
        tcfg = self.grok.TransformerConfig(
            emb_size=D,
            key_size=int(cfg["key_size"]),
            num_q_heads=int(cfg["num_q_heads"]),
            num_kv_heads=int(cfg["num_kv_heads"]),
            num_layers=int(cfg["num_layers"]),
            widening_factor=cfg["widening_factor"],
            attn_output_multiplier=float(cfg["attn_output_multiplier"]),
        )
        mcfg = self.recsys.PhoenixModelConfig(
            model=tcfg,
            emb_size=D,
            num_actions=int(cfg["num_actions"]),
            history_seq_len=history,
            candidate_seq_len=candidates,
            fprop_dtype=fprop_dtype,
            hash_config=self.recsys.HashConfig(
                num_user_hashes=int(cfg["num_user_hashes"]),
                num_item_hashes=int(cfg["num_item_hashes"]),
                num_author_hashes=int(cfg["num_author_hashes"]),
            ),
            product_surface_vocab_size=int(cfg["product_surface_vocab_size"]),
        )
        # The reference's own runner forces bf16 inside initialize(); we call
        # the config's initialize() directly so fprop_dtype stays as chosen.
        mcfg.initialize()
        assert mcfg.fprop_dtype == fprop_dtype
        return mcfg

    def transformed(self, mcfg, output: str):
        """hk.transform of the forward pass (no rng needed at apply time)."""
        hk, jax, jnp = self.hk, self.jax, self.jnp
        RecsysBatch, RecsysEmbeddings = self.recsys.RecsysBatch, self.recsys.RecsysEmbeddings

        def fn(batch: dict, emb: dict):
            b = RecsysBatch(**{k: batch[k] for k in BATCH_FIELDS})
            e = RecsysEmbeddings(**{k: emb[k] for k in EMBEDDING_FIELDS})
            logits = mcfg.make()(b, e).logits
            if output == "logits":
                return logits
            probs = jax.nn.sigmoid(logits)
            if output == "probs":
                return logits, probs
            return probs, jnp.argsort(-probs[:, :, 0], axis=-1)

        return hk.without_apply_rng(hk.transform(fn))

    def load_params(self, transformed, params_path: Path, example_inputs) -> dict:
        """Our safetensors (names ``module_path/param_name``) -> haiku's nested params.

        The structure and shapes are checked against what haiku's init would
        create for these inputs (via eval_shape, so nothing is computed).
        Params stay float32, as the reference declares them; the model casts
        weights to the fprop dtype where it uses them.
        """
        from safetensors import safe_open

        jax = self.jax
        expected = jax.eval_shape(transformed.init, jax.random.PRNGKey(0), *example_inputs)
        want = {f"{mod}/{name}": leaf for mod, d in expected.items() for name, leaf in d.items()}

        params: dict = {}
        skipped, extra = [], []
        with safe_open(str(params_path), framework="numpy") as f:
            for key in f.keys():
                if key.startswith(SKIP_PREFIXES):
                    skipped.append(key)
                    continue
                if key not in want:
                    extra.append(key)
                    continue
                arr = f.get_tensor(key)
                exp = want[key]
                if tuple(arr.shape) != tuple(exp.shape):
                    raise SystemExit(f"{params_path}: {key} has shape {list(arr.shape)}, "
                                     f"the reference expects {list(exp.shape)}")
                mod, _, name = key.rpartition("/")
                params.setdefault(mod, {})[name] = jax.device_put(np.asarray(arr, dtype=exp.dtype))
        missing = sorted(set(want) - {f"{m}/{n}" for m, d in params.items() for n in d})
        if missing or extra:
            raise SystemExit(f"{params_path}: parameter names do not match the reference.\n"
                             f"  missing: {missing}\n  unexpected: {extra}")
        if skipped:
            log(f"params: skipped {len(skipped)} tensor(s) the JAX model does not use: {', '.join(skipped)}")
        return params


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------


def random_inputs(rng: np.random.Generator, cfg: dict, B: int, S: int, C: int):
    """Fresh random inputs; every user, history row and candidate is valid.

    Hashes in [1, 100000) (the model only reads whether the first hash is
    non-zero), product surfaces in [0, V), actions Bernoulli(0.3) as 0/1
    float32, embeddings standard normal float32 (the dtype the reference's
    own example batch uses, whatever the fprop dtype).
    """
    D, A, V = int(cfg["emb_size"]), int(cfg["num_actions"]), int(cfg["product_surface_vocab_size"])
    Hu, Hi, Ha = int(cfg["num_user_hashes"]), int(cfg["num_item_hashes"]), int(cfg["num_author_hashes"])

    def h(*shape):
        return rng.integers(1, 100_000, size=shape, dtype=np.int32)

    def e(*shape):
        return rng.standard_normal(size=shape, dtype=np.float32)

    batch = {
        "user_hashes": h(B, Hu),
        "history_post_hashes": h(B, S, Hi),
        "history_author_hashes": h(B, S, Ha),
        "history_actions": (rng.random((B, S, A)) < 0.3).astype(np.float32),
        "history_product_surface": rng.integers(0, V, size=(B, S), dtype=np.int32),
        "candidate_post_hashes": h(B, C, Hi),
        "candidate_author_hashes": h(B, C, Ha),
        "candidate_product_surface": rng.integers(0, V, size=(B, C), dtype=np.int32),
    }
    emb = {
        "user_embeddings": e(B, Hu, D),
        "history_post_embeddings": e(B, S, Hi, D),
        "candidate_post_embeddings": e(B, C, Hi, D),
        "history_author_embeddings": e(B, S, Ha, D),
        "candidate_author_embeddings": e(B, C, Ha, D),
    }
    return batch, emb


def fixture_inputs(path: Path):
    from safetensors.numpy import load_file

    t = load_file(str(path))
    missing = [k for k in BATCH_FIELDS + EMBEDDING_FIELDS if k not in t]
    if missing:
        raise SystemExit(f"{path}: missing inputs {missing}")
    batch = {k: np.asarray(t[k]) for k in BATCH_FIELDS}
    emb = {k: np.asarray(t[k]) for k in EMBEDDING_FIELDS}
    return batch, emb


# ---------------------------------------------------------------------------
# Fixture check
# ---------------------------------------------------------------------------


def check_fixture(ref: Reference, fixture: Path, args) -> bool:
    from safetensors.numpy import load_file

    cfg = json.loads((fixture / "config.json").read_text())
    batch, emb = fixture_inputs(fixture / "inputs.safetensors")
    B, S, _ = batch["history_post_hashes"].shape
    C = batch["candidate_post_hashes"].shape[1]
    dtype_name, dtype = ref.fprop_dtype(cfg, args.dtype)
    mcfg = ref.model_config(cfg, dtype, S, C)
    tf = ref.transformed(mcfg, "probs")
    params = ref.load_params(tf, fixture / "params.safetensors", (batch, emb))
    with ref.jax.default_matmul_precision(args.check_precision):
        logits, probs = ref.jax.jit(tf.apply)(params, batch, emb)
    logits = np.asarray(logits, dtype=np.float32)
    probs = np.asarray(probs, dtype=np.float32)

    want = load_file(str(fixture / "outputs.safetensors"))
    d_logits = float(np.max(np.abs(logits - want["logits"])))
    d_probs = float(np.max(np.abs(probs - want["probs"])))
    tol = args.tol if args.tol is not None else DEFAULT_TOL[dtype_name]
    # Same ordering rule as the fixture: descending favorite prob, stable.
    ranked = np.argsort(-probs[:, :, 0], axis=-1, kind="stable")
    same_rank = bool(np.array_equal(ranked, want["ranked_indices"])) if "ranked_indices" in want else None
    ok = d_logits <= tol and np.isfinite(d_logits)
    print(f"fixture {fixture.name}: B={B} S={S} C={C} fprop={dtype_name} (jax.jit, "
          f"{ref.jax.default_backend()}, matmul precision {args.check_precision}) "
          f"max|dlogits|={d_logits:.3e} max|dprobs|={d_probs:.3e} ranked_indices_equal={same_rank} "
          f"tol={tol:g} -> {'PASS' if ok else 'FAIL'}", flush=True)
    return ok


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------


def pct(sorted_ms: list[float], q: float) -> float:
    """Nearest rank at round((n-1)*q), the rule our `foryou bench batch` uses."""
    return sorted_ms[int(round((len(sorted_ms) - 1) * q))]


def time_model(ref: Reference, cfg: dict, args) -> tuple[list[dict], dict]:
    jax = ref.jax
    S = args.history or int(cfg["history_seq_len"])
    C = args.candidates or int(cfg["candidate_seq_len"])
    dtype_name, dtype = ref.fprop_dtype(cfg, args.dtype)
    mcfg = ref.model_config(cfg, dtype, S, C)
    tf = ref.transformed(mcfg, args.output)
    rng = np.random.default_rng(args.seed)
    t_load = time.perf_counter()
    params = ref.load_params(tf, args.model / "params.safetensors", random_inputs(rng, cfg, 1, S, C))
    jax.block_until_ready(params)
    load_s = time.perf_counter() - t_load
    n_params = sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(params))
    log(f"params: {n_params / 1e6:.1f} M loaded and on {jax.default_backend()} in {load_s:.1f} s")
    fn = tf.apply if args.no_jit else jax.jit(tf.apply)
    n_sets = args.input_sets if args.input_sets is not None else (0 if jax.default_backend() == "cpu" else 3)

    def fresh(B):
        batch, emb = random_inputs(rng, cfg, B, S, C)
        # Host -> device outside the timed region (on CPU: one copy). device_put
        # is asynchronous: wait for it so no transfer runs inside the timer.
        return jax.block_until_ready((jax.device_put(batch), jax.device_put(emb)))

    pool: list = []

    def next_inputs(B, i):
        """Fresh inputs (n_sets == 0) or the (i mod n_sets)-th of n_sets pre-generated sets."""
        if n_sets == 0:
            return fresh(B)
        if not pool:
            pool.extend(fresh(B) for _ in range(n_sets))
        return pool[i % n_sets]

    def call(inputs):
        out = fn(params, *inputs)
        jax.block_until_ready(out)

    rows = []
    precision = contextlib.nullcontext() if args.matmul_precision is None else \
        jax.default_matmul_precision(args.matmul_precision)
    with precision:
        for B in args.batch_sizes:
            pool.clear()
            rows.append(_time_batch(B, S, C, args, fn, params, call, next_inputs, jax))
    pool.clear()
    shapes = {
        "emb_size": int(cfg["emb_size"]), "key_size": int(cfg["key_size"]),
        "num_q_heads": int(cfg["num_q_heads"]), "num_kv_heads": int(cfg["num_kv_heads"]),
        "num_layers": int(cfg["num_layers"]), "ffn_size": ref.grok.ffn_size(int(cfg["emb_size"]), cfg["widening_factor"]),
        "history": S, "candidates": C, "seq_len": 1 + S + C,
        "num_actions": int(cfg["num_actions"]),
        "hashes": [int(cfg["num_user_hashes"]), int(cfg["num_item_hashes"]), int(cfg["num_author_hashes"])],
    }
    return rows, {"shapes": shapes, "fprop_dtype": dtype_name, "input_sets": n_sets,
                  "params_count": n_params, "params_load_s": load_s,
                  "matmul_precision": args.matmul_precision or "backend default"}


def _time_batch(B, S, C, args, fn, params, call, next_inputs, jax) -> dict:
    """One batch size: a compiling call, warm-up calls, then the timed calls."""
    calls = max(5, args.requests // B)
    t0 = time.perf_counter()
    call(next_inputs(B, 0))  # compiles (jit) for this shape
    compile_ms = (time.perf_counter() - t0) * 1e3
    for w in range(args.warmup):
        call(next_inputs(B, 1 + w))
    ms = []
    for c in range(calls):
        inputs = next_inputs(B, 1 + args.warmup + c)
        t = time.perf_counter()
        out = fn(params, *inputs)
        jax.block_until_ready(out)
        ms.append((time.perf_counter() - t) * 1e3)
    ms.sort()
    p50 = pct(ms, 0.5)
    row = {
        "stage": "ranker",
        "impl": "jax-reference" + ("-eager" if args.no_jit else "-jit"),
        "batch": B,
        "p50_ms": p50,
        "p90_ms": pct(ms, 0.9),
        "p99_ms": pct(ms, 0.99),
        "mean_ms": float(np.mean(ms)),
        "min_ms": ms[0],
        "requests_per_s": B / (p50 / 1e3),
        "candidates_per_s": B * C / (p50 / 1e3),
        "calls": calls,
        "first_call_ms": compile_ms,
    }
    log(f"batch {B:>3}: p50 {p50:9.3f} ms  p90 {row['p90_ms']:9.3f}  p99 {row['p99_ms']:9.3f}  "
        f"({calls} calls, first call {compile_ms:.0f} ms)")
    return row


# ---------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def process_threads() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def environment_metadata(ref: Reference) -> dict:
    jax = ref.jax
    import jaxlib
    import haiku

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    try:
        cpu_devices = len(jax.devices("cpu"))
    except RuntimeError:  # JAX_PLATFORMS without cpu
        cpu_devices = 0
    dev0 = jax.devices()[0]
    return {
        "jax_version": jax.__version__,
        "jaxlib_version": getattr(jaxlib, "__version__", None),
        "haiku_version": haiku.__version__,
        "numpy_version": np.__version__,
        "python": platform.python_version(),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "device_kind": getattr(dev0, "device_kind", None),
        "device_platform": getattr(dev0, "platform", None),
        "jax_default_matmul_precision": getattr(jax.config, "jax_default_matmul_precision", None),
        "cpu_device_count": cpu_devices,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_in_affinity": affinity,
        # XLA:CPU sizes its intra-op (Eigen) pool from the CPUs it may use
        # unless XLA_FLAGS says otherwise.
        "cpus_pinned": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "jax_platforms": os.environ.get("JAX_PLATFORMS", ""),
        "process_threads_after_run": process_threads(),
    }


def load_ours(path: Path) -> dict[int, dict]:
    data = json.loads(path.read_text())
    rows = data["rows"] if isinstance(data, dict) and "rows" in data else data
    return {int(r["batch"]): r for r in rows if r.get("stage") == "ranker"}


def fmt(x: float | None, nd: int = 2) -> str:
    if x is None:
        return "—"
    return f"{x:.{nd}f}" if x < 1000 else f"{x:.0f}"


def markdown(rows: list[dict], ours: dict[int, dict] | None, meta: dict) -> str:
    s = meta["shapes"]
    lines = [
        f"# JAX Phoenix reference ranker ({'eager apply' if meta['no_jit'] else 'jax.jit'}, "
        f"{meta['fprop_dtype']}) vs batch size",
        "",
        f"Model: `{meta['model']}` · D {s['emb_size']}, {s['num_layers']} layers, "
        f"{s['num_q_heads']}/{s['num_kv_heads']} heads of {s['key_size']}, ffn {s['ffn_size']}, "
        f"history {s['history']}, {s['candidates']} candidates per request · output: {meta['output']}",
        "",
    ]
    if ours is None:
        lines += ["| batch | p50 ms | p90 ms | p99 ms | requests/s | candidates/s |",
                  "|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['batch']} | {fmt(r['p50_ms'])} | {fmt(r['p90_ms'])} | {fmt(r['p99_ms'])} "
                         f"| {fmt(r['requests_per_s'], 1)} | {r['candidates_per_s']:.0f} |")
    else:
        lines += ["| batch | JAX p50 ms | ours p50 ms | speed-up (JAX p50 / ours p50) |",
                  "|---|---|---|---|"]
        for r in rows:
            o = ours.get(r["batch"])
            op50 = o["p50_ms"] if o else None
            sp = f"{r['p50_ms'] / op50:.2f}x" if op50 else "—"
            lines.append(f"| {r['batch']} | {fmt(r['p50_ms'])} | {fmt(op50)} | {sp} |")
    e = meta["environment"]
    hw = ""
    if e.get("backend") != "cpu":
        hw = (f"Device: {e.get('device_kind')} ({e.get('backend')}; inputs: "
              f"{'fresh per call' if not meta.get('input_sets') else str(meta['input_sets']) + ' sets rotated'}; "
              f"matmul precision {meta.get('matmul_precision')}) · host ")
    lines += [
        "",
        hw +
        f"CPU: {e['cpu_model']} ({e['cpus_in_affinity']} CPUs usable, {e['cpu_device_count']} JAX CPU device(s), "
        f"XLA_FLAGS={e['xla_flags'] or '(unset)'}, {e['process_threads_after_run']} process threads after the run) · "
        f"jax {e['jax_version']} / jaxlib {e['jaxlib_version']} / dm-haiku {e['haiku_version']} · {meta['date']}",
        "",
        f"Command: `{meta['command']}`",
    ]
    if meta.get("ours_file"):
        lines.append(f"Ours: `{meta['ours_file']}` (ranker rows; speed-up > 1 means our engine is faster)")
    lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_environment(args)
    ref = Reference(args.phoenix)
    log(f"jax {ref.jax.__version__}, backend {ref.jax.default_backend()}, devices {ref.jax.devices()}")
    if args.platform == "gpu" and ref.jax.default_backend() != "gpu":
        log(f"--platform gpu: JAX's default backend is {ref.jax.default_backend()!r}")
        return 2

    ok = True
    for fx in args.check_fixture:
        ok = check_fixture(ref, fx, args) and ok
    if not ok:
        log("fixture check FAILED")
        return 1
    if args.model is None:
        return 0

    cfg = json.loads((args.model / "config.json").read_text())
    rows, info = time_model(ref, cfg, args)
    name = args.name or os.path.basename(os.path.normpath(str(args.model)))
    ours = load_ours(args.ours) if args.ours else None
    meta = {
        "name": name,
        "model": str(args.model),
        "fprop_dtype": info["fprop_dtype"],
        "shapes": info["shapes"],
        "output": args.output,
        "no_jit": args.no_jit,
        "requests": args.requests,
        "warmup_calls": args.warmup,
        "seed": args.seed,
        "percentiles": "nearest rank at round((n-1)*q) over the timed calls",
        "timed_region": "jitted apply(params, batch, embeddings) + block_until_ready; "
                        "inputs generated, device_put and block_until_ready'd before the timer starts",
        "platform_option": args.platform,
        "input_sets": info["input_sets"],
        "inputs": ("fresh random inputs for every call" if not info["input_sets"] else
                   f"{info['input_sets']} random input sets per batch size, generated once, rotated"),
        "matmul_precision": info["matmul_precision"],
        "params_count": info["params_count"],
        "params_load_s": info["params_load_s"],
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable] + sys.argv),
        "reference": ref.provenance(),
        "environment": environment_metadata(ref),
        "ours_file": str(args.ours) if args.ours else None,
    }
    md = markdown(rows, ours, meta)
    doc = {"metadata": meta, "rows": rows}
    if ours is not None:
        doc["comparison"] = [
            {"batch": r["batch"], "jax_p50_ms": r["p50_ms"],
             "ours_p50_ms": ours[r["batch"]]["p50_ms"] if r["batch"] in ours else None,
             "speedup": (r["p50_ms"] / ours[r["batch"]]["p50_ms"]) if r["batch"] in ours else None}
            for r in rows
        ]
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"jax_{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
        (args.out / f"jax_{name}.md").write_text(md)
        log(f"wrote {args.out / f'jax_{name}.json'} and {args.out / f'jax_{name}.md'}")
    if args.json:
        if args.json.parent and not args.json.parent.exists():
            args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        log(f"wrote {args.json}")
    print(md, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
