#!/usr/bin/env bash
# CI fuzzing step: builds the libFuzzer targets of tests/fuzz with clang,
# AddressSanitizer and UndefinedBehaviorSanitizer, seeds them from the test
# data (tests/fuzz/make-seeds.sh) and runs each one for a bounded time.
# Fails when any target finds a crash, a leak, a timeout or a broken
# invariant, and prints the reproducer's path and the command that replays it.
#
#   FUZZ_SECONDS  time per target (default 30)
#   FUZZ_JOBS     targets run at once (default: number of CPUs, at most 6)
#   FUZZ_BUILD    build directory (default build-fuzz)
#
# A crash found here becomes a regression test: see tests/fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
secs=${FUZZ_SECONDS:-30}
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}
[ "$jobs" -ge 1 ] || jobs=1
[ "$jobs" -le 6 ] || jobs=6
build=${FUZZ_BUILD:-build-fuzz}
step() { echo; echo "### $1 (at $(( $(date +%s) - start ))s)"; }

# target, -max_len (bytes), dictionary: sized to the largest real input of each
# kind (a rule file is ~10 KB, a KQL query ~3 KB) with room to grow, and small
# enough that each run explores many inputs.
targets=(
    "firehose 65536 json"
    "record 16384 json"
    "ctview 16384 json"
    "kql 4096 kql"
    "toml 16384 toml"
    "exception 16384 exception"
    "jfast 16384 json"
)

step "install clang and libFuzzer if missing"
fuzzer_rt() { compgen -G "/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a" >/dev/null; }
missing=()
command -v clang >/dev/null || missing+=(clang)
fuzzer_rt || missing+=(libclang-rt-14-dev)
command -v jq >/dev/null || missing+=(jq)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
clang --version | head -1

step "configure and build $build (clang, -fsanitize=fuzzer,address,undefined)"
CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNT_FUZZ=ON -DNT_SANITIZE=ON \
    >/dev/null
cmake --build "$build" -j"$jobs" --target fuzz_all

step "seed corpora from tests/data"
tests/fuzz/make-seeds.sh "$build/seeds"

step "run ${#targets[@]} targets for ${secs}s each, $jobs at a time"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
logs=$build/fuzz-logs
rm -rf "$logs" "$build/fuzz-artifacts" "$build/fuzz-corpus"
mkdir -p "$logs"
run_target() { # run_target NAME MAXLEN DICT
    local t=$1 art=$build/fuzz-artifacts/$1/ corpus=$build/fuzz-corpus/$1
    mkdir -p "$art" "$corpus"
    # the seeds are the second folder: read, never written; new inputs go to corpus
    local rc=0
    "$build/tests/fuzz/fuzz_$t" -max_total_time="$secs" -max_len="$2" -timeout=10 \
        -rss_limit_mb=2048 -dict="tests/fuzz/dicts/$3.dict" -artifact_prefix="$art" \
        -print_final_stats=1 "$corpus" "$build/seeds/$t" >"$logs/$t.log" 2>&1 || rc=$?
    echo "$rc" >"$logs/$t.rc"
}
running=0
for row in "${targets[@]}"; do
    # shellcheck disable=SC2086
    run_target $row &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait || true

step "results"
failed=0
printf '%-10s %8s %8s %10s %s\n' target cov ft exec/s result
for row in "${targets[@]}"; do
    t=${row%% *}
    rc=$(cat "$logs/$t.rc" 2>/dev/null || echo 99)
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$logs/$t.log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$done_line")
    eps=$(sed -n 's/^stat::average_exec_per_sec:[[:space:]]*//p' "$logs/$t.log" | tail -1)
    result=ok
    [ "$rc" = 0 ] || { result="FAILED (exit $rc)"; failed=1; }
    printf '%-10s %8s %8s %10s %s\n' "$t" "${cov:--}" "${ft:--}" "${eps:--}" "$result"
done
for row in "${targets[@]}"; do
    t=${row%% *}
    [ "$(cat "$logs/$t.rc" 2>/dev/null || echo 99)" = 0 ] && continue
    echo
    echo "=== fuzz_$t failed; its report (all of it in $logs/$t.log):"
    # from the first line that says what went wrong, without the progress lines
    grep -vE '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse|RELOAD)' "$logs/$t.log" |
        awk '/invariant broken|runtime error|ERROR: |SUMMARY: |WARNING: / { on = 1 } on' | head -80
    for f in "$build/fuzz-artifacts/$t"/*; do
        [ -f "$f" ] || continue
        echo
        echo "reproducer: $f ($(stat -c %s "$f") bytes)"
        echo "  replay:   $build/tests/fuzz/fuzz_$t $f"
        echo "  minimise: $build/tests/fuzz/fuzz_$t -minimize_crash=1 -runs=10000 $f"
        echo "  then add it under tests/data/fuzz-regressions/$t/ (tests/fuzz/README.md)"
    done
done

step "done in $(( $(date +%s) - start ))s"
exit "$failed"
