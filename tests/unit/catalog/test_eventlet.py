"""The catalog under eventlet: green threads call it through run_blocking."""

from __future__ import annotations

import subprocess
import sys

CHILD = r"""
import sys
from storaged import concurrency
concurrency.setup("eventlet")
from storaged.catalog import Catalog, Timestamp

catalog = Catalog(sys.argv[1], synchronous="normal")
broker = catalog.container("AUTH_green", "box")
concurrency.run_blocking(broker.create, "1000")

def work(g):
    for i in range(25):
        name = "g%d-%d" % (g, i)
        assert concurrency.run_blocking(
            broker.put_object, name, Timestamp(2000 + i, offset=g), g, "t", "e")
        assert concurrency.run_blocking(broker.get_object, name).size == g
        concurrency.run_blocking(broker.list_objects, prefix="g%d-" % g, limit=3)
    return g

tasks = [concurrency.spawn(work, g) for g in range(12)]
assert sorted(t.wait(60) for t in tasks) == list(range(12))
info = concurrency.run_blocking(broker.info)
assert info.object_count == 300, info
assert info.bytes_used == 25 * sum(range(12)), info
print("ok", info.object_count)
"""


def test_green_threads_share_a_broker(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "catalog")],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert proc.stdout.decode().strip() == "ok 300"
