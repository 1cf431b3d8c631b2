#!/usr/bin/env bash
# Builds the seed corpora of the fuzz targets from the project's test data, so
# the fuzzers start from real deliveries, records, queries, rules and
# exception items instead of from nothing.
#
#   tests/fuzz/make-seeds.sh [OUT]      (OUT defaults to build-fuzz/seeds)
#
# OUT/<target>/ gets one file per seed; it is rebuilt from scratch on every
# run and lives under a build directory (ignored by git). Every crash input
# ever found, tests/data/fuzz-regressions/<target>/, is added as a seed too.
# Needs jq, gzip and sha1sum.
#
# The record target reads a mode byte first (see tests/fuzz/targets.h):
#   0 = base64 "data" as sent, 1 = plain bytes (harness base64-encodes),
#   2 = plain bytes the harness gzips (CloudWatch Logs envelopes),
#   3 = a unit / request body, 4 = a Content-Encoding: gzip body.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/build-fuzz/seeds}
data=$root/tests/data

command -v jq >/dev/null || { echo "make-seeds.sh: jq is needed" >&2; exit 1; }

rm -rf "$out"
for t in firehose record ctview kql toml exception jfast; do mkdir -p "$out/$t"; done

# Named by content (like libFuzzer's own corpus files), so duplicates collapse
# and `... | seed` works even though the pipeline runs it in a subshell.
seed() { # seed TARGET NAME [FILE]  (bytes from FILE, else from stdin)
    local tmp="$out/$1/.incoming"
    cat "${3:--}" >"$tmp"
    mv "$tmp" "$out/$1/$2-$(sha1sum <"$tmp" | cut -c1-12)"
}
with_mode() { # with_mode BYTE FILE: the mode byte, then the file
    printf '%b' "\\x$1"
    cat "$2"
}

# firehose: every envelope and every real delivery
for f in "$data"/decode/envelopes/valid/* "$data"/decode/envelopes/invalid/* \
         $(find "$data/decode/firehose-requests" -type f | sort); do
    seed firehose "$(basename "$f")" "$f"
done

# record, mode 0: each "data" string of the real deliveries and valid envelopes
for f in $(find "$data/decode/firehose-requests" -type f | sort) "$data"/decode/envelopes/valid/*; do
    i=0
    while IFS= read -r d; do
        i=$((i + 1))
        { printf '\x00'; printf '%s' "$d"; } | seed record "b64-$(basename "$f" .json)-$i"
    done < <(jq -r '.records[]?.data | strings' "$f" 2>/dev/null || true)
done
# record, modes 1 and 3: units and records as plain bytes; mode 2: CWL envelopes to gzip
for f in "$data"/decode/units/* "$data"/cloudtrail/*.json "$data"/decode/cwl/*.json; do
    with_mode 01 "$f" | seed record "plain-$(basename "$f")"
    with_mode 03 "$f" | seed record "unit-$(basename "$f")"
done
for f in "$data"/decode/cwl/*.json "$data"/decode/units/cwl_*.json "$data"/decode/units/otel_cwlog_*.txt; do
    with_mode 02 "$f" | seed record "gzip-$(basename "$f")"
done
# record, mode 4: gzip'd request bodies
for f in "$data"/decode/units/s3_log.json "$data"/decode/units/ndjson_of_three.txt \
         "$data"/cloudtrail/organizations_ListAccounts_IAMUser.json; do
    { printf '\x04'; gzip -9nc <"$f"; } | seed record "body-$(basename "$f").gz"
done

# ctview: every real record, the Elastic fixtures, identity shapes and payloads
for f in "$data"/cloudtrail/*.json "$data"/ctview/samples/*.json; do
    seed ctview "$(basename "$f")" "$f"
done
for f in "$data"/ctview/elastic/*.log; do
    i=0
    name=elastic-$(basename "$f" .log)
    while IFS= read -r line; do
        i=$((i + 1))
        printf '%s' "$line" | seed ctview "$name-$i"
    done <"$f"
done
base=$data/cloudtrail/s3_GetObject_AssumedRole.json
while IFS= read -r ui; do
    jq -c --argjson ui "$ui" '.userIdentity = $ui' "$base" | seed ctview identity
done < <(jq -c '.cases[] | .userIdentity' "$data/ctview/identity_cases.json")
while IFS= read -r p; do
    jq -c --argjson p "$p" '.requestParameters = $p | .responseElements = $p' "$base" |
        seed ctview payload
done <"$data/ctview/java_render_cases.jsonl"

# kql: every query of the Kibana cases, the AWS rules and the evaluation table
# (each query travels base64-encoded so that its newlines survive `read`)
kql_seeds() { # kql_seeds NAME FILE JQ-PATH
    while IFS= read -r q; do
        printf '%s' "$q" | base64 -d | seed kql "$1"
    done < <(jq -r "$3 | .query | strings | @base64" "$2")
}
kql_seeds kibana "$data/kql/kibana_kql_cases.json" '.[]'
kql_seeds aws-rule "$data/kql/aws_rule_queries.json" '.[]'
kql_seeds eval "$data/kql/eval_cases.json" '.cases[]'
seed kql seed_query.kql "$data/kql/seed_query.kql"

# toml: every rule file in the project
for f in $(find "$data/toml" "$data/rules" "$root/rules" -name '*.toml' | sort); do
    seed toml "$(basename "$f")" "$f"
done

# exception: every item of the tables, valid and invalid, and a stored set
for f in "$data"/exception/cases.json "$data"/exception/invalid.json; do
    while IFS= read -r item; do
        printf '%s' "$item" | seed exception "$(basename "$f" .json)"
    done < <(jq -c '(if type == "array" then .[] else .rows[] end) | .item' "$f")
done
jq -c '[.rows[] | .item]' "$data/exception/cases.json" | seed exception set

# jfast: every JSON document and unit of the test data, and the EventBridge
# events of the real deliveries' records, as raw bytes
for f in $(find "$data/cloudtrail" "$data/ctview" "$data/decode" "$data/fuzz-regressions" \
           -type f \( -name '*.json' -o -name '*.txt' -o -name '*.log' \) | sort); do
    seed jfast "$(basename "$f")" "$f"
done

# every crash input found so far
if [ -d "$data/fuzz-regressions" ]; then
    for d in "$data"/fuzz-regressions/*/; do
        t=$(basename "$d")
        [ -d "$out/$t" ] || continue
        for f in "$d"*; do [ -f "$f" ] && seed "$t" "regression-$(basename "$f")" "$f"; done
    done
fi

for t in firehose record ctview kql toml exception jfast; do
    printf '%-10s %4d seeds\n' "$t" "$(find "$out/$t" -type f | wc -l)"
done
