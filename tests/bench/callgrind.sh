#!/usr/bin/env bash
# Instructions per record, counted by callgrind: the repeatable figure on a shared machine, where wall-clock
# numbers move with the neighbours' load.
#
#   tests/bench/callgrind.sh [BODIES.ndjson] [N]     default: tests/bench/out/firehose_mixb.ndjson, N=20
#   NEWTERMSD_BIN=/path/newtermsd RULES=/dir tests/bench/callgrind.sh ...
#   NATIVE=1 tests/bench/callgrind.sh ...           no valgrind: the service pinned to core 0, the sender to
#                                                   core 1; prints CPU-µs per record and minor page faults per
#                                                   delivery (from /proc/PID/stat), which callgrind cannot see
#   CONNS=8 ...                                     send over 8 connections at once (default 1)
#   WARM=N ...                                      warm-up deliveries (default 2): WARM equal to N measures
#                                                   the steady state, every delivery a repeat (terms known)
#
# Runs `newtermsd serve` (1 worker) under valgrind --tool=callgrind against a private redis-server on a free
# loopback port, sends 2 warm-up deliveries, zeroes the counters (callgrind_control -z), sends N deliveries
# over one keep-alive connection (the first N bodies of the file, cycled), dumps (callgrind_control -d) and
# prints the instruction count per record (Ir / (N x records per delivery), records as counted by the
# service's /metrics) and the top functions by self cost. The whole request path is counted: HTTP, body
# accumulation, decode, prefilter, parse, rules, Redis client. Output: tests/bench/out/callgrind-*/.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
OUT=${OUT:-$HERE/out}
BODIES=${1:-$OUT/firehose_mixb.ndjson}
N=${2:-20}
BIN=${NEWTERMSD_BIN:-$SRC/build/newtermsd}
RULES=${RULES:-$SRC/rules}
if [ -z "${PYTHON:-}" ] && [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=${PYTHON:-python3}; fi
command -v valgrind >/dev/null && command -v callgrind_control >/dev/null || {
    echo "callgrind.sh: needs valgrind (apt-get install valgrind)" >&2
    exit 1
}
[ -x "$BIN" ] || { echo "callgrind.sh: no binary at $BIN" >&2; exit 1; }
[ -s "$BODIES" ] || { echo "callgrind.sh: no bodies at $BODIES (run gen_deliveries.py)" >&2; exit 1; }
D=$OUT/callgrind-$(date +%Y%m%d-%H%M%S)
mkdir -p "$D"

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

RPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning >"$D/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

PORT=$(free_port)
KEY=callgrind-key-$$
env NEWTERMSD_LISTEN=127.0.0.1:$PORT NEWTERMSD_REDIS=redis://127.0.0.1:$RPORT/0 NEWTERMSD_RULES="$RULES" \
    NEWTERMSD_FIREHOSE_ACCESS_KEY=$KEY NEWTERMSD_INGEST_TOKEN=cg-ingest-$$ NEWTERMSD_WORKERS=1 \
    NEWTERMSD_API_READ_TOKEN=cg-read-$$ NEWTERMSD_API_WRITE_TOKEN=cg-write-$$ \
    $([ "${NATIVE:-0}" = 1 ] && echo "taskset -c 0" || echo "valgrind --tool=callgrind --callgrind-out-file=$D/callgrind.out.%p") \
    "$BIN" serve >"$D/service.log" 2>&1 &
VPID=$!
PIDS+=("$VPID")
for _ in $(seq 1 600); do
    curl -fsS -m 2 -o /dev/null "http://127.0.0.1:$PORT/readyz" 2>/dev/null && break
    sleep 0.2
done
curl -fsS -m 2 -o /dev/null "http://127.0.0.1:$PORT/readyz" || { tail "$D/service.log" >&2; exit 1; }

send() { # count
    $([ "${NATIVE:-0}" = 1 ] && echo "taskset -c 1") "$PY" - "$BODIES" "$1" "$PORT" "$KEY" "${CONNS:-1}" <<'EOF'
import http.client, sys, threading, uuid
path, n, port, key, conns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
bodies = [l for l in open(path, "rb").read().split(b"\n") if l.strip()]
failed = []
def run(k):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    for i in range(k, n, conns):
        c.request("POST", "/v1/firehose", bodies[i % len(bodies)], {
            "Content-Type": "application/json", "X-Amz-Firehose-Request-Id": str(uuid.uuid4()),
            "X-Amz-Firehose-Access-Key": key, "X-Amz-Firehose-Protocol-Version": "1.0"})
        r = c.getresponse()
        r.read()
        if r.status != 200:
            failed.append("delivery %d: HTTP %d" % (i, r.status))
            return
ts = [threading.Thread(target=run, args=(k,)) for k in range(conns)]
for t in ts: t.start()
for t in ts: t.join()
if failed:
    sys.exit(failed[0])
EOF
}
records() { curl -fsS "http://127.0.0.1:$PORT/metrics" | awk '/^newtermsd_records_total/ {s += $NF} END {printf "%d\n", s}'; }

if [ "${NATIVE:-0}" = 1 ]; then
    stat_of() { awk '{sub(/.*\) /, ""); print $8, $12 + $13}' "/proc/$VPID/stat"; } # minflt, utime+stime ticks
    send 4
    before=$(records)
    read -r flt0 cpu0 < <(stat_of)
    send "$N"
    read -r flt1 cpu1 < <(stat_of)
    after=$(records)
    recs=$(( after - before ))
    tck=$(getconf CLK_TCK)
    echo "bodies:  $BODIES ($N deliveries, $recs records counted by the service), native, service on core 0"
    echo "binary:  $BIN ($(cd "$SRC" && git rev-parse --short HEAD 2>/dev/null || echo '?'))"
    "$PY" -c 'import sys; f0,f1,c0,c1,n,r,t=map(float,sys.argv[1:]); print("service CPU: %.2f µs per record (%.0f records per CPU-second); minor page faults: %.0f per delivery" % ((c1-c0)/t*1e6/r, r/((c1-c0)/t), (f1-f0)/n))' \
        "$flt0" "$flt1" "$cpu0" "$cpu1" "$N" "$recs" "$tck"
    exit 0
fi
send "${WARM:-2}"
before=$(records)
callgrind_control -z "$VPID" >/dev/null
send "$N"
callgrind_control -d "$VPID" >/dev/null
after=$(records)
grep -h -E '^newtermsd_(records_total|alert_docs)' <(curl -fsS "http://127.0.0.1:$PORT/metrics") >"$D/outcomes.txt" || true
kill "$VPID" 2>/dev/null || true
wait "$VPID" 2>/dev/null || true
dump=$(ls "$D"/callgrind.out.*.1 | head -1)  # part 1: the -d dump (the exit dump has only what came after)
ir=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}' || true)
recs=$(( after - before ))
callgrind_annotate --threshold=100 "$dump" 2>/dev/null | sed -n '/file:function/,$p' | grep -v -E "clone.S:clone|pthread_create.c:start_thread" | head -40 >"$D/top.txt" || true
echo "bodies:  $BODIES ($N deliveries, $recs records counted by the service)"
echo "binary:  $BIN ($(cd "$SRC" && git rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "total:   $ir instructions"
[ "$recs" -gt 0 ] && echo "per record: $(( ir / recs )) instructions"
echo "outcomes: $(tr '\n' ' ' <"$D/outcomes.txt")"
echo "top functions (self): $D/top.txt"
head -22 "$D/top.txt"
