"""Alert outputs: webhook, Slack and PagerDuty deliveries through Redis Streams.

A real HTTP receiver (a threaded http.server on a free loopback port) records
every request; each test starts its own redis-server and newtermsd(s) with an
outputs file pointing at it. Nothing is mocked.
"""
import hashlib
import hmac
import json
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import (READ_TOKEN, WRITE_TOKEN, Redis, Service, b64, discovery_record,
                     firehose_payload, wait_for)

HMAC_KEY = "hmac-key-test-7f3a9c"
ROUTING_KEY = "pd-routing-key-test-0b1d2e"


class Receiver:
    """Records POSTs by path. behaviour(path, n) -> ("ok" | int status | "hang", headers)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.got = []  # (time, path, headers, body bytes, status sent)
        self.behaviour = lambda path, n: (200, {})
        self.counts = {}
        self.hang = threading.Event()
        recv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out without a 40 ms stall

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                t = time.time()
                with recv.lock:
                    k = recv.counts.get(self.path, 0) + 1
                    recv.counts[self.path] = k
                status, extra = recv.behaviour(self.path, k)
                if status == "hang":
                    recv.hang.wait(30)
                    return
                with recv.lock:
                    recv.got.append((t, self.path, dict(self.headers), body, status))
                self.send_response(status)
                for hk, hv in extra.items():
                    self.send_header(hk, hv)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def ok(self, path):
        """Successful deliveries to path: list of (time, headers, body)."""
        with self.lock:
            return [(t, h, b) for (t, p, h, b, s) in self.got if p == path and 200 <= s < 300]

    def close(self):
        self.hang.set()
        self.server.shutdown()
        self.server.server_close()


def outputs_file(recv, webhook_path="/hook", extra=""):
    text = f"""
[[output]]
name = "hook"
type = "webhook"
url = "{recv.url(webhook_path)}"
secret_env = "TEST_HMAC_KEY"

[[output]]
name = "chat"
type = "slack"
url = "{recv.url('/slack')}"

