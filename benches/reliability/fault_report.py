#!/usr/bin/env python3
"""The fault matrix's table (faults.sh): one row per case from its request
trace (<case>.csv, from `foryou bench feed --trace`) and its event times
(<case>.events, unix ms).

Columns, for requests by send time:
  before        p99 latency before the fault (ms)
  not OK        requests answered with an error status, whole run
  degraded      OK feeds with a failed component (e.g. no in-network
                posts, unranked) while the fault lasted
  open at        when the last circuit breaker opened after the fault (the
                home mixer's log), ms after the fault
  p99 open      p99 latency of requests sent from then until the restore,
                ms; goal <= 100
  max open      slowest request in that window, ms
  recovery      from the restore (SIGCONT, or the relaunch of a killed
                process, whose start-up it then includes) to the first
                request after which every feed is full, ms; goal <= 1000
                after SIGCONT
"""
import csv
import datetime
import os
import re
import sys


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[round(p / 100 * (len(xs) - 1))]


def load(d, name):
    with open(os.path.join(d, name + ".csv")) as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["t"] = float(r["sent_unix_ms"])
        r["lat"] = float(r["latency_ms"])
        r["ok"] = r["code"] == "Ok"
        r["deg"] = r["degraded"] == "1"
    events = {}
    with open(os.path.join(d, name + ".events")) as f:
        for line in f:
            k, v = line.split()
            events[k] = float(v)
    return sorted(rows, key=lambda r: r["t"]), events


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def breaker_opens(d):
    """Unix ms of every 'circuit breaker open' line of serve.log."""
    out = []
    try:
        with open(os.path.join(d, "serve.log")) as f:
            for line in f:
                line = ANSI.sub("", line)
                if "circuit breaker open" not in line:
                    continue
                stamp = line.split()[0].rstrip("Z")
                t = datetime.datetime.fromisoformat(stamp[:26]).replace(tzinfo=datetime.timezone.utc)
                out.append(t.timestamp() * 1e3)
    except OSError:
        pass
    return out


def fault_row(d, name):
    rows, ev = load(d, name)
    fault, restore = ev["fault"], ev["restore"]
    before = [r for r in rows if r["t"] < fault]
    during = [r for r in rows if fault <= r["t"] < restore]
    opens = [t for t in breaker_opens(d) if fault <= t < restore]
    open_at = max(opens) if opens else float("nan")
    opened = [r["lat"] for r in rows if open_at <= r["t"] < restore]
    after = [r for r in rows if r["t"] >= restore]
    bad_after = [r for r in after if not r["ok"] or r["deg"]]
    if not after:
        recovery = float("nan")
    elif bad_after:
        last = bad_after[-1]["t"]
        later = [r["t"] for r in after if r["t"] > last]
        recovery = (later[0] if later else float("nan")) - restore
    else:
        recovery = 0.0
    deg = sum(1 for r in during if r["deg"])
    codes = {}
    for r in rows:
        if not r["ok"]:
            codes[r["code"]] = codes.get(r["code"], 0) + 1
    not_ok = " ".join(f"{n} {c}" for c, n in sorted(codes.items())) or "0"
    return (
        f"| {name} | {len(rows)} | {pct([r['lat'] for r in before], 99):.1f} | {not_ok} "
        f"| {deg}/{len(during)} | {open_at - fault:.0f} | {pct(opened, 99):.1f} "
        f"| {max(opened, default=float('nan')):.1f} | {recovery:.0f} |"
    )


def term_row(d):
    rows, ev = load(d, "serve_term")
    fault, exited = ev["fault"], ev["exited"]
    before = [r for r in rows if r["t"] < fault]
    failed = [r for r in before if not r["ok"]]
    return (
        f"| serve_term | {len(rows)} | exit {exited - fault:.0f} ms after SIGTERM "
        f"(goal <= 5000) | sent before the signal: {len(before)}, not OK: {len(failed)} |"
    )


def main():
    d, qps = sys.argv[1], sys.argv[2]
    flags = sys.argv[3] if len(sys.argv) > 3 else ""
    print(f"Split roles on loopback, open-loop feeds at {qps} QPS, fault at +8 s, restore at +18 s; serve flags: `{flags or '(defaults)'}`.\n")
    print("| case | requests | p99 before (ms) | not OK | degraded during | open at (ms) | p99 open (ms) | max open (ms) | recovery (ms) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in ["thunder_kill", "thunder_stop", "phoenix_kill", "phoenix_stop"]:
        if os.path.exists(os.path.join(d, name + ".csv")):
            print(fault_row(d, name))
    if os.path.exists(os.path.join(d, "serve_term.csv")):
        print("\n| case | requests | exit | in flight |\n|---|---|---|---|")
        print(term_row(d))


if __name__ == "__main__":
    main()
