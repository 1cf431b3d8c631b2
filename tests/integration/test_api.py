"""REST API route by route: alerts triage, exceptions, rules, rejects, tokens."""
import time
import unittest

from harness import (READ_TOKEN, WRITE_TOKEN, ServiceTest, b64, discovery_record,
                     firehose_payload)

RULE_ID = "444c8fad-874f-4f59-b0ea-cf26cea478bd"


def ingest(svc, recs):
    status, body = svc.firehose(firehose_payload([b64(r) for r in recs]))
    assert status == 200, (status, body)


class Alerts(ServiceTest):
    def test_list_filters_and_newest_first(self):
        ingest(self.svc, [discovery_record(user="a1", account="111111111111")])
        time.sleep(0.01)
        ingest(self.svc, [discovery_record(user="a2", account="222222222222")])
        alerts = self.svc.alerts()
        self.assertEqual([a["new_terms"][1] for a in alerts], ["a2", "a1"])
        self.assertEqual([a["new_terms"][1] for a in self.svc.alerts(account="111111111111")], ["a1"])
        self.assertEqual([a["new_terms"][1] for a in self.svc.alerts(user="a2")], ["a2"])
        self.assertEqual(len(self.svc.alerts(rule_id=RULE_ID)), 2)
        self.assertEqual(self.svc.alerts(rule_id="nope"), [])
        self.assertEqual(len(self.svc.alerts(status="open")), 2)
        self.assertEqual(self.svc.alerts(status="closed"), [])
        self.assertEqual(self.svc.alerts(since="2999-01-01T00:00:00Z"), [])
        self.assertEqual(len(self.svc.alerts(until="2999-01-01T00:00:00Z")), 2)

    def test_cursor_pages_stay_correct_while_alerts_arrive(self):
        ingest(self.svc, [discovery_record(user=f"p{i}") for i in range(25)])
        seen = []
        s, page = self.svc.api("GET", "/alerts?limit=10", token=READ_TOKEN)
        self.assertEqual(s, 200)
        seen += [a["id"] for a in page["alerts"]]
        ingest(self.svc, [discovery_record(user=f"late{i}") for i in range(5)])
        while page["next_cursor"]:
            s, page = self.svc.api("GET", f"/alerts?limit=10&cursor={page['next_cursor']}", token=READ_TOKEN)
            self.assertEqual(s, 200, page)
            seen += [a["id"] for a in page["alerts"]]
        self.assertEqual(len(seen), 25)
        self.assertEqual(len(set(seen)), 25)

    def test_bad_filters_are_400_with_a_message(self):
        for q in ("limit=0", "limit=1001", "limit=x", "since=yesterday", "status=pending",
                  "cursor=%%%", "colour=red", "since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z"):
            s, b = self.svc.api("GET", "/alerts?" + q, token=READ_TOKEN)
            self.assertEqual(s, 400, q)
            self.assertEqual(b["error"], "bad_request")
            self.assertTrue(b["message"])

    def test_get_patch_and_bulk_status(self):
        ingest(self.svc, [discovery_record(user="t1"), discovery_record(user="t2")])
        ids = [a["id"] for a in self.svc.alerts()]
        s, a = self.svc.api("GET", f"/alerts/{ids[0]}", token=READ_TOKEN)
        self.assertEqual((s, a["id"]), (200, ids[0]))
        s, a = self.svc.api("PATCH", f"/alerts/{ids[0]}", {"status": "acknowledged"})
        self.assertEqual((s, a["status"]), (200, "acknowledged"))
        s, a = self.svc.api("PATCH", f"/alerts/{ids[0]}", {"status": "closed", "reason": "false_positive"})
        self.assertEqual((s, a["status"], a["status_reason"]), (200, "closed", "false_positive"))
        self.assertGreaterEqual(a["updated_at"], a["created_at"])
        self.assertEqual([x["id"] for x in self.svc.alerts(status="closed")], [ids[0]])
        s, b = self.svc.api("POST", "/alerts/status", {"ids": ids + ["0" * 32], "status": "closed",
                                                        "reason": "duplicate"})
        self.assertEqual((s, b["error"], b["not_found"]), (404, "not_found", ["0" * 32]))
        self.assertEqual(len(self.svc.alerts(status="closed")), 1)  # all or nothing
        s, b = self.svc.api("POST", "/alerts/status", {"ids": ids, "status": "closed", "reason": "duplicate"})
        self.assertEqual((s, b["updated"], b["not_found"]), (200, 2, []))
        self.assertEqual(len(self.svc.alerts(status="closed")), 2)

    def test_alert_errors(self):
        s, b = self.svc.api("GET", "/alerts/" + "f" * 32, token=READ_TOKEN)
        self.assertEqual((s, b["error"]), (404, "not_found"))
        ingest(self.svc, [discovery_record(user="e1")])
        aid = self.svc.alerts()[0]["id"]
        for body in ({"status": "done"}, {"status": "closed", "reason": "bored"}, {}, {"status": "open", "x": 1}):
            s, b = self.svc.api("PATCH", f"/alerts/{aid}", body)
            self.assertEqual(s, 400, body)
        s, b = self.svc.api("PATCH", f"/alerts/{aid}", "not json")
        self.assertEqual(s, 400)
        s, b = self.svc.api("POST", "/alerts/status", {"ids": [], "status": "closed"})
        self.assertEqual(s, 400)
        s, b = self.svc.api("DELETE", f"/alerts/{aid}")
        self.assertEqual(s, 405)


