"""Coordination's figures: membership, heartbeat gap, lock losses, reconnects."""

from __future__ import annotations

import threading

import pytest
import tooz.coordination as tooz_coordination

from storaged import metrics as metrics_mod
from tests.unit.coordination.conftest import wait_for


@pytest.fixture(autouse=True)
def _fresh_process_metrics():
    metrics_mod.reset()
    yield
    metrics_mod.reset()


def value(name, **labels):
    return metrics_mod.process().registry.get_sample_value(name, labels or None) or 0


def test_membership_and_heartbeats(coordinators):
    a = coordinators("node1:a")
    b = coordinators("node1:b")
    a.join_group("sync", {})
    b.join_group("sync", {})
    wait_for(lambda: value("storaged_coordination_group_members", group="sync") == 2)
    wait_for(lambda: value("storaged_coordination_heartbeat_gaps_seconds_count") >= 2)
    assert value("storaged_coordination_connected") == 1
    assert 0 < value("storaged_coordination_heartbeat_gap_seconds") < 60
    assert value("storaged_coordination_last_heartbeat_timestamp_seconds") > 0


def test_an_outage_counts_a_lost_lock_a_disconnect_and_a_reconnect(
    coordinators, monkeypatch
):
    a = coordinators("node1:a")
    lock = a.lock("k")
    lock.acquire()
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
    assert value("storaged_coordination_connected") == 0
    assert value("storaged_coordination_disconnects_total") == 1
    assert value("storaged_coordination_lock_losses_total") == 1
    broken.clear()
    wait_for(lambda: a.connected)
    assert value("storaged_coordination_reconnects_total") == 1
    assert value("storaged_coordination_connected") == 1
