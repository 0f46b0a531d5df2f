"""The back end goes away and comes back.

While it is down: every held lock is reported lost at once, calls fail fast
with CoordinationUnavailable instead of hanging.  Once it is back: the
coordinator reconnects on its own (jittered backoff, at most 1 s here),
re-joins its groups and takes locks again.

The coordinator lives in a process of its own (``outage_child.py``) on each
concurrency backend (ZooKeeper: threading only, as eventlet refuses it); the
test kills and restarts the server and checks what the process reports.
"""

from __future__ import annotations

import time

import pytest

from tests.functional.coordination import helpers
from tests.servers import EtcdServer
from tests.servers import RedisServer
from tests.servers import ServerMissing
from tests.servers import ZooKeeperServer
from tests.servers import skip_or_fail

HEARTBEAT = 0.5
TTL = 3
MAX_BACKOFF = 1.0

SERVERS = {"redis": RedisServer, "etcd": EtcdServer, "zookeeper": ZooKeeperServer}
CASES = [case for case in helpers.PROCESS_CASES if case[0] in SERVERS]


@pytest.mark.slow
@pytest.mark.parametrize(("backend", "concurrency"), CASES,
                         ids=["-".join(case) for case in CASES])
def test_outage_and_return(tmp_path, uid, backend, concurrency):
    server = SERVERS[backend]()
    try:
        server.start()
    except ServerMissing as err:
        skip_or_fail(str(err))
    child = helpers.Child("outage child", [
        "tests.functional.coordination.outage_child", "--url", server.url,
        "--state-path", str(tmp_path), "--uid", uid, "--concurrency", concurrency,
        "--heartbeat", str(HEARTBEAT), "--ttl", str(TTL),
        "--max-backoff", str(MAX_BACKOFF),
    ])
    try:
        child.start()
        assert child.expect("ready")["acquired"] is True

        server.kill()
        child.send("killed")
        down = child.expect("down")
        # Noticed by the next heartbeat (a refused connection fails at once).
        assert down["noticed"] is not None, "the lock was never reported lost"
        assert down["noticed"] <= HEARTBEAT + 2.0, (
            "lock reported lost after %.2fs" % down["noticed"])
        assert down["lost"] is True and down["connected"] is False
        for outcome, took in down["calls"]:
            assert outcome == "unavailable"
            assert took < 1.0  # fast, not the 60 s timeout
        time.sleep(2 * MAX_BACKOFF)  # a few reconnection attempts fail

        server.start()  # same port, same data directory
        child.send("started")
        back = child.expect("back")
        budget = MAX_BACKOFF + 2 * HEARTBEAT + 2.0
        assert back["back"] is not None, "never reconnected"
        assert back["back"] <= budget, "reconnected after %.2fs" % back["back"]
        assert back["role"] == "agent"
        # The group joined during the outage was remembered.
        assert back["remembered"] is True
        assert back["released"] is False  # it was lost; its key is cleaned up
        assert back["again_lost"] is False
        stats = back["stats"]
        assert stats["reconnects"] == 1 and stats["lost_locks"] == 1
        assert stats["disconnects"] == 1 and stats["connected"]
        assert child.wait() == 0
    finally:
        child.kill()
        server.stop()