class Tokens(ServiceTest):
    def test_read_token_may_get_but_not_change(self):
        self.assertEqual(self.svc.api("GET", "/alerts", token=READ_TOKEN)[0], 200)
        s, b = self.svc.api("POST", "/exceptions", {"name": "x", "entries": []}, token=READ_TOKEN)
        self.assertEqual((s, b["error"]), (403, "forbidden"))
        s, b = self.svc.api("GET", "/alerts", token=None)
        self.assertEqual((s, b["error"]), (401, "unauthorized"))
        s, b = self.svc.api("GET", "/alerts", token="bogus")
        self.assertEqual(s, 401)
        self.assertEqual(self.svc.api("GET", "/alerts", token=WRITE_TOKEN)[0], 200)


class RotatedTokens(ServiceTest):
    service_env = {"NEWTERMSD_API_READ_TOKEN": "old-read-token,new-read-token"}

    def test_every_token_of_a_comma_separated_list_works(self):
        for t in ("old-read-token", "new-read-token"):
            self.assertEqual(self.svc.api("GET", "/alerts", token=t)[0], 200)
        self.assertEqual(self.svc.api("GET", "/alerts", token="old-read-token,new-read-token")[0], 401)


EXCEPTION = {
    "name": "Org admin from the landing zone",
    "description": "approved automation",
    "rule_id": RULE_ID,
    "entries": [{"field": "aws.cloudtrail.user_identity.arn", "operator": "included", "type": "match",
                 "value": "arn:aws:iam::111122223333:user/Automation"}],
    "comments": [{"comment": "ticket SEC-1"}],
    "tags": ["landing-zone"],
}


