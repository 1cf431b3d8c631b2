#!/usr/bin/env bash
# One command for a fresh Debian 12 machine: install what is missing, build,
# start a local redis-server and newtermsd, send a real Firehose delivery with
# curl and show the alert it raised. Ctrl-C (or the end of the script) stops
# both processes; nothing is left running.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target newtermsd >/dev/null
echo "built build/newtermsd"

work=$(mktemp -d)
redis_port=${DEMO_REDIS_PORT:-6390}
http_port=${DEMO_HTTP_PORT:-8080}
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$work" --daemonize no >"$work/redis.log" 2>&1 &
redis_pid=$!
cleanup() {
  kill "${nt_pid:-}" "$redis_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

export NEWTERMSD_LISTEN="127.0.0.1:$http_port"
export NEWTERMSD_REDIS="redis://127.0.0.1:$redis_port/0"
export NEWTERMSD_RULES="$PWD/rules"
export NEWTERMSD_FIREHOSE_ACCESS_KEY="demo-firehose-key"
export NEWTERMSD_API_READ_TOKEN="demo-read-token"
export NEWTERMSD_API_WRITE_TOKEN="demo-write-token"
export NEWTERMSD_INGEST_TOKEN="demo-ingest-token"
build/newtermsd serve 2>"$work/newtermsd.log" &
nt_pid=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$http_port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fs "http://127.0.0.1:$http_port/readyz"; echo

# A CloudTrail record of an IAM user listing the organization's accounts,
# wrapped the way an EventBridge rule → Firehose stream delivers it.
record=$(sed -e "s/2026-11-20T10:00:00Z/$(date -u +%Y-%m-%dT%H:%M:%SZ)/" \
  tests/data/cloudtrail/organizations_ListAccounts_IAMUser.json | tr -d '\n')
event="{\"version\":\"0\",\"id\":\"demo\",\"detail-type\":\"AWS API Call via CloudTrail\",\"source\":\"aws.organizations\",\"account\":\"111122223333\",\"time\":\"2026-11-20T10:00:00Z\",\"region\":\"us-east-1\",\"resources\":[],\"detail\":$record}"
data=$(printf '%s' "$event" | base64 -w0)
echo "POST /v1/firehose (one record: OrgAdmin calls organizations:ListAccounts)"
curl -s -X POST "http://127.0.0.1:$http_port/v1/firehose" \
  -H "X-Amz-Firehose-Access-Key: $NEWTERMSD_FIREHOSE_ACCESS_KEY" -H 'Content-Type: application/json' \
  -d "{\"requestId\":\"demo-1\",\"timestamp\":$(date +%s000),\"records\":[{\"data\":\"$data\"}]}"
echo
echo "GET /api/v1/alerts"
alerts=$(curl -s -H "Authorization: Bearer $NEWTERMSD_API_READ_TOKEN" "http://127.0.0.1:$http_port/api/v1/alerts")
if command -v python3 >/dev/null; then
  # The whole alert, with the original CloudTrail record folded to keep the screen readable.
  printf '%s' "$alerts" | python3 -c '
import json, sys
doc = json.load(sys.stdin)
for a in doc["alerts"]:
    a["event"] = "{ the original CloudTrail record, %d keys }" % len(a["event"])
    a["rule"]["threat"] = "[ %d MITRE ATT&CK entries ]" % len(a["rule"]["threat"])
print(json.dumps(doc, indent=2))'
else
  printf '%s\n' "$alerts"
fi
if [ "${DEMO_KEEP_RUNNING:-0}" = 1 ]; then
  echo "newtermsd is running on :$http_port (Ctrl-C to stop)"
  wait "$nt_pid"
fi
