"""Security: secrets from files, never from flags, never in logs or /metrics; every secured route
refuses a request without (or with the wrong kind of) credentials; /metrics behind a token on
request; the service runs as an unprivileged user."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import (BIN, FIREHOSE_KEY, INGEST_TOKEN, READ_TOKEN, RULES, WRITE_TOKEN, Redis,
                     Service, b64, discovery_record, eventbridge, firehose_payload, noise_record,
                     wait_for)

RULE_ID = "444c8fad-874f-4f59-b0ea-cf26cea478bd"
OPENAPI = os.path.join(os.path.dirname(__file__), "..", "..", "api", "openapi.yaml")

# Secrets of this module: distinctive, so a leak anywhere is found by a plain substring search.
FILE_SECRETS = {
    "NEWTERMSD_FIREHOSE_ACCESS_KEY": "fh-from-file-7Qx2LmZ9pR",
    "NEWTERMSD_INGEST_TOKEN": "ingest-from-file-Vb81KsTq0w",
    "NEWTERMSD_API_READ_TOKEN": "read-from-file-Hn4cJ6yUe3",
    "NEWTERMSD_API_WRITE_TOKEN": "write-from-file-Pz9aGt2Mx5",
}
REDIS_PASSWORD = "redis-pass-from-file-Yw7dKq3Ns1"
ROTATED_READ = "read-rotated-second-Ud5rBv8Lq2"
SECRET_FLAGS = {
    "firehose-access-key": "NEWTERMSD_FIREHOSE_ACCESS_KEY",
    "ingest-token": "NEWTERMSD_INGEST_TOKEN",
    "api-read-token": "NEWTERMSD_API_READ_TOKEN",
    "api-write-token": "NEWTERMSD_API_WRITE_TOKEN",
    "redis-password": "NEWTERMSD_REDIS_PASSWORD",
}


def openapi_operations():
    """(path, METHOD, secured) for every operation of api/openapi.yaml.

    Read with a small line scanner (paths are two-space indented keys, methods four-space, and
    an operation is public when it says `security: []`), so the test needs no YAML library."""
    ops = []
    path = method = None
    with open(OPENAPI) as f:
        lines = f.read().splitlines()
    in_paths = False
    for line in lines:
        if line.startswith("paths:"):
            in_paths = True
            continue
        if in_paths and re.match(r"^\S", line):
            break
        if not in_paths:
            continue
        m = re.match(r"^  (/\S*):\s*$", line)
        if m:
            path, method = m.group(1), None
            continue
        m = re.match(r"^    (get|put|post|delete|patch|head|options):\s*$", line)
        if m and path:
            method = m.group(1).upper()
            ops.append([path, method, True])
            continue
        if method and re.match(r"^      security:\s*\[\]\s*$", line):
            ops[-1][2] = False
    return [tuple(o) for o in ops]


def concrete(path):
    return path.replace("{id}", "0123456789abcdef0123456789abcdef").replace("{rule_id}", RULE_ID)


def start_redis_with_password():
    return Redis(password=REDIS_PASSWORD)


class SecretsFromFiles(unittest.TestCase):
    """All five secrets come from *_FILE variables; none appears in the log or /metrics."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="nt-secrets-")
        env = {}
        for var, value in FILE_SECRETS.items():
            p = os.path.join(cls.dir, var.lower())
            with open(p, "w") as f:
                # a trailing newline (CRLF for one of them) is stripped; the read token rotates
                if var == "NEWTERMSD_API_READ_TOKEN":
                    f.write(f"{value}, {ROTATED_READ}\n")
                elif var == "NEWTERMSD_INGEST_TOKEN":
                    f.write(value + "\r\n")
                else:
                    f.write(value + "\n")
            os.chmod(p, 0o600)
            env[var + "_FILE"] = p
            env[var] = None  # the harness's own secrets are removed: only the files count
        p = os.path.join(cls.dir, "redis_password")
        with open(p, "w") as f:
            f.write(REDIS_PASSWORD + "\n")
        env["NEWTERMSD_REDIS_PASSWORD_FILE"] = p
        cls.redis = start_redis_with_password()
        cls.svc = Service(cls.redis.url, extra_env=env)
        cls.all_secrets = list(FILE_SECRETS.values()) + [REDIS_PASSWORD, ROTATED_READ]

    @classmethod
    def tearDownClass(cls):
        rc = cls.svc.close()
        cls.redis.close()
        shutil.rmtree(cls.dir, ignore_errors=True)
        if rc not in (0, None):
            raise AssertionError(f"newtermsd exited with {rc}")

    def test_the_environment_holds_paths_not_secrets(self):
        with open(f"/proc/{self.svc.proc.pid}/environ", "rb") as f:
            environ = f.read().decode(errors="replace")
        with open(f"/proc/{self.svc.proc.pid}/cmdline", "rb") as f:
            environ += f.read().decode(errors="replace")
        for s in self.all_secrets:
            self.assertNotIn(s, environ)

    def test_secrets_read_from_files_authenticate_every_route(self):
        fk = FILE_SECRETS["NEWTERMSD_FIREHOSE_ACCESS_KEY"]
        it = FILE_SECRETS["NEWTERMSD_INGEST_TOKEN"]
        rt = FILE_SECRETS["NEWTERMSD_API_READ_TOKEN"]
        wt = FILE_SECRETS["NEWTERMSD_API_WRITE_TOKEN"]
        self.assertEqual(self.svc.firehose(firehose_payload([b64(discovery_record(user="file-fh"))]),
                                           key=fk)[0], 200)
        self.assertEqual(self.svc.events([discovery_record(user="file-ev")], token=it)[0], 200)
        self.assertEqual(self.svc.events(eventbridge(discovery_record(user="file-eb")), token=it,
                                         route="/v1/eventbridge")[0], 200)
        for t in (rt, ROTATED_READ, wt):
            s, b = self.svc.api("GET", "/alerts", token=t)
            self.assertEqual(s, 200, b)
        self.assertEqual({a["new_terms"][1] for a in b["alerts"]}, {"file-fh", "file-ev", "file-eb"})
        self.assertEqual(self.svc.api("PATCH", f"/alerts/{b['alerts'][0]['id']}", {"status": "closed"},
                                      token=wt)[0], 200)
        self.assertEqual(self.svc.api("PATCH", f"/alerts/{b['alerts'][0]['id']}", {"status": "open"},
                                      token=rt)[0], 403)
        self.assertEqual(self.svc.get("/readyz")[0], 200)  # Redis AUTH with the file's password

    def test_secrets_never_reach_the_log_or_metrics_even_when_echoed_back(self):
        fk = FILE_SECRETS["NEWTERMSD_FIREHOSE_ACCESS_KEY"]
        wt = FILE_SECRETS["NEWTERMSD_API_WRITE_TOKEN"]
        # Wrong credentials that contain the real ones, and secrets placed where the service
        # logs or counts what the client sent: the requestId, URL paths, an exception id.
        self.svc.firehose(firehose_payload([b64(noise_record())]), key=fk + "x")
        self.svc.firehose(firehose_payload([b64(noise_record())]), key="x" + fk)
        self.svc.firehose(firehose_payload([b64(discovery_record(user="echo"))], request_id=fk))
        self.svc.firehose(firehose_payload([b64(noise_record())], request_id=wt), key="wrong")
        self.svc.firehose(b'{"requestId": "' + fk.encode() + b'", "records": 1}', key=fk)
        self.svc.events("not json " + wt, token=FILE_SECRETS["NEWTERMSD_INGEST_TOKEN"])
        for s in self.all_secrets:
            self.svc.api("GET", "/alerts/" + s, token=wt)
            self.svc.api("GET", "/" + s, token=wt)
            self.svc.api("GET", "/alerts?" + s + "=1", token=wt)
            self.svc.api("GET", "/alerts", token=s + "0")
            self.svc.request("GET", "/" + s)
        # An exception whose id is a secret: the API answers it (it is the client's data),
        # but the warning about its unknown rule_id must not print it.
        body = {"id": wt, "name": "x", "rule_id": "unknown-rule", "entries": [
            {"field": "user.name", "operator": "included", "type": "match", "value": fk}]}
        self.assertEqual(self.svc.api("POST", "/exceptions", body, token=wt)[0], 201)
        self.assertEqual(self.svc.api("DELETE", f"/exceptions/{wt}", token=wt)[0], 204)
        # Redis restart with the password: the reconnect path logs, without the password.
        self.redis.stop()
        self.svc.firehose(firehose_payload([b64(discovery_record(user="down"))]), key=fk)
        self.redis.start()
        wait_for(lambda: self.svc.get("/readyz")[0] == 200, timeout=15, what="ready again")
        metrics = self.svc.metrics()
        self.assertIn("newtermsd_auth_failures_total", metrics)
        log = self.svc.logs()
        self.assertIn("[REDACTED]", log)  # the echoed requestId was logged, redacted
        for line in log.splitlines():
            json.loads(line)
        for s in self.all_secrets:
            self.assertNotIn(s, log, "a secret is in the log")
            self.assertNotIn(s, metrics, "a secret is in /metrics")


