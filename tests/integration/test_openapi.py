"""Walk every operation of api/openapi.yaml against the running server."""
import os
import subprocess
import sys
import tempfile
import unittest

from harness import FIREHOSE_KEY, INGEST_TOKEN, READ_TOKEN, WRITE_TOKEN, Redis, Service

WALKER = os.path.join(os.path.dirname(__file__), "openapi_walk.py")


class OpenApiWalk(unittest.TestCase):
    def test_every_documented_operation_behaves_as_documented(self):
        redis = Redis()
        # one webhook output, so the /api/v1/outputs/{name}/... operations have a name; its
        # receiver is a closed loopback port (deliveries are retried, nothing leaves the host)
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
            f.write('[[output]]\nname = "walk-hook"\ntype = "webhook"\nurl = "http://127.0.0.1:9/"\n')
        svc = Service(redis.url, extra_env={"NEWTERMSD_OUTPUTS": f.name})
        os.unlink(f.name)
        try:
            env = dict(os.environ, NT_URL=f"http://127.0.0.1:{svc.port}", NT_READ_TOKEN=READ_TOKEN,
                       NT_WRITE_TOKEN=WRITE_TOKEN, NT_INGEST_TOKEN=INGEST_TOKEN,
                       NT_FIREHOSE_KEY=FIREHOSE_KEY)
            p = subprocess.run([sys.executable, WALKER], capture_output=True, text=True, env=env,
                               timeout=300)
            print(p.stdout[-4000:])
            self.assertEqual(p.returncode, 0, p.stdout[-4000:] + p.stderr[-2000:])
        finally:
            svc.close()
            redis.close()


if __name__ == "__main__":
    unittest.main()
