"""Test harness: a real redis-server on a free port and the real newtermsd binary.

Every integration test talks to these over loopback only. Nothing is mocked:
the harness starts processes, waits for them to answer, and kills them at the
end (or in the middle, for fault tests).
"""
import base64
import copy
import gzip
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import uuid

BIN = os.environ.get("NEWTERMSD_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "build", "newtermsd"))
RULES = os.environ.get("NEWTERMSD_TEST_RULES", os.path.join(os.path.dirname(__file__), "..", "..", "rules"))
DATA = os.path.join(os.path.dirname(__file__), "..", "data")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"

FIREHOSE_KEY = "fh-key-test-0123456789"
INGEST_TOKEN = "ingest-token-test-abcdef"
READ_TOKEN = "read-token-test-123456"
WRITE_TOKEN = "write-token-test-654321"
SECRETS = [FIREHOSE_KEY, INGEST_TOKEN, READ_TOKEN, WRITE_TOKEN]
# --drain-timeout-s of every service the harness starts; Service.stop() waits
# clearly longer, so a drain that hits its bound still ends in an exit status.
DRAIN_TIMEOUT_S = 10


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred, timeout=10.0, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            if pred():
                return
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} ({last})")


class Redis:
    """A redis-server child process on a free port."""

    def __init__(self, password=None):
        self.port = free_port()
        self.password = password
        self.dir = tempfile.mkdtemp(prefix="nt-redis-")
        self.proc = None
        self.start()

    def start(self):
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", self.dir, "--daemonize", "no", "--loglevel", "warning"]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: self.command("PING") in ("PONG", "+PONG"), what="redis PING")

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        self.proc = None

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self, *args):
        """Send one command in RESP and return the decoded reply (minimal client)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            if self.password:
                s.sendall(_resp(["AUTH", self.password]))
                _read_reply(s.makefile("rb"))
            s.sendall(_resp(list(args)))
            return _read_reply(s.makefile("rb"))


def _resp(args):
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(f"${len(b)}\r\n".encode() + b + b"\r\n")
    return b"".join(out)


def _read_reply(f):
    line = f.readline()
    if not line:
        raise ConnectionError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode(errors="replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    raise RuntimeError(f"bad reply {line!r}")


class Service:
    """A newtermsd serve child process."""

    def __init__(self, redis_url, extra_env=None, args=None, rules=RULES, wrapper=None,
                 start_timeout=20):
        """wrapper: a command prepended to [BIN, "serve"] (e.g. valgrind or setpriv)."""
        self.port = free_port()
        self.log_path = tempfile.mktemp(prefix="nt-log-", suffix=".jsonl")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "NEWTERMSD_LISTEN": f"127.0.0.1:{self.port}",
            "NEWTERMSD_REDIS": redis_url,
            "NEWTERMSD_RULES": rules,
            "NEWTERMSD_FIREHOSE_ACCESS_KEY": FIREHOSE_KEY,
            "NEWTERMSD_INGEST_TOKEN": INGEST_TOKEN,
            "NEWTERMSD_API_READ_TOKEN": READ_TOKEN,
            "NEWTERMSD_API_WRITE_TOKEN": WRITE_TOKEN,
            "NEWTERMSD_WORKERS": "2",
            "NEWTERMSD_REDIS_TIMEOUT_MS": "500",
            # The SIGTERM drain bound, explicit: stop() waits three times as long.
            "NEWTERMSD_DRAIN_TIMEOUT_S": str(DRAIN_TIMEOUT_S),
        }
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS"):
            if k in os.environ:
                env[k] = os.environ[k]
        for k, v in (extra_env or {}).items():  # None removes a variable
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        self.env = env
        self.args = args or []
        self.wrapper = list(wrapper or [])
        self.start_timeout = start_timeout
        self.proc = None
        self.start()

    def start(self, wait_ready=True):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.wrapper + [BIN, "serve"] + self.args, env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        wait_for(lambda: self.get("/healthz")[0] == 200, timeout=self.start_timeout,
                 what="newtermsd /healthz")
        if wait_ready:
            wait_for(lambda: self.get("/readyz")[0] == 200, timeout=self.start_timeout,
                     what="newtermsd /readyz")

    def stop(self, sig=signal.SIGTERM, timeout=3 * DRAIN_TIMEOUT_S):
        rc = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            rc = self.proc.wait(timeout)
        elif self.proc:
            rc = self.proc.returncode
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()
        return rc

    def logs(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def close(self):
        rc = self.stop()
        try:
            os.unlink(self.log_path)
        except OSError:
            pass
        return rc

    # -- HTTP --------------------------------------------------------------
    def request(self, method, path, body=None, headers=None, timeout=30):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
            elif isinstance(body, str):
                body = body.encode()
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            ctype = resp.getheader("Content-Type", "")
            parsed = None
            if data and "json" in ctype:
                parsed = json.loads(data)
            return resp.status, parsed if parsed is not None else data, dict(resp.getheaders())
        finally:
            conn.close()

    def get(self, path, token=None):
        h = {"Authorization": f"Bearer {token}"} if token else {}
        s, b, _ = self.request("GET", path, headers=h)
        return s, b

    def api(self, method, path, body=None, token=WRITE_TOKEN):
        h = {"Authorization": f"Bearer {token}"} if token else {}
        if body is not None:
            h["Content-Type"] = "application/json"
        s, b, _ = self.request(method, "/api/v1" + path, body=body, headers=h)
        return s, b

    def firehose(self, payload, key=FIREHOSE_KEY, gzip_body=False, extra_headers=None):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        h = {"Content-Type": "application/json"}
        if key is not None:
            h["X-Amz-Firehose-Access-Key"] = key
        if gzip_body:
            body = gzip.compress(body)
            h["Content-Encoding"] = "gzip"
        h.update(extra_headers or {})
        s, b, _ = self.request("POST", "/v1/firehose", body=body, headers=h)
        return s, b

    def events(self, body, token=INGEST_TOKEN, route="/v1/events", gzip_body=False, ctype="application/json"):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        h = {"Content-Type": ctype}
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        if gzip_body:
            body = gzip.compress(body)
            h["Content-Encoding"] = "gzip"
        s, b, _ = self.request("POST", route, body=body, headers=h)
        return s, b

    def metrics(self):
        s, b = self.get("/metrics")
        assert s == 200, s
        return b.decode()

    def metric(self, name, **labels):
        """Sum of the series of `name` whose labels include `labels`."""
        total = 0.0
        for line in self.metrics().splitlines():
            if not line.startswith(name) or line.startswith("#"):
                continue
            head, _, value = line.rpartition(" ")
            if head.split("{")[0] != name:
                continue
            lab = head[len(name):]
            if all(f'{k}="{v}"' in lab for k, v in labels.items()):
                total += float(value)
        return total

    def alerts(self, **params):
        q = "&".join(f"{k}={v}" for k, v in params.items())
        s, b = self.api("GET", "/alerts" + ("?" + q if q else ""), token=READ_TOKEN)
        assert s == 200, (s, b)
        return b["alerts"]


# -- CloudTrail records ------------------------------------------------------

def load_record(name):
    with open(os.path.join(DATA, "cloudtrail", name)) as f:
        return json.load(f)


def discovery_record(user="OrgAdmin", account="111122223333", action="ListAccounts",
                     provider="organizations.amazonaws.com", event_id=None, ip="203.0.113.10",
                     identity="IAMUser", event_time="2026-11-20T10:00:00Z", error=None):
    """A CloudTrail record of an Organizations/IAM discovery call."""
    rec = load_record("organizations_ListAccounts_IAMUser.json")
    rec = copy.deepcopy(rec)
    rec["eventID"] = event_id or str(uuid.uuid4())
    rec["eventName"] = action
    rec["eventSource"] = provider
    rec["sourceIPAddress"] = ip
    rec["eventTime"] = event_time
    rec["recipientAccountId"] = account
    ui = rec["userIdentity"]
    ui["accountId"] = account
    if identity == "IAMUser":
        ui["type"] = "IAMUser"
        ui["userName"] = user
        ui["arn"] = f"arn:aws:iam::{account}:user/{user}"
    elif identity == "AssumedRole":
        ui.pop("userName", None)
        ui["type"] = "AssumedRole"
        ui["arn"] = f"arn:aws:sts::{account}:assumed-role/{user}/session-1"
        ui["sessionContext"] = {"sessionIssuer": {"type": "Role", "userName": user,
                                                   "arn": f"arn:aws:iam::{account}:role/{user}",
                                                   "accountId": account, "principalId": "AROAEXAMPLE"},
                                "attributes": {"mfaAuthenticated": "false", "creationDate": event_time}}
    if error:
        rec["errorCode"] = error
        rec["errorMessage"] = "denied"
    return rec


def noise_record(i=0):
    rec = load_record("s3_GetObject_AssumedRole.json")
    rec = copy.deepcopy(rec)
    rec["eventID"] = str(uuid.uuid4())
    rec["requestParameters"]["key"] = f"obj-{i}"
    return rec


def eventbridge(rec):
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "AWS API Call via CloudTrail",
            "source": "aws." + rec["eventSource"].split(".")[0], "account": rec["recipientAccountId"],
            "time": rec["eventTime"], "region": rec.get("awsRegion", "us-east-1"), "resources": [],
            "detail": rec}


def b64(data):
    if isinstance(data, (dict, list)):
        data = json.dumps(data).encode()
    elif isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def cwl_record(records, message_type="DATA_MESSAGE"):
    env = {"messageType": message_type, "owner": "111122223333", "logGroup": "aws-cloudtrail-logs",
           "logStream": "111122223333_CloudTrail_us-east-1", "subscriptionFilters": ["to-firehose"],
           "logEvents": [{"id": str(i), "timestamp": 1795843752000, "message": json.dumps(r)}
                         for i, r in enumerate(records)]}
    return base64.b64encode(gzip.compress(json.dumps(env).encode())).decode()


def firehose_payload(datas, request_id=None):
    return {"requestId": request_id or str(uuid.uuid4()), "timestamp": int(time.time() * 1000),
            "records": [{"data": d} for d in datas]}


class ServiceTest(unittest.TestCase):
    """A fresh Redis and one newtermsd per test class."""

    service_env = None
    service_args = None
    service_rules = RULES

    @classmethod
    def setUpClass(cls):
        cls.redis = Redis()
        cls.svc = Service(cls.redis.url, extra_env=cls.service_env, args=cls.service_args,
                          rules=cls.service_rules)

    @classmethod
    def tearDownClass(cls):
        rc = cls.svc.close()
        cls.redis.close()
        if rc not in (0, None):
            raise AssertionError(f"newtermsd exited with {rc}")

    def setUp(self):
        self.redis.command("FLUSHALL")
