"""Thousands of distinct lock names leave nothing behind on any back end.

Plain tooz leaves a lock file per name on ``file://``, a parent znode per
name on ZooKeeper and a lease per attempt on etcd.  The locking process
(``leftovers_child.py``) runs on each concurrency backend (ZooKeeper:
threading only, as eventlet refuses it), with 5,000 names each: 10,000 a
back end in all (ZooKeeper's one process takes the 10,000).
"""

from __future__ import annotations

import time

import pytest

from storaged.coordination import stored_name
from tests.functional.coordination import helpers
from tests.servers import EtcdServer
from tests.servers import ServerMissing
from tests.servers import ZooKeeperServer
from tests.servers import skip_or_fail

#: Names per concurrency backend.
NAMES = 5000


def _private(server):
    try:
        server.start()
    except ServerMissing as err:
        skip_or_fail(str(err))
    return server


@pytest.mark.slow
@pytest.mark.parametrize(("backend", "concurrency"), helpers.PROCESS_CASES,
                         ids=helpers.PROCESS_IDS)
def test_thousands_of_names_leave_nothing(request, tmp_path, uid, backend,
                                          concurrency):
    server = None
    if backend == "etcd":
        server = _private(EtcdServer())  # to count every lease of the server
        url = server.url
    elif backend == "zookeeper":
        server = _private(ZooKeeperServer())  # to see every znode
        url = server.url
    else:
        url = helpers.url_for(request, backend, tmp_path)
    # Remote back ends answer in milliseconds: keep 16 requests in flight.
    threads = 1 if backend == "file" else 16
    names = NAMES * 2 if backend == "zookeeper" else NAMES
    child = helpers.Child("leftovers child", [
        "tests.functional.coordination.leftovers_child", "--url", url,
        "--state-path", str(tmp_path), "--uid", uid, "--concurrency", concurrency,
        "--names", str(names), "--threads", str(threads),
    ])
    try:
        child.start()
        child.expect("ready")
        before_tree = helpers.zk_tree(url) if backend == "zookeeper" else set()
        prefix = "leak-" + uid
        child.send("go")
        locked = child.expect("locked", timeout=240)
        assert locked["errors"] == []
        assert locked["total"] == names
        assert locked["held"] == []
        # file://: the last few names' files go at the next heartbeat.
        helpers.wait_for(lambda: helpers.lock_artifacts(url, prefix) == [])
        if backend == "etcd":
            # The membership lease and the one lock lease of that process.
            assert len(helpers.etcd_leases(url)) == 2
        if backend == "zookeeper":
            assert helpers.zk_tree(url) == before_tree  # not one new znode
        child.send("hashed")  # a hashed name, cleaned up too
        assert child.expect("holding")["acquired"] is True
        assert helpers.lock_artifacts(url) == [stored_name("x" * 300)]
        child.send("release")
        assert child.expect("released")["released"] is True
        helpers.wait_for(lambda: helpers.lock_artifacts(url) == [])
        child.send("stop")
        child.expect("stopped")
        assert child.wait() == 0
        if backend == "etcd":
            assert helpers.etcd_leases(url) == set()  # both revoked on stop
    finally:
        child.kill()
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
