"""Under eventlet, calls into the coordinator never stall the hub.

The back end client lives on the native heartbeat thread; a green thread
that waits for a lock, or for any back end answer, waits in eventlet's
thread pool, so the other green threads keep running.  The script below
runs in a monkey-patched process: a green ticker counts 10 ms sleeps while
the main green thread waits 1.5 s for a lock held by this test process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.functional.coordination import helpers

SCRIPT = r"""
import json, sys
from storaged import concurrency
concurrency.setup("eventlet")
import eventlet
from storaged import exception
from storaged.coordination import Coordinator
from tests.functional.coordination.helpers import make_conf

url, state, name, group = sys.argv[1:5]
conf = make_conf(state, heartbeat_interval=0.2, lock_ttl=2, membership_ttl=2)
try:
    Coordinator(conf, "node1:zk", backend_url="zookeeper://127.0.0.1:1")
    zk = "accepted"
except exception.ConfigError as err:
    zk = str(err)
coordinator = Coordinator(conf, "node1:green", backend_url=url)
coordinator.start()
coordinator.join_group(group, {"green": True})
ticks = [0]
def ticker():
    while True:
        eventlet.sleep(0.01)
        ticks[0] += 1
eventlet.spawn(ticker)
eventlet.sleep(0.05)
before = ticks[0]
got = coordinator.lock(name, timeout=1.5).acquire()
during_wait = ticks[0] - before
cycles = 0
for i in range(100):
    with coordinator.lock("%s-%d" % (name, i % 7)):
        cycles += 1
members = sorted(coordinator.get_members(group))
stats = coordinator.stats()
coordinator.stop()
print(json.dumps({"got": got, "ticks": during_wait, "cycles": cycles,
                  "members": members, "zk": zk, "gap": stats["max_beat_gap"]}))
"""


@pytest.mark.parametrize("backend", ["file", "redis", "etcd"])
def test_green_callers_never_stall_the_hub(request, tmp_path, uid, coordinators,
                                          backend):
    url = helpers.url_for(request, backend, tmp_path)
    holder = coordinators(url, "node2:holder-" + uid)
    name, group = "green-" + uid, "green-group-" + uid
    with holder.lock(name):
        env = dict(os.environ, PYTHONPATH=helpers.ROOT)
        env.pop("STORAGED_CONCURRENCY_BACKEND", None)
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, url, str(tmp_path), name, group],
            cwd=helpers.ROOT, env=env, capture_output=True, text=True, timeout=120,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["got"] is False  # the lock was held all along
    # 150 ticks at most in 1.5 s; a stalled hub would give none.
    assert result["ticks"] > 30, result
    assert result["cycles"] == 100
    assert result["members"] == ["node1:green"]
    assert "threading" in result["zk"]
