#!/usr/bin/env bash
# Rewrites the option table in README.md (between the config-table markers)
# from the binary's own option table: `newtermsd config-table` prints it from
# service/config.c, so after adding an option, rebuild and run this script.
# tests/integration/test_cli.py fails while README and the binary disagree.
#
#   scripts/gen-config-table.sh [path/to/newtermsd]   (default: build/newtermsd)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-${NEWTERMSD_BIN:-build/newtermsd}}
[ -x "$bin" ] || { echo "no binary at $bin: build first (cmake --build build)" >&2; exit 1; }
table=$("$bin" config-table)
python3 - "$table" <<'PY'
import sys
begin, end = "<!-- config-table:begin -->", "<!-- config-table:end -->"
text = open("README.md", encoding="utf-8").read()
if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
    sys.exit("README.md: need exactly one " + begin + " before one " + end)
head, rest = text.split(begin)
_, tail = rest.split(end)
new = head + begin + "\n" + sys.argv[1].rstrip("\n") + "\n" + end + tail
if new != text:
    open("README.md", "w", encoding="utf-8").write(new)
    print("README.md: option table updated")
else:
    print("README.md: option table already up to date")
PY