class SecretFlagsAndFiles(unittest.TestCase):
    """Refusals at startup: exit 2 with a message naming the variable, never echoing the value."""

    def run_bin(self, args, env=None):
        e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "NEWTERMSD_RULES": RULES,
             "NEWTERMSD_LISTEN": "127.0.0.1:0", "NEWTERMSD_REDIS": "redis://127.0.0.1:1/0"}
        e.update(env or {})
        return subprocess.run([BIN] + args, env=e, capture_output=True, timeout=30)

    def test_a_secret_given_as_a_flag_is_refused_naming_its_variable(self):
        value = "flag-secret-value-Jm3Wq8Zt"
        for flag, var in SECRET_FLAGS.items():
            for args in (["serve", f"--{flag}", value], ["serve", f"--{flag}={value}"],
                         [f"--{flag}={value}", "serve"], ["serve", f"--{flag}-file=/etc/hostname"]):
                with self.subTest(args=args[:2]):
                    p = self.run_bin(args)
                    out = (p.stdout + p.stderr).decode()
                    self.assertEqual(p.returncode, 2, out)
                    self.assertIn(var, out)
                    self.assertIn(var + "_FILE", out)
                    self.assertNotIn(value, out)

    def test_a_secret_and_its_file_together_are_refused(self):
        with tempfile.NamedTemporaryFile("w", suffix=".secret") as f:
            f.write("from-the-file-secret-Ab12Cd\n")
            f.flush()
            p = self.run_bin(["serve"], {"NEWTERMSD_API_READ_TOKEN": "from-env-secret-Ef34Gh",
                                         "NEWTERMSD_API_READ_TOKEN_FILE": f.name})
        out = (p.stdout + p.stderr).decode()
        self.assertEqual(p.returncode, 2, out)
        self.assertIn("NEWTERMSD_API_READ_TOKEN", out)
        self.assertNotIn("from-the-file-secret-Ab12Cd", out)
        self.assertNotIn("from-env-secret-Ef34Gh", out)

    def test_an_unreadable_or_empty_secret_file_is_refused_without_its_content(self):
        d = tempfile.mkdtemp(prefix="nt-secrets-")
        try:
            empty = os.path.join(d, "empty")
            open(empty, "w").close()
            nul = os.path.join(d, "nul")
            with open(nul, "wb") as f:
                f.write(b"nul-secret-Kl56\x00Mn78")
            for path, expect in ((os.path.join(d, "missing"), "cannot read"), (empty, "empty"),
                                 (nul, "NUL")):
                p = self.run_bin(["serve"], {"NEWTERMSD_INGEST_TOKEN_FILE": path})
                out = (p.stdout + p.stderr).decode()
                self.assertEqual(p.returncode, 2, out)
                self.assertIn("NEWTERMSD_INGEST_TOKEN_FILE", out)
                self.assertIn(expect, out)
                self.assertNotIn("nul-secret", out)
        finally:
            shutil.rmtree(d, ignore_errors=True)


