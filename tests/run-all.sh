#!/usr/bin/env bash
# Runs every test: builds newtermsd three times (release, ASan+UBSan, and
# ThreadSanitizer) and runs the whole ctest suite in the first two, and under
# TSan the integration tests that exercise threads (worker pool, exception
# poller, replicas, drain, the busy-poll spinner) and the two threaded unit
# tests (awake, jarena). The other unit tests are single-threaded, and some
# replace malloc to inject failures, which TSan's own malloc forbids. Unit tests use check; integration
# tests start their own redis-server on a free port and drive the real binary
# over HTTP.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

echo "== build (RelWithDebInfo) =="
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
echo "== tests =="
(cd build && ctest --output-on-failure -j"$jobs")

if [ "${NT_SKIP_SANITIZERS:-0}" != 1 ]; then
  echo "== build (AddressSanitizer + UndefinedBehaviorSanitizer) =="
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DNT_SANITIZE=ON >/dev/null
  cmake --build build-asan -j"$jobs"
  echo "== tests under ASan+UBSan =="
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
     UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j"$jobs")
fi

if [ "${NT_SKIP_SANITIZERS:-0}" != 1 ] && [ "${NT_SKIP_TSAN:-0}" != 1 ]; then
  echo "== build (ThreadSanitizer) =="
  cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNT_TSAN=ON >/dev/null
  cmake --build build-tsan -j"$jobs" --target newtermsd test_awake test_jarena
  echo "== tests under TSan (integration: ingest api replicas faults hostile_http; unit: awake jarena) =="
  # halt_on_error: a report kills the service, so the test that caused it fails.
  (cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
     ctest --output-on-failure -j"$jobs" \
       -R '^(integration\.(ingest|api|replicas|faults|hostile_http)|unit\.test_(awake|jarena))$')
fi
