#!/usr/bin/env python3
"""soak.py - run newtermsd under mixed load for a while and check that it stays healthy.

Starts its own redis-server and `newtermsd serve` on free loopback ports (through the
integration harness, tests/integration/harness.py), then runs closed-loop client threads for
SOAK_SECONDS:

  firehose x2  Firehose deliveries of 200 records: EventBridge-wrapped, bare and gzip'd CloudWatch
               Logs records; ~1% are discovery calls the shipped rule matches (candidates), whose
               users come from a pool that grows over time, so new terms keep appearing; ~0.2%
               records are bad (rejects); every 25th body is gzip'd, every 40th delivery is a
               retry of an earlier one (as Firehose does after a timeout).
  events       /v1/events bodies (JSON arrays, S3 log files, NDJSON) and /v1/eventbridge events.
  api          alerts list (filters, cursor paging), get, PATCH, bulk status; exception create,
               read, replace, delete; rules, rejects, /metrics, /readyz, /healthz; and requests
               with a wrong token (401 expected).

Every SOAK_SAMPLE_S seconds it samples the service's VmRSS, open fds and threads from /proc and
prints a table row. At the end it prints the RSS growth between the 25% mark and the end, the HTTP
answers by status, transport errors, the /metrics totals, the shutdown exit code and the log lines
by level.

Exit status 1 when: RSS grew by >= 10% AND >= 8 MiB after the 25% mark; any 5xx; any answer other
than the one the request expects; any transport error; newtermsd exits non-zero on SIGTERM; a
secret appears in the log. 0 otherwise. Standard library only; loopback only; bounded by
SOAK_SECONDS (plus start and shutdown).

Environment: SOAK_SECONDS (600), SOAK_SAMPLE_S (10), NEWTERMSD_BIN (build-release/newtermsd),
NEWTERMSD_WORKERS (2).
"""
import base64
import copy
import gzip
import http.client
import json
import os
import random
import signal
import sys
import threading
import time
import uuid
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
os.environ.setdefault("NEWTERMSD_BIN", os.path.join(ROOT, "build-release", "newtermsd"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import harness  # noqa: E402 - needs NEWTERMSD_BIN set first
from harness import (FIREHOSE_KEY, INGEST_TOKEN, READ_TOKEN, SECRETS, WRITE_TOKEN,  # noqa: E402
                     discovery_record, eventbridge, noise_record)

RULE_ID = "444c8fad-874f-4f59-b0ea-cf26cea478bd"
SECONDS = float(os.environ.get("SOAK_SECONDS", "600"))
SAMPLE_S = float(os.environ.get("SOAK_SAMPLE_S", "10"))
WORKERS = os.environ.get("NEWTERMSD_WORKERS", "2")
ACCOUNTS = ["111122223333", "444455556666", "777788889999", "123456789012", "210987654321"]
MIB = 1024 * 1024


class Stats:
    """Answers by status and route, unexpected answers and transport errors, shared by threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.by_status = Counter()
        self.by_route = Counter()
        self.unexpected = Counter()
        self.transport = Counter()
        self.requests = 0
        self.records = 0
        self.examples = []

    def note(self, route, status, expected, body):
        with self.lock:
            self.requests += 1
            self.by_status[status] += 1
            self.by_route[(route, status)] += 1
            if status not in expected:
                self.unexpected[(route, status)] += 1
                if len(self.examples) < 10:
                    self.examples.append(f"{route} -> {status} (expected {sorted(expected)}): {body[:200]!r}")

    def fail(self, route, exc):
        with self.lock:
            self.requests += 1
            self.transport[(route, type(exc).__name__)] += 1
            if len(self.examples) < 10:
                self.examples.append(f"{route} -> {exc!r}")

    def add_records(self, n):
        with self.lock:
            self.records += n


class Client:
    """One keep-alive HTTP/1.1 connection; reconnects after a failure or a closed connection."""

    def __init__(self, port, stats):
        self.port = port
        self.stats = stats
        self.conn = None

    def call(self, method, path, body=None, headers=None, expect=(200,), route=None):
        route = route or f"{method} {path.split('?')[0]}"
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            self.conn.request(method, path, body=body, headers=headers or {})
            resp = self.conn.getresponse()
            data = resp.read()
            if resp.getheader("Connection", "").lower() == "close":
                self.close()
        except (OSError, http.client.HTTPException) as e:
            self.close()
            self.stats.fail(route, e)
            return None, None
        self.stats.note(route, resp.status, expect, data)
        if data and "json" in (resp.getheader("Content-Type") or ""):
            try:
                return resp.status, json.loads(data)
            except ValueError:
                return resp.status, None
        return resp.status, data

    def close(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = None


class Users:
    """The pool candidate users are drawn from; it grows, so some candidates are new terms."""

    def __init__(self):
        self.lock = threading.Lock()
        self.pool = [f"soak-seed{i}" for i in range(20)]
        self.n = 0

    def pick(self, rnd):
        with self.lock:
            if rnd.random() < 0.08:
                self.n += 1
                self.pool.append(f"soak-u{self.n}")
                return self.pool[-1]
            return rnd.choice(self.pool)


def b64(data):
    return base64.b64encode(data).decode()


def make_noise_pool(rnd, n=600):
    """Pre-encoded non-matching records of every shape, reused so the client stays cheap."""
    pool = []
    for i in range(n):
        rec = noise_record(i)
        shape = i % 3
        if shape == 0:
            pool.append(b64(json.dumps(eventbridge(rec)).encode()))
        elif shape == 1:
            pool.append(b64(json.dumps(rec).encode()))
        else:
            recs = [noise_record(i * 10 + k) for k in range(rnd.randint(2, 8))]
            env = {"messageType": "DATA_MESSAGE", "owner": "111122223333",
                   "logGroup": "aws-cloudtrail-logs", "logStream": "111122223333_CloudTrail_us-east-1",
                   "subscriptionFilters": ["to-firehose"],
                   "logEvents": [{"id": str(k), "timestamp": 1795843752000, "message": json.dumps(r)}
                                 for k, r in enumerate(recs)]}
            pool.append(b64(gzip.compress(json.dumps(env).encode())))
    return pool


BAD_RECORDS = [
    "!!!not-base64!!!",
    b64(b"this is not json"),
    b64(b'{"hello": "world"}'),
    b64(gzip.compress(b'{"a": 1}')[:12]),
]


def candidate(rnd, users):
    rec = discovery_record(user=users.pick(rnd), account=rnd.choice(ACCOUNTS),
                           action=rnd.choice(["ListAccounts", "DescribeOrganization", "ListRoots",
                                              "ListAccountsForParent"]),
                           identity=rnd.choice(["IAMUser", "AssumedRole"]))
    return rec


def encode_candidate(rnd, rec):
    shape = rnd.randrange(3)
    if shape == 0:
        return b64(json.dumps(eventbridge(rec)).encode())
    if shape == 1:
        return b64(json.dumps(rec).encode())
    env = {"messageType": "DATA_MESSAGE", "owner": rec["recipientAccountId"], "logGroup": "ct",
           "logStream": "s", "subscriptionFilters": ["f"],
           "logEvents": [{"id": "1", "timestamp": 1795843752000, "message": json.dumps(rec)}]}
    return b64(gzip.compress(json.dumps(env).encode()))


def firehose_loop(port, stats, users, stop, seed):
    rnd = random.Random(seed)
    c = Client(port, stats)
    noise = make_noise_pool(rnd)
    sent = []
    n = 0
    while not stop.is_set():
        n += 1
        if n % 40 == 0 and sent:
            body = rnd.choice(sent)  # a retried delivery: same requestId, same records
        else:
            datas = []
            for _ in range(200):
                x = rnd.random()
                if x < 0.01:
                    datas.append(encode_candidate(rnd, candidate(rnd, users)))
                elif x < 0.012:
                    datas.append(rnd.choice(BAD_RECORDS))
                else:
                    datas.append(rnd.choice(noise))
            body = json.dumps({"requestId": str(uuid.uuid4()), "timestamp": int(time.time() * 1000),
                               "records": [{"data": d} for d in datas]}).encode()
            if len(sent) < 20:
                sent.append(body)
            else:
                sent[rnd.randrange(20)] = body
        h = {"Content-Type": "application/json", "X-Amz-Firehose-Access-Key": FIREHOSE_KEY}
        if n % 25 == 0:
            body = gzip.compress(body)
            h["Content-Encoding"] = "gzip"
        status, _ = c.call("POST", "/v1/firehose", body, h, route="firehose")
        if status == 200:
            stats.add_records(200)
    c.close()


def events_loop(port, stats, users, stop, seed):
    rnd = random.Random(seed)
    c = Client(port, stats)
    auth = {"Authorization": f"Bearer {INGEST_TOKEN}", "Content-Type": "application/json"}
    base = [noise_record(i) for i in range(50)]
    n = 0
    while not stop.is_set():
        n += 1
        recs = [copy.deepcopy(r) for r in rnd.sample(base, 20)]
        for r in recs:
            r["eventID"] = str(uuid.uuid4())
        if rnd.random() < 0.3:
            recs.append(candidate(rnd, users))
        kind = n % 4
        if kind == 0:
            body = json.dumps(recs).encode()
        elif kind == 1:
            body = json.dumps({"Records": recs}).encode()
        elif kind == 2:
            body = ("\n".join(json.dumps(r) for r in recs) + "\n").encode()
        else:
            ev = eventbridge(candidate(rnd, users) if rnd.random() < 0.2 else recs[0])
            status, _ = c.call("POST", "/v1/eventbridge", json.dumps(ev).encode(), auth, route="eventbridge")
            if status == 200:
                stats.add_records(1)
            time.sleep(0.02)
            continue
        h = dict(auth)
        if n % 7 == 0:
            body = gzip.compress(body)
            h["Content-Encoding"] = "gzip"
        status, _ = c.call("POST", "/v1/events", body, h, route="events")
        if status == 200:
            stats.add_records(len(recs))
        time.sleep(0.02)
    c.close()


def api_loop(port, stats, stop, seed):
    rnd = random.Random(seed)
    c = Client(port, stats)
    rd = {"Authorization": f"Bearer {READ_TOKEN}"}
    wr = {"Authorization": f"Bearer {WRITE_TOKEN}", "Content-Type": "application/json"}
    n = 0
    while not stop.is_set():
        n += 1
        q = rnd.choice(["", "&status=open", f"&account={rnd.choice(ACCOUNTS)}", f"&rule_id={RULE_ID}",
                        "&since=2020-01-01T00:00:00Z", "&status=acknowledged"])
        status, page = c.call("GET", f"/api/v1/alerts?limit=50{q}", headers=rd, route="GET alerts")
        pages = 0
        while status == 200 and page and page.get("next_cursor") and pages < 3:
            status, page2 = c.call("GET", f"/api/v1/alerts?limit=50{q}&cursor={page['next_cursor']}",
                                   headers=rd, route="GET alerts")
            page = page2
            pages += 1
        _, first = c.call("GET", "/api/v1/alerts?limit=20", headers=rd, route="GET alerts")
        ids = [a["id"] for a in (first or {}).get("alerts", [])]
        if ids:
            aid = rnd.choice(ids)
            c.call("GET", f"/api/v1/alerts/{aid}", headers=rd, route="GET alerts/{id}")
            c.call("PATCH", f"/api/v1/alerts/{aid}",
                   {"status": rnd.choice(["acknowledged", "closed", "open"]),
                    "reason": rnd.choice(["false_positive", "true_positive", None])},
                   wr, route="PATCH alerts/{id}")
            if n % 10 == 0:
                c.call("POST", "/api/v1/alerts/status", {"ids": ids + ["0" * 32], "status": "acknowledged"},
                       wr, route="POST alerts/status")
        if n % 5 == 0:
            exc = {"name": f"soak {n}", "rule_id": RULE_ID,
                   "entries": [{"field": "user.name", "operator": "included", "type": "match",
                                "value": f"soak-never-{n}"}],
                   "comments": [{"comment": "soak"}], "expire_time": "2999-01-01T00:00:00Z"}
            status, created = c.call("POST", "/api/v1/exceptions", exc, wr, expect=(201,),
                                     route="POST exceptions")
            if status == 201 and created:
                eid = created["id"]
                c.call("GET", f"/api/v1/exceptions/{eid}", headers=rd, route="GET exceptions/{id}")
                c.call("PUT", f"/api/v1/exceptions/{eid}", dict(exc, name="renamed"), wr,
                       route="PUT exceptions/{id}")
                c.call("GET", "/api/v1/exceptions", headers=rd, route="GET exceptions")
                c.call("DELETE", f"/api/v1/exceptions/{eid}", headers=wr, expect=(204,),
                       route="DELETE exceptions/{id}")
        c.call("GET", "/api/v1/rules", headers=rd, route="GET rules")
        c.call("GET", f"/api/v1/rules/{RULE_ID}", headers=rd, route="GET rules/{id}")
        c.call("GET", "/api/v1/rejects?limit=20", headers=rd, route="GET rejects")
        c.call("GET", "/metrics", route="GET metrics")
        c.call("GET", "/readyz", route="GET readyz")
        c.call("GET", "/healthz", route="GET healthz")
        if n % 20 == 0:
            c.call("GET", "/api/v1/alerts", headers={"Authorization": "Bearer wrong"}, expect=(401,),
                   route="GET alerts (bad token)")
            c.call("POST", "/v1/firehose", b"{}", {"X-Amz-Firehose-Access-Key": "wrong"}, expect=(401,),
                   route="firehose (bad key)")
        time.sleep(0.1)
    c.close()


def proc_sample(pid):
    rss = threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds, threads


def metric_totals(text):
    totals = Counter()
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name = head.split("{")[0]
        try:
            v = float(value)
        except ValueError:
            continue
        if name == "newtermsd_http_requests_total":
            code = head.split('code="')[1].split('"')[0] if 'code="' in head else "?"
            totals[f"{name}{{code={code}}}"] += v
        elif name.endswith("_total") or name in ("process_resident_memory_bytes", "process_open_fds",
                                                  "newtermsd_exceptions_loaded"):
            totals[name] += v
    return totals


def main():
    if not os.path.exists(harness.BIN):
        sys.stderr.write(f"soak: {harness.BIN} does not exist; build it or set NEWTERMSD_BIN\n")
        return 2
    print(f"soak: {harness.BIN}, {SECONDS:.0f}s, sample every {SAMPLE_S:.0f}s, "
          f"{WORKERS} workers, nproc {os.cpu_count()}", flush=True)
    redis = harness.Redis()
    svc = harness.Service(redis.url, extra_env={"NEWTERMSD_WORKERS": WORKERS,
                                                "NEWTERMSD_REDIS_TIMEOUT_MS": "2000"})
    pid = svc.proc.pid
    stats = Stats()
    users = Users()
    stop = threading.Event()
    threads = [threading.Thread(target=firehose_loop, args=(svc.port, stats, users, stop, 1), name="fh1"),
               threading.Thread(target=firehose_loop, args=(svc.port, stats, users, stop, 2), name="fh2"),
               threading.Thread(target=events_loop, args=(svc.port, stats, users, stop, 3), name="events"),
               threading.Thread(target=api_loop, args=(svc.port, stats, stop, 4), name="api")]
    samples = []
    t0 = time.time()
    rss, fds, nthr = proc_sample(pid)
    samples.append((0.0, rss, fds, nthr, 0, 0))
    print(f"{'t(s)':>6} {'RSS MiB':>8} {'fds':>5} {'thr':>4} {'req/s':>7} {'rec/s':>8} {'5xx':>4} {'bad':>4}")
    print(f"{0:>6} {rss / MIB:>8.1f} {fds:>5} {nthr:>4} {'-':>7} {'-':>8} {0:>4} {0:>4}", flush=True)
    for t in threads:
        t.start()
    last_req = last_rec = 0
    last_t = t0
    rc = None
    try:
        while True:
            now = time.time()
            if now - t0 >= SECONDS:
                break
            time.sleep(min(SAMPLE_S - ((now - t0) % SAMPLE_S), SECONDS - (now - t0)))
            now = time.time()
            rss, fds, nthr = proc_sample(pid)
            with stats.lock:
                req, rec = stats.requests, stats.records
                n5 = sum(v for k, v in stats.by_status.items() if k >= 500)
                bad = sum(stats.unexpected.values()) + sum(stats.transport.values())
            dt = max(now - last_t, 1e-9)
            samples.append((now - t0, rss, fds, nthr, req, rec))
            print(f"{now - t0:>6.0f} {rss / MIB:>8.1f} {fds:>5} {nthr:>4} {(req - last_req) / dt:>7.0f} "
                  f"{(rec - last_rec) / dt:>8.0f} {n5:>4} {bad:>4}", flush=True)
            last_req, last_rec, last_t = req, rec, now
    finally:
        stop.set()
        for t in threads:
            t.join(120)
        elapsed = time.time() - t0
        probe = Client(svc.port, Stats())
        _, text = probe.call("GET", "/metrics")
        probe.close()
        t_stop = time.time()
        rc = svc.stop(timeout=60)
        stop_s = time.time() - t_stop
        log = svc.logs()
        svc.close()
        redis.close()

    ok = True
    print()
    # RSS growth after warm-up.
    mark = next((s for s in samples if s[0] >= 0.25 * SECONDS), samples[-1])
    end = samples[-1]
    growth = end[1] - mark[1]
    pct = 100.0 * growth / mark[1] if mark[1] else 0.0
    flat = growth < 8 * MIB or pct < 10.0
    ok &= flat
    peak = max(s[1] for s in samples)
    print(f"RSS: start {samples[0][1] / MIB:.1f} MiB, at 25% mark (t={mark[0]:.0f}s) {mark[1] / MIB:.1f} MiB, "
          f"end {end[1] / MIB:.1f} MiB, peak {peak / MIB:.1f} MiB; growth after the mark "
          f"{growth / MIB:+.2f} MiB ({pct:+.1f}%) -> {'flat' if flat else 'GROWING'}")
    print(f"fds: at mark {mark[2]}, end {end[2]}; threads: {end[3]}")
    print(f"load: {stats.requests} requests, {stats.records} records sent and acknowledged (Firehose "
          f"records and /v1/events records) in {elapsed:.0f}s "
          f"({stats.requests / elapsed:.0f} req/s, {stats.records / elapsed:.0f} records/s); "
          f"{users.n} new users introduced")
    print("HTTP answers by status: " + ", ".join(f"{k}: {v}" for k, v in sorted(stats.by_status.items())))
    n5 = sum(v for k, v in stats.by_status.items() if k >= 500)
    unexpected = sum(stats.unexpected.values())
    transport = sum(stats.transport.values())
    print(f"5xx: {n5}; unexpected answers: {unexpected}; transport errors: {transport}")
    for k, v in sorted(stats.unexpected.items()):
        print(f"  unexpected {k[0]} -> {k[1]}: {v}")
    for k, v in sorted(stats.transport.items()):
        print(f"  transport {k[0]}: {k[1]} x{v}")
    for e in stats.examples:
        print(f"  e.g. {e}")
    ok &= n5 == 0 and unexpected == 0 and transport == 0
    print("metrics totals at the end:")
    if isinstance(text, bytes):
        for k, v in sorted(metric_totals(text.decode()).items()):
            print(f"  {k} {v:.0f}")
    else:
        print("  (could not scrape /metrics)")
        ok = False
    levels = Counter()
    notable = Counter()
    for line in log.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            levels["not-json"] += 1
            continue
        levels[doc.get("level", "?")] += 1
        if doc.get("level") in ("warn", "error"):
            notable[(doc.get("level"), doc.get("event"), str(doc.get("msg"))[:160])] += 1
    leaked = [s for s in SECRETS if s in log]
    print("log lines by level: " + ", ".join(f"{k}: {v}" for k, v in sorted(levels.items()))
          + (f"; SECRETS IN LOG: {len(leaked)}" if leaked else "; no secret in the log"))
    for (lvl, ev, msg), v in sorted(notable.items(), key=lambda kv: -kv[1])[:10]:
        print(f"  {lvl} {ev} x{v}: {msg}")
    print(f"shutdown: SIGTERM -> exit {rc} in {stop_s:.1f}s")
    ok &= rc == 0 and not leaked and levels.get("not-json", 0) == 0
    print("RESULT: " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
