#!/usr/bin/env bash
# Benchmark newtermsd Firehose/EventBridge ingest on this machine and compare it with a plain Python handler.
#
#   tests/bench/run.sh                      build this tree (RelWithDebInfo) and run every step
#   NEWTERMSD_BIN=/path/newtermsd tests/bench/run.sh       use a binary built elsewhere
#   SRC=/tree BUILD=/dir tests/bench/run.sh  build another checkout
#   BUSY_POLL_US=20000                       the --busy-poll-us of the *_half_bp steps (0: skip them)
#   DUR=20 SHORT=10 CONNS=8 ROUNDS=3 PERF=1  step lengths (s, capped at 20), wrk connections, paired rounds,
#                                            perf profile
#   QUIET_WAIT=600 QUIET_PSI=20              first wait up to 600 s for /proc/pressure/cpu "some avg10" < 20
#
# Layout (needs ≥2 cores): newtermsd and its redis-server pinned to core 0 (taskset -c 0), wrk pinned to
# core 1, keep-alive, loopback only. The Python reference runs on core 0 as well, idle while the service is
# measured. Steps, each time-limited (warmups are not reported):
#   eb_1core             DUR   500-record Firehose deliveries, each record an EventBridge event  (target ≥150k rec/s)
#   eb_1core_half        DUR   eb paced at half of eb_1core's req/s by firehose.lua's delay()      (target p99 ≤10 ms)
#   ref_eb_1core         DUR   reference_handler.py, same bodies, same wrk                         (ratio target ≥4×)
#   bare_1core           SHORT bare CloudTrail records
#   cwl_1core            DUR   CloudWatch Logs subscription records (gzip, 10 x 50 logEvents = 500 records)
#   ref_cwl_1core        SHORT the reference on the same CloudWatch Logs bodies
#   eventbridge_1core    SHORT single events on POST /v1/eventbridge (requests/s)
#   ref_prefilter_eb     SHORT the reference with a raw-bytes prefilter (informational)
#   eb_roundN/ref_eb_roundN  ROUNDS (3) pairs of SHORT runs back to back, for a ratio that both sides of a
#                        shared machine's noise see alike
#   perf                 with PERF=1: perf record (DWARF call graphs) of the service for SHORT s under the eb
#                        and the cwl load; top functions by self and inclusive time go to perf-top.txt
#   eb_2workers          SHORT NEWTERMSD_WORKERS=2, service unpinned on both cores, wrk -t2 on both too (shared!)
#   eb_1core_half_bp, mixb_1core_half_bp  DUR  the two paced steps again, on a service started with
#                        --busy-poll-us $BUSY_POLL_US (default 20000; 0 skips them), after a 3 s warm-up each
# The whole AWS pack (PACK=1, the default; PACK_RULES=rules/elastic-aws, 139 rules), one worker on core 0 with
# Redis, its own Redis database, after a SHORT warm-up on Mix B (so its terms are known, as in steady state):
#   pack_mixb            DUR   Mix B                                                                (≥100k rec/s)
#   pack_eb, pack_bare, pack_cwl  SHORT  the other mixes
# Mix B (issue 14), right after the eb steps:
#   mixb_1core           DUR   Mix B deliveries (500 EventBridge-wrapped records, 10% iam reads the rule skips)
#   yard_mixb            SHORT yardstick.py: the bare no-HTTP Python loop over the same bodies, on core 0 (ratio ≥4×)
#   mixb_1core_half      DUR   Mix B paced at half of mixb_1core's req/s                          (p99 ≤10 ms)
#   mixb_roundN/yard_mixb_roundN  ROUNDS pairs of SHORT runs back to back, for the ratio
#   yard_eb              SHORT the yardstick over the eb bodies, for the eb ratio
# wrk sends pre-built requests (bench_common.lua formats IDS copies of every body, each with its own
# requestId, once at start), so wrk needs ~15% of core 1. A full-load step where the server side (service +
# redis) used under 90% of core 0 measured something else (the client, or a neighbour on the machine):
# report.py marks it "not a measurement" and no target is judged on it.
# Then the service's /metrics are checked against what wrk delivered, and the table is printed (also written
# to tests/bench/out/results.md). Peak RSS is the service's VmHWM (reset per phase via /proc/PID/clear_refs).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=${SRC:-$(cd "$HERE/../.." && pwd)}
BUILD=${BUILD:-$SRC/build-bench}
OUT=${OUT:-$HERE/out}
DUR=${DUR:-20}
SHORT=${SHORT:-10}
CONNS=${CONNS:-8}
PERF=${PERF:-0}
[ "$DUR" -le 20 ] || DUR=20
[ "$SHORT" -le 20 ] || SHORT=20
KEY=bench-firehose-key-$$
TOKEN=bench-ingest-token-$$
# The fastest python3 here: Debian's optimised build when present (a pyenv build is often ~2× slower).
if [ -z "${PYTHON:-}" ] && [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=${PYTHON:-python3}; fi
IDS=${IDS:-2}
RUN=$OUT/run-$(date +%Y%m%d-%H%M%S)
RESULTS=$RUN/results.jsonl

die() { echo "run.sh: $*" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || die "needs at least 2 cores (service on core 0, load generator on core 1)"

# ---- tools -----------------------------------------------------------------------------------------
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v curl >/dev/null || missing+=(curl)
command -v taskset >/dev/null || missing+=(util-linux)
if [ "${PERF}" = 1 ] && ! command -v perf >/dev/null; then missing+=(linux-perf); fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# ---- build -------------------------------------------------------------------------------------------
if [ -z "${NEWTERMSD_BIN:-}" ]; then
    cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$BUILD" -j2 --target newtermsd >/dev/null
    NEWTERMSD_BIN=$BUILD/newtermsd
fi
[ -x "$NEWTERMSD_BIN" ] || die "no newtermsd binary at $NEWTERMSD_BIN"
RULES=${RULES:-$SRC/rules}
PACK=${PACK:-1}
PACK_RULES=${PACK_RULES:-$SRC/rules/elastic-aws}
BUSY_POLL_US=${BUSY_POLL_US:-20000}

# ---- corpus ------------------------------------------------------------------------------------------
if [ ! -s "$OUT/manifest.json" ] || [ ! -s "$OUT/firehose_mixb.ndjson" ] || [ "${REGEN:-0}" = 1 ]; then
    echo "generating deliveries into $OUT"
    "$PY" "$HERE/gen_deliveries.py" --out "$OUT"
fi
rm -f "$OUT"/run-*/perf-*.data  # tens of MB each; only the newest run keeps its profiles
mkdir -p "$RUN"
MANIFEST=$OUT/manifest.json

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

wait_http() { # url seconds
    for _ in $(seq 1 $(( $2 * 10 ))); do
        curl -fsS -m 1 -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

start_redis() {
    RPORT=$(free_port)
    taskset -c 0 redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize no --loglevel warning >"$RUN/redis.log" 2>&1 &
    REDIS_PID=$!
    PIDS+=("$REDIS_PID")
    for _ in $(seq 1 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
    die "redis-server did not start (see $RUN/redis.log)"
}

start_service() { # workers cpus logname [redis-db [rules [extra serve flags]]]
    PORT=$(free_port)
    URL=http://127.0.0.1:$PORT
    env NEWTERMSD_LISTEN=127.0.0.1:$PORT NEWTERMSD_REDIS=redis://127.0.0.1:$RPORT/${4:-0} \
        NEWTERMSD_RULES="${5:-$RULES}" \
        NEWTERMSD_FIREHOSE_ACCESS_KEY=$KEY NEWTERMSD_INGEST_TOKEN=$TOKEN NEWTERMSD_WORKERS="$1" \
        NEWTERMSD_API_READ_TOKEN=bench-read-$$ NEWTERMSD_API_WRITE_TOKEN=bench-write-$$ \
        taskset -c "$2" "$NEWTERMSD_BIN" serve ${6:-} >"$RUN/$3.log" 2>&1 &
    SVC_PID=$!
    PIDS+=("$SVC_PID")
    wait_http "$URL/readyz" 30 || { tail -20 "$RUN/$3.log" >&2; die "newtermsd did not become ready"; }
}

stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

reset_hwm() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || true; }

# step NAME TARGET KIND SCRIPT FILE SECRET RATE THREADS CONNS DURATION WRK_CPUS RECORDS_PER_REQUEST PIDS...
step() {
    local name=$1 target=$2 kind=$3 script=$4 file=$5 secret=$6 rate=$7 threads=$8 conns=$9 dur=${10}
    local cpus=${11} rpr=${12}
    shift 12
    local full=0
    [ "$rate" = 0 ] && full=1
    # wrk formats every request in init() before it starts its clock: that takes a moment, not counted
    "$PY" "$HERE/report.py" snap "$URL" "$@" >"$RUN/$name.before.json"
    timeout $(( dur + 60 )) taskset -c "$cpus" wrk -t"$threads" -c"$conns" -d"${dur}s" --timeout 10s --latency \
        -s "$HERE/$script" "$URL" -- "$file" "$secret" "$rate" "$threads" "$name" "$IDS" >"$RUN/$name.wrk.txt" 2>&1 \
        || { cat "$RUN/$name.wrk.txt" >&2; die "wrk failed in step $name"; }
    sleep 1  # let in-flight deliveries finish before reading the counters
    "$PY" "$HERE/report.py" snap "$URL" "$@" >"$RUN/$name.after.json"
    "$PY" "$HERE/report.py" step "$RESULTS" "$name" "$RUN/$name.wrk.txt" "$RUN/$name.before.json" \
        "$RUN/$name.after.json" --target "$target" --kind "$kind" --records-per-request "$rpr" --full-load "$full" \
        --rate "$rate"
}

# yard NAME BODIES SECONDS: the no-HTTP Python yardstick on core 0 (the service's core; the service is idle)
yard() {
    timeout $(( $3 + 120 )) taskset -c 0 "$PY" "$HERE/yardstick.py" "$2" --seconds "$3" --json >"$RUN/$1.yard.json" \
        || die "yardstick failed in step $1"
    "$PY" "$HERE/report.py" yard "$RESULTS" "$1" "$RUN/$1.yard.json"
}

req_s_of() { "$PY" -c 'import json,sys
for l in open(sys.argv[1]):
    r=json.loads(l)
    if r["name"]==sys.argv[2]: print(r["req_s"])' "$RESULTS" "$1"; }

# On a shared machine, optionally wait (bounded) until other work leaves the cores mostly idle.
if [ "${QUIET_WAIT:-0}" -gt 0 ] && [ -r /proc/pressure/cpu ]; then
    waited=0
    while [ "$waited" -lt "$QUIET_WAIT" ]; do
        psi=$(awk '/^some/ {split($2, a, "="); print int(a[2])}' /proc/pressure/cpu)
        [ "$psi" -lt "${QUIET_PSI:-20}" ] && break
        sleep 10; waited=$(( waited + 10 ))
    done
    echo "cpu pressure (some avg10) before start: $(awk '/^some/ {print $2}' /proc/pressure/cpu) after waiting ${waited}s"
fi

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r)"
echo "binary:  $NEWTERMSD_BIN ($(cd "$SRC" && git rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "corpus:  $("$PY" -c 'import json,sys; m=json.load(open(sys.argv[1])); print("%d bodies/variant x %d records, mean record %s B (EventBridge-wrapped %s B), %d candidates/body, %d candidate pairs" % (m["bodies_per_variant"], m["records_per_body"], m["mean_record_bytes"], m["mean_eventbridge_bytes"], m["candidates_per_body"], m["expected_alerts_fresh_redis"]))' "$MANIFEST")"
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine disturbs the figures)"
echo "results: $RUN"
echo

MIXB=$OUT/firehose_mixb.ndjson
EB=$OUT/firehose_eb.ndjson BARE=$OUT/firehose_bare.ndjson CWL=$OUT/firehose_cwl.ndjson SINGLE=$OUT/eventbridge.ndjson

# ---- one core: newtermsd + redis on core 0, the Python reference on core 0 too (idle unless measured), wrk on core 1
start_redis
start_service 1 0 newtermsd-1core
SVC_URL=$URL
start_reference() { # logname extra-flag -> REF_PID, REF_URL
    local port
    port=$(free_port)
    REF_URL=http://127.0.0.1:$port
    NEWTERMSD_FIREHOSE_ACCESS_KEY=$KEY NEWTERMSD_INGEST_TOKEN=$TOKEN \
        taskset -c 0 "$PY" "$HERE/reference_handler.py" --listen "127.0.0.1:$port" $2 >"$RUN/$1.log" 2>&1 &
    REF_PID=$!
    PIDS+=("$REF_PID")
    wait_http "$REF_URL/readyz" 10 || die "reference handler did not start"
}
start_reference reference ""
REFP_PID=$REF_PID REFP_URL=$REF_URL
start_reference reference-prefilter --prefilter
REFF_PID=$REF_PID REFF_URL=$REF_URL
REF_PID=$REFP_PID REF_URL=$REFP_URL
reset_hwm "$SVC_PID"
# sstep/rstep NAME KIND SCRIPT FILE SECRET RATE THREADS CONNS DURATION WRK_CPUS RECORDS_PER_REQUEST
sstep() { URL=$SVC_URL step "$1" newtermsd "${@:2}" "$SVC_PID" "$REDIS_PID"; }
rstep() { URL=$REF_URL step "$1" reference "${@:2}" "$REF_PID"; }
fstep() { URL=$REFF_URL step "$1" reference "${@:2}" "$REFF_PID"; }

sstep warmup_eb firehose firehose.lua "$EB" "$KEY" 0 1 "$CONNS" 3 1 500
rstep warmup_ref firehose firehose.lua "$EB" "$KEY" 0 1 "$CONNS" 3 1 500
sstep eb_1core firehose firehose.lua "$EB" "$KEY" 0 1 "$CONNS" "$DUR" 1 500
# The paced step right after its full-load step, so it never shares core 0 with a Python server still
# finishing the requests of its own step.
HALF=$("$PY" -c 'import sys; print(round(float(sys.argv[1]) / 2, 1))' "$(req_s_of eb_1core)")
HALF_EB=$HALF
sstep eb_1core_half firehose firehose.lua "$EB" "$KEY" "$HALF" 1 "$CONNS" "$DUR" 1 500
rstep ref_eb_1core firehose firehose.lua "$EB" "$KEY" 0 1 "$CONNS" "$DUR" 1 500
sstep bare_1core firehose firehose.lua "$BARE" "$KEY" 0 1 "$CONNS" "$SHORT" 1 500
sstep cwl_1core firehose firehose.lua "$CWL" "$KEY" 0 1 "$CONNS" "$DUR" 1 500
rstep ref_cwl_1core firehose firehose.lua "$CWL" "$KEY" 0 1 "$CONNS" "$SHORT" 1 500
sstep eventbridge_1core eventbridge eventbridge.lua "$SINGLE" "$TOKEN" 0 1 "$CONNS" "$SHORT" 1 1
fstep ref_prefilter_eb firehose firehose.lua "$EB" "$KEY" 0 1 "$CONNS" "$SHORT" 1 500
# Paired rounds: the service and the reference back to back, so both meet the same neighbours on a shared
# machine; the table reports the median of the per-pair ratios.
for i in $(seq 1 "${ROUNDS:-3}"); do
    sstep "eb_round$i" firehose firehose.lua "$EB" "$KEY" 0 1 "$CONNS" "$SHORT" 1 500
    rstep "ref_eb_round$i" firehose firehose.lua "$EB" "$KEY" 0 1 "$CONNS" "$SHORT" 1 500
done
stop_pid "$REF_PID"
stop_pid "$REFF_PID"
# ---- Mix B and the no-HTTP yardstick, both on core 0
sstep warmup_mixb firehose firehose.lua "$MIXB" "$KEY" 0 1 "$CONNS" 3 1 500
sstep mixb_1core firehose firehose.lua "$MIXB" "$KEY" 0 1 "$CONNS" "$DUR" 1 500
yard yard_mixb "$MIXB" "$SHORT"
HALF=$("$PY" -c 'import sys; print(round(float(sys.argv[1]) / 2, 1))' "$(req_s_of mixb_1core)")
HALF_MIXB=$HALF
sstep mixb_1core_half firehose firehose.lua "$MIXB" "$KEY" "$HALF" 1 "$CONNS" "$DUR" 1 500
for i in $(seq 1 "${ROUNDS:-3}"); do
    sstep "mixb_round$i" firehose firehose.lua "$MIXB" "$KEY" 0 1 "$CONNS" "$SHORT" 1 500
    yard "yard_mixb_round$i" "$MIXB" "$SHORT"
done
yard yard_eb "$EB" "$SHORT"
URL=$SVC_URL
curl -fsS -H "Authorization: Bearer bench-read-$$" "$URL/api/v1/alerts?limit=1000" >"$RUN/alerts.json" || true
profile() { # name bodies: perf record (DWARF call graphs) of the service for SHORT s under full load
    ( timeout $(( SHORT + 15 )) taskset -c 1 wrk -t1 -c"$CONNS" -d"$((SHORT + 2))s" -s "$HERE/firehose.lua" "$URL" \
        -- "$2" "$KEY" 0 1 "perf-$1" >/dev/null 2>&1 & )
    sleep 1
    perf record -F 999 --call-graph dwarf,16384 -o "$RUN/perf-$1.data" -p "$SVC_PID" -- sleep "$SHORT" \
        >/dev/null 2>&1 || true
    {
        echo "== $1: self time (top functions)"
        perf report -i "$RUN/perf-$1.data" --no-children --percent-limit 0.7 --stdio -g none 2>/dev/null \
            | grep -E '^ +[0-9]' | head -25
        echo "== $1: inclusive time (newtermsd call tree, ≥2%)"
        perf report -i "$RUN/perf-$1.data" --children --percent-limit 2 --stdio -g none 2>/dev/null \
            | grep -E '^ +[0-9]' | grep -v -E 'clone3|start_thread|kallsyms|\] 0x0000' | head -40
    } >"$RUN/perf-top-$1.txt"
    sleep 3
}
if [ "$PERF" = 1 ]; then
    profile eb "$EB"
    profile mixb "$MIXB"
    profile cwl "$CWL"
    cat "$RUN"/perf-top-*.txt >"$RUN/perf-top.txt"
fi
curl -fsS "$URL/metrics" >"$RUN/metrics-1core.txt" || true
stop_pid "$SVC_PID"

# ---- two workers on both cores (client shares them) ----------------------------------------------------
start_service 2 0,1 newtermsd-2workers
reset_hwm "$SVC_PID"
step eb_2workers newtermsd firehose firehose.lua "$EB" "$KEY" 0 2 $(( CONNS * 2 )) "$SHORT" 0,1 500 "$SVC_PID" "$REDIS_PID"
curl -fsS "$URL/metrics" >"$RUN/metrics-2workers.txt" || true
stop_pid "$SVC_PID"

# ---- the two paced steps again, with --busy-poll-us ---------------------------------------------------------
# On a VM an idle vCPU halts, and a delivery that finds the service's core idle waits for the hypervisor to
# run it again: on a shared host now and then for milliseconds, which is most of the half-load p99 (README,
# "Half-load p99"). A fresh service (same Redis database, so every term is known) with the spinner on, a
# short full-load warm-up per mix, then the same rates as eb_1core_half and mixb_1core_half.
if [ "$BUSY_POLL_US" -gt 0 ]; then
    start_service 1 0 newtermsd-busypoll 0 "$RULES" "--busy-poll-us $BUSY_POLL_US"
    SVC_URL=$URL
    sstep warmup_bp_eb firehose firehose.lua "$EB" "$KEY" 0 1 "$CONNS" 3 1 500
    sstep eb_1core_half_bp firehose firehose.lua "$EB" "$KEY" "$HALF_EB" 1 "$CONNS" "$DUR" 1 500
    sstep warmup_bp_mixb firehose firehose.lua "$MIXB" "$KEY" 0 1 "$CONNS" 3 1 500
    sstep mixb_1core_half_bp firehose firehose.lua "$MIXB" "$KEY" "$HALF_MIXB" 1 "$CONNS" "$DUR" 1 500
    curl -fsS "$URL/metrics" >"$RUN/metrics-busypoll.txt" || true
    stop_pid "$SVC_PID"
fi

# ---- the whole AWS rule pack (issue 14 item 2): 139 rules, one worker, its own Redis database --------------
if [ "$PACK" = 1 ]; then
    start_service 1 0 newtermsd-pack 1 "$PACK_RULES"
    SVC_URL=$URL
    psstep() { URL=$SVC_URL step "$1" newtermsd-pack "${@:2}" "$SVC_PID" "$REDIS_PID"; }
    psstep warmup_pack firehose firehose.lua "$MIXB" "$KEY" 0 1 "$CONNS" "$SHORT" 1 500
    psstep pack_mixb firehose firehose.lua "$MIXB" "$KEY" 0 1 "$CONNS" "$DUR" 1 500
    psstep pack_eb firehose firehose.lua "$EB" "$KEY" 0 1 "$CONNS" "$SHORT" 1 500
    psstep pack_bare firehose firehose.lua "$BARE" "$KEY" 0 1 "$CONNS" "$SHORT" 1 500
    psstep pack_cwl firehose firehose.lua "$CWL" "$KEY" 0 1 "$CONNS" "$SHORT" 1 500
    curl -fsS "$URL/metrics" >"$RUN/metrics-pack.txt" || true
    stop_pid "$SVC_PID"
fi
stop_pid "$REDIS_PID"

# ---- table ----------------------------------------------------------------------------------------------
set +e
"$PY" "$HERE/report.py" table "$RESULTS" "$MANIFEST" | tee "$RUN/results.md"
rc=${PIPESTATUS[0]}
[ -s "$RUN/perf-top.txt" ] && { echo; echo "perf, top functions of newtermsd under the eb load:"; cat "$RUN/perf-top.txt"; }
cp "$RUN/results.md" "$OUT/results.md"
exit "$rc"
