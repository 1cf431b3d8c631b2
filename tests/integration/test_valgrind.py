"""newtermsd under valgrind memcheck: a representative workload, then SIGTERM, must be clean.

valgrind runs with --error-exitcode=99 and counts definite and indirect leaks as errors, so
any invalid read/write, use of uninitialised memory, bad free or lost block turns the exit code
of the process into 99; a clean run exits 0 (SIGTERM is a graceful shutdown). The valgrind report
goes to its own file (not the JSON log on stderr) and is printed when the test fails.

The binary under test must be built without sanitizers: ASan and valgrind cannot share a
process. The test detects an ASan build from its symbols and skips itself with a message.
"""
import base64
import gzip
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from harness import (BIN, FIREHOSE_KEY, READ_TOKEN, WRITE_TOKEN, Redis, Service, b64, cwl_record,
                     discovery_record, eventbridge, firehose_payload, noise_record)

RULE_ID = "444c8fad-874f-4f59-b0ea-cf26cea478bd"
VALGRIND = shutil.which("valgrind")


def sanitized(path):
    """Why `path` cannot run under valgrind (an ASan/TSan/MSan build), or None."""
    markers = (b"__asan_init", b"__tsan_init", b"__msan_init")
    try:
        out = subprocess.run(["nm", "-D", "--defined-only", path], capture_output=True, timeout=60).stdout
        out += subprocess.run(["nm", path], capture_output=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = b""
    if not out:  # no nm, or a stripped binary: look at the bytes
        try:
            with open(path, "rb") as f:
                out = f.read()
        except OSError:
            return None
    for m in markers:
        if m in out:
            return m.decode()
    return None


SKIP = None
if not VALGRIND:
    SKIP = "valgrind is not installed (scripts/install-deps.sh installs it)"
elif not os.path.exists(BIN):
    SKIP = f"{BIN} does not exist"
else:
    marker = sanitized(BIN)
    if marker:
        SKIP = (f"{BIN} is a sanitizer build ({marker} present); valgrind needs a build without "
                "NT_SANITIZE - the release ctest run covers this test")


@unittest.skipIf(SKIP, SKIP or "")
class ValgrindClean(unittest.TestCase):
    def setUp(self):
        self.redis = Redis()
        fd, self.vg_log = tempfile.mkstemp(prefix="nt-valgrind-", suffix=".log")
        os.close(fd)
        wrapper = [VALGRIND, "--error-exitcode=99", "--leak-check=full",
                   "--errors-for-leak-kinds=definite,indirect", "--show-leak-kinds=definite,indirect",
                   "--track-fds=no", "--num-callers=30", f"--log-file={self.vg_log}"]
        self.svc = Service(self.redis.url, wrapper=wrapper, start_timeout=120,
                           extra_env={"NEWTERMSD_REDIS_TIMEOUT_MS": "5000",
                                      "NEWTERMSD_REQUEST_TIMEOUT_S": "120",
                                      "NEWTERMSD_MAX_BODY": "2MiB",
                                      "NEWTERMSD_MAX_INFLATE": "4MiB",
                                      "NEWTERMSD_WORKERS": "4"})

    def tearDown(self):
        if self.svc.proc is not None:
            self.svc.close()
        self.redis.close()
        try:
            os.unlink(self.vg_log)
        except OSError:
            pass

    def report(self):
        with open(self.vg_log, errors="replace") as f:
            return f.read()

    def call(self, method, path, body=None, token="write"):
        tok = {"write": WRITE_TOKEN, "read": READ_TOKEN}.get(token, token)
        h = {"Authorization": f"Bearer {tok}"} if tok else {}
        if body is not None:
            h["Content-Type"] = "application/json"
        s, b, _ = self.svc.request(method, path, body=body, headers=h, timeout=120)
        return s, b

    def raw_post(self, path, size, chunked):
        """POST `size` bytes to path and return the status. With a Content-Length over the limit
        the service answers before reading the body, so none is sent; chunked, the whole body is
        sent and discarded past the limit."""
        with socket.create_connection(("127.0.0.1", self.svc.port), timeout=120) as s:
            head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                    f"X-Amz-Firehose-Access-Key: {FIREHOSE_KEY}\r\n")
            if chunked:
                s.sendall(head.encode() + b"Transfer-Encoding: chunked\r\n\r\n")
                chunk = 256 * 1024
                left = size
                while left:
                    n = min(chunk, left)
                    s.sendall(f"{n:x}\r\n".encode() + b"x" * n + b"\r\n")
                    left -= n
                s.sendall(b"0\r\n\r\n")
            else:
                s.sendall(head.encode() + f"Content-Length: {size}\r\n\r\n".encode())
            reply = s.makefile("rb").readline()
        return int(reply.split()[1])

    def expect(self, want, got, what):
        self.assertEqual(got[0], want, f"{what}: {got}")
        return got[1]

    def workload(self):
        svc = self.svc
        # Firehose: every record shape in one delivery, plus a gzip'd body and retries.
        shapes = [
            b64(discovery_record(user="vg-bare")),
            b64(eventbridge(discovery_record(user="vg-eb", identity="AssumedRole"))),
            b64({"Records": [discovery_record(user="vg-s3a"), noise_record(1)]}),
            b64("\n".join(json.dumps(discovery_record(user=f"vg-nd{i}")) for i in range(2)) + "\n"),
            cwl_record([discovery_record(user="vg-cwl1"), noise_record(2)]),
            cwl_record([], message_type="CONTROL_MESSAGE"),
            base64.b64encode(gzip.compress(json.dumps(discovery_record(user="vg-gz")).encode())).decode(),
            # rejects: bad base64, not JSON, not CloudTrail, truncated gzip, empty
            "!!!not-base64!!!",
            b64("this is not json"),
            b64({"hello": "world"}),
            base64.b64encode(gzip.compress(b'{"a":1}')[:12]).decode(),
            "",
        ]
        payload = firehose_payload(shapes, request_id="vg-shapes")
        body = self.expect(200, svc.firehose(payload), "firehose every shape")
        self.assertEqual(body["requestId"], "vg-shapes")
        self.expect(200, svc.firehose(payload), "firehose retry")
        self.expect(200, svc.firehose(firehose_payload([b64(discovery_record(user="vg-gzbody")),
                                                        b64(noise_record(3))]), gzip_body=True),
                    "firehose gzip body")
        # Firehose refusals: wrong key, not a delivery, bad gzip body, bad encoding.
        self.expect(401, svc.firehose(payload, key="wrong"), "firehose wrong key")
        self.expect(400, svc.firehose(b'{"records": []}'), "firehose without requestId")
        self.expect(400, svc.firehose(b"[" * 5000), "firehose deep nesting")
        self.expect(400, svc.firehose(b"\x1f\x8b\x08\x00garbage", extra_headers={"Content-Encoding": "gzip"}),
                    "firehose bad gzip body")
        self.expect(415, svc.firehose(payload, extra_headers={"Content-Encoding": "br"}), "firehose br")
        # /v1/events and /v1/eventbridge.
        body = self.expect(200, svc.events([discovery_record(user="vg-ev1"), noise_record(4)]), "events array")
        self.assertEqual(body["accepted"], 2)
        self.expect(200, svc.events({"Records": [discovery_record(user="vg-ev2")]}, gzip_body=True),
                    "events S3 log gzip")
        self.expect(200, svc.events(json.dumps(discovery_record(user="vg-ev3")) + "\n" +
                                    json.dumps(noise_record(5)) + "\n", ctype="application/x-ndjson"),
                    "events NDJSON")
        self.expect(200, svc.events(eventbridge(discovery_record(user="vg-eb2")), route="/v1/eventbridge"),
                    "eventbridge")
        self.expect(400, svc.events("not json at all"), "events not JSON")
        self.expect(401, svc.events([noise_record(6)], token="nope"), "events wrong token")
        # Alerts: list, filters, paging, get, patch, bulk.
        alerts = self.expect(200, self.call("GET", "/api/v1/alerts?limit=5", token="read"), "alerts")
        self.assertEqual(len(alerts["alerts"]), 5)
        self.assertIsNotNone(alerts["next_cursor"])
        self.expect(200, self.call("GET", f"/api/v1/alerts?limit=5&cursor={alerts['next_cursor']}",
                                   token="read"), "alerts page 2")
        self.expect(200, self.call("GET", f"/api/v1/alerts?rule_id={RULE_ID}&account=111122223333"
                                   "&user=vg-bare&status=open&since=2000-01-01T00:00:00Z", token="read"),
                    "alerts filtered")
        self.expect(400, self.call("GET", "/api/v1/alerts?limit=0", token="read"), "alerts bad limit")
        ids = [a["id"] for a in alerts["alerts"]]
        self.expect(200, self.call("GET", f"/api/v1/alerts/{ids[0]}", token="read"), "alert get")
        self.expect(404, self.call("GET", "/api/v1/alerts/" + "0" * 32, token="read"), "alert missing")
        self.expect(200, self.call("PATCH", f"/api/v1/alerts/{ids[0]}",
                                   {"status": "closed", "reason": "false_positive"}), "alert patch")
        self.expect(400, self.call("PATCH", f"/api/v1/alerts/{ids[0]}", {"status": "nope"}), "bad patch")
        self.expect(400, self.call("PATCH", f"/api/v1/alerts/{ids[0]}", "{trunc"), "patch not JSON")
        self.expect(404, self.call("POST", "/api/v1/alerts/status",
                                   {"ids": ids + ["f" * 32], "status": "acknowledged"}), "bulk unknown id")
        bulk = self.expect(200, self.call("POST", "/api/v1/alerts/status",
                                          {"ids": ids, "status": "acknowledged"}), "bulk")
        self.assertEqual(bulk["updated"], len(ids))
        self.expect(403, self.call("POST", "/api/v1/alerts/status", {"ids": ids, "status": "open"},
                                   token="read"), "bulk read token")
        # Exceptions: create (server id and client id), conflict, invalid, get, list, put, delete.
        exc = {"name": "vg exception", "rule_id": RULE_ID, "tags": ["t"],
               "comments": [{"comment": "valgrind"}],
               "expire_time": "2999-01-01T00:00:00Z",
               "entries": [{"field": "user.name", "operator": "included", "type": "match_any",
                            "value": ["vg-excepted", "other"]},
                           {"field": "source.ip", "operator": "excluded", "type": "wildcard",
                            "value": "10.*"},
                           {"field": "cloud.account.id", "operator": "included", "type": "exists"}]}
        created = self.expect(201, self.call("POST", "/api/v1/exceptions", exc), "exception create")
        self.expect(201, self.call("POST", "/api/v1/exceptions", dict(exc, id="vg-fixed")), "client id")
        self.expect(409, self.call("POST", "/api/v1/exceptions", dict(exc, id="vg-fixed")), "conflict")
        self.expect(400, self.call("POST", "/api/v1/exceptions",
                                   dict(exc, entries=[{"field": "no.such", "operator": "included",
                                                       "type": "match", "value": "x"}])), "bad entry")
        self.expect(200, self.call("GET", f"/api/v1/exceptions/{created['id']}", token="read"), "exc get")
        self.expect(200, self.call("GET", "/api/v1/exceptions", token="read"), "exc list")
        page = self.expect(200, self.call("GET", "/api/v1/exceptions?limit=1", token="read"), "exc page")
        self.expect(200, self.call("GET", f"/api/v1/exceptions?limit=1&cursor={page['next_cursor']}",
                                   token="read"), "exc next page")
        self.expect(400, self.call("GET", "/api/v1/exceptions?cursor=%25%25", token="read"), "exc bad cursor")
        self.expect(413, self.call("POST", "/api/v1/exceptions", dict(exc, tags=["t" * 4000] * 10)),
                    "exception too large")
        self.expect(200, self.call("PUT", "/api/v1/exceptions/vg-fixed", dict(exc, name="renamed")), "put")
        # The exception now applies: the excepted user raises nothing.
        self.expect(200, svc.firehose(firehose_payload([b64(discovery_record(user="vg-excepted"))])),
                    "excepted delivery")
        self.expect(204, self.call("DELETE", f"/api/v1/exceptions/{created['id']}"), "exc delete")
        self.expect(404, self.call("DELETE", f"/api/v1/exceptions/{created['id']}"), "exc delete again")
        # Rules, rejects, metrics, health.
        self.expect(200, self.call("GET", "/api/v1/rules", token="read"), "rules")
        self.expect(200, self.call("GET", f"/api/v1/rules/{RULE_ID}", token="read"), "rule")
        self.expect(404, self.call("GET", "/api/v1/rules/nope", token="read"), "rule missing")
        rejects = self.expect(200, self.call("GET", "/api/v1/rejects?limit=50", token="read"), "rejects")
        self.assertGreaterEqual(len(rejects["rejects"]), 4)
        self.expect(405, self.call("DELETE", "/api/v1/rules"), "405")
        self.expect(404, self.call("GET", "/nowhere", token=None), "404")
        self.assertIn("newtermsd_http_requests_total", svc.metrics())
        self.expect(200, svc.get("/readyz"), "readyz")
        self.expect(200, svc.get("/healthz"), "healthz")
        # Limits: body over --max-body, gzip body over --max-inflate, a record over --max-record
        # (decoded bytes), and a gzip'd record that inflates past what is left of the delivery's
        # inflate budget (--max-inflate, 4 MiB here, below the per-record cap of 16 MiB).
        self.assertEqual(self.raw_post("/v1/firehose", 2 * 1024 * 1024 + 1, chunked=False), 413)
        self.assertEqual(self.raw_post("/v1/firehose", 2 * 1024 * 1024 + 1, chunked=True), 413)
        self.expect(413, svc.firehose(gzip.compress(b" " * (5 * 1024 * 1024)),
                                      extra_headers={"Content-Encoding": "gzip"}), "inflate over the limit")
        big = discovery_record(user="vg-big")
        big["requestParameters"] = {"pad": "p" * 1030000}
        bomb = base64.b64encode(gzip.compress(b" " * (17 * 1024 * 1024))).decode()
        self.expect(413, svc.firehose(firehose_payload([b64(big), bomb])), "delivery over its budget")
        # A record over --max-record, and one whose JSON tree would pass DEC_MAX_TREE_BYTES
        # (300,000 empty objects: ~91 MB of jansson tree from 900 KB of text): both too_large.
        tree = base64.b64encode(gzip.compress(b"[" + b"{}," * 299999 + b"{}]")).decode()
        self.expect(200, svc.firehose(firehose_payload([b64(big), tree])), "records over the limits")
        rejects = self.expect(200, self.call("GET", "/api/v1/rejects?limit=2", token="read"), "rejects")
        self.assertEqual([r["reason"] for r in rejects["rejects"]], ["too_large", "too_large"])
        # Concurrent deliveries from several clients (the MHD thread pool and the Redis pool).
        errors = []

        def client(n):
            try:
                for j in range(8):
                    recs = [noise_record(k) for k in range(15)] + [discovery_record(user=f"vg-c{n}-{j}")]
                    st, _ = svc.firehose(firehose_payload([b64(r) for r in recs]))
                    if st != 200:
                        errors.append(st)
                    svc.request("GET", "/api/v1/alerts?limit=20",
                                headers={"Authorization": f"Bearer {READ_TOKEN}"}, timeout=120)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        self.assertEqual(errors, [])
        users = {a["new_terms"][1] for a in svc.alerts(limit=1000)}
        # A Redis outage: 503s on every path that needs Redis, then recovery (the restarted
        # Redis has no persistence, so only the redelivered alert is there afterwards).
        self.redis.stop()
        outage = firehose_payload([b64(discovery_record(user="vg-outage"))], request_id="vg-outage")
        self.expect(503, svc.firehose(outage), "firehose during the outage")
        self.expect(503, svc.events([discovery_record(user="vg-outage2")]), "events during the outage")
        self.expect(503, self.call("GET", "/api/v1/alerts", token="read"), "alerts during the outage")
        self.expect(503, self.call("POST", "/api/v1/exceptions", dict(exc, id="vg-outage")),
                    "exception during the outage")
        self.expect(503, svc.get("/readyz"), "readyz during the outage")
        self.redis.start()
        deadline = time.time() + 60
        while svc.firehose(outage)[0] != 200 and time.time() < deadline:
            time.sleep(0.2)
        self.expect(200, svc.firehose(outage), "firehose after the outage")
        self.assertEqual([a["new_terms"][1] for a in svc.alerts()], ["vg-outage"])
        return users

    def test_representative_workload_then_sigterm_is_memcheck_clean(self):
        t0 = time.time()
        users = self.workload()
        for u in ("vg-bare", "vg-eb", "vg-s3a", "vg-nd0", "vg-nd1", "vg-cwl1", "vg-gz", "vg-gzbody",
                  "vg-ev1", "vg-ev2", "vg-ev3", "vg-eb2", "vg-c3-7"):
            self.assertIn(u, users)
        self.assertNotIn("vg-excepted", users)
        self.assertNotIn("vg-big", users)
        rc = self.svc.stop(timeout=300)
        report = self.report()
        self.assertEqual(rc, 0, f"newtermsd under valgrind exited {rc} "
                                f"(99 = memcheck errors or leaks); workload took {time.time() - t0:.0f}s\n"
                                + report[-20000:])
        self.assertIn("ERROR SUMMARY: 0 errors", report, report[-20000:])


if __name__ == "__main__":
    unittest.main()
