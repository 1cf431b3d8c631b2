#!/usr/bin/env bash
# Regenerates java_render.json from java_render_cases.jsonl with the Java oracle
# (JavaMapToString.java; needs a JDK 11+). Each case: the payload and the string
# Elasticsearch stores for it (null = the payload is empty after clean-up).
set -euo pipefail
cd "$(dirname "$0")"
java JavaMapToString.java < java_render_cases.jsonl > /tmp/ctview_java_out.$$
python3 - "$@" <<'PY'
import json, os
cases = [json.loads(l) for l in open('java_render_cases.jsonl') if l.strip()]
outs = [json.loads(l) for l in open('/tmp/ctview_java_out.%d' % os.getppid())]
assert len(cases) == len(outs)
json.dump({"cases": [{"input": c, "want": w} for c, w in zip(cases, outs)]},
          open('java_render.json', 'w'), ensure_ascii=False, indent=1)
PY
rm -f /tmp/ctview_java_out.$$
