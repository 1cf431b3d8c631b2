#!/usr/bin/env python3
"""The no-HTTP Python yardstick (issue 14): how fast a bare Python loop decodes and filters the same deliveries.

  yardstick.py BODIES.ndjson [--seconds S] [--json]

For every Firehose delivery body (one per line): json.loads the envelope, b64decode and json.loads each
record, unwrap the EventBridge event ("detail") when there is one, apply the seed rule's filter
(reference_handler.rule_pair: organizations/iam account discovery, success, literal source IP, no AWSService
actor, not from the console) and add the (account, user) pair to a set. No HTTP, no Redis, no threads: the
loop is what a user would write first, and a stricter yardstick than reference_handler.py.

The bodies are read into memory first; then the loop cycles through them for --seconds (at least one pass)
and prints records/s. run.sh runs it pinned to the service's core (taskset -c 0) with the fastest python3 on
the machine (Debian's /usr/bin/python3 when present: its build is optimised, a pyenv build often is not).
"""
import argparse
import base64
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_handler import rule_pair  # noqa: E402  (the same filter the reference handler applies)


def one_body(body, pairs):
    env = json.loads(body)
    n = c = 0
    for r in env["records"]:
        ev = json.loads(base64.b64decode(r["data"]))
        rec = ev.get("detail", ev) if "detail-type" in ev else ev
        n += 1
        p = rule_pair(rec)
        if p is not None:
            c += 1
            pairs.add(p)
    return n, c


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bodies")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--json", action="store_true", help="print one JSON line instead of text")
    args = ap.parse_args()
    with open(args.bodies, "rb") as f:
        bodies = [line for line in f.read().split(b"\n") if line.strip()]
    if not bodies:
        sys.exit("yardstick: no bodies in %s" % args.bodies)
    pairs = set()
    records = candidates = deliveries = 0
    cpu0, t0 = time.process_time(), time.monotonic()
    deadline = t0 + args.seconds
    i = 0
    while True:
        n, c = one_body(bodies[i % len(bodies)], pairs)
        records += n
        candidates += c
        deliveries += 1
        i += 1
        if i >= len(bodies) and time.monotonic() >= deadline:
            break
    wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    out = {"python": sys.executable, "version": sys.version.split()[0], "deliveries": deliveries,
           "records": records, "candidates": candidates, "pairs": len(pairs), "wall_s": round(wall, 3),
           "cpu_s": round(cpu, 3), "records_s": round(records / wall), "records_per_cpu_s": round(records / cpu)}
    if args.json:
        print(json.dumps(out))
    else:
        print("yardstick: %(records_s)d records/s (%(records_per_cpu_s)d per CPU-s), %(deliveries)d deliveries, "
              "%(candidates)d candidates, %(pairs)d pairs, %(python)s %(version)s" % out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