[[output]]
name = "pager"
type = "pagerduty"
url = "{recv.url('/pd')}"
secret_env = "TEST_PD_KEY"
{extra}
"""
    fd, path = tempfile.mkstemp(prefix="nt-outputs-", suffix=".toml")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def ingest(svc, recs):
    status, body = svc.firehose(firehose_payload([b64(r) for r in recs]))
    assert status == 200, (status, body)


class OutputsBase(unittest.TestCase):
    args = ["--output-timeout", "2s", "--output-claim-idle", "3s"]

    def setUp(self):
        self.recv = Receiver()
        self.redis = Redis()
        self.path = outputs_file(self.recv)
        self.services = []

    def start(self, path=None, args=None):
        env = {"NEWTERMSD_OUTPUTS": path or self.path, "TEST_HMAC_KEY": HMAC_KEY,
               "TEST_PD_KEY": ROUTING_KEY}
        svc = Service(self.redis.url, extra_env=env, args=(args or self.args))
        self.services.append(svc)
        return svc

    def tearDown(self):
        codes = []
        for s in self.services:
            codes.append(s.stop())
            logs = s.logs()
            s.close()
            self.assertNotIn("Sanitizer", logs)
            self.assertNotIn("runtime error", logs)
        self.recv.close()
        self.redis.close()
        os.unlink(self.path)
        self.assertTrue(all(c in (0, None) for c in codes), codes)

    def assert_no_secrets(self, svc):
        logs = svc.logs()
        self.assertNotIn(HMAC_KEY, logs)
        self.assertNotIn(ROUTING_KEY, logs)
        m = svc.metrics()
        self.assertNotIn(HMAC_KEY, m)
        self.assertNotIn(ROUTING_KEY, m)

    def wait_ok(self, path, n, timeout=20):
        wait_for(lambda: len(self.recv.ok(path)) >= n, timeout=timeout,
                 what=f"{n} deliveries to {path} (have {len(self.recv.ok(path))})")


class Delivery(OutputsBase):
    def test_every_alert_reaches_all_three_outputs_signed_and_valid(self):
        svc = self.start()
        users = [f"corpus{i}" for i in range(12)]
        ingest(svc, [discovery_record(user=u) for u in users])
        alerts = {a["id"]: a for a in svc.alerts(limit=100)}
        self.assertEqual(len(alerts), len(users))
        for p in ("/hook", "/slack", "/pd"):
            self.wait_ok(p, len(users))
        time.sleep(0.5)  # nothing more arrives: each alert once per output
        for p in ("/hook", "/slack", "/pd"):
            self.assertEqual(len(self.recv.ok(p)), len(users), p)

        for _, h, body in self.recv.ok("/hook"):
            sig = "sha256=" + hmac.new(HMAC_KEY.encode(), body, hashlib.sha256).hexdigest()
            self.assertEqual(h["X-Newtermsd-Signature-256"], sig)
            self.assertEqual(h["Content-Type"], "application/json")
            self.assertTrue(h["User-Agent"].startswith("newtermsd/"))
            doc = json.loads(body)
            self.assertEqual(h["X-Newtermsd-Delivery"], doc["id"])
            s, got = svc.api("GET", f"/alerts/{doc['id']}", token=READ_TOKEN)
            self.assertEqual(doc, got)  # exactly the document GET returns
        self.assertEqual({json.loads(b)["id"] for _, _, b in self.recv.ok("/hook")}, set(alerts))

        for _, h, body in self.recv.ok("/slack"):
            msg = json.loads(body)
            self.assertNotIn("\n", msg["text"])
            self.assertIn("Account Discovery", msg["text"])
            self.assertIsInstance(msg["blocks"], list)
            flat = json.dumps(msg["blocks"])
            self.assertIn(h["X-Newtermsd-Delivery"], flat)
            self.assertIn("curl", flat)
            self.assertNotIn("http://", flat)  # link-free
            self.assertNotIn("X-Newtermsd-Signature-256", h)

        for _, h, body in self.recv.ok("/pd"):
            ev = json.loads(body)
            self.assertEqual(ev["routing_key"], ROUTING_KEY)
            self.assertEqual(ev["event_action"], "trigger")
            self.assertIn(ev["dedup_key"], alerts)
            p = ev["payload"]
            self.assertEqual(p["severity"], "info")  # the rule is "low"
            for k in ("summary", "source", "timestamp", "component", "custom_details"):
                self.assertTrue(p[k], k)
            self.assertEqual(p["custom_details"]["alert_id"], ev["dedup_key"])

        s, body = svc.api("GET", "/outputs", token=READ_TOKEN)
        self.assertEqual(s, 200)
        by = {o["name"]: o for o in body["outputs"]}
        self.assertEqual(set(by), {"hook", "chat", "pager"})
        wait_for(lambda: all(o["pending"] == 0 for o in
                             svc.api("GET", "/outputs", token=READ_TOKEN)[1]["outputs"]),
                 what="pending 0")
        for o in svc.api("GET", "/outputs", token=READ_TOKEN)[1]["outputs"]:
            self.assertEqual(o["delivered"], len(users))
            self.assertEqual(o["failed"], 0)
            self.assertIsNotNone(o["last_success_at"])
        self.assertEqual(by["pager"]["type"], "pagerduty")
        self.assertNotIn(ROUTING_KEY, json.dumps(body))
        self.assertNotIn(HMAC_KEY, json.dumps(body))
        self.assertEqual(svc.metric("newtermsd_output_deliveries_total", output="hook",
                                    result="delivered"), len(users))
        self.assertEqual(svc.metric("newtermsd_output_delivery_latency_seconds_count",
                                    output="pager"), len(users))
        self.assert_no_secrets(svc)

        # latency: alert written (created_at) -> receiver got it
        lat = latencies(self.recv, "/hook")
        self.assertLess(max(lat), 1.0, lat)

    def test_closing_an_alert_sends_the_pagerduty_resolve(self):
        svc = self.start()
        ingest(svc, [discovery_record(user="r1"), discovery_record(user="r2")])
        ids = sorted(a["id"] for a in svc.alerts())
        self.wait_ok("/pd", 2)
        s, _ = svc.api("PATCH", f"/alerts/{ids[0]}", {"status": "closed", "reason": "false_positive"})
        self.assertEqual(s, 200)
        s, _ = svc.api("POST", "/alerts/status", {"ids": [ids[1]], "status": "closed"})
        self.assertEqual(s, 200)
        self.wait_ok("/pd", 4)
        resolves = [json.loads(b) for _, _, b in self.recv.ok("/pd")
                    if json.loads(b)["event_action"] == "resolve"]
        self.assertEqual(sorted(r["dedup_key"] for r in resolves), ids)
        for r in resolves:
            self.assertEqual(r["routing_key"], ROUTING_KEY)
        time.sleep(0.5)
        self.assertEqual(len(self.recv.ok("/hook")), 2)  # webhook and slack get no resolve
        self.assertEqual(len(self.recv.ok("/slack")), 2)
        # closing again (already closed) sends nothing more
        svc.api("PATCH", f"/alerts/{ids[0]}", {"status": "closed"})
        time.sleep(0.5)
        self.assertEqual(len(self.recv.ok("/pd")), 4)

    def test_503_for_a_while_then_recovering(self):
        down_until = time.time() + 3
        self.recv.behaviour = lambda p, n: (503, {"Retry-After": "1"}) if (
            p == "/hook" and time.time() < down_until) else (200, {})
        svc = self.start()
        ingest(svc, [discovery_record(user=f"d{i}") for i in range(3)])
        self.wait_ok("/slack", 3)  # others are not held up
        self.assertEqual(len(self.recv.ok("/hook")), 0)
        self.wait_ok("/hook", 3, timeout=30)
        time.sleep(0.5)
        self.assertEqual(len({json.loads(b)["id"] for _, _, b in self.recv.ok("/hook")}), 3)
        self.assertEqual(len(self.recv.ok("/hook")), 3)
        self.assertGreater(svc.metric("newtermsd_output_deliveries_total", output="hook",
                                      result="retried"), 0)
        o = {o["name"]: o for o in svc.api("GET", "/outputs", token=READ_TOKEN)[1]["outputs"]}
        self.assertEqual(o["hook"]["last_error"], "HTTP 503")
        self.assertEqual(o["hook"]["failed"], 0)

    def test_4xx_dead_letters_then_retry_endpoint_delivers(self):
        broken = {"on": True}
        self.recv.behaviour = lambda p, n: (410, {}) if (p == "/hook" and broken["on"]) else (200, {})
        svc = self.start()
        ingest(svc, [discovery_record(user="x1"), discovery_record(user="x2")])
        wait_for(lambda: svc.api("GET", "/outputs/hook/failed", token=READ_TOKEN)[1].get(
            "failed", []).__len__() == 2, what="2 dead letters")
        s, body = svc.api("GET", "/outputs/hook/failed", token=READ_TOKEN)
        self.assertEqual(s, 200)
        for item in body["failed"]:
            self.assertEqual(item["http_status"], 410)
            self.assertEqual(item["event"], "trigger")
            self.assertEqual(item["attempts"], 1)
        o = {o["name"]: o for o in svc.api("GET", "/outputs", token=READ_TOKEN)[1]["outputs"]}
        self.assertEqual(o["hook"]["failed"], 2)
        self.assertEqual(o["hook"]["pending"], 0)
        self.assertEqual(svc.api("POST", "/outputs/hook/retry", token=READ_TOKEN)[0], 403)
        self.assertEqual(svc.api("POST", "/outputs/nope/retry")[0], 404)
        self.assertEqual(svc.api("GET", "/outputs/nope/failed", token=READ_TOKEN)[0], 404)
        self.assertEqual(svc.api("GET", "/outputs/hook/retry", token=READ_TOKEN)[0], 405)
        broken["on"] = False
        s, body = svc.api("POST", "/outputs/hook/retry")
        self.assertEqual((s, body), (200, {"output": "hook", "requeued": 2}))
        self.wait_ok("/hook", 2)
        self.assertEqual(svc.api("GET", "/outputs/hook/failed", token=READ_TOKEN)[1]["failed"], [])
        time.sleep(0.5)
        self.assertEqual(len(self.recv.ok("/slack")), 2)  # the retry is for hook only

    def test_a_receiver_that_never_answers_blocks_neither_ingestion_nor_other_outputs(self):
        self.recv.behaviour = lambda p, n: ("hang", {}) if p == "/hook" else (200, {})
        svc = self.start()
        t0 = time.time()
        for i in range(10):
            ingest(svc, [discovery_record(user=f"h{i}-{j}") for j in range(5)])
        self.assertLess(time.time() - t0, 5.0)
        self.wait_ok("/slack", 50)
        self.wait_ok("/pd", 50)
        self.assertEqual(len(self.recv.ok("/hook")), 0)
        o = {o["name"]: o for o in svc.api("GET", "/outputs", token=READ_TOKEN)[1]["outputs"]}
        self.assertEqual(o["hook"]["pending"], 50)
        # SIGTERM drains within a few seconds even with the receiver hanging
        t0 = time.time()
        self.assertEqual(svc.stop(), 0)
        self.assertLess(time.time() - t0, 5.0)


class Crash(OutputsBase):
    def test_kill_9_with_deliveries_pending_then_restart_loses_nothing(self):
        self.recv.behaviour = lambda p, n: ("hang", {}) if p == "/hook" else (200, {})
        svc = self.start()
        ingest(svc, [discovery_record(user=f"k{i}") for i in range(20)])
        ids = {a["id"] for a in svc.alerts(limit=100)}
        self.assertEqual(len(ids), 20)
        time.sleep(0.5)  # the hook worker holds one entry in flight
        svc.stop(signal.SIGKILL)
        self.recv.hang.set()
        self.recv.behaviour = lambda p, n: (200, {})
        svc.start()
        self.wait_ok("/hook", 20, timeout=30)
        time.sleep(0.5)
        got = [json.loads(b)["id"] for _, _, b in self.recv.ok("/hook")]
        self.assertEqual(set(got), ids)
        self.assertEqual(len(got), 20)
        self.assertEqual(len({json.loads(b)["dedup_key"] for _, _, b in self.recv.ok("/pd")}), 20)

    def test_two_replicas_deliver_each_alert_once(self):
        a = self.start()
        b = self.start()
        for i in range(10):
            svc = a if i % 2 == 0 else b
            ingest(svc, [discovery_record(user=f"rep{i}-{j}") for j in range(4)])
        ids = {x["id"] for x in a.alerts(limit=100)}
        self.assertEqual(len(ids), 40)
        for p in ("/hook", "/slack", "/pd"):
            self.wait_ok(p, 40)
        time.sleep(1.0)
        for p in ("/hook", "/slack", "/pd"):
            keys = [h["X-Newtermsd-Delivery"] for _, h, _ in self.recv.ok(p)]
            self.assertEqual(len(keys), 40, p)
            self.assertEqual(set(keys), ids, p)
        da = a.metric("newtermsd_output_deliveries_total", result="delivered")
        db = b.metric("newtermsd_output_deliveries_total", result="delivered")
        self.assertEqual(da + db, 120)


def make_ca(folder):
    """A throw-away CA and a server certificate for 127.0.0.1 signed by it (openssl CLI)."""
    def run(*args):
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=newtermsd test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
        "-subj", "/CN=127.0.0.1")
    with open(os.path.join(folder, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "srv.pem", "-days", "2", "-extfile", "san.ext")
    return os.path.join(folder, "ca.pem"), os.path.join(folder, "srv.pem"), os.path.join(folder, "srv.key")


@unittest.skipUnless(shutil.which("openssl"), "needs the openssl command")
class Tls(OutputsBase):
    def test_certificates_are_verified_and_a_private_ca_works_through_curl_ca_bundle(self):
        folder = tempfile.mkdtemp(prefix="nt-ca-")
        try:
            ca, cert, key = make_ca(folder)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            self.recv.server.socket = ctx.wrap_socket(self.recv.server.socket, server_side=True)
            with open(self.path, "w") as f:
                f.write(f'[[output]]\nname = "tls-hook"\ntype = "webhook"\n'
                        f'url = "https://127.0.0.1:{self.recv.port}/hook"\n')
            svc = self.start()  # the system CAs do not know this one: refused, retried
            ingest(svc, [discovery_record(user="tls1")])
            wait_for(lambda: (svc.api("GET", "/outputs", token=READ_TOKEN)[1]["outputs"][0]
                              ["last_error"] or "").lower().find("certificate") >= 0,
                     what="a certificate error")
            self.assertEqual(self.recv.ok("/hook"), [])
            svc.stop()
            svc.env["CURL_CA_BUNDLE"] = ca  # trust the private CA: the pending delivery goes out
            svc.start()
            self.wait_ok("/hook", 1, timeout=20)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


class Startup(unittest.TestCase):
    def test_a_bad_outputs_file_stops_startup_with_a_precise_message(self):
        import subprocess
        from harness import BIN, RULES
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
            f.write('[[output]]\nname = "pd"\ntype = "pagerduty"\nsecret_env = "NT_MISSING_KEY"\n')
        try:
            p = subprocess.run([BIN, "serve", "--outputs", f.name, "--rules", RULES,
                                "--listen", "127.0.0.1:0", "--redis", "redis://127.0.0.1:1/0"],
                               env={"PATH": os.environ.get("PATH", "")}, capture_output=True,
                               timeout=20)
            self.assertEqual(p.returncode, 1)
            self.assertIn('output 1 (\\"pd\\"): secret_env NT_MISSING_KEY: neither NT_MISSING_KEY '
                          'nor NT_MISSING_KEY_FILE is set', p.stderr.decode())
        finally:
            os.unlink(f.name)


def latencies(recv, path):
    """Receiver arrival time minus the alert's created_at, in seconds, sorted."""
    lat = []
    for t, _, body in recv.ok(path):
        doc = json.loads(body)
        created = doc["created_at"]
        ts = time.mktime(time.strptime(created[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        lat.append(t - ts - float("0." + created[20:23]))
    return sorted(lat)


def pct(xs, q):
    return xs[min(len(xs) - 1, int(len(xs) * q))]


class Throughput(OutputsBase):
    """Ingest rate with and without outputs, and delivery latency (printed)."""

    def burst(self, svc, tag, n_batches=40, per=25):
        t0 = time.time()
        for i in range(n_batches):
            ingest(svc, [discovery_record(user=f"{tag}{i}-{j}") for j in range(per)])
        return n_batches * per / (time.time() - t0)

    def test_ingest_rate_and_delivery_latency(self):
        plain = Service(self.redis.url)
        self.services.append(plain)
        base = self.burst(plain, "base")
        plain.close()
        self.services.remove(plain)
        svc = self.start()
        rate = self.burst(svc, "tp")
        for p in ("/hook", "/slack", "/pd"):
            self.wait_ok(p, 1000, timeout=60)
        burst = latencies(self.recv, "/hook")
        self.assertEqual(len(burst), 1000)
        # steady load: 20 alerts a second for 5 seconds
        with self.recv.lock:
            self.recv.got.clear()
        for i in range(25):
            ingest(svc, [discovery_record(user=f"steady{i}-{j}") for j in range(4)])
            time.sleep(0.2)
        self.wait_ok("/hook", 100)
        steady = latencies(self.recv, "/hook")
        print(f"\n[outputs] ingest, 1000 alerts in batches of 25: {base:.0f} alerts/s without "
              f"outputs, {rate:.0f} alerts/s with three outputs (every batch answered 200)\n"
              f"[outputs] webhook latency, that 1000-alert burst: p50 {pct(burst, .5) * 1000:.1f} "
              f"ms, p99 {pct(burst, .99) * 1000:.1f} ms, max {burst[-1] * 1000:.1f} ms\n"
              f"[outputs] webhook latency, 20 alerts/s: p50 {pct(steady, .5) * 1000:.1f} ms, "
              f"p99 {pct(steady, .99) * 1000:.1f} ms, max {steady[-1] * 1000:.1f} ms")
        self.assertLess(pct(steady, .99), 1.0)
        self.assertLess(pct(burst, .99), 5.0)


if __name__ == "__main__":
    unittest.main()
