#!/usr/bin/env bash
# Builds the newtermsd image from the Dockerfile with podman and smoke-runs it next to a Redis,
# on a machine with no Docker engine and no container registry (only Debian's mirror).
#
# How (each piece is needed on a machine like CI's):
# - podman with runc and lowered default rlimits, via CONTAINERS_CONF (no CAP_SYS_RESOURCE here,
#   and crun refuses this host's hybrid cgroups);
# - the base image is a debootstrap'd bookworm imported as docker.io/library/debian:bookworm-slim,
#   so the Dockerfile keeps FROM debian:bookworm-slim; the tarball is cached under /var/cache;
# - Redis runs from an image built the same way (Debian's redis-server), in one podman pod with
#   the service, so they talk over the pod's 127.0.0.1 exactly like two containers of a k8s pod.
# The service container runs as Kubernetes runs it: read-only root, /tmp as tmpfs, all
# capabilities dropped, no-new-privileges, rules mounted in the ConfigMap volume layout
# (..data symlinks), Redis password and API read token from files.
#
# Checks: /healthz 200; PID 1 runs as uid 10001; /readyz 200 with Redis; a Firehose delivery
# (one base64 CloudTrail record: organizations ListAccounts by an IAMUser) gets 200 with the
# requestId echoed; GET /api/v1/alerts with the read token lists exactly 1 alert; the same
# delivery retried still leaves 1 alert; a wrong access key gets 401; SIGTERM stops it with exit 0.
#
# Usage: .ci/container-smoke.sh            (root; installs podman & co. when missing)
# Env:   CONTEXT=dir (build context, default: the repo), DOCKERFILE (default: the repo's),
#        IMAGE, PORT (default 18080), KEEP=1 (leave the pod running for a look)
set -euo pipefail
cd "$(dirname "$0")/.."
CONTEXT=$(cd "${CONTEXT:-.}" && pwd)
DOCKERFILE=${DOCKERFILE:-$PWD/Dockerfile}
IMAGE=${IMAGE:-localhost/newtermsd:ci}
REDIS_IMAGE=${REDIS_IMAGE:-localhost/newtermsd-redis:ci}
PORT=${PORT:-18080}
POD=${POD:-newtermsd-smoke}
BASE=docker.io/library/debian:bookworm-slim   # what `FROM debian:bookworm-slim` resolves to
CACHE_DIR=/var/cache/newtermsd-ci
BASE_TAR=$CACHE_DIR/debian-bookworm-minbase.tar
BASE_MAX_AGE_DAYS=30
WORK=$(mktemp -d /tmp/newtermsd-smoke.XXXXXX)

t0=$(date +%s); tl=$t0
lap() { local n; n=$(date +%s); printf '[%4ss +%3ss] %s\n' "$((n - t0))" "$((n - tl))" "$*"; tl=$n; }
passed=0; failed=0
pass() { passed=$((passed + 1)); echo "PASS $*"; }
flunk() { failed=$((failed + 1)); echo "FAIL $*"; }

