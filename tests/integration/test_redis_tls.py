"""Managed Redis for real: TLS (rediss://) with a private CA, an ACL user, and WAIT for a replica.

Every certificate is made here with the openssl command line: a private CA, a
server certificate for 127.0.0.1 and redis.test, an expired one, one from
another CA, and a client certificate. The Redis servers are Debian's
redis-server with --port 0 --tls-port, an ACL file whose only enabled user is
`app`, and (for WAIT) a TLS replica started with --replicaof.
"""
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

from harness import (REDIS_SERVER, Service, _read_reply, _resp, b64, discovery_record,
                     firehose_payload, free_port, wait_for)

APP_PW = "app-Secret-Passw0rd-4f9c2e"
USER = "app"
# The service's user has the narrow access README recommends; the test's own client is `admin`.
APP_ACL = "~nt:* -@all +@read +@write +@scripting +@transaction +@connection +wait"
ADMIN_PW = "admin-Passw0rd-for-the-test-client"

CA_CNF = """[ ca ]
default_ca = ca_default
[ ca_default ]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = policy_any
copy_extensions = copy
unique_subject = no
[ policy_any ]
commonName = supplied
[ leaf ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
"""


class Pki:
    """Certificates in a temporary folder: ca, other-ca and leaves signed by them."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="nt-pki-")
        with open(self.path("ca.cnf"), "w") as f:
            f.write(CA_CNF)
        self.make_ca("ca")
        self.make_ca("other-ca")
        san = "subjectAltName=DNS:redis.test,IP:127.0.0.1"
        self.make_leaf("server", "ca", san)
        self.make_leaf("expired", "ca", san, start="20200101000000Z", end="20200201000000Z")
        self.make_leaf("foreign", "other-ca", san)
        self.make_leaf("client", "ca", "subjectAltName=DNS:newtermsd")

    def path(self, name):
        return os.path.join(self.dir, name)

    def openssl(self, *args):
        subprocess.run(["openssl", *args], cwd=self.dir, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)

    def make_ca(self, name):
        self.openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                     "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "30",
                     "-subj", f"/CN=newtermsd test {name}")
        os.makedirs(self.path(name + ".db"), exist_ok=True)
        open(self.path(f"{name}.db/index.txt"), "w").close()
        with open(self.path(f"{name}.db/serial"), "w") as f:
            f.write("1000\n")

    def make_leaf(self, name, ca, san, start=None, end=None):
        self.openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                     "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                     "-subj", f"/CN={name}", "-addext", san)
        dates = ["-startdate", start, "-enddate", end] if start else ["-days", "30"]
        subprocess.run(["openssl", "ca", "-batch", "-notext", "-config", "../ca.cnf",
                        "-extensions", "leaf", "-cert", f"../{ca}.pem", "-keyfile", f"../{ca}.key",
                        "-in", f"../{name}.csr", "-out", f"../{name}.pem", *dates],
                       cwd=self.path(ca + ".db"), check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class TlsRedis:
    """redis-server listening on TLS only, with the ACL user `app`."""

    def __init__(self, pki, cert="server", auth_clients="optional", replica_of=None, port=None):
        self.pki = pki
        self.port = port or free_port()
        self.cert = cert
        self.auth_clients = auth_clients
        self.replica_of = replica_of
        self.dir = tempfile.mkdtemp(prefix="nt-tls-redis-")
        with open(os.path.join(self.dir, "users.acl"), "w") as f:
            f.write(f"user default off\nuser {USER} on >{APP_PW} {APP_ACL}\n"
                    f"user admin on >{ADMIN_PW} ~* &* +@all\n")
        self.proc = None
        self.start()

    def start(self):
        p = self.pki.path
        args = [REDIS_SERVER, "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1",
                "--tls-cert-file", p(self.cert + ".pem"), "--tls-key-file", p(self.cert + ".key"),
                "--tls-ca-cert-file", p("ca.pem"), "--tls-auth-clients", self.auth_clients,
                "--aclfile", os.path.join(self.dir, "users.acl"), "--save", "", "--appendonly", "no",
                "--dir", self.dir, "--daemonize", "no", "--loglevel", "warning"]
        if self.replica_of:
            args += ["--replicaof", "127.0.0.1", str(self.replica_of.port), "--tls-replication", "yes",
                     "--masteruser", "admin", "--masterauth", ADMIN_PW,
                     "--tls-client-cert-file", p("client.pem"), "--tls-client-key-file", p("client.key")]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: self.command("PING") == "PONG", what="TLS redis PING")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        self.proc = None

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, user=USER, host="127.0.0.1"):
        return f"rediss://{user + '@' if user else ''}{host}:{self.port}/0"

    def command(self, *args):
        """One command over TLS as `admin`, with the client certificate."""
        ctx = ssl.create_default_context(cafile=self.pki.path("ca.pem"))
        ctx.check_hostname = False  # the expired/foreign servers are reached on purpose
        ctx.verify_mode = ssl.CERT_NONE
        ctx.load_cert_chain(self.pki.path("client.pem"), self.pki.path("client.key"))
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as raw:
            with ctx.wrap_socket(raw) as s:
                f = s.makefile("rb")
                s.sendall(_resp(["AUTH", "admin", ADMIN_PW]))
                _read_reply(f)
                s.sendall(_resp(list(args)))
                return _read_reply(f)


class UnreadyService(Service):
    """A newtermsd that is only waited for until /healthz: its Redis may be refused."""

    def start(self, wait_ready=False):
        super().start(wait_ready=wait_ready)


def service_env(pki, **extra):
    env = {"NEWTERMSD_REDIS_CA_FILE": pki.path("ca.pem"), "NEWTERMSD_REDIS_PASSWORD": APP_PW}
    env.update(extra)
    return env


def log_lines(svc, event=None):
    out = []
    for line in svc.logs().splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if event is None or obj.get("event") == event:
            out.append(obj)
    return out


class RedisTls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = Pki()
        cls.redis = TlsRedis(cls.pki)

    @classmethod
    def tearDownClass(cls):
        cls.redis.close()
        cls.pki.close()

    def setUp(self):
        self.redis.command("FLUSHALL")
        self.services = []
        self.extra_redis = []

    def tearDown(self):
        for svc in self.services:
            logs = svc.logs()
            try:
                metrics = svc.metrics()
            except Exception:  # noqa: BLE001 - a stopped service has no /metrics
                metrics = ""
            rc = svc.close()
            self.assertNotIn(APP_PW, logs)
            self.assertNotIn(APP_PW, metrics)
            self.assertIn(rc, (0, None))
        for r in self.extra_redis:
            r.close()

    def service(self, url, ready=True, **env):
        cls = Service if ready else UnreadyService
        svc = cls(url, extra_env=service_env(self.pki, **env))
        self.services.append(svc)
        return svc

    def assert_refused(self, svc, cause):
        """/readyz stays 503 and exactly one error line names the cause, across retries."""
        wait_for(lambda: any(cause in l["msg"] for l in log_lines(svc, "redis_connect")),
                 timeout=10, what=f"a log line with {cause!r}")
        time.sleep(1.5)  # several backoff steps of every connection
        s, body = svc.get("/readyz")
        self.assertEqual(s, 503, body)
        self.assertNotIn(APP_PW, json.dumps(body))
        errors = [l for l in log_lines(svc, "redis_connect") if l["level"] == "error"]
        self.assertEqual(len(errors), 1, errors)
        self.assertIn(cause, errors[0]["msg"])
        self.assertIn("(TLS)", errors[0]["msg"])
        # a delivery that needs Redis is refused, never acknowledged
        st, _ = svc.firehose(firehose_payload([b64(discovery_record(user="refused"))]))
        self.assertEqual(st, 503)
        return errors[0]["msg"]

    def test_tls_with_an_acl_user_end_to_end_with_an_alert(self):
        svc = self.service(self.redis.url(), NEWTERMSD_REDIS_TLS_SERVER_NAME="redis.test")
        status, body = svc.firehose(firehose_payload([b64(discovery_record(user="TlsUser"))]))
        self.assertEqual(status, 200, body)
        alerts = svc.alerts()
        self.assertEqual(len(alerts), 1)
        self.assertEqual(self.redis.command("ZCARD", "nt:alerts"), 1)
        clients = self.redis.command("CLIENT", "LIST")
        self.assertIn(f"user={USER}", clients)
        self.assertEqual(log_lines(svc, "redis_tls_insecure"), [])

    def test_the_ip_address_in_the_certificate_is_verified_without_a_server_name(self):
        svc = self.service(self.redis.url())
        self.assertEqual(svc.firehose(firehose_payload([b64(discovery_record(user="ByIp"))]))[0], 200)
        self.assertEqual(len(svc.alerts()), 1)

    def test_a_certificate_from_another_ca_is_refused(self):
        other = TlsRedis(self.pki, cert="foreign")
        self.extra_redis.append(other)
        svc = self.service(other.url(), ready=False)
        msg = self.assert_refused(svc, "certificate verify failed")
        self.assertIn("TLS handshake failed", msg)

    def test_an_expired_certificate_is_refused(self):
        expired = TlsRedis(self.pki, cert="expired")
        self.extra_redis.append(expired)
        svc = self.service(expired.url(), ready=False)
        self.assert_refused(svc, "certificate verify failed: certificate has expired")

    def test_a_name_the_certificate_does_not_hold_is_refused(self):
        svc = self.service(self.redis.url(), ready=False,
                           NEWTERMSD_REDIS_TLS_SERVER_NAME="other.test")
        self.assert_refused(svc, "certificate verify failed: hostname mismatch")

    def test_a_wrong_password_is_refused(self):
        svc = self.service(self.redis.url(), ready=False, NEWTERMSD_REDIS_PASSWORD="not-the-password")
        self.assert_refused(svc, f"authentication failed for user '{USER}': wrong password or unknown user")

    def test_an_unknown_user_is_refused(self):
        svc = self.service(self.redis.url(user="ghost"), ready=False)
        self.assert_refused(svc, "authentication failed for user 'ghost': wrong password or unknown user")

    def test_a_server_that_requires_a_client_certificate(self):
        strict = TlsRedis(self.pki, auth_clients="yes")
        self.extra_redis.append(strict)
        svc = self.service(strict.url(), ready=False)
        self.assert_refused(svc, "the server requires a TLS client certificate")
        ok = self.service(strict.url(), NEWTERMSD_REDIS_CERT_FILE=self.pki.path("client.pem"),
                          NEWTERMSD_REDIS_KEY_FILE=self.pki.path("client.key"))
        self.assertEqual(ok.firehose(firehose_payload([b64(discovery_record(user="Mtls"))]))[0], 200)

    def test_insecure_mode_accepts_any_certificate_and_says_so_once(self):
        svc = self.service(self.redis.url(), NEWTERMSD_REDIS_CA_FILE=self.pki.path("other-ca.pem"),
                           NEWTERMSD_REDIS_TLS_INSECURE="1")
        self.assertEqual(svc.firehose(firehose_payload([b64(discovery_record(user="Insecure"))]))[0], 200)
        warn = log_lines(svc, "redis_tls_insecure")
        self.assertEqual(len(warn), 1, warn)
        self.assertEqual(warn[0]["level"], "warn")
        self.assertIn("verification is OFF", warn[0]["msg"])

    def test_a_restarted_redis_is_reconnected_under_tls(self):
        port = free_port()
        r = TlsRedis(self.pki, port=port)
        self.extra_redis.append(r)
        svc = self.service(r.url())
        self.assertEqual(svc.firehose(firehose_payload([b64(discovery_record(user="before"))]))[0], 200)
        r.stop()
        self.assertEqual(svc.firehose(firehose_payload([b64(discovery_record(user="during"))]))[0], 503)
        wait_for(lambda: svc.get("/readyz")[0] == 503, timeout=10, what="not ready")
        r.start()
        wait_for(lambda: svc.get("/readyz")[0] == 200, timeout=10, what="ready again")
        status, body = svc.firehose(firehose_payload([b64(discovery_record(user="after"))]))
        self.assertEqual(status, 200, body)
        # the restarted server kept nothing (--save ""): the one alert is the new one
        self.assertEqual([a["new_terms"][-1] for a in svc.alerts()], ["after"])
        lines = [l["msg"] for l in log_lines(svc, "redis_connect")]
        self.assertTrue(any(m.endswith("(TLS): connected") for m in lines), lines)

    def test_tls_options_with_a_plain_url_refuse_to_start(self):
        p = subprocess.run([os.environ.get("NEWTERMSD_BIN", "newtermsd"), "backfill",
                            "--redis", f"redis://127.0.0.1:{self.redis.port}/0",
                            "--redis-ca", self.pki.path("ca.pem"),
                            "--rules", os.environ.get("NEWTERMSD_TEST_RULES", "rules"), "/dev/null"],
                           env={"PATH": os.environ.get("PATH", "/usr/bin")},
                           capture_output=True, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"the URL is not rediss://", p.stderr)


class WaitForReplica(unittest.TestCase):
    """WAIT 1 against a TLS primary with a TLS replica (--replicaof)."""

    @classmethod
    def setUpClass(cls):
        cls.pki = Pki()
        cls.primary = TlsRedis(cls.pki)
        cls.replica = TlsRedis(cls.pki, replica_of=cls.primary)
        cls.svc = Service(cls.primary.url(), extra_env=service_env(
            cls.pki, NEWTERMSD_REDIS_WAIT_REPLICAS="1", NEWTERMSD_REDIS_WAIT_TIMEOUT_MS="300"))

    @classmethod
    def tearDownClass(cls):
        logs = cls.svc.logs()
        rc = cls.svc.close()
        cls.replica.close()
        cls.primary.close()
        cls.pki.close()
        assert APP_PW not in logs
        assert rc in (0, None), rc

    def replicas(self):
        info = self.primary.command("INFO", "replication")
        for line in info.splitlines():
            if line.startswith("connected_slaves:"):
                return int(line.split(":")[1])
        return -1

    def replica_in_sync(self):
        info = self.replica.command("INFO", "replication")
        return "master_link_status:up" in info and self.replicas() == 1

    def test_a_delivery_waits_for_the_replica_and_fails_without_it(self):
        wait_for(self.replica_in_sync, timeout=20, what="the replica in sync")
        payload = firehose_payload([b64(discovery_record(user="Durable"))])
        status, body = self.svc.firehose(payload)
        self.assertEqual(status, 200, body)
        wait_for(lambda: self.replica.command("ZCARD", "nt:alerts") == 1, timeout=5,
                 what="the alert on the replica")

        self.replica.stop()
        wait_for(lambda: self.replicas() == 0, timeout=10, what="the primary losing its replica")
        lost = firehose_payload([b64(discovery_record(user="NotReplicated"))])
        t0 = time.time()
        status, body = self.svc.firehose(lost)
        self.assertEqual(status, 503, body)
        self.assertGreaterEqual(time.time() - t0, 0.25)
        self.assertNotIn(APP_PW, json.dumps(body))
        self.assertIn("replicas acknowledged", self.svc.logs())

        self.replica.start()
        wait_for(self.replica_in_sync, timeout=20, what="the replica back in sync")
        status, body = self.svc.firehose(lost)  # the sender's retry
        self.assertEqual(status, 200, body)
        users = sorted(a["new_terms"][-1] for a in self.svc.alerts())
        self.assertEqual(users, ["Durable", "NotReplicated"])  # the retry duplicated nothing
        self.assertNotIn(APP_PW, self.svc.metrics())


if __name__ == "__main__":
    unittest.main()
