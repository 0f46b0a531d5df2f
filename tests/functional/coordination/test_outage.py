"""The back end goes away and comes back.

While it is down: every held lock is reported lost at once, calls fail fast
with CoordinationUnavailable instead of hanging.  Once it is back: the
coordinator reconnects on its own (jittered backoff, at most 1 s here),
re-joins its groups and takes locks again.
"""

from __future__ import annotations

import time

import pytest

from storaged.coordination import CoordinationUnavailable
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


@pytest.mark.slow
@pytest.mark.parametrize("backend", sorted(SERVERS))
def test_outage_and_return(tmp_path, uid, coordinators, backend):
    server = SERVERS[backend]()
    try:
        server.start()
    except ServerMissing as err:
        skip_or_fail(str(err))
    try:
        url = server.url
        group, name = "outage-" + uid, "outage-lock-" + uid
        coordinator = coordinators(url, "node1:agent-" + uid, lock_ttl=TTL,
                                   membership_ttl=TTL, heartbeat_interval=HEARTBEAT,
                                   max_reconnect_backoff=MAX_BACKOFF)
        coordinator.join_group(group, {"role": "agent"})
        lock = coordinator.lock(name)
        assert lock.acquire()
        lost = []
        lock.on_lost(lost.append)

        server.kill()
        down = time.monotonic()
        helpers.wait_for(lambda: lost)
        noticed = time.monotonic() - down
        # Noticed by the next heartbeat (a refused connection fails at once).
        assert noticed <= HEARTBEAT + 2.0, "lock reported lost after %.2fs" % noticed
        assert lock.lost and not coordinator.connected
        for call in (
            lambda: coordinator.lock("other-" + uid, timeout=60).acquire(),
            lambda: coordinator.get_members(group),
            lambda: coordinator.join_group("another-" + uid, {}),
        ):
            began = time.monotonic()
            with pytest.raises(CoordinationUnavailable):
                call()
            assert time.monotonic() - began < 1.0  # fast, not the 60 s timeout
        time.sleep(2 * MAX_BACKOFF)  # a few reconnection attempts fail

        server.start()  # same port, same data directory
        up = time.monotonic()
        helpers.wait_for(lambda: coordinator.connected)
        back = time.monotonic() - up
        budget = MAX_BACKOFF + 2 * HEARTBEAT + 2.0
        assert back <= budget, "reconnected after %.2fs" % back
        members = coordinator.get_members(group)
        assert members[coordinator.member_id]["role"] == "agent"
        # The group joined during the outage was remembered.
        assert coordinator.member_id in coordinator.get_members("another-" + uid)
        assert not lock.release()  # it was lost; its key is cleaned up if left
        with coordinator.lock(name, timeout=TTL + 5) as again:
            assert not again.lost
        stats = coordinator.stats()
        assert stats["reconnects"] == 1 and stats["lost_locks"] == 1
        assert stats["disconnects"] == 1 and stats["connected"]
    finally:
        server.stop()