cleanup() {
  if [ "${KEEP:-0}" != 1 ]; then
    podman pod rm -f -t 0 "$POD" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# ---- tools -----------------------------------------------------------------------------------
export DEBIAN_FRONTEND=noninteractive
need=()
for c in podman:podman runc:runc catatonit:catatonit slirp4netns:slirp4netns newuidmap:uidmap \
         debootstrap:debootstrap curl:curl python3:python3; do
  command -v "${c%%:*}" >/dev/null || need+=("${c#*:}")
done
[ -e /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
if ((${#need[@]})); then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
lap "tools ready (podman $(podman version --format '{{.Client.Version}}'), runc $(runc --version | awk 'NR==1{print $3}'))"

# Sandbox fixes: podman's default rlimits exceed the hard limits (no CAP_SYS_RESOURCE), and
# crun 1.8 refuses hybrid cgroup v1/v2 hosts; runc handles both (and pure cgroup v2 too).
cat > "$WORK/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
[engine]
runtime = "runc"
CONF
export CONTAINERS_CONF="$WORK/containers.conf"

# ---- base image ------------------------------------------------------------------------------
if ! podman image exists "$BASE"; then
  if [ -f "$BASE_TAR" ] && [ -n "$(find "$BASE_TAR" -mtime -"$BASE_MAX_AGE_DAYS")" ]; then
    podman import -q --change 'CMD ["/bin/bash"]' "$BASE_TAR" "$BASE" >/dev/null
    lap "base image imported from the cached $BASE_TAR"
  else
    MIRROR=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [ -n "$MIRROR" ] || MIRROR=$(awk '$1=="deb" {print $2; exit}' /etc/apt/sources.list)
    debootstrap --variant=minbase bookworm "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
      || { tail -20 "$WORK/debootstrap.log"; exit 1; }
    rm -rf "$WORK"/rootfs/var/cache/apt/archives/*.deb "$WORK"/rootfs/var/lib/apt/lists/*
    tar_to="$WORK/base.tar"
    if mkdir -p "$CACHE_DIR" 2>/dev/null && [ -w "$CACHE_DIR" ]; then tar_to=$BASE_TAR.tmp; fi
    tar --numeric-owner -C "$WORK/rootfs" -cf "$tar_to" .
    [ "$tar_to" = "$BASE_TAR.tmp" ] && mv "$tar_to" "$BASE_TAR" && tar_to=$BASE_TAR
    podman import -q --change 'CMD ["/bin/bash"]' "$tar_to" "$BASE" >/dev/null
    rm -rf "$WORK/rootfs"
    lap "base image debootstrapped from $MIRROR and imported (tarball: $tar_to)"
  fi
else
  lap "base image $BASE already present"
fi

# ---- images ----------------------------------------------------------------------------------
podman build --pull=never -t "$IMAGE" -f "$DOCKERFILE" "$CONTEXT" >"$WORK/build.log" 2>&1 \
  || { tail -40 "$WORK/build.log"; echo "FAIL image build (log above)"; echo "0 passed, 1 failed"; exit 1; }
lap "image $IMAGE built ($(podman image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"

mkdir -p "$WORK/redis"
cat > "$WORK/redis/Containerfile" <<'EOF'
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/*
USER redis
WORKDIR /var/lib/redis
ENTRYPOINT ["redis-server"]
EOF
podman build --pull=never -t "$REDIS_IMAGE" "$WORK/redis" >"$WORK/redis-build.log" 2>&1 \
  || { tail -20 "$WORK/redis-build.log"; echo "FAIL redis image build"; echo "0 passed, 1 failed"; exit 1; }
lap "redis image $REDIS_IMAGE built"

# ---- run -------------------------------------------------------------------------------------
REDIS_PW=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
ACCESS_KEY=smoke-firehose-$(head -c 9 /dev/urandom | base64 | tr -d '/+=')
READ_TOKEN=smoke-read-$(head -c 9 /dev/urandom | base64 | tr -d '/+=')
mkdir -p "$WORK/secrets"
printf '%s' "$REDIS_PW" > "$WORK/secrets/redis-password"
printf '%s' "$READ_TOKEN" > "$WORK/secrets/api-read-token"
# The rules as a ConfigMap volume lays them out: file -> ..data/file, ..data -> ..<timestamp>/.
rules_src="$CONTEXT/rules"
[ -d "$rules_src" ] || rules_src=deploy/base/rules
mkdir -p "$WORK/rules/..2026_01_01_00_00_00.000000000"
cp "$rules_src"/*.toml "$WORK/rules/..2026_01_01_00_00_00.000000000/"
ln -s ..2026_01_01_00_00_00.000000000 "$WORK/rules/..data"
for f in "$WORK/rules/..data"/*.toml; do ln -s "..data/$(basename "$f")" "$WORK/rules/$(basename "$f")"; done
chmod -R a+rX "$WORK/secrets" "$WORK/rules"
chmod a+x "$WORK"

podman pod rm -f -t 0 "$POD" >/dev/null 2>&1 || true
podman pod create --name "$POD" -p "127.0.0.1:$PORT:8080" >/dev/null
podman run -d --pod "$POD" --name "$POD-redis" "$REDIS_IMAGE" --bind 127.0.0.1 --port 6379 --dir /var/lib/redis --appendonly yes --appendfsync everysec \
  --requirepass "$REDIS_PW" >/dev/null
podman run -d --pod "$POD" --name "$POD-svc" \
  --read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges \
  -v "$WORK/secrets:/run/secrets/newtermsd:ro" -v "$WORK/rules:/etc/newtermsd/rules:ro" \
  -e NEWTERMSD_REDIS=redis://127.0.0.1:6379/0 \
  -e NEWTERMSD_REDIS_PASSWORD_FILE=/run/secrets/newtermsd/redis-password \
  -e NEWTERMSD_API_READ_TOKEN_FILE=/run/secrets/newtermsd/api-read-token \
  -e NEWTERMSD_FIREHOSE_ACCESS_KEY="$ACCESS_KEY" \
  -e NEWTERMSD_INGEST_TOKEN=smoke-ingest-token -e NEWTERMSD_API_WRITE_TOKEN=smoke-write-token \
  "$IMAGE" >/dev/null
lap "pod $POD started (service + redis), service on 127.0.0.1:$PORT"

URL=http://127.0.0.1:$PORT
wait_for() {  # wait_for PATH SECONDS -> 0 when PATH answered 200; a 404 will not change
  local i code
  for ((i = 0; i < $2 * 2; i++)); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -m 2 "$URL$1" || true)
    [ "$code" = 200 ] && return 0
    [ "$code" = 404 ] && return 1
    podman container exists "$POD-svc" && [ "$(podman inspect -f '{{.State.Running}}' "$POD-svc")" = true ] || return 1
    sleep 0.5
  done
  return 1
}

if wait_for /healthz 30; then pass "/healthz answers 200"; else flunk "/healthz did not answer 200 within 30 s"; fi
lap "health check done"

uids=$(podman exec "$POD-svc" cat /proc/1/status 2>/dev/null | awk '/^Uid:/ {print $2, $3, $4, $5}') || true
if [ "$uids" = "10001 10001 10001 10001" ]; then pass "the daemon (PID 1) runs as uid 10001"
else flunk "the daemon runs as uid '${uids:-?}' (want 10001 for real, effective, saved and fs uid)"; fi
user=$(podman image inspect -f '{{.Config.User}}' "$IMAGE")
if [ "$user" = 10001:10001 ]; then pass "the image declares USER 10001:10001"; else flunk "the image USER is '$user'"; fi

if wait_for /readyz 30; then pass "/readyz answers 200 (rules loaded, Redis answering)"
else flunk "/readyz did not answer 200 within 30 s: $(curl -s -m 2 "$URL/readyz" | head -c 300)"; fi
lap "readiness check done"

# One Firehose delivery: a bare CloudTrail record, base64 in records[].data.
REQ_ID=$(cat /proc/sys/kernel/random/uuid)
NOW_MS=$(($(date +%s) * 1000))
EVENT_ID=$(cat /proc/sys/kernel/random/uuid)
RECORD=$(cat <<EOF
{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","principalId":"AIDASMOKETEST0000001","arn":"arn:aws:iam::111122223333:user/smoke-user","accountId":"111122223333","accessKeyId":"AKIASMOKETEST0000001","userName":"smoke-user"},"eventTime":"$(date -u +%Y-%m-%dT%H:%M:%SZ)","eventSource":"organizations.amazonaws.com","eventName":"ListAccounts","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.7","userAgent":"aws-cli/2.15.0 md/command#organizations.list-accounts","requestParameters":null,"responseElements":null,"requestID":"$(cat /proc/sys/kernel/random/uuid)","eventID":"$EVENT_ID","readOnly":true,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"111122223333","eventCategory":"Management"}
EOF
)
printf '{"requestId":"%s","timestamp":%s,"records":[{"data":"%s"}]}' \
  "$REQ_ID" "$NOW_MS" "$(printf '%s' "$RECORD" | base64 -w0)" > "$WORK/delivery.json"
firehose() {  # firehose ACCESS_KEY -> prints "STATUS BODY"
  curl -s -m 30 -o "$WORK/resp.json" -w '%{http_code}' -X POST "$URL/v1/firehose" \
    -H 'Content-Type: application/json' -H 'X-Amz-Firehose-Protocol-Version: 1.0' \
    -H "X-Amz-Firehose-Request-Id: $REQ_ID" -H "X-Amz-Firehose-Access-Key: $1" \
    --data-binary @"$WORK/delivery.json" || true
}
echoed() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("requestId",""))' "$WORK/resp.json" 2>/dev/null || true; }
alert_count() {  # prints the number of alerts, or "?" with the reason
  local code
  code=$(curl -s -m 10 -o "$WORK/alerts.json" -w '%{http_code}' -H "Authorization: Bearer $READ_TOKEN" \
    "$URL/api/v1/alerts" || true)
  [ "$code" = 200 ] || { echo "? (HTTP $code: $(head -c 200 "$WORK/alerts.json" 2>/dev/null))"; return; }
  python3 - "$WORK/alerts.json" "$EVENT_ID" <<'PY' || echo "? (not a JSON alert list: $(head -c 200 "$WORK/alerts.json"))"
import json, sys
alerts = json.load(open(sys.argv[1]))["alerts"]
ours = [a for a in alerts if a.get("event_id") == sys.argv[2]]
ok = len(ours) == 1 and ours[0].get("new_terms") == ["111122223333", "smoke-user"]
print(len(alerts) if ok or not ours else f"{len(alerts)} (ours: {ours[0].get('new_terms')})")
PY
}

code=$(firehose "$ACCESS_KEY")
got=$(echoed)
if [ "$code" = 200 ] && [ "$got" = "$REQ_ID" ]; then pass "Firehose delivery: 200 with requestId echoed"
else flunk "Firehose delivery: HTTP $code, requestId '${got}', body: $(head -c 300 "$WORK/resp.json" 2>/dev/null)"; fi
n=$(alert_count)
if [ "$n" = 1 ]; then pass "GET /api/v1/alerts (read token) lists 1 alert for smoke-user in 111122223333"
else flunk "GET /api/v1/alerts: want 1 alert, got $n"; fi
lap "Firehose delivery and alert check done"

code=$(firehose "$ACCESS_KEY")
n=$(alert_count)
if [ "$code" = 200 ] && [ "$n" = 1 ]; then pass "the same delivery retried: 200 and still 1 alert"
else flunk "retried delivery: HTTP $code, alerts $n (want 200 and 1)"; fi
code=$(firehose "wrong-$ACCESS_KEY")
if [ "$code" = 401 ]; then pass "a wrong Firehose access key gets 401"
else flunk "a wrong Firehose access key got HTTP $code (want 401)"; fi
lap "retry and auth checks done"

ts=$(date +%s%N)
podman stop -t 10 "$POD-svc" >/dev/null 2>&1 || true
stop_ms=$((($(date +%s%N) - ts) / 1000000))
rc=$(podman inspect -f '{{.State.ExitCode}}' "$POD-svc" 2>/dev/null || echo '?')
if [ "$rc" = 0 ]; then pass "SIGTERM: the daemon exited 0 after ${stop_ms} ms"
else flunk "SIGTERM: exit code $rc after ${stop_ms} ms (137 = it ignored SIGTERM and was killed)"; fi
lap "stop check done"

if ((failed)); then
  echo "--- service log (last 30 lines) ---"
  podman logs --tail 30 "$POD-svc" 2>&1 || true
fi
echo "total $(($(date +%s) - t0)) s"
echo "$passed passed, $failed failed"
((failed == 0))
