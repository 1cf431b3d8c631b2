"""Ingestion over HTTP: every delivery shape, every status code of docs/spec.md §3."""
import base64
import gzip
import json
import os
import time
import unittest
import zlib

from harness import (FIREHOSE_KEY, INGEST_TOKEN, ServiceTest, b64, cwl_record, discovery_record,
                     eventbridge, firehose_payload, noise_record, wait_for)

RULE_ID = "444c8fad-874f-4f59-b0ea-cf26cea478bd"


class FirehoseDelivery(ServiceTest):
    def test_new_pair_raises_one_alert_with_the_spec_document(self):
        rec = discovery_record(user="OrgAdmin", account="111122223333")
        payload = firehose_payload([b64(eventbridge(rec)), b64(noise_record(1))], request_id="req-1")
        status, body = self.svc.firehose(payload)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["requestId"], "req-1")
        self.assertIsInstance(body["timestamp"], int)
        self.assertNotIn("errorMessage", body)
        alerts = self.svc.alerts()
        self.assertEqual(len(alerts), 1)
        a = alerts[0]
        self.assertEqual(a["status"], "open")
        self.assertIsNone(a["status_reason"])
        self.assertEqual(a["rule"]["id"], RULE_ID)
        self.assertEqual(a["rule"]["name"], "AWS Account Discovery By Rare User")
        self.assertEqual(a["rule"]["severity"], "low")
        self.assertEqual(a["rule"]["risk_score"], 21)
        self.assertEqual(a["new_terms_fields"], ["cloud.account.id", "user.name"])
        self.assertEqual(a["new_terms"], ["111122223333", "OrgAdmin"])
        self.assertEqual(a["history_window"], "10d")
        self.assertEqual(a["event_id"], rec["eventID"])
        self.assertEqual(a["original_time"], "2026-11-20T10:00:00.000Z")
        self.assertEqual(a["fields"]["user.name"], "OrgAdmin")
        self.assertEqual(a["fields"]["source.ip"], "203.0.113.10")
        self.assertEqual(a["fields"]["event.action"], "ListAccounts")
        self.assertEqual(a["event"]["eventID"], rec["eventID"])
        self.assertIn("OrgAdmin", a["reason"])
        self.assertIn("history", a)
        self.assertEqual(len(a["id"]), 32)

    def test_the_same_pair_again_is_not_new(self):
        r1 = discovery_record(user="alice")
        r2 = discovery_record(user="alice", action="DescribeOrganization")
        self.assertEqual(self.svc.firehose(firehose_payload([b64(r1)]))[0], 200)
        self.assertEqual(self.svc.firehose(firehose_payload([b64(r2)]))[0], 200)
        self.assertEqual(len(self.svc.alerts()), 1)

    def test_same_pair_twice_in_one_delivery_alerts_once_from_the_earliest_event(self):
        late = discovery_record(user="bob", event_time="2026-11-20T10:05:00Z")
        early = discovery_record(user="bob", event_time="2026-11-20T10:01:00Z")
        status, _ = self.svc.firehose(firehose_payload([b64(late), b64(early)]))
        self.assertEqual(status, 200)
        alerts = self.svc.alerts()
        self.assertEqual(len(alerts), 1)
        self.assertEqual(alerts[0]["event_id"], early["eventID"])

    def test_a_retried_delivery_never_produces_a_second_alert(self):
        payload = firehose_payload([b64(discovery_record(user="carol"))], request_id="retry-me")
        for _ in range(3):
            status, body = self.svc.firehose(payload)
            self.assertEqual(status, 200)
            self.assertEqual(body["requestId"], "retry-me")
        self.assertEqual(len(self.svc.alerts()), 1)

    def test_a_term_gone_from_redis_alerts_again_with_its_whole_document(self):
        # The worker remembers terms it saw in Redis and sends their later
        # sightings without an alert document. When the term is gone from Redis
        # behind its back, the document is built after all and the alert is whole.
        first = discovery_record(user="dora")
        self.assertEqual(self.svc.firehose(firehose_payload([b64(first)]))[0], 200)
        deferred = self.svc.metric("newtermsd_alert_docs_deferred_total")
        late = self.svc.metric("newtermsd_alert_docs_late_total")
        again = discovery_record(user="dora", action="DescribeOrganization")
        self.assertEqual(self.svc.firehose(firehose_payload([b64(again)]))[0], 200)
        self.assertEqual(len(self.svc.alerts()), 1)  # known: nothing new
        self.assertEqual(self.svc.metric("newtermsd_alert_docs_deferred_total"), deferred + 1)
        for key in self.redis.command("KEYS", "nt:term:*"):
            self.redis.command("DEL", key)
        third = discovery_record(user="dora", action="ListRoots")
        self.assertEqual(self.svc.firehose(firehose_payload([b64(third)]))[0], 200)
        self.assertEqual(self.svc.metric("newtermsd_alert_docs_late_total"), late + 1)
        alerts = self.svc.alerts()
        self.assertEqual(len(alerts), 2)
        a = [x for x in alerts if x["event_id"] == third["eventID"]][0]
        self.assertEqual(a["new_terms"], ["111122223333", "dora"])
        self.assertEqual(a["fields"]["event.action"], "ListRoots")
        self.assertEqual(a["event"]["eventID"], third["eventID"])
        self.assertEqual(self.svc.alerts(user="dora", account="111122223333")[0]["id"], a["id"])

    def test_different_users_and_accounts_are_different_terms(self):
        recs = [discovery_record(user="u1"), discovery_record(user="u2"),
                discovery_record(user="u1", account="444455556666")]
        self.assertEqual(self.svc.firehose(firehose_payload([b64(r) for r in recs]))[0], 200)
        self.assertEqual(len(self.svc.alerts()), 3)

    def test_assumed_role_alerts_on_the_role_name(self):
        rec = discovery_record(user="DeployRole", identity="AssumedRole", action="ListRoots")
        self.assertEqual(self.svc.firehose(firehose_payload([b64(rec)]))[0], 200)
        alerts = self.svc.alerts()
        self.assertEqual(len(alerts), 1)
        self.assertEqual(alerts[0]["new_terms"], ["111122223333", "DeployRole"])

    def test_events_the_rule_excludes_raise_nothing(self):
        failed = discovery_record(user="f1", error="AccessDenied")
        internal_ip = discovery_record(user="f2", ip="organizations.amazonaws.com")
        service = discovery_record(user="f3")
        service["userIdentity"] = {"type": "AWSService", "invokedBy": "organizations.amazonaws.com"}
        console = discovery_record(user="f4")
        console["sessionCredentialFromConsole"] = "true"
        other_action = discovery_record(user="f5", action="CreateAccount")
        other_iam = discovery_record(user="f6", provider="iam.amazonaws.com", action="ListUsers")
        recs = [failed, internal_ip, service, console, other_action, other_iam]
        status, _ = self.svc.firehose(firehose_payload([b64(r) for r in recs]))
        self.assertEqual(status, 200)
        self.assertEqual(self.svc.alerts(), [])

    def test_iam_account_aliases_is_discovery_too(self):
        rec = discovery_record(user="iamuser", provider="iam.amazonaws.com", action="ListAccountAliases")
        self.assertEqual(self.svc.firehose(firehose_payload([b64(rec)]))[0], 200)
        self.assertEqual(len(self.svc.alerts()), 1)

    def test_every_record_shape_is_detected(self):
        shapes = {
            "bare": b64(discovery_record(user="s-bare")),
            "eventbridge": b64(eventbridge(discovery_record(user="s-eb"))),
            "s3_log": b64({"Records": [discovery_record(user="s-s3a"), discovery_record(user="s-s3b")]}),
            "ndjson": b64("\n".join(json.dumps(discovery_record(user=f"s-nd{i}")) for i in range(3)) + "\n"),
            "cwl": cwl_record([discovery_record(user="s-cwl1"), discovery_record(user="s-cwl2")]),
            "control": cwl_record([], message_type="CONTROL_MESSAGE"),
            "gzip_bare": base64.b64encode(gzip.compress(json.dumps(discovery_record(user="s-gz")).encode())).decode(),
        }
        status, body = self.svc.firehose(firehose_payload(list(shapes.values())))
        self.assertEqual(status, 200, body)
        users = sorted(a["new_terms"][1] for a in self.svc.alerts(limit=100))
        self.assertEqual(users, sorted(["s-bare", "s-eb", "s-s3a", "s-s3b", "s-nd0", "s-nd1", "s-nd2",
                                        "s-cwl1", "s-cwl2", "s-gz"]))
        self.assertGreaterEqual(self.svc.metric("newtermsd_records_total", shape="cwl", outcome="skipped"), 1)

    def test_gzip_request_body_is_accepted(self):
        payload = firehose_payload([b64(discovery_record(user="gz-body"))])
        status, _ = self.svc.firehose(payload, gzip_body=True)
        self.assertEqual(status, 200)
        self.assertEqual(len(self.svc.alerts()), 1)

    def test_empty_records_array_is_acknowledged(self):
        status, body = self.svc.firehose(firehose_payload([], request_id="empty"))
        self.assertEqual((status, body["requestId"]), (200, "empty"))


