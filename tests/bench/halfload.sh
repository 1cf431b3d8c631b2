#!/usr/bin/env bash
# halfload.sh — where the half-load p99 tail comes from: paced runs of one service, three ways, interleaved.
#
#   tests/bench/halfload.sh                                   Mix B, half of the measured full-load rate
#   RATE=100 D=20 PAIRS=3 tests/bench/halfload.sh BODIES.ndjson
#   VARIANTS="off busypoll" BUSY_POLL_US=20000 NEWTERMSD_BIN=build-rel/newtermsd tests/bench/halfload.sh
#
# Layout as in run.sh: newtermsd (one worker) and its redis-server on core 0, wrk on core 1 (-t1 -c8, the
# same pre-built requests and pacing as run.sh's *_half steps). Each variant gets a fresh service on the same
# Redis, a 3 s full-load warm-up (the first one's req/s / 2 is the rate of every run when RATE is not given),
# then a paced run of D s:
#   off       the default
#   spin      the default, plus a shell busy loop at SCHED_IDLE priority pinned to core 0 (chrt --idle 0):
#             core 0 never goes idle, yet the loop yields to any other task at once
#   busypoll  serve --busy-poll-us BUSY_POLL_US: the same idea inside the service (service/awake.c)
# The variants run round-robin PAIRS times, so a shared host's slow minutes fall on all of them alike.
# Prints wrk's p50 / p99 / max per run, then the median p99 per variant.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
BIN=${NEWTERMSD_BIN:-$SRC/build-rel/newtermsd}
FILE=${1:-$HERE/out/firehose_mixb.ndjson}
D=${D:-20}
PAIRS=${PAIRS:-3}
VARIANTS=${VARIANTS:-off spin busypoll}
BUSY_POLL_US=${BUSY_POLL_US:-20000}
RULES=${RULES:-$SRC/rules}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
[ -x "$BIN" ] || { echo "halfload.sh: no newtermsd at $BIN (set NEWTERMSD_BIN)" >&2; exit 2; }
[ -s "$FILE" ] || { echo "halfload.sh: no bodies at $FILE (run tests/bench/run.sh once, or gen_deliveries.py)" >&2; exit 2; }
for c in wrk redis-server chrt taskset curl; do
    command -v "$c" >/dev/null || { echo "halfload.sh: needs $c" >&2; exit 2; }
done

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

LOG=$(mktemp -d /tmp/halfload.XXXXXX)
RPORT=$(free_port)
taskset -c 0 redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning \
    >"$LOG/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

# wrk_run RATE SECONDS -> "p50_ms p99_ms max_ms req_s" from bench_common.lua's BENCH_JSON line
wrk_run() {
    taskset -c 1 wrk -t1 -c8 -d"$2s" --timeout 10s -s "$HERE/firehose.lua" "http://127.0.0.1:$PORT" \
        -- "$FILE" k "$1" 1 "hl$RANDOM" 2 2>&1 | sed -n 's/^BENCH_JSON //p' | "$PY" -c '
import json, sys
j = json.loads(sys.stdin.read())
print("%.2f %.2f %.2f %.1f" % (j["lat_us"]["p50"] / 1e3, j["lat_us"]["p99"] / 1e3, j["lat_us"]["max"] / 1e3,
                               j["requests"] * 1e6 / j["duration_us"]))'
}

run_variant() { # variant -> prints one line, appends "variant p99" to $LOG/p99
    local v=$1 extra="" spin=""
    [ "$v" = busypoll ] && extra="--busy-poll-us $BUSY_POLL_US"
    PORT=$(free_port)
    # shellcheck disable=SC2086
    env NEWTERMSD_LISTEN=127.0.0.1:$PORT NEWTERMSD_REDIS=redis://127.0.0.1:$RPORT/0 NEWTERMSD_RULES="$RULES" \
        NEWTERMSD_FIREHOSE_ACCESS_KEY=k NEWTERMSD_INGEST_TOKEN=t NEWTERMSD_WORKERS=1 \
        NEWTERMSD_API_READ_TOKEN=r NEWTERMSD_API_WRITE_TOKEN=w \
        taskset -c 0 "$BIN" serve $extra >"$LOG/svc-$v.log" 2>&1 &
    local svc=$!
    PIDS+=("$svc")
    for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$PORT/readyz" 2>/dev/null && break; sleep 0.1; done
    if [ "$v" = spin ]; then
        taskset -c 0 chrt --idle 0 sh -c 'while :; do :; done' &
        spin=$!
        PIDS+=("$spin")
    fi
    local warm rate
    warm=$(wrk_run 0 3)
    # the first warm-up sets the rate for every run, so the variants are paced alike
    [ -n "${RATE:-}" ] || RATE=$("$PY" -c 'import sys; print(round(float(sys.argv[1]) / 2, 1))' "$(echo "$warm" | cut -d' ' -f4)")
    rate=$RATE
    read -r p50 p99 max rs < <(wrk_run "$rate" "$D")
    printf '%-9s rate %6.1f/s (achieved %6.1f)  p50 %6.2f ms  p99 %6.2f ms  max %6.2f ms\n' "$v" "$rate" "$rs" \
        "$p50" "$p99" "$max"
    echo "$v $p99" >>"$LOG/p99"
    [ -n "$spin" ] && { kill "$spin"; wait "$spin" 2>/dev/null || true; }
    kill "$svc"; wait "$svc" 2>/dev/null || true
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); bodies $(basename "$FILE"); $D s per run"
for _ in $(seq 1 "$PAIRS"); do
    for v in $VARIANTS; do run_variant "$v"; done
done
echo "median p99 per variant:"
"$PY" - "$LOG/p99" <<'EOF'
import sys
runs = {}
for line in open(sys.argv[1]):
    v, p = line.split()
    runs.setdefault(v, []).append(float(p))
for v, ps in runs.items():
    s = sorted(ps)
    print("  %-9s %6.2f ms  (runs: %s)" % (v, (s[len(s) // 2] + s[(len(s) - 1) // 2]) / 2, ", ".join("%.2f" % p for p in ps)))
EOF
rm -rf "$LOG"
