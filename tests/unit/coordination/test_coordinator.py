"""The coordinator on the file:// back end (no server needed).

Every behaviour is driven by real heartbeats (every 0.05 s here); the tests
wait for what must happen, with a generous safety timeout, and never assert
on durations.
"""

from __future__ import annotations

import hashlib
import os
import threading

import pytest
import tooz.coordination as tooz_coordination

from storaged import exception
from storaged.coordination import CoordinationError
from storaged.coordination import CoordinationUnavailable
from storaged.coordination import Coordinator
from storaged.coordination import LockAcquireTimeout
from storaged.coordination import LockLost
from storaged.coordination import stored_name
from storaged.coordination import synchronized
from tests.unit.coordination.conftest import make_conf
from tests.unit.coordination.conftest import wait_for


def _lock_dir(conf):
    return os.path.join(conf.state_path, "coordination", "locks")


def _member_file(conf, group, member):
    def sha1(text):
        return hashlib.sha1(text.encode()).hexdigest()
    return os.path.join(conf.state_path, "coordination", "groups", sha1(group),
                        sha1(member) + ".raw")


def test_member_id_from_conf(conf):
    conf.set_override("node_id", "node7")
    assert Coordinator.from_conf(conf, "sync").member_id == "node7:sync"
    assert Coordinator.from_conf(conf, "sync", worker=3).member_id == "node7:sync:3"
    with pytest.raises(ValueError):
        Coordinator(conf, "bad/id")


def test_bad_configuration_stops_the_constructor(tmp_path):
    conf = make_conf(tmp_path, backend_url="ipc://")
    with pytest.raises(exception.ConfigError):
        Coordinator(conf, "n:x")


def test_groups_members_and_capabilities(coordinators):
    a = coordinators("node1:a")
    b = coordinators("node1:b")
    a.join_group("sync", {"weight": 2})
    b.join_group("sync", {"weight": 1})
    members = a.get_members("sync")
    assert set(members) == {"node1:a", "node1:b"}
    assert members["node1:a"]["weight"] == 2
    assert members["node1:a"]["host"] == a.hostname
    assert a.get_members("no-such-group") == {}
    b.leave_group("sync")
    assert set(a.get_members("sync")) == {"node1:a"}
    b.leave_group("sync")  # leaving twice is harmless


def test_watchers_see_joins_and_leaves(coordinators):
    a = coordinators("node1:a")
    a.join_group("g", {})
    joined, left = [], []
    a.watch_group("g", joined.append, left.append)
    b = coordinators("node1:b")
    b.join_group("g", {})
    wait_for(lambda: joined == ["node1:b"])
    b.stop()
    wait_for(lambda: left == ["node1:b"])
    assert joined == ["node1:b"]  # present members are not reported


def test_lock_excludes_and_leaves_no_file(coordinators, conf):
    a = coordinators("node1:a")
    b = coordinators("node1:b")
    with a.lock("sync/AUTH_x/c1") as held:
        assert held.held and not held.lost
        assert held.token is None  # kernel locks need no fencing
        assert not b.lock("sync/AUTH_x/c1", blocking=False).acquire()
        # Threads of one process exclude each other too.
        assert not a.lock("sync/AUTH_x/c1", blocking=False).acquire()
        assert a.list_locks() == ["sync/AUTH_x/c1"]
        assert [i.name for i in a.held_locks()] == ["sync/AUTH_x/c1"]
    assert a.held_locks() == [] and a.list_locks() == []
    with b.lock("sync/AUTH_x/c1", blocking=False):
        assert a.list_locks() == ["sync/AUTH_x/c1"]
    # A released name's file is kept for reuse for about one heartbeat.
    wait_for(lambda: os.listdir(_lock_dir(conf)) == [])


def test_a_name_locked_again_and_again_reuses_its_file(coordinators, conf):
    a = coordinators()
    b = coordinators("node1:b")
    for _ in range(100):
        with a.lock("hot"):
            assert not b.lock("hot", blocking=False).acquire()
    wait_for(lambda: os.listdir(_lock_dir(conf)) == [])
    # Idle files are removed, not taken: the name is still free.
    assert b.lock("hot", blocking=False).acquire()


def test_waiter_gets_the_lock_when_it_is_released(coordinators):
    a = coordinators("node1:a")
    b = coordinators("node1:b")
    first = a.lock("k")
    first.acquire()
    got = []
    waiter = threading.Thread(
        target=lambda: got.append(b.lock("k", timeout=30).acquire())
    )
    waiter.start()
    wait_for(lambda: b.stats()["lock_acquires"] == 0 and waiter.is_alive())
    first.release()
    waiter.join(30)
    assert got == [True]


