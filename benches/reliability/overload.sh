#!/usr/bin/env bash
# Overload with and without admission control (issue 18 goal 1): each case on
# a fresh `foryou serve` (release build: cargo build --release -p foryou-server),
# open-loop `foryou bench feed`, RSS read from /proc. Loopback only, ~2 min
# a case. Writes /tmp/adm/NAME.{json,log}; prints one line per case.
set -u
mkdir -p /tmp/adm
B=${B:-target/release/foryou}  # the server and client binary
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
# CPU seconds (user + system) a process has used.
server_cpu_s() { awk -v hz=$(getconf CLK_TCK) '{ print ($14 + $15) / hz }' /proc/$1/stat; }
run() { # name, serve flags..., then -- bench flags
  local name=$1; shift
  local sflags=(); while [ "$1" != "--" ]; do sflags+=("$1"); shift; done; shift
  $B serve --listen $ADDR --metrics-listen $METRICS --model-cache /tmp/adm/models "${sflags[@]}" 2>/tmp/adm/$name.log &
  local pid=$!
  for i in $(seq 1 600); do $B feed --addr http://$ADDR --user 42 >/dev/null 2>&1 && break; sleep 0.2; done
  # Warm-up at a third of capacity, then the idle RSS: the working memory
  # of serving at all (allocator pools, caches) is in the baseline, so the
  # growth after the case is what overload itself costs.
  $B bench feed --addr http://$ADDR --qps 20 --duration 3 --warmup 0 >/dev/null 2>&1
  sleep 2
  local rss0=$(awk '/VmRSS/{print $2}' /proc/$pid/status)
  local cpu0=$(server_cpu_s $pid)
  local t0=$(date +%s.%N)
  # Peak RSS while the case runs, sampled every 250 ms.
  ( peak=0; while kill -0 $pid 2>/dev/null; do r=$(awk '/VmRSS/{print $2}' /proc/$pid/status 2>/dev/null); [ "${r:-0}" -gt "$peak" ] && peak=$r; echo $peak > /tmp/adm/$name.peak; sleep 0.25; done ) &
  local sampler=$!
  /usr/bin/time -f "%U %S" -o /tmp/adm/$name.time $B bench feed --addr http://$ADDR --json "$@" > /tmp/adm/$name.json
  local wall=$(echo "$(date +%s.%N) - $t0" | bc)
  local cpu1=$(server_cpu_s $pid)
  local rss1=$(awk '/VmRSS/{print $2}' /proc/$pid/status)
  kill $sampler 2>/dev/null; wait $sampler 2>/dev/null
  local rssp=$(cat /tmp/adm/$name.peak)
  local limit=$(curl -s http://$METRICS/metrics | awk '/^foryou_admission_limit/ {print $2}')
  echo "$name rss_kb_idle=$rss0 rss_kb_after=$rss1 rss_kb_peak=$rssp limit_after=${limit:-none} server_cores=$(echo "scale=2; ($cpu1 - $cpu0) / $wall" | bc) client_cores=$(awk -v w=$wall '{ printf "%.2f", ($1 + $2) / w }' /tmp/adm/$name.time) $(rejection_p99) $(cat /tmp/adm/$name.json)"
  curl -s http://$METRICS/metrics > /tmp/adm/$name.metrics
  kill -TERM $pid; wait $pid
}
# CASES: a subset of the names below (default: all).
CASES=${CASES:-"capacity x3_deadline x10_deadline x3_nodeadline x3_deadline_off x3_deadline_fixed16 x3_deadline_fixed24 x3_deadline_fixed32"}
# REPS: rounds of all the cases, alternating them (a case's runs are named
# NAME.1, NAME.2, ... when there is more than one round).
REPS=${REPS:-1}
for r in $(seq 1 $REPS); do for c in $CASES; do
  tag=$c; [ "$REPS" -gt 1 ] && tag=$c.$r
  case $c in
  capacity) run $tag -- --qps 60 --duration 15 ;;
  x3_deadline) run $tag -- --qps 180 --duration 15 --deadline-ms 500 ;;
  x10_deadline) run $tag -- --qps 600 --duration 15 --deadline-ms 500 ;;
  x3_nodeadline) run $tag -- --qps 180 --duration 15 ;;
  # Before admission control: no bound, no deadline check.
  x3_deadline_off) run $tag --max-in-flight 100000 --admission-target-ms 0 --deadline-admission false -- --qps 180 --duration 15 --deadline-ms 500 ;;
  # Fixed bounds (no latency target), for the capacity the adaptive bound should find.
  x3_deadline_fixed*) n=${c#x3_deadline_fixed}; run $tag --max-in-flight $n --admission-target-ms 0 -- --qps 180 --duration 15 --deadline-ms 500 ;;
  *) echo "unknown case $c" >&2; exit 2 ;;
  esac
done; done
