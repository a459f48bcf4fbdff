#!/usr/bin/env bash
# A/B of the feed shell (issue 19): two `foryou serve` builds (OLD and NEW,
# default /tmp/foryou_old and /tmp/foryou_new; a wrapper script that sets an
# environment variable works too), run alternately (ROUNDS, default 2; 20 and 50
# QPS, 15 s each after a 3 s warm-up at 20 QPS); the new binary is the client
# and prints the server split, the shell (other + outside stages) p50/p99
# included. Uses the model cache of overload.sh (/tmp/adm/models).
set -u
ADDR=127.0.0.1:50162
OLD=${OLD:-/tmp/foryou_old}
NEW=${NEW:-/tmp/foryou_new}
C=$NEW
for r in $(seq 1 ${ROUNDS:-2}); do for bin in old new; do
  if [ $bin = old ]; then B=$OLD; else B=$NEW; fi
  $B serve --listen $ADDR --metrics-listen 127.0.0.1:50163 --model-cache /tmp/adm/models 2>/dev/null &
  pid=$!
  for i in $(seq 1 600); do $C feed --addr http://$ADDR --user 42 >/dev/null 2>&1 && break; sleep 0.2; done
  $C bench feed --addr http://$ADDR --qps 20 --duration 3 --warmup 0 >/dev/null 2>&1
  for q in 20 50; do
    echo "$r $bin $q $($C bench feed --addr http://$ADDR --qps $q --duration 15 --json)"
  done
  kill -TERM $pid; wait $pid
done; done
