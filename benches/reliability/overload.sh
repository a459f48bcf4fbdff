#!/usr/bin/env bash
# Overload with and without admission control (issue 18 goal 1): each case on
# a fresh `foryou serve` (release build: cargo build --release -p foryou-server),
# open-loop `foryou bench feed`, RSS read from /proc. Loopback only, ~2 min
# a case. Writes /tmp/adm/NAME.{json,log}; prints one line per case.
set -u
mkdir -p /tmp/adm
B=target/release/foryou
ADDR=127.0.0.1:50152
METRICS=127.0.0.1:50153
# The server-side time of the rejections: the smallest bucket bound of
# foryou_admission_rejection_seconds holding 99 % of them (ms), and their count.
rejection_p99() {
  curl -s http://$METRICS/metrics | awk '
    /^foryou_admission_rejection_seconds_bucket/ { match($0, /le="[^"]+"/); le = substr($0, RSTART + 4, RLENGTH - 5); n[++k] = $2; b[k] = le }
    /^foryou_admission_rejection_seconds_count/ { total = $2 }
    END { if (total == 0) { print "server_rejection_p99_ms=none"; exit }
          for (i = 1; i <= k; i++) if (n[i] >= 0.99 * total) { printf "server_rejection_p99_ms<=%s rejections=%d\n", (b[i] == "+Inf" ? "inf" : b[i] * 1000), total; exit } }'
}
run() { # name, serve flags..., then -- bench flags
  local name=$1; shift
  local sflags=(); while [ "$1" != "--" ]; do sflags+=("$1"); shift; done; shift
  $B serve --listen $ADDR --metrics-listen $METRICS --model-cache /tmp/adm/models "${sflags[@]}" 2>/tmp/adm/$name.log &
  local pid=$!
  for i in $(seq 1 600); do $B feed --addr http://$ADDR --user 42 >/dev/null 2>&1 && break; sleep 0.2; done
  sleep 3
  local rss0=$(awk '/VmRSS/{print $2}' /proc/$pid/status)
  $B bench feed --addr http://$ADDR --json "$@" > /tmp/adm/$name.json
  local rss1=$(awk '/VmRSS/{print $2}' /proc/$pid/status)
  echo "$name rss_kb_idle=$rss0 rss_kb_after=$rss1 $(rejection_p99) $(cat /tmp/adm/$name.json)"
  kill -TERM $pid; wait $pid
}
run capacity -- --qps 60 --duration 15
run x3_deadline -- --qps 180 --duration 15 --deadline-ms 500
run x10_deadline -- --qps 600 --duration 15 --deadline-ms 500
run x3_nodeadline -- --qps 180 --duration 15
run x3_deadline_off --max-in-flight 100000 --deadline-admission false -- --qps 180 --duration 15 --deadline-ms 500
run x3_deadline_mif32 --max-in-flight 32 -- --qps 180 --duration 15 --deadline-ms 500
run x3_deadline_mif64 --max-in-flight 64 -- --qps 180 --duration 15 --deadline-ms 500
