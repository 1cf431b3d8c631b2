#!/usr/bin/env python3
"""Reference Firehose/EventBridge receiver in plain Python, the yardstick newtermsd is compared with.

It does the same decode-and-filter work as the service, the way a straightforward Python (Lambda-style)
handler would: json.loads the delivery, base64-decode every record, gunzip CloudWatch Logs blobs, json.loads
every record (EventBridge event, bare CloudTrail record, S3 log file, CWL DATA_MESSAGE -> each logEvents[].message),
then evaluate rule 444c8fad "AWS Account Discovery By Rare User" on each CloudTrail record and keep the
(cloud.account.id, user.name) history in a dict (10-day window). It does NOT talk to Redis, write alerts, keep
metrics or a dead-letter list, so it does strictly less work per record than the service.

--prefilter adds the trick the service uses: skip json.loads of a record whose bytes mention neither
organizations.amazonaws.com nor iam.amazonaws.com (reported separately; the default is the plain handler).

Server: http.server.ThreadingHTTPServer speaking HTTP/1.1 keep-alive. Pin it to one core with taskset; the
GIL makes it one core of work anyway. GET /stats returns the counters so the driver can check the work was done.
Routes: POST /v1/firehose (X-Amz-Firehose-Access-Key), POST /v1/eventbridge (Authorization: Bearer), GET /readyz.
"""
import argparse
import base64
import gzip
import hmac
import ipaddress
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ORG_ACTIONS = frozenset([
    "DescribeOrganization", "DescribeOrganizationalUnit", "ListAccounts", "ListRoots",
    "ListOrganizationalUnitsForParent", "ListAccountsForParent", "ListPolicies",
    "ListAWSServiceAccessForOrganization", "ListDelegatedAdministrators", "ListDelegatedServicesForAccount",
    "DescribeResourcePolicy"])
IAM_ACTIONS = frozenset(["ListAccountAliases", "GetAccountSummary"])
WINDOW_MS = 10 * 24 * 3600 * 1000
MAX_BODY = 64 * 1024 * 1024 + 65536


def is_ip(s):
    if not isinstance(s, str):
        return False
    try:
        ipaddress.ip_address(s)
        return True
    except ValueError:
        return False


def user_name(ident):
    """user.name as Elastic's CloudTrail pipeline derives it (service actors get none)."""
    t = ident.get("type")
    if t == "AWSService":
        return None
    if t in ("AssumedRole", "FederatedUser"):
        issuer = (ident.get("sessionContext") or {}).get("sessionIssuer") or {}
        if ":role/aws-service-role/" in (issuer.get("arn") or ""):
            return None
        return issuer.get("userName")
    if t == "Root":
        return ident.get("userName") or "root"
    return ident.get("userName")


def rule_pair(rec):
    """(account, user) when rec passes the rule query, else None."""
    src = rec.get("eventSource")
    name = rec.get("eventName")
    if src == "organizations.amazonaws.com":
        if name not in ORG_ACTIONS:
            return None
    elif src == "iam.amazonaws.com":
        if name not in IAM_ACTIONS:
            return None
    else:
        return None
    if "errorCode" in rec or "errorMessage" in rec:
        return None
    if rec.get("sessionCredentialFromConsole") == "true":
        return None
    ident = rec.get("userIdentity") or {}
    if ident.get("type") == "AWSService":
        return None
    if not is_ip(rec.get("sourceIPAddress")):
        return None
    account = ident.get("accountId") or rec.get("recipientAccountId")
    user = user_name(ident)
    if not account or not user:
        return None
    return account, user


class Tally:
    """Per-request counters, merged into State under its lock once per request."""
    __slots__ = ("records", "candidates", "alerts", "rejected", "prefiltered")

    def __init__(self):
        self.records = self.candidates = self.alerts = self.rejected = self.prefiltered = 0


