#!/usr/bin/env bash
# Static analysis of service/: clang-tidy with the repository's .clang-tidy (warnings are errors)
# and cppcheck. Runs the files in parallel; exits non-zero on any finding.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v clang-tidy >/dev/null || need+=(clang-tidy)
command -v cppcheck >/dev/null || need+=(cppcheck)
if ((${#need[@]})); then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cmake -S . -B build-lint -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
echo "== clang-tidy"
ls service/*.c | xargs -P "$(nproc)" -n 2 clang-tidy -p build-lint --quiet 2>/dev/null
echo "== cppcheck"
cppcheck --quiet --error-exitcode=1 --enable=warning,portability,performance \
  --inline-suppr --std=c11 -D__GNUC__ -I service --include=/usr/include/jansson.h --suppress=missingIncludeSystem service/*.c
echo "lint: clean"
