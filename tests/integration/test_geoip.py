"""IP enrichment end to end: --geoip-db / NEWTERMSD_GEOIP_DB with real .mmdb files.

The databases are tests/data/geoip/test-asn.mmdb and test-city.mmdb, written by
tests/tools/mmdb_writer.py (203.0.113.0/24 is AS64500 "Example Cloud Networks"
in Seattle, 198.51.100.0/24 AS64501 "Other Transit Ltd" in Germany,
2001:db8:1::/48 AS64502 "Example IPv6 Hosting" in Tokyo). The rule under test,
tests/data/geoip/rules/account_discovery_from_new_asn.toml, is a new_terms rule
on (cloud.account.id, source.as.organization.name).
"""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import BIN, DATA, READ_TOKEN, Redis, Service, ServiceTest, b64, discovery_record, firehose_payload

GEO = os.path.join(DATA, "geoip")
ASN_DB = os.path.join(GEO, "test-asn.mmdb")
CITY_DB = os.path.join(GEO, "test-city.mmdb")
GEO_RULES = os.path.join(GEO, "rules")
RULE_ID = "5d0c1b8e-4a7f-4b52-9c3e-0e6f2a9b7c11"
RULE_NAME = "AWS Account Discovery From a New Autonomous System"
DB_ENV = {"NEWTERMSD_GEOIP_DB": f"{ASN_DB},{CITY_DB}"}


def run(*args, env=None):
    e = dict(os.environ)
    e.pop("NEWTERMSD_GEOIP_DB", None)
    e.update(env or {})
    return subprocess.run([BIN, *args], capture_output=True, text=True, env=e, timeout=120)


def records():
    """The sequence both the service and replay see, one second apart."""
    ips = [
        "203.0.113.10",        # AS64500: new → alert
        "203.0.113.99",        # same AS: no alert
        "198.51.100.5",        # AS64501: new → alert
        "10.0.0.5",            # private: field missing, no alert
        "ec2.amazonaws.com",   # not an IP: no alert
        "2001:db8:1::7",       # AS64502 over IPv6: new → alert
        "::ffff:198.51.100.9", # IPv4-mapped, AS64501 again: no alert
    ]
    return [discovery_record(user="OrgAdmin", ip=ip, event_id=f"00000000-0000-4000-8000-00000000000{i}",
                             event_time=f"2026-11-20T10:00:0{i}Z")
            for i, ip in enumerate(ips)]