class State:
    def __init__(self, prefilter):
        self.prefilter = prefilter
        self.lock = threading.Lock()
        self.history = {}
        self.total = Tally()
        self.requests = 0

    def merge(self, t):
        with self.lock:
            self.requests += 1
            for f in Tally.__slots__:
                setattr(self.total, f, getattr(self.total, f) + getattr(t, f))

    def see(self, pair, now_ms, t):
        t.candidates += 1
        with self.lock:
            last = self.history.get(pair)
            self.history[pair] = now_ms
        if last is None or now_ms - last > WINDOW_MS:
            t.alerts += 1

    def cloudtrail(self, rec, now_ms, t):
        t.records += 1
        pair = rule_pair(rec)
        if pair:
            self.see(pair, now_ms, t)

    def json_value(self, obj, now_ms, t):
        if not isinstance(obj, dict):
            t.rejected += 1
            return
        if "logEvents" in obj and "messageType" in obj:
            if obj["messageType"] != "DATA_MESSAGE":
                return
            for ev in obj["logEvents"]:
                msg = ev.get("message", "")
                if self.prefilter and not might_match(msg.encode()):
                    t.records += 1
                    t.prefiltered += 1
                    continue
                try:
                    self.cloudtrail(json.loads(msg), now_ms, t)
                except ValueError:
                    t.rejected += 1
        elif "detail" in obj and "detail-type" in obj:
            self.cloudtrail(obj["detail"], now_ms, t)
        elif isinstance(obj.get("Records"), list):
            for r in obj["Records"]:
                self.cloudtrail(r, now_ms, t)
        elif "eventSource" in obj and "eventName" in obj:
            self.cloudtrail(obj, now_ms, t)
        else:
            t.rejected += 1

    def record_bytes(self, data, now_ms, t):
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        data = data.strip()
        if not data:
            return
        if self.prefilter and not data.startswith(b'{"messageType"') and not might_match(data):
            t.records += 1
            t.prefiltered += 1
            return
        dec = json.JSONDecoder()
        text = data.decode("utf-8")
        pos = 0
        while pos < len(text):
            obj, pos = dec.raw_decode(text, pos)
            self.json_value(obj, now_ms, t)
            while pos < len(text) and text[pos] in " \t\r\n":
                pos += 1


def might_match(b):
    return b"organizations.amazonaws.com" in b or b"iam.amazonaws.com" in b


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # wrk closes its keep-alive connections mid-request when a run ends; that is not an error here
        pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "reference/1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            return None
        data = self.rfile.read(n)
        if (self.headers.get("Content-Encoding") or "").lower() == "gzip":
            data = gzip.decompress(data)
        return data

    def do_GET(self):
        st = self.server.state
        if self.path == "/readyz":
            self.reply(200, {"status": "ready"})
        elif self.path == "/stats":
            with st.lock:
                out = {f: getattr(st.total, f) for f in Tally.__slots__}
                out.update(requests=st.requests, pairs=len(st.history))
            self.reply(200, out)
        else:
            self.reply(404, {"error": "not_found", "message": "no such route"})

    def do_POST(self):
        st = self.server.state
        now_ms = int(time.time() * 1000)
        if self.path == "/v1/firehose":
            key = self.headers.get("X-Amz-Firehose-Access-Key") or ""
            if not hmac.compare_digest(key.encode(), self.server.key.encode()):
                self.reply(401, {"requestId": "", "timestamp": now_ms, "errorMessage": "bad access key"})
                return
            raw = self.body()
            if raw is None:
                self.reply(413, {"requestId": "", "timestamp": now_ms, "errorMessage": "too large"})
                return
            try:
                env = json.loads(raw)
                rid = env["requestId"]
                records = env["records"]
            except (ValueError, KeyError, TypeError):
                self.reply(400, {"requestId": "", "timestamp": now_ms, "errorMessage": "not a delivery"})
                return
            t = Tally()
            for r in records:
                try:
                    st.record_bytes(base64.b64decode(r.get("data", ""), validate=True), now_ms, t)
                except (ValueError, UnicodeDecodeError, OSError, EOFError):
                    t.rejected += 1
            st.merge(t)
            self.reply(200, {"requestId": rid, "timestamp": int(time.time() * 1000)})
        elif self.path == "/v1/eventbridge":
            auth = self.headers.get("Authorization") or ""
            if not hmac.compare_digest(auth.encode(), ("Bearer " + self.server.token).encode()):
                self.reply(401, {"error": "unauthorized", "message": "bad token"})
                return
            raw = self.body()
            t = Tally()
            try:
                st.json_value(json.loads(raw), now_ms, t)
            except ValueError:
                self.reply(400, {"error": "bad_json", "message": "not JSON"})
                return
            st.merge(t)
            self.reply(200, {"accepted": 1})
        else:
            self.reply(404, {"error": "not_found", "message": "no such route"})


def main():
    ap = argparse.ArgumentParser(description="reference Python Firehose handler")
    ap.add_argument("--listen", default="127.0.0.1:18090")
    ap.add_argument("--prefilter", action="store_true")
    args = ap.parse_args()
    host, port = args.listen.rsplit(":", 1)
    srv = Server((host, int(port)), Handler)
    srv.state = State(args.prefilter)
    srv.key = os.environ.get("NEWTERMSD_FIREHOSE_ACCESS_KEY", "bench-firehose-key")
    srv.token = os.environ.get("NEWTERMSD_INGEST_TOKEN", "bench-ingest-token")
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
