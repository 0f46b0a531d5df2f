"""A progress record says when its next write is due; past it, it is late."""

from __future__ import annotations

import time

from storaged import kvs
from storaged.common import status
from storaged.common.daemon import run_pass
from storaged.sync import daemon as sync_daemon
from tests.unit.sync.conftest import put


def test_records_carry_their_due_time(source, target, make_engine):
    put(source, "a")
    store = kvs.open_store("memory://svc-due")
    worker = sync_daemon.SyncWorker(make_engine(), None, store, interval=30.0)
    before = time.time()
    assert run_pass(worker).ok
    record = store.get(sync_daemon.progress_key("AUTH_test", "src", "node:sync"))
    assert before + 30.0 <= record["due_at"] <= time.time() + 30.0
    assert record["due_at"] - record["updated_at"] >= 30.0


def test_a_single_pass_promises_nothing(source, target, make_engine):
    put(source, "a")
    store = kvs.open_store("memory://svc-once")
    worker = sync_daemon.SyncWorker(make_engine(), None, store, interval=None)
    assert run_pass(worker).ok
    record = store.get(sync_daemon.progress_key("AUTH_test", "src", "node:sync"))
    assert record["due_at"] is None


def test_is_late_has_the_status_margin():
    # due 100 s after the write: late only 60 s (the floor) after that
    assert not status.is_late(1100.0, 1000.0, 1159.0)
    assert status.is_late(1100.0, 1000.0, 1161.0)
    # due an hour after the write: half of it is the margin
    assert not status.is_late(4600.0, 1000.0, 4600.0 + 1799.0)
    assert status.is_late(4600.0, 1000.0, 4600.0 + 1801.0)
    assert not status.is_late(None, 1000.0, 1e12)