class Exceptions(ServiceTest):
    def test_crud_round_trip(self):
        s, created = self.svc.api("POST", "/exceptions", EXCEPTION)
        self.assertEqual(s, 201, created)
        eid = created["id"]
        for k in ("created_at", "updated_at", "entries", "name"):
            self.assertIn(k, created)
        self.assertIn("created_at", created["comments"][0])
        s, got = self.svc.api("GET", f"/exceptions/{eid}", token=READ_TOKEN)
        self.assertEqual((s, got["name"]), (200, EXCEPTION["name"]))
        s, lst = self.svc.api("GET", "/exceptions", token=READ_TOKEN)
        self.assertEqual([e["id"] for e in lst["exceptions"]], [eid])
        changed = dict(EXCEPTION, name="renamed")
        s, put = self.svc.api("PUT", f"/exceptions/{eid}", changed)
        self.assertEqual((s, put["name"], put["created_at"]), (200, "renamed", created["created_at"]))
        s, _ = self.svc.api("DELETE", f"/exceptions/{eid}")
        self.assertEqual(s, 204)
        self.assertEqual(self.svc.api("GET", f"/exceptions/{eid}", token=READ_TOKEN)[0], 404)
        self.assertEqual(self.svc.api("DELETE", f"/exceptions/{eid}")[0], 404)
        self.assertEqual(self.svc.api("PUT", f"/exceptions/{eid}", changed)[0], 404)

    def test_client_id_and_conflict(self):
        body = dict(EXCEPTION, id="allow-automation")
        self.assertEqual(self.svc.api("POST", "/exceptions", body)[0], 201)
        s, b = self.svc.api("POST", "/exceptions", body)
        self.assertEqual((s, b["error"]), (409, "conflict"))

    def test_invalid_items_get_precise_400s(self):
        bad = [
            ({"name": "x"}, "entries"),
            (dict(EXCEPTION, entries=[{"field": "no.such.field", "operator": "included", "type": "match", "value": "v"}]), "no.such.field"),
            (dict(EXCEPTION, entries=[{"field": "user.name", "operator": "maybe", "type": "match", "value": "v"}]), "operator"),
            (dict(EXCEPTION, expire_time="next week"), "expire_time"),
            (dict(EXCEPTION, nmae="typo"), "nmae"),
            (dict(EXCEPTION, id="has space"), "id"),
        ]
        for body, needle in bad:
            s, b = self.svc.api("POST", "/exceptions", body)
            self.assertEqual(s, 400, body)
            self.assertIn(needle, b["message"])

    def test_an_exception_stops_alerts_and_history(self):
        self.assertEqual(self.svc.api("POST", "/exceptions", dict(EXCEPTION, id="auto"))[0], 201)
        rec = discovery_record(user="Automation")
        ingest(self.svc, [rec])
        self.assertEqual(self.svc.alerts(), [])
        self.assertGreaterEqual(self.svc.metric("newtermsd_exception_hits_total"), 1)
        # excepted events do not enter history: once the exception is gone the pair is new
        self.assertEqual(self.svc.api("DELETE", "/exceptions/auto")[0], 204)
        ingest(self.svc, [discovery_record(user="Automation")])
        self.assertEqual(len(self.svc.alerts()), 1)

    def test_an_expired_exception_no_longer_applies(self):
        body = dict(EXCEPTION, id="expired", expire_time="2020-01-01T00:00:00Z")
        self.assertEqual(self.svc.api("POST", "/exceptions", body)[0], 201)
        ingest(self.svc, [discovery_record(user="Automation")])
        self.assertEqual(len(self.svc.alerts()), 1)


class RulesAndRejects(ServiceTest):
    def test_rules_show_lint_and_counters(self):
        ingest(self.svc, [discovery_record(user="r1")])
        s, b = self.svc.api("GET", "/rules", token=READ_TOKEN)
        self.assertEqual(s, 200)
        self.assertEqual(len(b["rules"]), 1)
        r = b["rules"][0]
        self.assertEqual(r["rule_id"], RULE_ID)
        self.assertEqual(r["new_terms_fields"], ["cloud.account.id", "user.name"])
        self.assertEqual(r["history_window"], "10d")
        self.assertIsInstance(r["warnings"], list)
        self.assertEqual(r["counters"]["alerts"], 1)
        self.assertEqual(r["counters"]["events_matched"], 1)
        s, one = self.svc.api("GET", f"/rules/{RULE_ID}", token=READ_TOKEN)
        self.assertEqual((s, one["rule_id"]), (200, RULE_ID))
        self.assertEqual(self.svc.api("GET", "/rules/nope", token=READ_TOKEN)[0], 404)

    def test_rejects_list_newest_first_with_limit(self):
        for i in range(3):
            self.svc.firehose(firehose_payload([b64(f"junk {i}")], request_id=f"d{i}"))
        s, b = self.svc.api("GET", "/rejects?limit=2", token=READ_TOKEN)
        self.assertEqual(s, 200)
        self.assertEqual([r["delivery_id"] for r in b["rejects"]], ["d2", "d1"])
        self.assertEqual(self.svc.api("GET", "/rejects?limit=0", token=READ_TOKEN)[0], 400)


if __name__ == "__main__":
    unittest.main()
