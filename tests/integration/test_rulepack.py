"""The AWS rule pack: Elastic's 85 query and 5 threshold rules and alert
suppression, through `replay` (event time) and through the service (arrival
time), against the corpus in tests/data/rulepack/ (manifest.json says what each
record must and must not raise; tests/tools/gen_rulepack.py wrote it once from
each rule's KQL).
"""
import json
import os
import subprocess
import unittest

from harness import BIN, DATA, RULES, READ_TOKEN, ServiceTest

PACK = os.path.join(RULES, "elastic-aws")
CORPUS = os.path.join(DATA, "rulepack")
with open(os.path.join(CORPUS, "manifest.json")) as f:
    MANIFEST = json.load(f)


def replay(*paths):
    p = subprocess.run([BIN, "replay", "--rules", PACK, *paths], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


def records(rel):
    with open(os.path.join(CORPUS, rel)) as f:
        return json.load(f)["Records"]


class CheckRules(unittest.TestCase):
    def test_all_139_rules_load_without_errors(self):
        p = subprocess.run([BIN, "check-rules", PACK], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        last = p.stdout.strip().splitlines()[-1]
        self.assertTrue(last.startswith("139 rules loaded, 0 errors, "), last)
        # the lint still names the fields only enrichment or entity tables give
        for field in ("entity.target.id", "related.entity"):
            self.assertIn(f"'{field}' is not produced", p.stdout)
        # and, with no GeoIP database configured, the ones only IP enrichment gives
        for field in ("source.as.organization.name", "source.as.number"):
            self.assertIn(f"'{field}' comes from IP enrichment and no GeoIP database", p.stdout)
        geo = os.path.join(DATA, "geoip")
        with_db = subprocess.run([BIN, "check-rules", "--geoip-db", os.path.join(geo, "test-asn.mmdb"),
                                  PACK], capture_output=True, text=True, timeout=60)
        self.assertEqual(with_db.returncode, 0, with_db.stdout + with_db.stderr)
        self.assertNotIn("comes from IP enrichment", with_db.stdout)
        self.assertIn("'entity.target.id' is not produced", with_db.stdout)


class Replay(unittest.TestCase):
    def test_every_query_rule_alerts_on_its_positive_and_never_on_its_near_misses(self):
        alerts = replay(os.path.join(CORPUS, "query"))
        got = {(a["rule"]["id"], a["event_id"]) for a in alerts}
        checked = positives = 0
        for rule in MANIFEST["query"]:
            for case in rule["cases"]:
                self.assertEqual((rule["rule_id"], case["event_id"]) in got, case["alert"],
                                 f"{rule['file']}: {case['why']}")
                checked += 1
                positives += case["alert"]
        self.assertEqual(len(MANIFEST["query"]), 85)
        self.assertEqual(positives, 84)  # one rule needs source.as.* (enrichment)
        self.assertGreaterEqual(checked, 85 + 84 * 2 - 5)
        for a in alerts:
            if a["rule"]["type"] == "query":
                self.assertNotIn("new_terms", a)
                self.assertNotIn("history", a)

    def test_threshold_bursts_just_under_stay_quiet_and_just_over_alert_once(self):
        alerts = replay(os.path.join(CORPUS, "threshold"))
        for rule in MANIFEST["threshold"]:
            mine = [a for a in alerts if a["rule"]["id"] == rule["rule_id"]]
            want = [c for c in rule["cases"] if c["alert"]]
            self.assertEqual(len(mine), 1, rule["file"])
            self.assertEqual(len(want), 1)
            a = mine[0]
            self.assertEqual(a["event_id"], want[0]["event_id"], rule["file"])
            self.assertEqual(a["rule"]["type"], "threshold")
            tr = a["threshold_result"]
            n_over = sum(1 for c in rule["cases"] if c["group"] == "over")
            self.assertEqual(tr["count"], n_over)
            self.assertEqual([t["field"] for t in tr["terms"]], rule["field"])
            if rule["cardinality"]:
                self.assertEqual(tr["cardinality"][0]["field"], rule["cardinality"][0]["field"])
                self.assertEqual(tr["cardinality"][0]["value"], rule["cardinality"][0]["value"])
            over = [r for r in records(rule["file"]) if r["eventID"] in
                    {c["event_id"] for c in rule["cases"] if c["group"] == "over"}]
            self.assertEqual(tr["first_event_time"][:19], min(r["eventTime"] for r in over)[:19])
            self.assertEqual(tr["last_event_time"][:19], max(r["eventTime"] for r in over)[:19])

    def test_a_burst_spread_wider_than_the_look_back_does_not_alert_on_event_time(self):
        alerts = replay(os.path.join(CORPUS, "threshold_window"))
        ids = {r["rule_id"] for r in MANIFEST["threshold"]}
        self.assertEqual([a for a in alerts if a["rule"]["id"] in ids], [])

    def test_the_next_threshold_alert_needs_value_new_events(self):
        rule = next(r for r in MANIFEST["threshold"] if r["value"] == 10)  # root brute force
        over = [r for r in records(rule["file"]) if r["userIdentity"]["accountId"] == "111122220002"]
        self.assertEqual(len(over), 10)
        with_more = over + [dict(r, eventID=r["eventID"][:-4] + "ffff") for r in over[:9]]
        path = os.path.join(self._tmp(), "more.json")
        with open(path, "w") as f:
            json.dump({"Records": with_more}, f)
        mine = [a for a in replay(path) if a["rule"]["id"] == rule["rule_id"]]
        self.assertEqual(len(mine), 1, "9 more events after an alert are not a second alert")
        with open(path, "w") as f:
            json.dump({"Records": with_more + [dict(over[9], eventID=over[9]["eventID"][:-4] + "ffff")]}, f)
        mine = [a for a in replay(path) if a["rule"]["id"] == rule["rule_id"]]
        self.assertEqual(len(mine), 2, "the 10th new event is")
        # the same file twice (a retried delivery) changes nothing
        mine = [a for a in replay(path, path) if a["rule"]["id"] == rule["rule_id"]]
        self.assertEqual(len(mine), 2)

    def test_suppression_counts_later_events_on_the_first_alert(self):
        s = MANIFEST["suppression"]
        alerts = [a for a in replay(os.path.join(CORPUS, s["file"])) if a["rule"]["id"] == s["rule_id"]]
        self.assertEqual(sorted(a["event_id"] for a in alerts), sorted(s["alerts"]))
        for a in alerts:
            self.assertEqual(a["suppression"]["docs_count"], s["docs_count"][a["event_id"]], a["event_id"])
            self.assertEqual([t["field"] for t in a["suppression"]["terms"]], ["source.ip", "cloud.account.id"])
            self.assertEqual(a["suppression"]["duration"], "5m")
            self.assertLessEqual(a["suppression"]["start"], a["suppression"]["end"])

    def _tmp(self):
        import tempfile
        d = tempfile.mkdtemp(prefix="nt-rulepack-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", d]))
        return d


