"""Two newtermsd processes on one Redis: no duplicate alerts, exceptions everywhere within a second."""
import threading
import time
import unittest

from harness import Redis, Service, b64, discovery_record, firehose_payload, wait_for

RULE_ID = "444c8fad-874f-4f59-b0ea-cf26cea478bd"


class TwoReplicas(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = Redis()
        cls.a = Service(cls.redis.url)
        cls.b = Service(cls.redis.url)

    @classmethod
    def tearDownClass(cls):
        ra, rb = cls.a.close(), cls.b.close()
        cls.redis.close()
        assert ra in (0, None) and rb in (0, None), (ra, rb)

    def setUp(self):
        self.redis.command("FLUSHALL")

    def test_the_same_delivery_sent_to_both_at_once_alerts_once(self):
        for round_ in range(10):
            payload = firehose_payload([b64(discovery_record(user=f"race{round_}-{i}")) for i in range(20)])
            results = []
            barrier = threading.Barrier(2)

            def send(svc):
                barrier.wait()
                results.append(svc.firehose(payload)[0])

            threads = [threading.Thread(target=send, args=(s,)) for s in (self.a, self.b)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(results, [200, 200])
        alerts = self.a.alerts(limit=1000)
        self.assertEqual(len(alerts), 200)
        self.assertEqual(len({a["id"] for a in alerts}), 200)
        self.assertEqual(len({tuple(a["new_terms"]) for a in alerts}), 200)

    def test_an_exception_made_on_one_replica_applies_on_the_other_within_a_second(self):
        exc = {"id": "everywhere", "name": "x", "rule_id": RULE_ID,
               "entries": [{"field": "user.name", "operator": "included", "type": "match", "value": "Quiet"}]}
        t0 = time.time()
        self.assertEqual(self.a.api("POST", "/exceptions", exc)[0], 201)
        wait_for(lambda: self.b.metric("newtermsd_exceptions_loaded") == 1, timeout=1.0,
                 what="exception loaded on replica b")
        self.assertLess(time.time() - t0, 1.0)
        before = self.b.metric("newtermsd_exception_hits_total")
        self.assertEqual(self.b.firehose(firehose_payload([b64(discovery_record(user="Quiet"))]))[0], 200)
        self.assertEqual(self.b.metric("newtermsd_exception_hits_total"), before + 1)
        self.assertEqual(self.a.alerts(), [])
        # and deleting it on b lifts it on a
        self.assertEqual(self.b.api("DELETE", "/exceptions/everywhere")[0], 204)
        wait_for(lambda: self.a.metric("newtermsd_exceptions_loaded") == 0, timeout=1.0,
                 what="exception removed on replica a")
        self.a.firehose(firehose_payload([b64(discovery_record(user="Quiet"))]))
        self.assertEqual(len(self.b.alerts()), 1)

    def test_alerts_and_triage_are_shared(self):
        self.a.firehose(firehose_payload([b64(discovery_record(user="shared"))]))
        aid = self.b.alerts()[0]["id"]
        s, doc = self.b.api("PATCH", f"/alerts/{aid}", {"status": "acknowledged"})
        self.assertEqual(s, 200)
        self.assertEqual(self.a.alerts()[0]["status"], "acknowledged")


if __name__ == "__main__":
    unittest.main()
