#!/usr/bin/env bash
# Build-only CI step: every target (daemon, unit tests, fuzz regression
# library) must build cleanly, warnings as errors, in the configurations the
# test step does not build: gcc Release (-O3 finds -Wformat-truncation and
# friends that -O2 does not) and clang. Then `cmake --install` into a scratch
# prefix must lay out the binary, the rules and the systemd unit, and the
# binary must hold no path of this source tree. No test runs here (~1-2 min).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
start=$(date +%s)

if ! command -v clang >/dev/null; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends clang
fi

echo "== gcc Release"
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr >/dev/null
cmake --build build-release -j"$jobs" >/dev/null

echo "== clang RelWithDebInfo"
CC=clang cmake -S . -B build-clang -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-clang -j"$jobs" >/dev/null

echo "== cmake --install (gcc Release) into a scratch folder"
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
DESTDIR="$dest" cmake --install build-release >/dev/null
for f in usr/bin/newtermsd usr/share/newtermsd/rules/aws_account_discovery_by_rare_user.toml \
         usr/lib/systemd/system/newtermsd.service; do
  [ -f "$dest/$f" ] || { echo "not installed: /$f" >&2; exit 1; }
done
grep -q '^ExecStart=/usr/bin/newtermsd serve$' "$dest/usr/lib/systemd/system/newtermsd.service" ||
  { echo "newtermsd.service: ExecStart does not name /usr/bin/newtermsd" >&2; exit 1; }
if strings "$dest/usr/bin/newtermsd" | grep -F "$PWD"; then
  echo "the installed binary holds a path of the source tree ($PWD)" >&2
  exit 1
fi
# The default rules folder is the installed one. (The help is captured first:
# `newtermsd --help | grep -q` under pipefail fails whenever grep exits before
# the help is written out and newtermsd gets SIGPIPE — half the runs.)
help_text=$("$dest/usr/bin/newtermsd" --help)
grep -q '/usr/share/newtermsd/rules' <<<"$help_text" ||
  { echo "--help does not show /usr/share/newtermsd/rules as the default --rules" >&2; exit 1; }
echo "build matrix: clean in $(( $(date +%s) - start ))s"