class ServiceBase(ServiceTest):
    service_rules = PACK

    def post(self, recs):
        s, b = self.svc.events({"Records": recs})
        self.assertEqual(s, 200, b)
        return b

    def all_alerts(self, **params):
        out, cursor = [], None
        for _ in range(50):
            q = dict(params, limit=1000)
            if cursor:
                q = {"cursor": cursor}
            s, b = self.svc.api("GET", "/alerts?" + "&".join(f"{k}={v}" for k, v in q.items()),
                                token=READ_TOKEN)
            self.assertEqual(s, 200, b)
            out += b["alerts"]
            cursor = b["next_cursor"]
            if not cursor:
                return out
        self.fail("too many pages")


class ThresholdDocuments(ServiceBase):
    """A service of its own: its term cache knows nothing, so every late
    document counted here is a threshold's."""

    def test_only_the_sighting_that_reaches_a_threshold_gets_its_document_built(self):
        deferred = self.svc.metric("newtermsd_alert_docs_deferred_total")
        late = self.svc.metric("newtermsd_alert_docs_late_total")
        for rule in MANIFEST["threshold"]:
            self.post(records(rule["file"]))
        events = sum(len(rule["cases"]) for rule in MANIFEST["threshold"])
        self.assertGreaterEqual(self.svc.metric("newtermsd_alert_docs_deferred_total") - deferred,
                                events)
        self.assertEqual(self.svc.metric("newtermsd_alert_docs_late_total") - late,
                         len(MANIFEST["threshold"]))
        for rule in MANIFEST["threshold"]:
            mine = self.all_alerts(rule_id=rule["rule_id"])
            self.assertEqual([a["event_id"] for a in mine],
                             [c["event_id"] for c in rule["cases"] if c["alert"]], rule["file"])
            over = sum(1 for c in rule["cases"] if c["group"] == "over")
            self.assertEqual(mine[0]["threshold_result"]["count"], over, rule["file"])