class EverySecuredRouteNeedsCredentials(unittest.TestCase):
    """Walk api/openapi.yaml: every operation except the public health checks answers 401
    without credentials, with a wrong secret, and with a secret of another kind."""

    @classmethod
    def setUpClass(cls):
        cls.redis = Redis()
        cls.svc = Service(cls.redis.url, extra_env={"NEWTERMSD_METRICS_AUTH": "1"})

    @classmethod
    def tearDownClass(cls):
        rc = cls.svc.close()
        cls.redis.close()
        if rc not in (0, None):
            raise AssertionError(f"newtermsd exited with {rc}")

    def send(self, method, path, headers):
        body = None
        h = dict(headers)
        if method in ("POST", "PUT", "PATCH"):
            body = firehose_payload([b64(noise_record())]) if path == "/v1/firehose" else {}
            h["Content-Type"] = "application/json"
        status, reply, hdrs = self.svc.request(method, path, body=body, headers=h)
        return status, reply, hdrs

    def test_the_route_list_is_complete(self):
        ops = openapi_operations()
        paths = {p for p, _, _ in ops}
        for p in ("/v1/firehose", "/v1/eventbridge", "/v1/events", "/api/v1/alerts",
                  "/api/v1/alerts/{id}", "/api/v1/alerts/status", "/api/v1/exceptions",
                  "/api/v1/exceptions/{id}", "/api/v1/rules", "/api/v1/rules/{rule_id}",
                  "/api/v1/rejects", "/healthz", "/readyz", "/metrics"):
            self.assertIn(p, paths)
        self.assertEqual({p for p, _, secured in ops if not secured}, {"/healthz", "/readyz"})

    def test_every_secured_operation_answers_401_without_credentials(self):
        ops = [(p, m) for p, m, secured in openapi_operations() if secured]
        self.assertGreaterEqual(len(ops), 16)
        sent = 0
        for path, method in ops:
            url = concrete(path)
            if path == "/v1/firehose":
                # the key header is the credential; bearer tokens of any kind do not count
                wrong = [{}, {"X-Amz-Firehose-Access-Key": "wrong"},
                         {"X-Amz-Firehose-Access-Key": INGEST_TOKEN},
                         {"X-Amz-Firehose-Access-Key": WRITE_TOKEN},
                         {"Authorization": f"Bearer {FIREHOSE_KEY}"}]
            elif path.startswith("/v1/"):
                wrong = [{}, {"Authorization": "Bearer wrong"},
                         {"Authorization": f"Bearer {FIREHOSE_KEY}"},
                         {"Authorization": f"Bearer {WRITE_TOKEN}"},
                         {"Authorization": "Basic " + b64("newtermsd:wrong")},
                         {"X-Amz-Firehose-Access-Key": INGEST_TOKEN}]
            else:  # /api/v1 and /metrics (with NEWTERMSD_METRICS_AUTH=1)
                wrong = [{}, {"Authorization": "Bearer wrong"},
                         {"Authorization": f"Bearer {FIREHOSE_KEY}"},
                         {"Authorization": f"Bearer {INGEST_TOKEN}"},
                         {"Authorization": f"Bearer {READ_TOKEN}{READ_TOKEN}"},
                         {"Authorization": f"Bearer {READ_TOKEN[:-1]}"},
                         {"Authorization": "Basic " + b64(f"x:{INGEST_TOKEN}")},
                         {"Authorization": READ_TOKEN}]
            for headers in wrong:
                sent += 1
                with self.subTest(op=f"{method} {path}", headers=sorted(headers)):
                    status, reply, hdrs = self.send(method, url, headers)
                    self.assertEqual(status, 401, reply)
                    if path == "/v1/firehose":
                        self.assertIn("errorMessage", reply)
                    else:
                        self.assertEqual(reply["error"], "unauthorized")
                    if path.startswith("/api/v1/"):
                        self.assertIn("Bearer", hdrs.get("WWW-Authenticate", ""))
        # nothing was ingested or changed by any of those, and each refusal was counted
        self.assertEqual(self.svc.alerts(), [])
        s, text = self.svc.get("/metrics", token=READ_TOKEN)
        self.assertEqual(s, 200)
        lines = text.decode().splitlines()
        self.assertFalse([ln for ln in lines if ln.startswith("newtermsd_records_total")])
        refused = sum(float(ln.rpartition(" ")[2]) for ln in lines
                      if ln.startswith("newtermsd_http_requests_total") and 'code="401"' in ln)
        self.assertGreaterEqual(refused, sent)

    def test_metrics_with_metrics_auth_needs_a_read_or_write_token(self):
        self.assertEqual(self.svc.get("/metrics")[0], 401)
        for t in (READ_TOKEN, WRITE_TOKEN):
            s, body = self.svc.get("/metrics", token=t)
            self.assertEqual(s, 200)
            self.assertIn(b"newtermsd_http_requests_total", body)

    def test_health_checks_stay_public(self):
        self.assertEqual(self.svc.get("/healthz")[0], 200)
        self.assertEqual(self.svc.get("/readyz")[0], 200)


