"""Crashes and stalls: who gets the lock, and when, and does the holder know.

Budgets come from the TTLs (3 s here): a SIGKILLed holder's lock goes to a
waiter within the TTL plus one poll (kernel locks: at once), its group
membership within the membership TTL plus one heartbeat, and its share of
the partitions with it.  Each budget has a generous margin for a loaded
machine; the figures themselves are measured by ``bench/coordination.py``.
The victim runs on each concurrency backend (ZooKeeper: threading only, as
eventlet refuses it).
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from tests.functional.coordination import helpers

TTL = 3
HEARTBEAT = 0.5
POLL = 0.1  # longest wait between two tries of a taken lock
MARGIN = 2.0
PARTITIONS = 64


@pytest.mark.slow
@pytest.mark.parametrize(("backend", "concurrency"), helpers.PROCESS_CASES,
                         ids=helpers.PROCESS_IDS)
def test_sigkilled_holder_lock_and_share_are_taken_over(
    request, tmp_path, uid, coordinators, victims, backend, concurrency
):
    url = helpers.url_for(request, backend, tmp_path)
    group, name = "takeover-" + uid, "takeover-lock-" + uid
    victim = victims(url, "node1:victim-" + uid, str(tmp_path), group=group, lock=name,
                     lock_ttl=TTL, membership_ttl=TTL, heartbeat=HEARTBEAT,
                     concurrency=concurrency)
    victim.expect("ready")
    survivor = coordinators(url, "node2:survivor-" + uid, lock_ttl=TTL,
                            membership_ttl=TTL, heartbeat_interval=HEARTBEAT)
    survivor.join_group(group, {})
    share = survivor.partitioner(group, PARTITIONS)
    helpers.wait_for(lambda: share.members == sorted([victim.member,
                                                       survivor.member_id]))
    helpers.wait_for(lambda: 0 < share.owned_count < PARTITIONS)
    assert not survivor.lock(name, blocking=False).acquire()

    got: dict[str, float] = {}

    def wait_lock() -> None:
        lock = survivor.lock(name, timeout=TTL + 30)
        if lock.acquire():
            got["lock"] = time.monotonic()
            lock.release()

    waiter = threading.Thread(target=wait_lock)
    waiter.start()
    time.sleep(0.2)  # the waiter is polling
    os.kill(victim.pid, signal.SIGKILL)
    killed = time.monotonic()
    helpers.wait_for(lambda: victim.member not in survivor.get_members(group))
    dropped = time.monotonic() - killed
    helpers.wait_for(lambda: share.owned_count == PARTITIONS)
    moved = time.monotonic() - killed
    waiter.join(TTL + 40)
    assert "lock" in got, "the lock of a dead holder was never taken over"
    takeover = got["lock"] - killed

    lock_budget = (0 if backend == "file" else TTL) + POLL + MARGIN
    member_budget = TTL + HEARTBEAT + MARGIN
    assert takeover <= lock_budget, "lock taken over after %.2fs" % takeover
    assert dropped <= member_budget, "member dropped after %.2fs" % dropped
    assert moved <= member_budget + HEARTBEAT, "share moved after %.2fs" % moved


@pytest.mark.slow
@pytest.mark.parametrize(
    ("backend", "concurrency"),
    [case for case in helpers.PROCESS_CASES if case[0] != "file"],
    ids=[i for i in helpers.PROCESS_IDS if not i.startswith("file-")],
)
def test_frozen_holder_learns_that_its_lock_was_lost(
    request, tmp_path, uid, coordinators, victims, backend, concurrency
):
    """SIGSTOP freezes every thread, the heartbeat one included.

    The lock expires and another process takes it; when the holder thaws,
    its lock reports itself lost before it can act again, and the holder
    re-joins its group.  (On ``file://`` a frozen holder keeps its kernel
    lock: nothing to take over.)
    """
    url = helpers.url_for(request, backend, tmp_path)
    group, name = "frozen-" + uid, "frozen-lock-" + uid
    victim = victims(url, "node1:victim-" + uid, str(tmp_path), group=group, lock=name,
                     lock_ttl=TTL, membership_ttl=TTL, heartbeat=HEARTBEAT,
                     concurrency=concurrency)
    old = victim.expect("ready")["token"]
    other = coordinators(url, "node2:other-" + uid, lock_ttl=TTL,
                         membership_ttl=TTL, heartbeat_interval=HEARTBEAT)
    os.kill(victim.pid, signal.SIGSTOP)
    try:
        lock = other.lock(name, timeout=TTL + 30)
        assert lock.acquire(), "a frozen holder's lock never expired"
        assert lock.token > old  # fencing: the new holder's token is larger
        helpers.wait_for(lambda: victim.member not in other.get_members(group))
    finally:
        os.kill(victim.pid, signal.SIGCONT)
    victim.send("check")
    check = victim.expect("check")
    assert check["lost"] is True, check
    helpers.wait_for(lambda: victim.member in other.get_members(group))
    victim.send("stats")  # the heartbeat thread has run since the thaw
    assert victim.expect("stats")["stats"]["lost_locks"] == 1
    # The thawed holder neither released nor damaged the new holder's lock.
    assert victim.stop() == 0
    assert victim.expect("stopped")["released"] is False
    assert not lock.lost
    assert helpers.lock_artifacts(url, name) == [name]
    lock.release()
    assert helpers.lock_artifacts(url, name) == []