class ThroughTheService(ServiceBase):
    def test_query_rules_through_the_service(self):
        for rule in MANIFEST["query"]:
            self.post(records(rule["file"]))
        got = {(a["rule"]["id"], a["event_id"]) for a in self.all_alerts()}
        for rule in MANIFEST["query"]:
            for case in rule["cases"]:
                self.assertEqual((rule["rule_id"], case["event_id"]) in got, case["alert"],
                                 f"{rule['file']}: {case['why']}")
        # a retried delivery raises nothing new
        before = len(got)
        for rule in MANIFEST["query"][:10]:
            self.post(records(rule["file"]))
        self.assertEqual(len(self.all_alerts()), before)

    def test_threshold_rules_through_the_service_and_their_live_group_counts(self):
        for rule in MANIFEST["threshold"]:
            self.post(records(rule["file"]))
        s, b = self.svc.api("GET", "/rules", token=READ_TOKEN)
        self.assertEqual(s, 200, b)
        by_id = {r["rule_id"]: r for r in b["rules"]}
        self.assertEqual(len(by_id), 139)
        self.assertEqual(sum(r["type"] == "query" for r in by_id.values()), 85)
        for rule in MANIFEST["threshold"]:
            mine = self.all_alerts(rule_id=rule["rule_id"])
            want = [c["event_id"] for c in rule["cases"] if c["alert"]]
            self.assertEqual([a["event_id"] for a in mine], want, rule["file"])
            tr = mine[0]["threshold_result"]
            self.assertEqual(tr["count"], sum(1 for c in rule["cases"] if c["group"] == "over"))
            self.assertIn("first_event_time", tr)
            r = by_id[rule["rule_id"]]
            self.assertEqual(r["type"], "threshold")
            self.assertEqual(r["threshold"]["value"], rule["value"])
            # the "under" group is still counting; "over" went into its alert
            self.assertEqual(r["counters"]["threshold_groups"], 1, rule["file"])
        # the same deliveries again: every event is known, nothing new
        for rule in MANIFEST["threshold"]:
            self.post(records(rule["file"]))
        for rule in MANIFEST["threshold"]:
            self.assertEqual(len(self.all_alerts(rule_id=rule["rule_id"])), 1)

    def test_suppression_through_the_service(self):
        s = MANIFEST["suppression"]
        recs = records(s["file"])
        a_ip = recs[0]["sourceIPAddress"]
        group_a = [r for r in recs if r["sourceIPAddress"] == a_ip]
        self.assertEqual(len(group_a), 4)
        self.post(group_a[:3])
        mine = self.all_alerts(rule_id=s["rule_id"])
        self.assertEqual(len(mine), 1)
        self.assertEqual(mine[0]["event_id"], group_a[0]["eventID"])
        self.assertEqual(mine[0]["suppression"]["docs_count"], 2)
        # a retry of the same delivery is not counted twice
        self.post(group_a[:3])
        st, doc = self.svc.api("GET", "/alerts/" + mine[0]["id"], token=READ_TOKEN)
        self.assertEqual(st, 200)
        self.assertEqual(doc["suppression"]["docs_count"], 2)
        # closing the alert restarts suppression: the next event alerts
        st, _ = self.svc.api("PATCH", "/alerts/" + mine[0]["id"], {"status": "closed", "reason": "other"})
        self.assertEqual(st, 200)
        self.post([group_a[3]])
        mine = self.all_alerts(rule_id=s["rule_id"])
        self.assertEqual(sorted(a["event_id"] for a in mine),
                         sorted([group_a[0]["eventID"], group_a[3]["eventID"]]))
        # another source.ip is another group
        self.post([r for r in recs if r["sourceIPAddress"] not in (a_ip,) and r["sourceIPAddress"][0].isdigit()])
        self.assertEqual(len(self.all_alerts(rule_id=s["rule_id"])), 3)


if __name__ == "__main__":
    unittest.main()