def test_blocking_acquire_gives_up_after_its_timeout(coordinators):
    a = coordinators("node1:a")
    b = coordinators("node1:b")
    with a.lock("k"):
        assert not b.lock("k", timeout=0.2).acquire()
        with pytest.raises(LockAcquireTimeout, match="Could not lock k"):
            with b.lock("k", timeout=0.1):
                pass
        with pytest.raises(LockAcquireTimeout):
            with b.lock("k", blocking=False):
                pass
    stats = b.stats()
    assert stats["lock_timeouts"] == 2 and stats["lock_busy"] == 1


def test_a_lock_object_is_not_reentrant(coordinators):
    a = coordinators()
    lock = a.lock("k")
    assert lock.acquire()
    with pytest.raises(CoordinationError, match="already held"):
        lock.acquire()
    assert lock.release()
    assert not lock.release()
    assert lock.acquire() and lock.release()


def test_ten_thousand_names_leave_no_lock_file(coordinators, conf):
    a = coordinators()
    for i in range(10000):
        with a.lock("container-%05d" % i, blocking=False):
            pass
    # At most a few dozen recent names wait for the next heartbeat.
    assert len(os.listdir(_lock_dir(conf))) <= 64
    wait_for(lambda: os.listdir(_lock_dir(conf)) == [])
    assert a.stats()["lock_acquires"] == 10000


def test_long_names_are_hashed(coordinators, conf):
    a = coordinators()
    name = "sync-" + "x" * 300
    with a.lock(name):
        assert os.listdir(_lock_dir(conf)) == [stored_name(name)]
        assert a.list_locks() == [stored_name(name)]
        assert a.held_locks()[0].name == name


def test_multilock_takes_sorted_names_and_rolls_back(coordinators):
    a = coordinators("node1:a")
    b = coordinators("node1:b")
    order = []
    original = a._try_acquire_op

    def spy(key):
        order.append(key)
        return original(key)

    a._try_acquire_op = spy
    with a.locks("c", "a", "b", "a") as multi:
        assert multi.names == ["a", "b", "c"]
        assert set(multi.tokens) == {"a", "b", "c"}
    assert order == ["a", "b", "c"]
    with b.lock("b"):
        assert not a.locks("a", "b", "c", timeout=0.1).acquire()
        # "a" was taken then given back: nothing is left held.
        assert a.held_locks() == []
        assert b.lock("a", blocking=False).acquire()


def test_synchronized_formats_names_from_arguments(coordinators):
    coordinator = coordinators()
    seen = []

    class Syncer:
        def __init__(self):
            self.coordinator = coordinator

        @synchronized("{f_name}-{container}", "account-{account}")
        def sync(self, account, container, flag=False):
            seen.append(sorted(i.name for i in coordinator.held_locks()))
            return container

    assert Syncer().sync("AUTH_a", container="c1") == "c1"
    assert seen == [["account-AUTH_a", "sync-c1"]]

    @synchronized("plain-{x.real}", coordinator=coordinator, blocking=False)
    def plain(x):
        return x

    assert plain(5) == 5

    @synchronized("nothing")
    def orphan():
        pass

    with pytest.raises(CoordinationError, match="no coordinator"):
        orphan()


def test_lock_lost_when_the_back_end_says_so(coordinators, conf):
    a = coordinators()
    lock = a.lock("k")
    lock.acquire()
    fired = []
    lock.on_lost(fired.append)
    # Someone removes the lock file: the lock is no longer exclusive.
    os.unlink(os.path.join(_lock_dir(conf), "k"))
    wait_for(lambda: fired)
    assert fired == [lock] and lock.lost
    assert "no longer" in lock.lost_reason
    with pytest.raises(LockLost):
        lock.check()
    assert a.stats()["lost_locks"] == 1
    assert a.held_locks()[0].lost
    assert not lock.release()  # it was lost
    late = []
    lock.on_lost(late.append)  # not held any more: nothing to report
    assert late == []


def test_self_eviction_is_repaired_with_the_same_capabilities(coordinators, conf):
    a = coordinators("node1:a")
    a.join_group("g", {"role": "sync"})
    part = a.partitioner("g", 64)
    os.unlink(_member_file(conf, "g", "node1:a"))
    wait_for(lambda: a.stats()["rejoins"] == 1)
    members = wait_for(lambda: a.get_members("g"))
    assert members["node1:a"]["role"] == "sync"
    # Partitions owned before the eviction settle again from scratch.
    assert part.owned_count == 0


def test_restart_replaces_the_old_registration(coordinators, conf):
    first = coordinators("node1:a", start=False)
    first.start()
    first.join_group("g", {"pid": 1})
    # A crash: the process goes without leaving; its registration stays.
    first._heart._on_exit = lambda: None
    first._heart.stop(timeout=10)
    assert os.path.exists(_member_file(conf, "g", "node1:a"))
    again = coordinators("node1:a")
    again.join_group("g", {"pid": 2})
    assert again.get_members("g") == {"node1:a": {"pid": 2, "host": again.hostname}}


