#!/usr/bin/env bash
# Split-role fault matrix (issue 18, goal "Faults"): Thunder, Phoenix and
# the home mixer as three processes on loopback, an open-loop feed load
# (`foryou bench feed --trace`), and one fault per case while it runs:
#
#   thunder_kill   kill -9 Thunder, start it again 10 s later
#   thunder_stop   SIGSTOP Thunder (hung), SIGCONT 10 s later
#   phoenix_kill   kill -9 Phoenix, start it again 10 s later
#   phoenix_stop   SIGSTOP Phoenix (hung), SIGCONT 10 s later
#   serve_term     SIGTERM the home mixer under load: how long it takes
#                  to exit, and whether the calls in flight were answered
#
# Needs a release build (cargo build --release -p foryou-server). Bounded:
# ~45 s per case, ~5 min in all. Writes $D/<case>.{csv,events} and the
# markdown table from fault_report.py to stdout.
#
#   benches/reliability/faults.sh > benches/results/faults_cpu_<date>.md
set -u
cd "$(dirname "$0")/../.."
B=${B:-target/release/foryou}
D=${D:-/tmp/faults}
QPS=${QPS:-20}
# Extra flags of the home mixer, e.g. SERVE_FLAGS="--max-in-flight 64".
SERVE_FLAGS=${SERVE_FLAGS:-}
mkdir -p "$D"
rm -f "$D"/*.log "$D"/*.csv "$D"/*.events
TH=127.0.0.1:50171 PH=127.0.0.1:50173 HM=127.0.0.1:50172
W=$D/world.jsonl
[ -f "$W" ] || $B world generate --seed 7 --users 2000 --out "$W" >/dev/null

now_ms() { date +%s%3N; }
start_thunder() { $B thunder --listen $TH --world "$W" --metrics-listen off 2>>"$D/thunder.log" & TH_PID=$!; }
start_phoenix() { $B phoenix serve --listen $PH --world "$W" --model-cache "$D/models" 2>>"$D/phoenix.log" & PH_PID=$!; }
start_serve() {
    $B serve --listen $HM --world "$W" --thunder-addr http://$TH --phoenix-addr http://$PH \
        --metrics-listen off $SERVE_FLAGS 2>>"$D/serve.log" &
    HM_PID=$!
}
# Until a feed answers (the whole chain is up), at most 120 s.
wait_feed() { for _ in $(seq 1 600); do $B feed --addr http://$HM --user 42 >/dev/null 2>&1 && return 0; sleep 0.2; done; return 1; }
stop_all() { kill -CONT $TH_PID $PH_PID 2>/dev/null; kill -TERM $HM_PID $TH_PID $PH_PID 2>/dev/null; wait 2>/dev/null; }

case_run() { # name, fault command, restore command
    local name=$1 fault=$2 restore=$3
    start_thunder; start_phoenix; start_serve
    if ! wait_feed; then echo "$name: the chain never answered" >&2; stop_all; return; fi
    sleep 2
    $B bench feed --addr http://$HM --qps "$QPS" --duration 30 --warmup 1 --json \
        --trace "$D/$name.csv" > "$D/$name.json" &
    local bench=$!
    sleep 8
    echo "fault $(now_ms)" > "$D/$name.events"
    eval "$fault"
    sleep 10
    echo "restore $(now_ms)" >> "$D/$name.events"
    eval "$restore"
    wait $bench
    stop_all
}

case_run thunder_kill 'kill -9 $TH_PID' 'start_thunder'
case_run thunder_stop 'kill -STOP $TH_PID' 'kill -CONT $TH_PID'
case_run phoenix_kill 'kill -9 $PH_PID' 'start_phoenix'
case_run phoenix_stop 'kill -STOP $PH_PID' 'kill -CONT $PH_PID'

# SIGTERM of the home mixer under load: exit time, and the fate of the
# calls sent before the signal.
start_thunder; start_phoenix; start_serve
if wait_feed; then
    sleep 2
    $B bench feed --addr http://$HM --qps "$QPS" --duration 12 --warmup 1 --json \
        --trace "$D/serve_term.csv" > "$D/serve_term.json" &
    bench=$!
    sleep 8
    t0=$(now_ms)
    echo "fault $t0" > "$D/serve_term.events"
    kill -TERM $HM_PID
    wait $HM_PID
    echo "exited $(now_ms)" >> "$D/serve_term.events"
    wait $bench
fi
stop_all

python3 benches/reliability/fault_report.py "$D" "$QPS" "$SERVE_FLAGS"
