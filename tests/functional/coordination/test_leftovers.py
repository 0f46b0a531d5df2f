"""10,000 distinct lock names leave nothing behind on any back end.

Plain tooz leaves a lock file per name on ``file://``, a parent znode per
name on ZooKeeper and a lease per attempt on etcd.
"""

from __future__ import annotations

import threading
import time

import pytest

from storaged.coordination import stored_name
from tests.functional.coordination import helpers
from tests.servers import EtcdServer
from tests.servers import ServerMissing
from tests.servers import ZooKeeperServer
from tests.servers import skip_or_fail

NAMES = 10000


def _private(server):
    try:
        server.start()
    except ServerMissing as err:
        skip_or_fail(str(err))
    return server


def _lock_all(coordinator, prefix: str, threads: int) -> list[int]:
    counts = [0] * threads

    def work(index: int) -> None:
        for n in range(index, NAMES, threads):
            with coordinator.lock("%s-%05d" % (prefix, n), blocking=False):
                counts[index] += 1

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return counts


@pytest.mark.slow
@pytest.mark.parametrize("backend", helpers.BACKENDS)
def test_ten_thousand_names_leave_nothing(request, tmp_path, uid, coordinators,
                                          backend):
    server = None
    if backend == "etcd":
        server = _private(EtcdServer())  # to count every lease of the server
        url = server.url
    elif backend == "zookeeper":
        server = _private(ZooKeeperServer())  # to see every znode
        url = server.url
    else:
        url = helpers.url_for(request, backend, tmp_path)
    try:
        coordinator = coordinators(url, "node1:leaks-" + uid)
        coordinator.join_group("leaks-" + uid, {})
        before_tree = helpers.zk_tree(url) if backend == "zookeeper" else set()
        prefix = "leak-" + uid
        # Remote back ends answer in milliseconds: keep 16 requests in flight.
        threads = 1 if backend == "file" else 16
        counts = _lock_all(coordinator, prefix, threads)
        assert sum(counts) == NAMES
        assert coordinator.list_locks() == []
        # file://: the last few names' files go at the next heartbeat.
        helpers.wait_for(lambda: helpers.lock_artifacts(url, prefix) == [])
        if backend == "etcd":
            # The membership lease and the one lock lease of this process.
            assert len(helpers.etcd_leases(url)) == 2
        if backend == "zookeeper":
            assert helpers.zk_tree(url) == before_tree  # not one new znode
        with coordinator.lock("x" * 300):  # a hashed name, cleaned up too
            assert helpers.lock_artifacts(url) == [stored_name("x" * 300)]
        helpers.wait_for(lambda: helpers.lock_artifacts(url) == [])
        coordinator.stop()
        if backend == "etcd":
            assert helpers.etcd_leases(url) == set()  # both revoked on stop
    finally:
        if server is not None:
            server.stop()


@pytest.mark.slow
def test_etcd_lock_lease_lives_while_idle(request, tmp_path, uid, coordinators):
    """One lock lease per process, kept alive between locks, never re-granted."""
    url = helpers.url_for(request, "etcd", tmp_path)
    coordinator = coordinators(url, "node1:idle-" + uid, lock_ttl=3, membership_ttl=3)
    with coordinator.lock("idle-a-" + uid):
        lease = coordinator._locks.lease_id
    assert lease in helpers.etcd_leases(url)
    time.sleep(3 * 1.5)  # longer than the lease's TTL, holding nothing
    with coordinator.lock("idle-b-" + uid) as lock:
        assert coordinator._locks.lease_id == lease
        assert not lock.lost
    assert coordinator.stats()["lost_locks"] == 0
