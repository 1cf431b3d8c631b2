#!/usr/bin/env bash
# Soak test: mixed load against a release build of newtermsd for SOAK_SECONDS (default 600),
# with its own redis-server, loopback only. Prints an RSS/fd table every 10 s and a summary;
# exits 1 if RSS keeps growing after warm-up, on any 5xx, unexpected answer or transport error,
# or if newtermsd does not exit 0 on SIGTERM. Not part of CI (too long); a short run:
#   SOAK_SECONDS=60 tests/soak/soak.sh
# NEWTERMSD_BIN=/path/to/newtermsd skips the build and soaks that binary instead.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -z "${NEWTERMSD_BIN:-}" ]; then
  cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build-release -j2 --target newtermsd >/dev/null
  export NEWTERMSD_BIN="$PWD/build-release/newtermsd"
fi
exec python3 tests/soak/soak.py
