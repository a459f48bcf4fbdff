"""Shared helpers for the Python GPU baselines in this folder (our own code).

Timing follows the usual GPU benchmarking method (as triton.testing.do_bench):

* warm-up calls first (compilation, autotuning, handle creation stay out);
* per timed call: flush the L2 by writing a buffer of ``2 x L2`` bytes, queue a
  short GPU spin (``torch.cuda._sleep``) so that the host runs ahead of the
  device and launch overhead is hidden, then record a CUDA event, call the
  function on the next input set (rotating), record a second event;
* report the median (plus p10/p90/mean/min) over the repetitions.

A second number, ``loop_ms``, times ``n`` back-to-back calls (no flush, no
spin) between two events and divides by ``n``: it includes launch overhead
whenever the host cannot keep the GPU busy.

On ``--device cpu`` (smoke tests only) the same API times with
``time.perf_counter``.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def pkg_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def device_metadata(torch, device) -> dict:
    """Device name, sizes and library versions (without importing jax)."""
    meta = {
        "torch_version": torch.__version__,
        "torch_cuda_version": torch.version.cuda,
        "triton_version": pkg_version("triton"),
        "jax_version": pkg_version("jax"),
        "jaxlib_version": pkg_version("jaxlib"),
        "numpy_version": pkg_version("numpy"),
        "python": platform.python_version(),
        "hostname": platform.node(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable] + sys.argv),
        "device_type": device.type,
    }
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        meta.update({
            "device_name": torch.cuda.get_device_name(device),
            "compute_capability": f"{p.major}.{p.minor}",
            "multiprocessors": p.multi_processor_count,
            "total_memory_bytes": p.total_memory,
            "l2_cache_bytes": getattr(p, "L2_cache_size", None),
            "driver": _nvidia_smi("driver_version"),
            "sm_clock_mhz_max": _nvidia_smi("clocks.max.sm"),
        })
    else:
        meta["device_name"] = platform.processor() or "cpu"
        meta["cpu_count"] = os.cpu_count()
    return meta


def _nvidia_smi(field: str) -> str | None:
    import subprocess

    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except Exception:
        return None


def l2_bytes(torch, device) -> int:
    if device.type != "cuda":
        return 32 << 20
    n = getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 0) or 0
    return int(n) if n > 0 else 60 << 20


def sets_to_rotate(bytes_per_set: int, l2: int, max_sets: int = 16) -> int:
    """How many input sets so that one full rotation is at least 3 x L2."""
    if bytes_per_set <= 0:
        return 1
    return max(1, min(max_sets, math.ceil(3 * l2 / bytes_per_set)))


def _summary(ms: list[float]) -> dict:
    s = sorted(ms)
    n = len(s)

    def q(x):
        return s[min(n - 1, max(0, int(round((n - 1) * x))))]

    return {
        "median_ms": statistics.median(s),
        "p10_ms": q(0.1),
        "p90_ms": q(0.9),
        "mean_ms": statistics.fmean(s),
        "min_ms": s[0],
        "reps": n,
    }


class Timer:
    """CUDA-event timer with L2 flush, host run-ahead and input rotation."""

    def __init__(self, torch, device, *, flush: bool = True, spin_us: float = 150.0,
                 warmup_ms: float = 25.0, rep_ms: float = 150.0, min_reps: int = 10, max_reps: int = 500):
        self.torch = torch
        self.device = device
        self.cuda = device.type == "cuda"
        self.flush = flush and self.cuda
        self.warmup_ms = warmup_ms
        self.rep_ms = rep_ms
        self.min_reps = min_reps
        self.max_reps = max_reps
        self.flush_buf = None
        if self.flush:
            self.flush_buf = torch.empty(2 * l2_bytes(torch, device) // 4, dtype=torch.int32, device=device)
        self.spin_cycles = 0
        if self.cuda and spin_us > 0 and hasattr(torch.cuda, "_sleep"):
            clk = 1.98e9
            try:
                mhz = _nvidia_smi("clocks.max.sm")
                if mhz:
                    clk = float(mhz.split()[0]) * 1e6
            except ValueError:
                pass
            self.spin_cycles = int(spin_us * 1e-6 * clk)

    def describe(self) -> dict:
        return {
            "method": ("CUDA events around each call; before each call an L2 flush "
                       f"({'2 x L2 bytes written' if self.flush else 'off'}) and a GPU spin of "
                       f"{self.spin_cycles} cycles so the host runs ahead; input sets rotate; median over reps"
                       if self.cuda else "time.perf_counter around each call (CPU smoke test)"),
            "warmup_ms": self.warmup_ms,
            "rep_ms": self.rep_ms,
            "min_reps": self.min_reps,
            "max_reps": self.max_reps,
            "loop_ms": "n back-to-back calls over rotating inputs between two events, divided by n "
                       "(no flush, no spin: includes launch overhead when the host is the bottleneck)",
        }

    def _sync(self):
        if self.cuda:
            self.torch.cuda.synchronize(self.device)

    def _one_wall(self, fn, i) -> float:
        self._sync()
        t = time.perf_counter()
        fn(i)
        self._sync()
        return (time.perf_counter() - t) * 1e3

    def measure(self, fn, n_sets: int = 1, *, loop: bool = True, max_total_s: float | None = None) -> dict:
        """fn(i) runs the operation on input set i (0 <= i < n_sets)."""
        torch = self.torch
        # First calls: compile / load, and touch every input set once.
        t0 = time.perf_counter()
        for i in range(n_sets):
            fn(i)
        self._sync()
        first_s = time.perf_counter() - t0
        # Estimate.
        est = statistics.median(self._one_wall(fn, i % n_sets) for i in range(3))
        est = max(est, 1e-3)
        n_warm = int(min(200, max(2, self.warmup_ms / est)))
        n_rep = int(min(self.max_reps, max(self.min_reps, self.rep_ms / est)))
        if max_total_s is not None:
            n_rep = max(3, min(n_rep, int(max_total_s * 1e3 / est)))
        for i in range(n_warm):
            fn(i % n_sets)
        self._sync()
        if not self.cuda:
            ms = [self._one_wall(fn, i % n_sets) for i in range(n_rep)]
            out = _summary(ms)
            out["loop_ms"] = None
            out["first_calls_s"] = first_s
            return out
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(n_rep)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(n_rep)]
        for r in range(n_rep):
            if self.flush_buf is not None:
                self.flush_buf.zero_()
            if self.spin_cycles:
                torch.cuda._sleep(self.spin_cycles)
            starts[r].record()
            fn(r % n_sets)
            ends[r].record()
        torch.cuda.synchronize(self.device)
        ms = [s.elapsed_time(e) for s, e in zip(starts, ends)]
        out = _summary(ms)
        out["first_calls_s"] = first_s
        if loop:
            n_loop = max(n_sets, min(n_rep, 200))
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(self.device)
            a.record()
            for r in range(n_loop):
                fn(r % n_sets)
            b.record()
            torch.cuda.synchronize(self.device)
            out["loop_ms"] = a.elapsed_time(b) / n_loop
            out["loop_calls"] = n_loop
        else:
            out["loop_ms"] = None
        return out


def check_cuda_error(torch, device):
    """Synchronize and surface any asynchronous CUDA error."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rel_err(torch, out, ref) -> float:
    out = out.detach().to(torch.float32)
    ref = ref.detach().to(torch.float32)
    num = torch.linalg.vector_norm(out - ref).item()
    den = torch.linalg.vector_norm(ref).item()
    return float("nan") if not math.isfinite(num) else num / max(den, 1e-30)


def fmt(x, nd: int = 3) -> str:
    if x is None:
        return "—"
    if isinstance(x, str):
        return x
    if isinstance(x, float):
        if not math.isfinite(x):
            return str(x)
        if x == 0:
            return "0"
        if abs(x) >= 1000:
            return f"{x:.0f}"
        if abs(x) < 1e-3:
            return f"{x:.2e}"
        return f"{x:.{nd}f}" if abs(x) < 100 else f"{x:.1f}"
    return str(x)


def markdown_table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(fmt(c) for c in r) + " |")
    return "\n".join(lines)


def write_json(path: str | os.PathLike | None, doc: dict) -> None:
    if not path:
        return
    p = Path(path)
    if p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    log(f"wrote {p}")


def pick_device(torch, name: str):
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: torch sees no CUDA device (use --device cpu --small for a smoke test)")
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        torch.cuda.set_device(index)
        dev = torch.device("cuda", index)
    return dev
