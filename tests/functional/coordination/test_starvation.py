"""A holder stuck in a blocking call keeps its lock and its membership.

The victim holds a lock and a group membership (TTL 4 s, heartbeat 1 s),
then makes an 8 s call that eventlet cannot green.  With tooz's own heart
(a green thread under eventlet) the beats stop for the whole call and the
lock is taken by another process after about 3.6 s.  Here the heartbeat
thread is native: the gap between beats stays at the interval, a contender
polling all along never gets the lock, and the member is never dropped.
"""

from __future__ import annotations

import time

import pytest

from tests.functional.coordination import helpers

TTL = 4
HEARTBEAT = 1.0
BLOCK = 8.0


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend, concurrency",
    [
        ("file", "eventlet"),
        ("file", "threading"),
        ("redis", "eventlet"),
        ("redis", "threading"),
        ("etcd", "eventlet"),
        ("etcd", "threading"),
        ("zookeeper", "threading"),
    ],
    ids=lambda value: value,
)
def test_blocked_holder_keeps_lock_and_membership(
    request, tmp_path, uid, coordinators, victims, backend, concurrency
):
    url = helpers.url_for(request, backend, tmp_path)
    group, name = "starve-" + uid, "starve-lock-" + uid
    victim = victims(url, "node1:victim-" + uid, str(tmp_path), concurrency=concurrency,
                     group=group, lock=name, block=BLOCK, lock_ttl=TTL,
                     membership_ttl=TTL, heartbeat=HEARTBEAT)
    ready = victim.expect("ready")
    contender = coordinators(url, "node2:contender-" + uid, lock_ttl=TTL,
                             membership_ttl=TTL, heartbeat_interval=HEARTBEAT)
    victim.expect("blocking")
    polls = stolen = absent = 0
    unblocked = None
    started = time.monotonic()
    while unblocked is None:
        lock = contender.lock(name, blocking=False)
        if lock.acquire():
            stolen += 1
            lock.release()
        if victim.member not in contender.get_members(group):
            absent += 1
        polls += 1
        try:
            unblocked = victim.events.get(timeout=0.1)
        except Exception:
            unblocked = None
        if unblocked is not None and unblocked["event"] != "unblocked":
            unblocked = None
        assert time.monotonic() - started < BLOCK + 30, "victim never unblocked"
    assert polls >= 40  # the contender really tried, all along
    assert stolen == 0, "the lock was taken from a live holder"
    assert absent == 0, "the blocked member was dropped from its group"
    stats = unblocked["stats"]
    assert stats["max_beat_gap"] <= 1.2 * HEARTBEAT, stats
    assert stats["beats"] >= BLOCK / HEARTBEAT - 1, stats
    assert stats["lost_locks"] == 0 and stats["disconnects"] == 0
    assert unblocked["lost"] is False and unblocked["still_valid"] is True
    assert unblocked["member"] is True
    assert victim.stop() == 0
    assert victim.expect("stopped")["released"] is True
    if ready["token"] is not None:
        # After a clean release, the next holder gets a larger token.
        with contender.lock(name, blocking=False) as after:
            assert after.token > ready["token"]