class RejectedRecords(ServiceTest):
    def test_bad_records_are_dead_lettered_and_the_rest_goes_on(self):
        good = discovery_record(user="survivor")
        datas = ["!!!not base64!!!", b64("this is not json"), b64({"hello": "world"}),
                 b64(good), base64.b64encode(b"\x1f\x8b\x08\x00garbage").decode()]
        status, body = self.svc.firehose(firehose_payload(datas, request_id="mixed"))
        self.assertEqual(status, 200, body)
        self.assertEqual(len(self.svc.alerts()), 1)
        s, rej = self.svc.api("GET", "/rejects")
        self.assertEqual(s, 200)
        reasons = sorted((r["record_index"], r["reason"]) for r in rej["rejects"])
        self.assertEqual([i for i, _ in reasons], [0, 1, 2, 4])
        self.assertEqual(dict(reasons)[0], "bad_base64")
        self.assertEqual(dict(reasons)[1], "not_json")
        self.assertEqual(dict(reasons)[2], "not_cloudtrail")
        for r in rej["rejects"]:
            self.assertEqual(r["delivery_id"], "mixed")
            self.assertEqual(r["route"], "firehose")
            self.assertLessEqual(len(r["prefix"]), 4 * 128)
            self.assertIn("at", r)
        self.assertGreaterEqual(self.svc.metric("newtermsd_rejected_records_total", reason="bad_base64"), 1)
        self.assertGreaterEqual(self.svc.metric("newtermsd_rejected_records_total", reason="not_json"), 1)

    def test_gzip_bomb_inside_a_record_is_rejected_not_fatal(self):
        comp = zlib.compressobj(9, zlib.DEFLATED, 31)
        chunk = b"\0" * (1 << 20)
        data = b"".join(comp.compress(chunk) for _ in range(64)) + comp.flush()
        status, _ = self.svc.firehose(firehose_payload([base64.b64encode(data).decode(),
                                                        b64(discovery_record(user="after-bomb"))]))
        self.assertEqual(status, 200)
        self.assertEqual(len(self.svc.alerts()), 1)
        s, rej = self.svc.api("GET", "/rejects")
        self.assertEqual(rej["rejects"][0]["reason"], "too_large")