def test_clean_stop_leaves_and_releases(coordinators, conf):
    a = coordinators("node1:a")
    b = coordinators("node1:b")
    a.join_group("g", {})
    lock = a.lock("k")
    lock.acquire()
    fired = []
    lock.on_lost(fired.append)
    a.stop()
    a.stop()  # idempotent
    assert fired == [lock]  # whoever works under it must stop
    assert b.get_members("g") == {}
    assert os.listdir(_lock_dir(conf)) == []
    with pytest.raises(CoordinationError, match="not running"):
        a.lock("k").acquire()


def test_outage_reports_locks_lost_fails_fast_and_reconnects(coordinators, monkeypatch):
    a = coordinators("node1:a")
    a.join_group("g", {"x": 1})
    lock = a.lock("k")
    lock.acquire()
    fired = []
    lock.on_lost(fired.append)
    broken = threading.Event()
    broken.set()
    real = tooz_coordination.get_coordinator

    def flaky(*args, **kwargs):
        if broken.is_set():
            raise tooz_coordination.ToozConnectionError("back end down")
        return real(*args, **kwargs)

    monkeypatch.setattr(tooz_coordination, "get_coordinator", flaky)

    def fail_beat():
        raise tooz_coordination.ToozConnectionError("back end down")

    a._driver.heartbeat = fail_beat
    wait_for(lambda: not a.connected)
    wait_for(lambda: fired)
    assert lock.lost and "connection lost" in lock.lost_reason
    # Fast failure, not a wait for the 60 s timeout.
    with pytest.raises(CoordinationUnavailable, match="back end down"):
        a.lock("other", timeout=60).acquire()
    with pytest.raises(CoordinationUnavailable):
        a.get_members("g")
    wait_for(lambda: a.stats()["reconnect_attempts"] >= 3)
    broken.clear()
    wait_for(lambda: a.connected)
    assert set(a.get_members("g")) == {"node1:a"}
    assert a.lock("other", blocking=False).acquire()
    stats = a.stats()
    assert stats["reconnects"] == 1 and stats["disconnects"] == 1
    assert stats["lost_locks"] == 1
    assert not lock.release()


def test_join_while_disconnected_is_remembered(coordinators, monkeypatch):
    a = coordinators("node1:a")

    def fail_beat():
        raise tooz_coordination.ToozConnectionError("down")

    a._driver.heartbeat = fail_beat
    wait_for(lambda: not a.connected)
    with pytest.raises(CoordinationUnavailable):
        a.join_group("later", {"k": "v"})
    wait_for(lambda: a.connected)
    wait_for(lambda: "node1:a" in a.get_members("later"))


def test_file_back_end_refuses_a_second_host(coordinators, tmp_path):
    a = coordinators("node1:a")
    a.join_group("g", {})
    b = coordinators("node2:a")
    b.hostname = "elsewhere"
    with pytest.raises(CoordinationError, match="shared with host"):
        b.join_group("g", {})
    assert set(a.get_members("g")) == {"node1:a"}
    # A member of another host that joins anyway (check turned off there)
    # makes the first one report its locks lost and refuse new ones.
    lax = coordinators("node3:a", config=make_conf(tmp_path, file_single_host=False))
    lax.hostname = "elsewhere"
    held = a.lock("k")
    held.acquire()
    lax.join_group("g", {})
    wait_for(lambda: held.lost)
    with pytest.raises(CoordinationError, match="shared with host elsewhere"):
        a.lock("other").acquire()
    assert a.stats()["refusal"]
    lax.leave_group("g")
    wait_for(lambda: a.stats()["refusal"] is None)
    assert a.lock("other", blocking=False).acquire()


def test_partitioner_follows_membership(tmp_path, coordinators):
    conf = make_conf(tmp_path, settle_time=0.0)
    a = coordinators("node1:a", config=conf)
    b = coordinators("node1:b", config=conf)
    a.join_group("g", {})
    share = a.partitioner("g", 64)
    wait_for(lambda: share.owned_count == 64)
    b.join_group("g", {})
    wait_for(lambda: 0 < share.owned_count < 64)
    assert share.members == ["node1:a", "node1:b"]
    b.stop()
    wait_for(lambda: share.owned_count == 64)
    assert a.partitioner("g", 64) is share


def test_stats_report_beats_and_members(coordinators):
    a = coordinators("node1:a")
    a.join_group("g", {})
    wait_for(lambda: a.stats()["beats"] >= 3)
    stats = a.stats()
    assert stats["connected"] and stats["backend"] == "file"
    assert stats["members_seen"] == 1 and stats["groups"] == ["g"]
    assert stats["last_beat"] is not None and stats["max_beat_gap"] > 0
    assert stats["last_error"] is None


def test_start_twice_is_an_error(coordinators):
    a = coordinators()
    with pytest.raises(CoordinationError, match="already started"):
        a.start()
