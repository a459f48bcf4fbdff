#!/usr/bin/env python3
"""PyTorch baselines for batched dot-product top-k retrieval, plus the GPU's two ceilings.

Corpus [N, D] and queries [B, D] in bf16 (fresh random normal data). For each
batch size B and each k:

* ``matmul``:        scores = q @ corpus.T  ([B, N] bf16, as torch computes it; per B);
* ``topk_only``:     torch.topk(scores, k) on precomputed bf16 scores (GB/s here = score bytes
                     read / time; no floor fraction);
* ``mm_topk_bf16``:  torch.topk(q @ corpus.T, k)  -- the end-to-end baseline;
* ``mm_topk_f32``:   torch.topk((q @ corpus.T).float(), k)  (--no-f32 skips it).

Ceilings, measured once: device-to-device copy bandwidth (``dst.copy_(src)``
of --copy-gib GiB, bytes read + written) and the bf16 matrix-product rate
(--mm-size cubed, random data).

Floor: reading the corpus once, N * D * 2 bytes / copy bandwidth. Each time's
``floor_fraction`` = floor / time (1.0 = at the bandwidth floor). The torch
pipeline must also write and re-read the [B, N] score matrix; that larger
byte count is reported as ``torch_pipeline_min_bytes``.

Correctness (query 0 of each B): returned values are sorted and equal the
scores at the returned indices; recall@k of the bf16 pipeline against the
exact top-k of float32 scores (upcast inputs, TF32 off) is reported (bf16
rounding of the scores makes near-ties differ, so recall is not exactly 1).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_common as gc  # noqa: E402


def int_list(s: str) -> list[int]:
    return [int(x.replace("_", "")) for x in s.split(",") if x.strip()]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--n", type=lambda s: int(s.replace("_", "")), default=10_000_000, help="corpus rows N")
    p.add_argument("--dim", type=int, default=128, help="embedding dimension D")
    p.add_argument("--batch", default="1,8,64", help="comma-separated query batch sizes B")
    p.add_argument("--k", default="100,1000,16384", help="comma-separated k values")
    p.add_argument("--no-f32", action="store_true", help="skip the .float() upcast variant")
    p.add_argument("--unsorted", action="store_true", help="torch.topk(..., sorted=False)")
    p.add_argument("--max-call-ms", type=float, default=1500.0,
                   help="if one call of a variant takes longer than this, time it only 3 times")
    p.add_argument("--copy-gib", type=float, default=2.0, help="copy-bandwidth source size in GiB")
    p.add_argument("--mm-size", type=int, default=8192, help="bf16 matmul ceiling: M = N = K")
    p.add_argument("--no-ceilings", action="store_true", help="skip the copy and matmul ceilings")
    p.add_argument("--no-check", action="store_true", help="skip the correctness / recall checks")
    p.add_argument("--sets", type=int, default=4, help="query sets to rotate")
    p.add_argument("--rep-ms", type=float, default=150.0, help="target timed milliseconds per variant")
    p.add_argument("--warmup-ms", type=float, default=25.0, help="target warm-up milliseconds per variant")
    p.add_argument("--no-flush", action="store_true", help="do not flush L2 before each timed call")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu (smoke test)")
    p.add_argument("--small", action="store_true",
                   help="tiny smoke shape: N=20000, B 1,4, k 10,100, copy 16 MiB, matmul 256")
    p.add_argument("--json", default="topk_torch.json", help="write the results here")
    args = p.parse_args(argv)
    if args.small:
        args.n, args.batch, args.k, args.copy_gib, args.mm_size = 20_000, "1,4", "10,100", 1 / 64, 256
    args.batches = int_list(args.batch)
    args.ks = int_list(args.k)
    if not args.batches or not args.ks or min(args.batches) < 1 or min(args.ks) < 1:
        p.error("--batch and --k need positive integers")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    dev = gc.pick_device(torch, args.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    N, D = args.n, args.dim
    dt = torch.bfloat16
    gen = torch.Generator(device=dev).manual_seed(args.seed)
    timer = gc.Timer(torch, dev, flush=not args.no_flush, warmup_ms=args.warmup_ms, rep_ms=args.rep_ms)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)

    def randn(*shape, dtype=dt):
        return torch.randn(*shape, generator=gen, device=dev, dtype=dtype)

    def timed(fn, n_sets=1):
        # one probe call decides whether the full repetition is affordable
        t = time.perf_counter()
        fn(0)
        sync()
        one_ms = (time.perf_counter() - t) * 1e3
        cap = 3 * one_ms / 1e3 if one_ms > args.max_call_ms else None
        return timer.measure(fn, n_sets, max_total_s=cap)

    # ------------------------------------------------------------ ceilings
    ceilings = {}
    if not args.no_ceilings:
        n_el = int(args.copy_gib * (1 << 30)) // 2
        src = randn(n_el)
        dst = torch.empty_like(src)
        tm = timed(lambda i: dst.copy_(src))
        ceilings["copy"] = {"bytes_each_way": n_el * 2, "bytes_counted": 2 * n_el * 2, **tm,
                            "gbs": 2 * n_el * 2 / (tm["median_ms"] / 1e3) / 1e9}
        if not torch.equal(dst[:1024], src[:1024]):
            raise SystemExit("copy ceiling: dst != src")
        del src, dst
        m = args.mm_size
        a, b = randn(m, m), randn(m, m)
        c = torch.empty(m, m, device=dev, dtype=dt)
        tm = timed(lambda i: torch.matmul(a, b, out=c))
        ceilings["matmul_bf16"] = {"m": m, "n": m, "k": m, "flops": 2 * m ** 3, **tm,
                                   "tflops": 2 * m ** 3 / (tm["median_ms"] / 1e3) / 1e12}
        del a, b, c
        gc.log(f"ceilings: copy {ceilings['copy']['gbs']:.0f} GB/s (read + write), "
               f"bf16 matmul {ceilings['matmul_bf16']['tflops']:.0f} TFLOP/s")
    copy_gbs = ceilings.get("copy", {}).get("gbs")

    # --------------------------------------------------------------- corpus
    t = time.perf_counter()
    corpus = randn(N, D)
    sync()
    gc.log(f"corpus [{N}, {D}] bf16 = {N * D * 2 / 1e9:.2f} GB generated in {time.perf_counter() - t:.1f} s")
    corpus_bytes = N * D * 2
    floor_ms = corpus_bytes / (copy_gbs * 1e9) * 1e3 if copy_gbs else None
    sorted_ = not args.unsorted

    rows = []

    def add(name, B, k, tm, extra=None):
        row = {"variant": name, "batch": B, "k": k, **tm}
        med_s = tm["median_ms"] / 1e3
        if name == "topk_only":  # reads the [B, N] bf16 scores, not the corpus
            row["scores_bytes"] = B * N * 2
            row["scores_gbs"] = B * N * 2 / med_s / 1e9
            row["corpus_gbs"] = row["matmul_tflops"] = row["floor_fraction"] = None
        else:
            row["corpus_gbs"] = corpus_bytes / med_s / 1e9
            row["matmul_tflops"] = 2 * B * N * D / med_s / 1e12
            row["floor_fraction"] = (floor_ms / tm["median_ms"]) if floor_ms else None
            row["torch_pipeline_min_bytes"] = corpus_bytes + (2 * B * N * 2 if name != "matmul" else B * N * 2)
        row["floor_ms"] = floor_ms
        if extra:
            row.update(extra)
        rows.append(row)
        gbs = (f"{row['corpus_gbs']:7.0f} GB/s corpus" if row["corpus_gbs"] is not None
               else f"{row['scores_gbs']:7.0f} GB/s scores")
        gc.log(f"{name:<14} B={B:<3} k={k if k is not None else '-':<6} {tm['median_ms']:9.4f} ms  "
               f"{gbs}  floor fraction {gc.fmt(row['floor_fraction'])}")
        return row

    def exact_topk_f32(q1, k):
        """Exact top-k of float32 scores for one query, in corpus chunks."""
        vals, idxs = [], []
        chunk = 1 << 21
        qf = q1.float()
        for s in range(0, N, chunk):
            sc = corpus[s:s + chunk].float() @ qf
            kk = min(k, sc.numel())
            v, i = torch.topk(sc, kk)
            vals.append(v)
            idxs.append(i + s)
        v, i = torch.topk(torch.cat(vals), k)
        return v, torch.cat(idxs)[i]

    for B in args.batches:
        qsets = [randn(B, D) for _ in range(max(1, args.sets))]
        ns = len(qsets)
        try:
            tm = timed(lambda i: torch.matmul(qsets[i], corpus.T), ns)
            add("matmul", B, None, tm)
        except Exception as e:
            rows.append({"variant": "matmul", "batch": B, "k": None, "error": f"{type(e).__name__}: {e}"[:300]})
            gc.log(f"matmul B={B}: FAILED {e}")
        scores0 = torch.matmul(qsets[0], corpus.T)
        for k in args.ks:
            if k > N:
                continue
            check = {}
            if not args.no_check:
                try:
                    v, i = torch.topk(torch.matmul(qsets[0], corpus.T), k, sorted=True)
                    ok_gather = bool(torch.equal(scores0.gather(1, i), v))
                    ok_sorted = bool((v[:, 1:] <= v[:, :-1]).all())
                    ev, ei = exact_topk_f32(qsets[0][0], k)
                    recall = len(set(i[0].tolist()) & set(ei.tolist())) / k
                    check = {"check_values_match_scores": ok_gather, "check_sorted": ok_sorted,
                             "recall_vs_exact_f32_query0": recall,
                             "kth_value_bf16_vs_exact_f32": [float(v[0, -1]), float(ev[-1])]}
                    if not (ok_gather and ok_sorted):
                        gc.log(f"WARNING: B={B} k={k}: check failed {check}")
                except Exception as e:
                    check = {"check_error": f"{type(e).__name__}: {e}"[:300]}
            variants = [
                ("topk_only", lambda i: torch.topk(scores0, k, sorted=sorted_), 1),
                ("mm_topk_bf16", lambda i: torch.topk(torch.matmul(qsets[i], corpus.T), k, sorted=sorted_), ns),
            ]
            if not args.no_f32:
                variants.append(("mm_topk_f32",
                                 lambda i: torch.topk(torch.matmul(qsets[i], corpus.T).float(), k, sorted=sorted_), ns))
            for name, fn, nsets in variants:
                try:
                    tm = timed(fn, nsets)
                    add(name, B, k, tm, check if name == "mm_topk_bf16" else None)
                except Exception as e:
                    rows.append({"variant": name, "batch": B, "k": k, "error": f"{type(e).__name__}: {e}"[:300]})
                    gc.log(f"{name} B={B} k={k}: FAILED {e}")
                    if dev.type == "cuda":
                        torch.cuda.synchronize(dev)
        scores0 = qsets = None  # free GPU memory before the next B

    meta = gc.device_metadata(torch, dev)
    doc = {
        "benchmark": "topk_torch",
        "metadata": meta,
        "shape": {"n": N, "dim": D, "dtype": "bf16", "batches": args.batches, "ks": args.ks, "sorted": sorted_},
        "ceilings": ceilings,
        "conventions": {
            "corpus_bytes": "N * D * 2 (bf16), read once",
            "floor_ms": "corpus_bytes / measured copy bandwidth (copy counts bytes read + written)",
            "floor_fraction": "floor_ms / median_ms (1.0 = reading the corpus once at copy bandwidth)",
            "corpus_gbs": "corpus_bytes / median time",
            "matmul_tflops": "2 * B * N * D / median time",
            "torch_pipeline_min_bytes": "corpus read + [B, N] bf16 scores written and read back (matmul: written)",
        },
        "corpus_bytes": corpus_bytes,
        "floor_ms": floor_ms,
        "timer": timer.describe(),
        "rows": rows,
    }
    gc.write_json(args.json, doc)

    print()
    print(f"### Dot-product top-k baselines (torch), {meta['device_name']} (torch {torch.__version__})")
    print()
    if ceilings:
        print(f"Ceilings: copy {ceilings['copy']['gbs']:.0f} GB/s (read + write, {args.copy_gib:g} GiB), "
              f"bf16 matmul {args.mm_size}^3 {ceilings['matmul_bf16']['tflops']:.0f} TFLOP/s. "
              f"Corpus [{N}, {D}] bf16 = {corpus_bytes / 1e9:.2f} GB; read-once floor "
              f"{gc.fmt(floor_ms)} ms.")
        print()
    tab = []
    for r in rows:
        if "error" in r:
            tab.append([r["variant"], r["batch"], r["k"], None, None, None, None, "ERROR " + r["error"][:50]])
            continue
        tab.append([r["variant"], r["batch"], r["k"] if r["k"] is not None else "—", r["median_ms"],
                    r["corpus_gbs"] if r["corpus_gbs"] is not None else f"({gc.fmt(r['scores_gbs'])} scores)",
                    r["floor_fraction"], r.get("recall_vs_exact_f32_query0"),
                    "" if r.get("check_values_match_scores", True) and r.get("check_sorted", True) else "CHECK FAILED"])
    print(gc.markdown_table(["variant", "B", "k", "median ms", "corpus GB/s", "floor fraction",
                             "recall vs f32 (q0)", "note"], tab))
    return 0


if __name__ == "__main__":
    sys.exit(main())
