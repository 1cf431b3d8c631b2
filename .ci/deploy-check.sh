#!/usr/bin/env bash
# Offline checks of the deployment files, no cluster needed:
#   1. yamllint of deploy/ (syntax, duplicate keys, style)
#   2. deploy/base/rules/ is the same as rules/ (the ConfigMap must ship the rules the image ships)
#   3. the validator's own self-test: known-bad manifests must be rejected, and kustomize-lite must
#      render a feature-rich kustomization exactly as `kubectl kustomize` did when it was recorded
#   4. every kustomization (deploy/base, deploy/overlays/*) rendered by kustomize-lite, each object
#      checked against the Kubernetes schema, for unknown fields, for the restricted pod security
#      profile and for references between objects; the Secret template checked alone
#   5. if kubectl happens to be installed: its own rendering must equal kustomize-lite's
#   6. `redocly lint api/openapi.yaml`, when that file exists
#   7. shellcheck of the .ci scripts
# Installs what it needs (yamllint and shellcheck from Debian, Node tools with `npm ci` from the
# committed lockfile); safe to run again, and runs without network once installed.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=.ci/tools
t0=$(date +%s); tl=$t0
lap() { local n; n=$(date +%s); printf '[%3ss +%3ss] %s\n' "$((n - t0))" "$((n - tl))" "$*"; tl=$n; }
passed=0; failed=0
step() {  # step NAME COMMAND... : run, report, count
  local name=$1; shift
  echo "== $name"
  if "$@"; then passed=$((passed + 1)); lap "PASS $name"; else failed=$((failed + 1)); lap "FAIL $name"; fi
}

# ---- tools -----------------------------------------------------------------------------------
export DEBIAN_FRONTEND=noninteractive
need=()
command -v yamllint >/dev/null || need+=(yamllint)
command -v shellcheck >/dev/null || need+=(shellcheck)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
if ((${#need[@]})); then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# npm ci again only when the lockfile changed since the last install.
lock_sum=$(sha256sum "$TOOLS/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$TOOLS/node_modules/.lock-sha256" 2>/dev/null)" != "$lock_sum" ]; then
  (cd "$TOOLS" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_sum" > "$TOOLS/node_modules/.lock-sha256"
fi
lap "tools ready: yamllint $(yamllint --version | cut -d' ' -f2), node $(node --version), $(cd "$TOOLS" && node -p 'Object.entries(require("./package.json").devDependencies).map(([k,v])=>k+"@"+v).join(", ")')"

# ---- checks ----------------------------------------------------------------------------------
step "yamllint deploy/" yamllint -s -c "$TOOLS/yamllint.yaml" deploy/

rules_in_sync() {
  if [ ! -d rules ]; then echo "rules/ does not exist yet: nothing to compare"; return 0; fi
  # The rules the service loads by default are rules/*.toml (the folder is not read
  # recursively); rules/elastic-aws/ is the AWS pack, chosen with --rules, not deployed.
  diff -r -x elastic-aws rules deploy/base/rules && echo "deploy/base/rules/ matches rules/*.toml"
}
step "ConfigMap rules = rules/" rules_in_sync

step "validator self-test" node "$TOOLS/validate-k8s.mjs" --self-test "$TOOLS/testdata"

targets=(deploy/base)
for d in deploy/overlays/*/; do targets+=("${d%/}"); done
step "render + validate ${targets[*]}" \
  node "$TOOLS/validate-k8s.mjs" --secret-template deploy/base/secret.example.yaml "${targets[@]}"

if command -v kubectl >/dev/null; then
  same_as_kubectl() {
    local t out rc=0
    out=$(mktemp)
    for t in "${targets[@]}"; do
      kubectl kustomize "$t" > "$out" && node "$TOOLS/validate-k8s.mjs" --compare "$t" "$out" || rc=1
    done
    rm -f "$out"
    return $rc
  }
  step "kustomize-lite = kubectl kustomize ($(kubectl version --client -o json | node -p 'JSON.parse(require("fs").readFileSync(0)).clientVersion.gitVersion'))" same_as_kubectl
else
  echo "== kubectl kustomize cross-check: skipped (kubectl not installed)"
fi

if [ -f api/openapi.yaml ]; then
  redocly_config=()
  [ -f api/redocly.yaml ] && redocly_config=(--config api/redocly.yaml)
  step "redocly lint api/openapi.yaml" env REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
    "$TOOLS/node_modules/.bin/redocly" lint api/openapi.yaml --format=stylish "${redocly_config[@]}"
else
  echo "== redocly lint: skipped (api/openapi.yaml does not exist)"
fi

step "shellcheck .ci/deploy-check.sh .ci/container-smoke.sh" shellcheck .ci/deploy-check.sh .ci/container-smoke.sh

echo "deploy-check: total $(($(date +%s) - t0)) s"
echo "$passed passed, $failed failed"
((failed == 0))
