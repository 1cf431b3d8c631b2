#!/usr/bin/env bash
# Static analysis of service/ and tests/: clang-format (the repository's
# .clang-format, no diff allowed), clang-tidy with the repository's .clang-tidy
# (warnings are errors) on service/ and the C tests, and cppcheck on service/.
# Runs the files in parallel; exits non-zero on any finding. Every tool's own
# messages are shown (nothing is sent to /dev/null), so a finding says where.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v clang-tidy >/dev/null || need+=(clang-tidy)
command -v clang-format >/dev/null || need+=(clang-format)
command -v cppcheck >/dev/null || need+=(cppcheck)
if ((${#need[@]})); then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cmake -S . -B build-lint -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
# fuzz_main.c is left out: it is compiled only with -DNT_FUZZ=ON (clang), so
# build-lint has no compile command for it; its one body is two calls.
c_sources=(service/*.c tests/unit/*.c tests/fuzz/targets.c)
echo "== clang-format"
clang-format --dry-run -Werror service/*.[ch] tests/unit/*.[ch] tests/fuzz/*.[ch]
echo "== clang-tidy"
# --quiet drops only clang-tidy's own "N warnings generated" chatter; the
# "warnings suppressed" counts it prints on stderr are filtered out, findings are not.
printf '%s\n' "${c_sources[@]}" | xargs -P "$(nproc)" -n 2 clang-tidy -p build-lint --quiet \
  2> >(grep -vE '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$|^Suppressed [0-9]+ warnings|^Use -header-filter|^$' >&2)
echo "== cppcheck"
cppcheck --quiet --error-exitcode=1 --enable=warning,portability,performance \
  --inline-suppr --std=c11 -D__GNUC__ -I service --include=/usr/include/jansson.h --suppress=missingIncludeSystem service/*.c
echo "lint: clean"