class BadDeliveries(ServiceTest):
    service_args = ["--max-body", "1MiB"]

    def assert_firehose_error(self, status, body, want_status):
        self.assertEqual(status, want_status, body)
        self.assertIn("errorMessage", body)
        self.assertIn("requestId", body)
        self.assertIsInstance(body["timestamp"], int)

    def test_malformed_envelopes_get_400_with_a_precise_message(self):
        cases = [
            (b"not json at all", "JSON"),
            (b'{"timestamp": 1, "records": []}', "requestId"),
            (b'{"requestId": "x", "records": {}}', "records"),
            (b'{"requestId": "x", "records": [1]}', "records[0]"),
            (b'{"requestId": "x", "records": [{"data": 5}]}', "records[0].data"),
            (b'{"requestId": "x", "records": [{"data": "AAAA"}', ""),
            (b"[" * 100000, ""),
            (b'{"requestId": 7, "records": []}', "requestId"),
        ]
        before = self.svc.metric("newtermsd_bad_deliveries_total", route="firehose")
        for body, needle in cases:
            status, reply = self.svc.firehose(body)
            self.assertIn(status, (400, 413), (body[:40], reply))
            self.assert_firehose_error(status, reply, status)
            self.assertIn(needle, reply["errorMessage"])
        after = self.svc.metric("newtermsd_bad_deliveries_total", route="firehose")
        self.assertEqual(after - before, len(cases))

    def test_wrong_or_missing_access_key_is_401(self):
        payload = firehose_payload([b64(discovery_record(user="nobody"))], request_id="auth")
        for key in (None, "wrong", FIREHOSE_KEY + "x", ""):
            status, body = self.svc.firehose(payload, key=key)
            self.assert_firehose_error(status, body, 401)
        self.assertEqual(self.svc.alerts(), [])

    def test_oversized_body_is_413_before_it_is_read(self):
        import socket
        with socket.create_connection(("127.0.0.1", self.svc.port), timeout=10) as s:
            s.sendall(b"POST /v1/firehose HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n"
                      b"X-Amz-Firehose-Access-Key: " + FIREHOSE_KEY.encode() + b"\r\n\r\n")
            reply = s.recv(65536).decode()
        self.assertTrue(reply.startswith("HTTP/1.1 413"), reply)
        self.assertIn("errorMessage", reply)

    def test_oversized_chunked_body_is_413(self):
        big = json.dumps(firehose_payload([b64("x" * 700000), b64("y" * 700000)])).encode()
        chunks = (big[i:i + 65536] for i in range(0, len(big), 65536))
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.svc.port, timeout=30)
        conn.request("POST", "/v1/firehose", body=chunks, encode_chunked=True,
                     headers={"X-Amz-Firehose-Access-Key": FIREHOSE_KEY, "Transfer-Encoding": "chunked"})
        resp = conn.getresponse()
        body = json.loads(resp.read())
        conn.close()
        self.assert_firehose_error(resp.status, body, 413)

    def test_gzip_bomb_body_is_413(self):
        comp = zlib.compressobj(9, zlib.DEFLATED, 31)
        data = b"".join(comp.compress(b"{" + b" " * (1 << 20)) for _ in range(300)) + comp.flush()
        status, body, _ = self.svc.request("POST", "/v1/firehose", body=data, headers={
            "X-Amz-Firehose-Access-Key": FIREHOSE_KEY, "Content-Encoding": "gzip"})
        self.assertEqual(status, 413, body)

    def test_truncated_gzip_body_is_400(self):
        data = gzip.compress(json.dumps(firehose_payload([])).encode())[:-10]
        status, body, _ = self.svc.request("POST", "/v1/firehose", body=data, headers={
            "X-Amz-Firehose-Access-Key": FIREHOSE_KEY, "Content-Encoding": "gzip"})
        self.assertEqual(status, 400, body)

    def test_unsupported_encoding_is_415(self):
        status, body, _ = self.svc.request("POST", "/v1/events", body=b"{}", headers={
            "Authorization": f"Bearer {INGEST_TOKEN}", "Content-Encoding": "br"})
        self.assertEqual(status, 415)
        self.assertEqual(body["error"], "unsupported_media_type")

    def test_unknown_route_404_and_wrong_method_405(self):
        status, body = self.svc.get("/v2/nothing")
        self.assertEqual((status, body["error"]), (404, "not_found"))
        status, body, headers = self.svc.request("GET", "/v1/firehose")
        self.assertEqual(status, 405)
        self.assertEqual(headers.get("Allow"), "POST")