class LongestTokens(unittest.TestCase):
    """A token as long as the configuration accepts (4096 bytes) works on every route kind."""

    def test_4096_byte_tokens_authenticate_and_4097_bytes_do_not(self):
        read, ingest, key = "R" * 4096, "I" * 4096, "K" * 4096
        redis = Redis()
        svc = Service(redis.url, extra_env={"NEWTERMSD_API_READ_TOKEN": read,
                                            "NEWTERMSD_INGEST_TOKEN": ingest,
                                            "NEWTERMSD_FIREHOSE_ACCESS_KEY": key})
        try:
            self.assertEqual(svc.api("GET", "/alerts", token=read)[0], 200)
            self.assertEqual(svc.api("GET", "/alerts", token=read + "R")[0], 401)
            self.assertEqual(svc.events([noise_record()], token=ingest)[0], 200)
            s, _, _ = svc.request("POST", "/v1/events", body=json.dumps([noise_record()]),
                                  headers={"Authorization": "Basic " + b64("user:" + ingest)})
            self.assertEqual(s, 200)
            self.assertEqual(svc.firehose(firehose_payload([b64(noise_record())]), key=key)[0], 200)
            self.assertEqual(svc.firehose(firehose_payload([b64(noise_record())]), key=key + "K")[0], 401)
        finally:
            rc = svc.close()
            redis.close()
        self.assertEqual(rc, 0)

    def test_a_token_over_4096_bytes_is_refused_at_startup(self):
        p = subprocess.run([BIN, "serve"], env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                                "NEWTERMSD_RULES": RULES,
                                                "NEWTERMSD_API_READ_TOKEN": "R" * 4097},
                           capture_output=True, timeout=30)
        out = (p.stdout + p.stderr).decode()
        self.assertEqual(p.returncode, 2, out)
        self.assertIn("NEWTERMSD_API_READ_TOKEN", out)
        self.assertIn("4096", out)
        self.assertNotIn("R" * 100, out)


