"""A retryable error is one log line; anything else keeps its traceback."""

from __future__ import annotations

import logging

from storaged import exception
from storaged.common import daemon


class Raising:
    name = "demo"

    def __init__(self, err):
        self.err = err

    def run_pass(self, ctx):
        raise self.err


class ItemRaising(Raising):
    def run_pass(self, ctx):
        ctx.run_item("item-1", self._fail)

    def _fail(self):
        raise self.err


def _records(caplog, worker):
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="storaged.common.daemon"):
        stats = daemon.run_pass(worker)
    failures = [r for r in caplog.records if r.levelno >= logging.WARNING]
    return stats, failures


def test_retryable_pass_failure_is_one_line(caplog):
    err = exception.KVSBackendError(backend="redis://h", reason="connection refused")
    stats, (record,) = _records(caplog, Raising(err))
    assert not stats.ok
    assert record.exc_info is None
    assert "connection refused" in record.getMessage()


def test_retryable_item_failure_is_one_line(caplog):
    err = exception.KVSBackendError(backend="redis://h", reason="timed out")
    stats, (record,) = _records(caplog, ItemRaising(err))
    assert stats.counters["failed"] == 1
    assert record.exc_info is None
    assert "item-1" in record.getMessage()
    assert "timed out" in record.getMessage()


def test_a_bug_keeps_its_traceback(caplog):
    for worker in (Raising(KeyError("x")), ItemRaising(KeyError("x"))):
        _stats, (record,) = _records(caplog, worker)
        assert record.exc_info is not None
