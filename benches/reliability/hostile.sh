#!/usr/bin/env bash
# Hostile inputs (issue 18, goal "hostile requests"): a fresh `foryou serve`
# (embedded Thunder and Phoenix, release build), `foryou bench hostile`
# sending each hostile kind ROUNDS times, 4 at once, with the health
# service probed every 50 ms throughout, then SIGTERM and the time to exit.
# Loopback only, ~1 min. Prints markdown; exits non-zero on a missed goal.
#
#   benches/reliability/hostile.sh > benches/results/hostile_cpu_<date>.md
set -u
cd "$(dirname "$0")/../.."
B=${B:-target/release/foryou}
D=${D:-/tmp/hostile}
ROUNDS=${ROUNDS:-20}
ADDR=127.0.0.1:50182
mkdir -p "$D"
$B serve --listen $ADDR --metrics-listen off --model-cache "$D/models" 2>"$D/serve.log" &
pid=$!
for _ in $(seq 1 600); do $B feed --addr http://$ADDR --user 42 >/dev/null 2>&1 && break; sleep 0.2; done
rss0=$(awk '/VmRSS/{print $2}' /proc/$pid/status)
$B bench hostile --addr http://$ADDR --rounds "$ROUNDS"
rc=$?
rss1=$(awk '/VmRSS/{print $2}' /proc/$pid/status)
echo
echo "serve RSS: $((rss0 / 1024)) MiB before, $((rss1 / 1024)) MiB after"
t0=$(date +%s%3N)
kill -TERM $pid
wait $pid
t1=$(date +%s%3N)
echo "SIGTERM to exit: $((t1 - t0)) ms (goal <= 5000)"
panics=$(grep -c "panicked" "$D/serve.log")
echo "panics in the server's log: $panics"
[ $((t1 - t0)) -le 5000 ] && [ "$panics" -eq 0 ] && exit $rc
exit 1