class EventsAndEventBridge(ServiceTest):
    def test_events_accepts_record_array_s3_file_and_ndjson(self):
        s, b = self.svc.events(discovery_record(user="e1"))
        self.assertEqual((s, b["accepted"], b["rejected"]), (200, 1, 0))
        s, b = self.svc.events([discovery_record(user="e2"), discovery_record(user="e3")])
        self.assertEqual((s, b["accepted"]), (200, 2))
        s, b = self.svc.events({"Records": [discovery_record(user="e4")]}, gzip_body=True)
        self.assertEqual((s, b["accepted"]), (200, 1))
        nd = "\n".join(json.dumps(discovery_record(user=f"e{5 + i}")) for i in range(2)) + "\nnot json\n"
        s, b = self.svc.events(nd, ctype="application/x-ndjson")
        self.assertEqual((s, b["accepted"], b["rejected"]), (200, 2, 1))
        self.assertEqual(len(self.svc.alerts()), 6)

    def test_events_body_that_is_not_cloudtrail_is_400(self):
        for body in ("garbage", '{"foo": 1}', "[1, 2]", ""):
            s, b = self.svc.events(body)
            self.assertEqual(s, 400, body)
            self.assertEqual(b["error"], "bad_request")

    def test_eventbridge_with_bearer_and_basic_auth(self):
        s, b = self.svc.events(eventbridge(discovery_record(user="eb1")), route="/v1/eventbridge")
        self.assertEqual((s, b["accepted"]), (200, 1))
        basic = base64.b64encode(f"eventbridge:{INGEST_TOKEN}".encode()).decode()
        status, body, _ = self.svc.request("POST", "/v1/eventbridge",
                                           body=json.dumps(eventbridge(discovery_record(user="eb2"))),
                                           headers={"Authorization": f"Basic {basic}",
                                                    "Content-Type": "application/json"})
        self.assertEqual(status, 200, body)
        self.assertEqual(len(self.svc.alerts()), 2)

    def test_eventbridge_auth_and_shape_errors(self):
        s, b = self.svc.events(eventbridge(discovery_record()), route="/v1/eventbridge", token="nope")
        self.assertEqual((s, b["error"]), (401, "unauthorized"))
        s, b = self.svc.events(eventbridge(discovery_record()), route="/v1/eventbridge", token=None)
        self.assertEqual(s, 401)
        s, b = self.svc.events({"detail-type": "Scheduled Event", "detail": {}}, route="/v1/eventbridge")
        self.assertEqual((s, b["error"]), (400, "bad_request"))


