"""100 concurrent misses of one object cause exactly one back-end fetch.

Four real processes (two on eventlet, two on threads) of 25 readers each read
the same uncached object through the object service, from an ``http`` back
end served by a local server that counts requests and sends slowly, so that
all 100 reads overlap the one fill.  Glance fetched it 100 times.
"""

from __future__ import annotations

import hashlib
import json
import os

from tests.functional.cache import tools


def test_100_concurrent_misses_one_fetch(tmp_path):
    data = os.urandom(4 * 1024 * 1024)
    with tools.CountingServer(delay=0.02) as server:  # 64 chunks: over 1 s
        path = tools.write_conf(tmp_path)
        conf = tools.load_conf(path)
        tools.add_rows(conf, {"big": ("mirror", server.put("big", data), data)})
        go = tmp_path / "go"
        procs, ready = [], []
        for i, backend in enumerate(["eventlet", "threading"] * 2):
            ready.append(tmp_path / ("ready-%d" % i))
            procs.append(tools.spawn(
                "tests.functional.cache.reader", "--config-file", path,
                "--objects", "big", "--threads", "25",
                "--ready", str(ready[-1]), "--go", str(go), backend=backend,
            ))
        tools.wait_for(lambda: all(r.exists() for r in ready), "readers ready",
                       procs=procs)
        go.touch()
        outputs = [p.communicate(timeout=120)[0] for p in procs]
        assert [p.returncode for p in procs] == [0] * 4, outputs
        results = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
        gets = server.gets("big")
    expected = "big:" + hashlib.sha256(data).hexdigest()
    for result in results:
        assert result["errors"] == []
        assert result["digests"] == [expected] * 25
    assert gets == 1, [r["counters"] for r in results]
    counters = [r["counters"] for r in results]
    assert sum(c.get("fills", 0) for c in counters) == 1
    assert sum(c.get("followed", 0) + c.get("hits", 0) for c in counters) == 99
