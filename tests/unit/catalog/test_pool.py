"""The broker pool: bounded, least recently used first, never closes a lent broker."""

from __future__ import annotations

import os

import pytest

from storaged.catalog import Timestamp
from storaged.catalog.pool import BrokerPool

# The sqlite driver's own machinery, not the contract.
pytestmark = pytest.mark.sqlite_only

ETAG = "d41d8cd98f00b204e9800998ecf8427e"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def connected(broker) -> bool:
    return broker.db._conn is not None


@pytest.fixture
def containers(catalog):
    for i in range(6):
        with catalog.container("AUTH_test", "c%d" % i) as broker:
            broker.create()
    return catalog


def test_bounded_and_least_recent_closed_first(containers):
    pool = BrokerPool(containers.container, size=3)
    lent = {}
    for i in range(6):
        with pool.lease("AUTH_test", "c%d" % i) as broker:
            broker.info()
            lent[i] = broker
    assert len(pool) == 3
    assert [connected(lent[i]) for i in range(6)] == [False] * 3 + [True] * 3
    with pool.lease("AUTH_test", "c5") as again:
        assert again is lent[5]  # reused, not reopened
    pool.close()
    assert not any(connected(b) for b in lent.values())


def test_a_lent_broker_is_never_closed_under_its_user(containers):
    pool = BrokerPool(containers.container, size=1)
    with pool.lease("AUTH_test", "c0") as first:
        first.info()
        with pool.lease("AUTH_test", "c1") as second:
            second.info()
            first.put_object("o", Timestamp.now(), 0, "text/plain", ETAG)
        assert connected(first)
        assert connected(second)  # idle now, the one kept
    # Two idle, one kept: the least recently returned goes.
    assert connected(first)
    assert not connected(second)
    pool.close()


def test_concurrent_leases_get_their_own_broker(containers):
    """A write waiting for sqlite's lock never holds up another lease's read."""
    pool = BrokerPool(containers.container, size=2)
    with pool.lease("AUTH_test", "c0") as a, pool.lease("AUTH_test", "c0") as b:
        assert a is not b
        a.info()
        b.info()
    assert len(pool) == 2
    with pool.lease("AUTH_test", "c0") as again:
        assert again is a  # the most recently returned
    pool.close()


def test_after_close_nothing_is_kept(containers):
    pool = BrokerPool(containers.container, size=4)
    with pool.lease("AUTH_test", "c0") as lent:
        pool.close()
        lent.info()
    assert not connected(lent)
    with pool.lease("AUTH_test", "c1") as late:
        late.info()
    assert not connected(late)
    assert len(pool) == 0


def test_size_zero_closes_on_return(containers):
    pool = BrokerPool(containers.container, size=0)
    with pool.lease("AUTH_test", "c0") as broker:
        broker.info()
    assert not connected(broker)
    assert len(pool) == 0


def test_open_files_stay_flat(containers):
    with containers.broker("AUTH_test", "c0") as broker:
        broker.info()
    before = open_fds()
    for i in range(600):
        with containers.broker("AUTH_test", "c%d" % (i % 6)) as broker:
            broker.put_object("o%d" % i, Timestamp.now(), 0, "text/plain", ETAG)
            broker.get_object("o%d" % i)
    # Six containers, three descriptors each, whatever the number of calls.
    assert open_fds() <= before + 6 * 3
    containers.close()  # the pool with it: c0's three are gone too
    assert open_fds() <= before - 3