@unittest.skipUnless(os.geteuid() == 0 and shutil.which("setpriv"),
                     "needs root and setpriv(1) to drop to an unprivileged user")
class RunsAsAnUnprivilegedUser(unittest.TestCase):
    def test_serve_works_as_nobody_and_exits_0_on_sigterm(self):
        redis = Redis()
        svc = Service(redis.url, wrapper=["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
        try:
            with open(f"/proc/{svc.proc.pid}/status") as f:
                status = f.read()
            uid = re.search(r"^Uid:\s+(\d+)\s+(\d+)\s+(\d+)", status, re.M).groups()
            gid = re.search(r"^Gid:\s+(\d+)\s+(\d+)\s+(\d+)", status, re.M).groups()
            groups = re.search(r"^Groups:[ \t]*(.*)$", status, re.M).group(1).split()
            self.assertEqual(uid, ("65534",) * 3)
            self.assertEqual(gid, ("65534",) * 3)
            self.assertEqual(groups, [])
            self.assertEqual(svc.firehose(firehose_payload([b64(discovery_record(user="as-nobody"))]))[0], 200)
            self.assertEqual([a["new_terms"][1] for a in svc.alerts()], ["as-nobody"])
            s, _ = svc.api("POST", "/exceptions", {"name": "n", "entries": [
                {"field": "user.name", "operator": "included", "type": "match", "value": "v"}]})
            self.assertEqual(s, 201)
            self.assertEqual(svc.get("/metrics")[0], 200)  # /proc/self reads work unprivileged
        finally:
            rc = svc.close()
            redis.close()
        self.assertEqual(rc, 0)

    def test_a_secret_file_only_root_can_read_is_refused_with_exit_2(self):
        with tempfile.NamedTemporaryFile("w", suffix=".secret") as f:
            f.write("root-only-secret-Qr90St\n")
            f.flush()
            os.chmod(f.name, 0o600)
            p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", BIN, "serve"],
                               env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "NEWTERMSD_RULES": RULES,
                                    "NEWTERMSD_API_WRITE_TOKEN_FILE": f.name},
                               capture_output=True, timeout=30)
        out = (p.stdout + p.stderr).decode()
        self.assertEqual(p.returncode, 2, out)
        self.assertIn("NEWTERMSD_API_WRITE_TOKEN_FILE", out)
        self.assertIn("cannot read", out)
        self.assertNotIn("root-only-secret", out)


if __name__ == "__main__":
    unittest.main()