class Health(ServiceTest):
    def test_health_ready_and_metrics_need_no_auth(self):
        s, b = self.svc.get("/healthz")
        self.assertEqual((s, b["status"]), (200, "ok"))
        s, b = self.svc.get("/readyz")
        self.assertEqual((s, b["status"], b["rules"]), (200, "ready", 1))
        text = self.svc.metrics()
        self.assertIn("# TYPE newtermsd_http_requests_total counter", text)
        self.assertIn("process_resident_memory_bytes", text)



class BusyPoll(ServiceTest):
    """--busy-poll-us: a SCHED_IDLE thread keeps the HTTP thread's CPU busy for a window after
    each request; deliveries are unchanged, and the time it spent is in /metrics."""

    service_args = ["--busy-poll-us", "20000"]

    def idle_threads(self):
        n = 0
        for tid in os.listdir(f"/proc/{self.svc.proc.pid}/task"):
            try:
                with open(f"/proc/{self.svc.proc.pid}/task/{tid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[41 - 3]) == 5:  # field 41, policy: SCHED_IDLE
                n += 1
        return n

    def spun(self):
        return self.svc.metric("newtermsd_busy_poll_seconds") or 0.0

    def test_deliveries_alert_as_usual_and_the_spin_is_counted(self):
        self.assertEqual(self.idle_threads(), 1)
        before = self.spun()
        rec = discovery_record(user="BusyPoller", account="111122223333")
        for i in range(5):
            payload = firehose_payload([b64(eventbridge(rec)), b64(noise_record(i))])
            status, body = self.svc.firehose(payload)
            self.assertEqual(status, 200, body)
        self.assertEqual(len(self.svc.alerts()), 1)
        # (at the lowest priority the spinner may wait for a CPU on a loaded machine: poll)
        wait_for(lambda: self.spun() > before, timeout=10, what="the spinner to run")
        # It sleeps a window after the last request: two idle seconds add one 20 ms window
        # (after the /metrics request before them), not two seconds. (Generous: the spinner has
        # the lowest priority, so on a loaded machine it may wait for a CPU before it notices.)
        start = self.spun()
        time.sleep(2.0)
        self.assertLess(self.spun() - start, 1.0)


class RejectCapZero(ServiceTest):
    """--reject-cap 0 means no dead-letter list (the store used to turn 0 into 1000)."""

    service_args = ["--reject-cap", "0"]

    def test_bad_records_are_counted_but_not_kept(self):
        for i in range(3):
            status, body = self.svc.firehose(firehose_payload([b64(f"junk {i}")], request_id=f"z{i}"))
            self.assertEqual(status, 200, body)
        s, rej = self.svc.api("GET", "/rejects")
        self.assertEqual((s, rej["rejects"]), (200, []))
        self.assertEqual(self.redis.command("EXISTS", "nt:rejects"), 0)
        self.assertGreaterEqual(self.svc.metric("newtermsd_rejected_records_total", reason="not_json"), 3)


class RejectCapFromConfig(ServiceTest):
    """The cap the store applies is the configured one: config.c owns the defaults."""

    service_env = {"NEWTERMSD_REJECT_CAP": "2"}

    def test_the_dead_letter_list_is_trimmed_to_the_configured_cap(self):
        for i in range(4):
            self.svc.firehose(firehose_payload([b64(f"junk {i}")], request_id=f"c{i}"))
        self.assertEqual(self.redis.command("LLEN", "nt:rejects"), 2)
        s, rej = self.svc.api("GET", "/rejects?limit=100")
        self.assertEqual([r["delivery_id"] for r in rej["rejects"]], ["c3", "c2"])


if __name__ == "__main__":
    unittest.main()
