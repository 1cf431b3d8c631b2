"""The offline commands: check-rules, replay, backfill (with a real Redis)."""
import gzip
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import BIN, DATA, RULES, Redis, Service, b64, discovery_record, firehose_payload

SEED = os.path.join(DATA, "rules", "seed_upstream.toml")


def run(*args, env=None, input_=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([BIN, *args], capture_output=True, text=True, env=e, input=input_, timeout=120)


class CheckRules(unittest.TestCase):
    def test_shipped_rules_load_clean(self):
        p = run("check-rules", RULES)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("1 rules loaded, 0 errors, 0 warnings", p.stdout)

    def test_upstream_typo_is_a_warning_with_a_suggestion(self):
        d = tempfile.mkdtemp()
        try:
            shutil.copy(SEED, d)
            p = run("check-rules", d)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertIn("DescribeOrgnanizationalUnit", p.stdout)
            self.assertIn("did you mean DescribeOrganizationalUnit?", p.stdout)
        finally:
            shutil.rmtree(d)

    def test_errors_exit_non_zero_with_line_and_column(self):
        d = tempfile.mkdtemp()
        try:
            with open(os.path.join(d, "broken.toml"), "w") as f:
                f.write('[rule]\nname = "x\n')
            with open(os.path.join(d, "short_window.toml"), "w") as f:
                text = open(os.path.join(RULES, "aws_account_discovery_by_rare_user.toml")).read()
                f.write(text.replace('value = "now-10d"', 'value = "now-5m"'))
            p = run("check-rules", d)
            self.assertEqual(p.returncode, 1)
            self.assertIn("line 2", p.stdout)
            self.assertIn("history window", p.stdout)
        finally:
            shutil.rmtree(d)


class Replay(unittest.TestCase):
    def write(self, name, data, gz=False):
        path = os.path.join(self.dir, name)
        raw = data if isinstance(data, bytes) else json.dumps(data).encode()
        with open(path, "wb") as f:
            f.write(gzip.compress(raw) if gz else raw)
        return path

    def setUp(self):
        self.dir = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.dir)

    def replay(self, *paths):
        p = run("replay", "--rules", RULES, *paths)
        self.assertEqual(p.returncode, 0, p.stderr)
        return [json.loads(line) for line in p.stdout.splitlines()], p.stderr

    def test_a_broken_gzip_file_is_named_once_with_the_whole_reason(self):
        # read_whole used to format err->msg into itself (undefined behaviour:
        # the path printed twice, the reason cut)
        path = os.path.join(self.dir, "cut.json.gz")
        whole = gzip.compress(json.dumps({"Records": [discovery_record()]}).encode())
        with open(path, "wb") as f:
            f.write(whole[: len(whole) // 2])
        p = run("replay", "--rules", RULES, path)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(f"error: {path}: ", p.stderr)
        self.assertIn("truncated gzip stream\n", p.stderr)
        self.assertEqual(p.stderr.count(path), 1, p.stderr)

    def test_window_edges_on_event_time(self):
        recs = [
            discovery_record(user="edge-a", event_time="2026-11-01T00:00:00Z"),
            discovery_record(user="edge-a", event_time="2026-11-10T23:59:00Z"),  # 9d23h59m: not new
            discovery_record(user="edge-b", event_time="2026-11-01T00:00:00Z"),
            discovery_record(user="edge-b", event_time="2026-11-11T00:01:00Z"),  # 10d+1m: new
        ]
        alerts, summary = self.replay(self.write("edges.json", {"Records": recs}))
        got = sorted((a["new_terms"][1], a["original_time"]) for a in alerts)
        self.assertEqual(got, [("edge-a", "2026-11-01T00:00:00.000Z"),
                               ("edge-b", "2026-11-01T00:00:00.000Z"),
                               ("edge-b", "2026-11-11T00:01:00.000Z")])
        self.assertIn("3 alerts", summary)

    def test_every_file_shape_and_gzip_and_folders(self):
        sub = os.path.join(self.dir, "AWSLogs", "111122223333")
        os.makedirs(sub)
        self.write("AWSLogs/111122223333/a.json.gz", {"Records": [discovery_record(user="f-s3")]}, gz=True)
        self.write("bare.json", discovery_record(user="f-bare"))
        self.write("nd.ndjson", ("\n".join(json.dumps(discovery_record(user=f"f-nd{i}")) for i in range(2))).encode())
        self.write("arr.json", [discovery_record(user="f-arr")])
        alerts, summary = self.replay(self.dir)
        self.assertEqual(sorted(a["new_terms"][1] for a in alerts), ["f-arr", "f-bare", "f-nd0", "f-nd1", "f-s3"])
        for a in alerts:
            self.assertEqual(a["status"], "open")

    def test_saved_firehose_deliveries_replay_like_the_service(self):
        from harness import cwl_record, eventbridge
        payload = firehose_payload([b64(eventbridge(discovery_record(user="fh-eb"))),
                                    cwl_record([discovery_record(user="fh-cwl")])])
        alerts, _ = self.replay(self.write("delivery.json", payload))
        self.assertEqual(sorted(a["new_terms"][1] for a in alerts), ["fh-cwl", "fh-eb"])

    def test_replay_matches_the_service_alert_for_alert(self):
        recs = [discovery_record(user=u, event_time="2026-11-20T10:00:00Z") for u in ("m1", "m2", "m1")]
        alerts, _ = self.replay(self.write("x.json", {"Records": recs}))
        redis = Redis()
        svc = Service(redis.url)
        try:
            svc.firehose(firehose_payload([b64(r) for r in recs]))
            live = svc.alerts()
        finally:
            svc.close()
            redis.close()
        self.assertEqual(sorted(a["id"] for a in alerts), sorted(a["id"] for a in live))

    def test_bad_input_is_reported_not_fatal(self):
        self.write("junk.json", b"not json")
        self.write("good.json", discovery_record(user="g"))
        alerts, summary = self.replay(self.dir)
        self.assertEqual(len(alerts), 1)
        self.assertIn("junk.json", summary)


class Backfill(unittest.TestCase):
    def test_backfilled_history_suppresses_alerts_and_never_alerts_itself(self):
        import datetime
        now = datetime.datetime.now(datetime.timezone.utc)
        recent = (now - datetime.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
        old = (now - datetime.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
        d = tempfile.mkdtemp()
        redis = Redis()
        try:
            with open(os.path.join(d, "log.json.gz"), "wb") as f:
                f.write(gzip.compress(json.dumps({"Records": [
                    discovery_record(user="known", event_time=recent),
                    discovery_record(user="ancient", event_time=old)]}).encode()))
            p = run("backfill", "--redis", redis.url, "--rules", RULES, d)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("1/1 files", p.stderr)
            keys = redis.command("KEYS", "nt:term:*")
            self.assertEqual(len(keys), 1)
            ttl = redis.command("PTTL", keys[0])
            self.assertGreater(ttl, 7.9 * 86400 * 1000)
            self.assertLess(ttl, 8.1 * 86400 * 1000)
            svc = Service(redis.url)
            try:
                self.assertEqual(svc.alerts(), [])
                svc.firehose(firehose_payload([b64(discovery_record(user="known")),
                                               b64(discovery_record(user="ancient"))]))
                alerts = svc.alerts()
                self.assertEqual([a["new_terms"][1] for a in alerts], ["ancient"])
                self.assertIn("history", alerts[0])
            finally:
                svc.close()
            p = run("backfill", "--redis", "redis://127.0.0.1:1/0", "--rules", RULES, d)
            self.assertNotEqual(p.returncode, 0)
        finally:
            redis.close()
            shutil.rmtree(d)


class LearningPeriod(unittest.TestCase):
    def test_sightings_are_recorded_but_nothing_alerts_while_learning(self):
        redis = Redis()
        svc = Service(redis.url, extra_env={"NEWTERMSD_LEARNING_PERIOD": "1h"})
        try:
            from harness import wait_for
            wait_for(lambda: svc.api("GET", "/rules")[1]["rules"][0]["learning_until"] is not None,
                     what="learning period known")
            svc.firehose(firehose_payload([b64(discovery_record(user="learner"))]))
            self.assertEqual(svc.alerts(), [])
            self.assertEqual(len(redis.command("KEYS", "nt:term:*")), 1)
        finally:
            svc.close()
            redis.close()



class ConfigTable(unittest.TestCase):
    """README's option table is the binary's (scripts/gen-config-table.sh writes it)."""

    def test_readme_shows_the_option_table_the_binary_prints(self):
        p = run("config-table", env={"NEWTERMSD_WORKERS": "not a number"})  # reads no environment
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.splitlines()
        self.assertEqual(lines[0], "| flag | environment | default | meaning |")
        self.assertTrue(any(line.startswith("| `--reject-cap N` | `NEWTERMSD_REJECT_CAP` |") for line in lines))
        readme = open(os.path.join(DATA, "..", "..", "README.md"), encoding="utf-8").read()
        begin, end = "<!-- config-table:begin -->\n", "\n<!-- config-table:end -->"
        self.assertEqual(readme.count(begin), 1)
        table = readme.split(begin)[1].split(end)[0]
        self.assertEqual(table, p.stdout.rstrip("\n"),
                         "README's option table is stale: run scripts/gen-config-table.sh")

    def test_every_option_of_help_is_in_the_table(self):
        table = run("config-table").stdout
        usage = run("--help").stdout
        flags = [w for w in usage.split() if w.startswith("--") and len(w) > 2 and w != "--help"]
        self.assertGreater(len(flags), 10)
        for flag in flags:
            self.assertIn(f"`{flag}", table)


if __name__ == "__main__":
    unittest.main()
