#!/usr/bin/env python3
"""Ingest throughput with and without alert outputs, and delivery latency.

    NEWTERMSD_BIN=build/newtermsd python3 tests/bench/outputs_bench.py [ROUNDS]

One redis-server, a receiver in its own process (so it does not share a Python GIL with the load),
and newtermsd started alternately without and with an outputs file (webhook + slack + pagerduty, all
to the receiver). Each round POSTs the same kind of Firehose deliveries (500 records, 5 of them new
(account, user) pairs, the rest S3 noise) for DURATION seconds from 2 client threads and reports
records/s; then 20 alerts/s for 5 s, and the receiver reports alert-written -> received latency.
Loopback only; every step is bounded.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from harness import Redis, Service, b64, discovery_record, firehose_payload, noise_record  # noqa: E402

DURATION = float(os.environ.get("DURATION", "8"))
RECEIVER = r'''
import json, sys, time, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
lat, lock = [], threading.Lock()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def log_message(self, *a): pass
    def do_GET(self):
        with lock:
            body = json.dumps(lat).encode(); lat.clear()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        t = time.time()
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/hook":
            c = json.loads(body)["created_at"]
            ts = time.mktime(time.strptime(c[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone + int(c[20:23]) / 1000
            with lock: lat.append(t - ts)
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
s = ThreadingHTTPServer(("127.0.0.1", 0), H); s.daemon_threads = True
print(s.server_address[1], flush=True); s.serve_forever()
'''


def delivery(tag, i):
    recs = [discovery_record(user=f"{tag}-{i}-{j}") for j in range(5)]
    recs += [noise_record(k) for k in range(495)]
    return json.dumps(firehose_payload([b64(r) for r in recs])).encode()


def load(svc, tag, seconds):
    bodies = [delivery(tag, i) for i in range(200)]  # 200 distinct deliveries, 1000 new pairs
    done, errors, lock = [0], [0], threading.Lock()
    stop = time.time() + seconds

    def client(k):
        i = k
        while time.time() < stop and i < len(bodies):
            s, _, _ = svc.request("POST", "/v1/firehose", body=bodies[i], headers={
                "Content-Type": "application/json", "X-Amz-Firehose-Access-Key": svc.env["NEWTERMSD_FIREHOSE_ACCESS_KEY"]})
            with lock:
                done[0] += 1
                errors[0] += s != 200
            i += 2
    t0 = time.time()
    ts = [threading.Thread(target=client, args=(k,)) for k in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return done[0] * 500 / (time.time() - t0), errors[0]


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    redis = Redis()
    recv = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    port = int(recv.stdout.readline())
    fd, path = tempfile.mkstemp(suffix=".toml")
    with os.fdopen(fd, "w") as f:
        f.write(f'[[output]]\nname = "hook"\ntype = "webhook"\nurl = "http://127.0.0.1:{port}/hook"\n'
                f'secret_env = "BENCH_KEY"\n[[output]]\nname = "chat"\ntype = "slack"\n'
                f'url = "http://127.0.0.1:{port}/slack"\n[[output]]\nname = "pd"\ntype = "pagerduty"\n'
                f'url = "http://127.0.0.1:{port}/pd"\nsecret_env = "BENCH_KEY"\n')
    rates = {"without": [], "with": []}
    try:
        for r in range(rounds):
            for mode in ("without", "with"):
                redis.command("FLUSHALL")
                env = {"NEWTERMSD_OUTPUTS": path, "BENCH_KEY": "k"} if mode == "with" else {}
                svc = Service(redis.url, extra_env=env)
                rate, errors = load(svc, f"{mode}{r}", DURATION)
                rates[mode].append(rate)
                print(f"round {r + 1} {mode:7} outputs: {rate:9.0f} records/s, non-200: {errors}", flush=True)
                if mode == "with":
                    time.sleep(2)
                    import urllib.request
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/").read()  # drop burst latencies
                    for i in range(25):
                        svc.firehose(firehose_payload([b64(discovery_record(user=f"steady{r}-{i}-{j}"))
                                                       for j in range(4)]))
                        time.sleep(0.2)
                    time.sleep(1)
                    lat = sorted(json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/").read()))
                    if lat:
                        print(f"        webhook latency at 20 alerts/s: n={len(lat)} p50 "
                              f"{statistics.median(lat) * 1000:.1f} ms p99 "
                              f"{lat[min(len(lat) - 1, int(len(lat) * .99))] * 1000:.1f} ms max "
                              f"{lat[-1] * 1000:.1f} ms", flush=True)
                svc.close()
        print(f"median records/s: without outputs {statistics.median(rates['without']):.0f}, "
              f"with outputs {statistics.median(rates['with']):.0f}")
    finally:
        recv.kill()
        redis.close()
        os.unlink(path)


if __name__ == "__main__":
    main()
