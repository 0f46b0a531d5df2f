"""Pass running, per-item isolation and status reporting (no subprocess)."""

from __future__ import annotations

import threading

import pytest

from storaged import exception
from storaged import kvs
from storaged.common import daemon
from storaged.common import status


class ListWorker:
    name = "lister"

    def __init__(self, items, fail=(), fatal=None, stop_after=None, stop=None):
        self.items = items
        self.fail = set(fail)
        self.fatal = fatal
        self.seen = []
        self.stop_after = stop_after
        self.stop = stop

    def handle(self, item):
        if item == self.fatal:
            raise exception.FatalError(reason="lease lost on %s" % item)
        if item in self.fail:
            raise ValueError("bad item %s" % item)
        self.seen.append(item)
        if self.stop_after is not None and item == self.stop_after:
            self.stop.set()

    def run_pass(self, ctx):
        ctx.each(self.items, self.handle, describe=lambda i: "item-%s" % i)
        ctx.count("custom", 2)


def test_all_items_ok():
    stats = daemon.run_pass(ListWorker([1, 2, 3]))
    assert stats.ok
    assert stats.counters == {"items": 3, "succeeded": 3, "failed": 0, "custom": 2}
    assert stats.ended_at is not None and stats.duration >= 0


def test_failing_item_is_isolated_counted_and_recorded():
    worker = ListWorker([1, 2, 3, 4], fail={2, 3})
    stats = daemon.run_pass(worker)
    assert worker.seen == [1, 4]
    assert not stats.ok
    assert stats.counters["failed"] == 2
    assert stats.errors == ["item-2: bad item 2", "item-3: bad item 3"]
    assert "failed=2" in stats.summary()


def test_fatal_error_ends_the_pass():
    worker = ListWorker([1, 2, 3], fatal=2)
    stats = daemon.run_pass(worker)
    assert worker.seen == [1]
    assert not stats.ok
    assert stats.fatal is not None and "lease lost on 2" in stats.fatal


def test_unexpected_error_outside_items_fails_the_pass():
    class Broken:
        name = "broken"

        def run_pass(self, ctx):
            raise RuntimeError("listing failed")

    stats = daemon.run_pass(Broken())
    assert not stats.ok
    assert stats.fatal == "RuntimeError: listing failed"


def test_stop_request_leaves_before_the_next_item():
    stop = threading.Event()
    worker = ListWorker([1, 2, 3, 4], stop_after=2, stop=stop)
    stats = daemon.run_pass(worker, stop)
    assert worker.seen == [1, 2]
    assert stats.interrupted
    assert "interrupted=yes" in stats.summary()


def test_errors_kept_are_bounded():
    stats = daemon.run_pass(ListWorker(list(range(50)), fail=set(range(50))))
    assert stats.counters["failed"] == 50
    assert len(stats.errors) == daemon.MAX_ERRORS_KEPT


@pytest.fixture
def board():
    store = kvs.open_store("memory://")
    yield status.StatusBoard(store)
    store.close()


def test_reporter_publishes_records_read_back_by_board(board):
    reporter = daemon.Reporter("lister", "node-1", board)
    reporter.pass_done(daemon.run_pass(ListWorker([1])), next_pass_at=123.0)
    reporter.pass_done(daemon.run_pass(ListWorker([1], fail={1})), next_pass_at=456.0)
    other = daemon.Reporter("sync", "node-0", board)
    other.publish("starting")
    records = board.read_all()
    assert [(r["node"], r["daemon"]) for r in records] == [
        ("node-0", "sync"), ("node-1", "lister")]
    rec = records[1]
    assert rec["state"] == "idle"
    assert rec["passes"] == 2
    assert rec["failed_passes"] == 1
    assert rec["next_pass_at"] == 456.0
    assert rec["last_pass"]["ok"] is False
    assert rec["last_success"] is not None
    assert rec["backend"] == "threading"


def test_status_write_failure_does_not_raise():
    class DownStore:
        def set(self, key, value, *, ttl=None):
            raise exception.KVSBackendError(backend="redis", reason="refused")

        def scan(self, prefix):
            return iter(())

        def call(self, fn, *args, **kwargs):
            return fn(*args, **kwargs)

    assert status.StatusBoard(DownStore()).publish("n", "d", {}) is False