class WithDatabase(ServiceTest):
    service_rules = GEO_RULES
    service_env = DB_ENV

    def send(self, recs):
        status, body = self.svc.firehose(firehose_payload([b64(r) for r in recs]))
        self.assertEqual(status, 200, body)

    def test_a_rule_on_the_as_organization_alerts_once_per_new_as(self):
        self.send(records())
        alerts = self.svc.alerts()
        terms = sorted(a["new_terms"][1] for a in alerts)
        self.assertEqual(terms, ["Example Cloud Networks", "Example IPv6 Hosting", "Other Transit Ltd"])
        first = next(a for a in alerts if a["new_terms"][1] == "Example Cloud Networks")
        f = first["fields"]
        self.assertEqual(f["source.ip"], "203.0.113.10")
        self.assertEqual(f["source.as.number"], 64500)
        self.assertEqual(f["source.as.organization.name"], "Example Cloud Networks")
        self.assertEqual(f["source.geo.country_iso_code"], "US")
        self.assertEqual(f["source.geo.city_name"], "Seattle")
        self.assertEqual(f["source.geo.region_name"], "Washington")
        self.assertAlmostEqual(f["source.geo.location"]["lat"], 47.6062)
        self.assertAlmostEqual(f["source.geo.location"]["lon"], -122.3321)
        v6 = next(a for a in alerts if a["new_terms"][1] == "Example IPv6 Hosting")
        self.assertEqual(v6["fields"]["source.geo.country_name"], "Japan")
        de = next(a for a in alerts if a["new_terms"][1] == "Other Transit Ltd")
        self.assertNotIn("source.geo.city_name", de["fields"])  # the City file has a country only
        self.assertEqual(de["fields"]["source.geo.country_iso_code"], "DE")

    def test_an_exception_on_the_as_number_drops_the_event(self):
        exc = {"name": "our VPN provider", "rule_id": RULE_ID,
               "entries": [{"field": "source.as.number", "operator": "included", "type": "match",
                            "value": "64502"}]}
        s, created = self.svc.api("POST", "/exceptions", exc)
        self.assertEqual(s, 201, created)
        try:
            self.send(records())
            terms = sorted(a["new_terms"][1] for a in self.svc.alerts())
            self.assertEqual(terms, ["Example Cloud Networks", "Other Transit Ltd"])
        finally:
            self.svc.api("DELETE", f"/exceptions/{created['id']}")

    def test_the_rule_has_no_enrichment_warning_and_the_files_are_logged(self):
        s, body = self.svc.api("GET", "/rules", token=READ_TOKEN)
        self.assertEqual(s, 200, body)
        rule = next(r for r in body["rules"] if r["rule_id"] == RULE_ID)
        self.assertEqual(rule["warnings"], [])
        logs = self.svc.logs()
        self.assertIn("GeoIP database opened", logs)
        self.assertIn("GeoLite2-ASN", logs)
        self.assertNotIn("geoip_missing", logs)

    def test_replay_gives_the_same_alerts(self):
        self.send(records())
        live = self.svc.alerts()
        d = tempfile.mkdtemp()
        try:
            path = os.path.join(d, "recs.json")
            with open(path, "w") as f:
                json.dump({"Records": records()}, f)
            p = run("replay", "--rules", GEO_RULES, path, env=DB_ENV)
            self.assertEqual(p.returncode, 0, p.stderr)
            replayed = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
        finally:
            shutil.rmtree(d)
        self.assertEqual(sorted(a["id"] for a in replayed), sorted(a["id"] for a in live))
        self.assertEqual(sorted(a["new_terms"][1] for a in replayed),
                         sorted(a["new_terms"][1] for a in live))
        for a in replayed:
            self.assertIn("source.as.number", a["fields"])


class WithoutDatabase(unittest.TestCase):
    def test_startup_names_the_rules_that_need_a_database_and_nothing_alerts(self):
        redis = Redis()
        svc = Service(redis.url, rules=GEO_RULES, extra_env={"NEWTERMSD_GEOIP_DB": None})
        try:
            status, _ = svc.firehose(firehose_payload([b64(r) for r in records()]))
            self.assertEqual(status, 200)
            self.assertEqual(svc.alerts(), [])
            warning = [json.loads(line) for line in svc.logs().splitlines()
                       if '"geoip_missing"' in line]
            self.assertEqual(len(warning), 1, svc.logs())
            self.assertIn(RULE_NAME, warning[0]["rules"])
            self.assertEqual(warning[0]["level"], "warn")
            self.assertEqual(warning[0]["count"], 1)
            self.assertIn("--geoip-db", warning[0]["msg"])
        finally:
            svc.close()
            redis.close()

    def test_check_rules_warns_without_a_database_and_not_with_one(self):
        p = run("check-rules", GEO_RULES)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("'source.as.organization.name' comes from IP enrichment", p.stdout)
        self.assertIn("1 rules loaded, 0 errors, 2 warnings", p.stdout)
        p = run("check-rules", "--geoip-db", ASN_DB, GEO_RULES)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("1 rules loaded, 0 errors, 0 warnings", p.stdout)

    def test_a_database_that_cannot_be_opened_stops_startup(self):
        p = run("replay", "--rules", GEO_RULES, "--geoip-db", os.path.join(GEO, "missing.mmdb"), GEO)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("missing.mmdb", p.stderr)
        p = run("check-rules", "--geoip-db", os.path.join(GEO, "SOURCES.txt"), GEO_RULES)
        self.assertEqual(p.returncode, 1)
        self.assertIn("SOURCES.txt", p.stderr)


if __name__ == "__main__":
    unittest.main()
