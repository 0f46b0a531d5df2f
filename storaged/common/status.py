"""Daemon status records in the state store.

Every periodic daemon writes one record per pass under
``status/<node_id>/<daemon>``; ``storaged-manage status`` reads them all back
with one prefix scan, so an operator sees every daemon of every node sharing
the state store.  A record is a plain JSON object (see :meth:`StatusBoard.publish`).
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
import logging
import time
from typing import Any
from typing import Protocol

from storaged import exception

LOG = logging.getLogger(__name__)

PREFIX = "status/"

#: Seconds past its due time before a record is called late, at the least: a
#: pass may run long, and the clocks of the writer and the reader differ.
LATE_MARGIN = 60.0


def is_late(due_at: float | None, written_at: float | None, now: float) -> bool:
    """Tell whether a record's writer missed the write it promised.

    A record written at ``written_at`` says when the next one is due; it is
    late once ``now`` passes that time by a generous margin: the larger of
    :data:`LATE_MARGIN` and half the time the writer gave itself.  E.g. due
    100 s after it was written: late 60 s after the due time; due an hour
    after: late 30 min after it.

    :param due_at: when the next write is due, or None if none is promised.
    :param written_at: when the record was written (defaults to ``due_at``).
    :param now: the time to judge at.
    """
    if not due_at:
        return False
    given = due_at - (written_at if written_at is not None else due_at)
    return now > due_at + max(LATE_MARGIN, 0.5 * given)


class _StateStore(Protocol):
    def set(self, key: str, value: Any, *, ttl: float | None = None) -> None: ...

    def scan(self, prefix: str) -> Any: ...

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...


def status_key(node_id: str, daemon: str) -> str:
    """Return the state store key of one daemon's status."""
    return "%s%s/%s" % (PREFIX, node_id, daemon)


class StatusBoard:
    """Reads and writes daemon status records in a state store."""

    def __init__(self, store: _StateStore) -> None:
        self.store = store

    def publish(self, node_id: str, daemon: str, record: Mapping[str, Any]) -> bool:
        """Write one daemon's record; never raise (a status write is best effort).

        :returns: whether the record was written.
        """
        value = dict(record)
        value.setdefault("node", node_id)
        value.setdefault("daemon", daemon)
        value["updated_at"] = time.time()
        try:
            self.store.call(self.store.set, status_key(node_id, daemon), value)
        except exception.StoragedError as err:
            LOG.warning("Could not publish the status of %s: %s", daemon, err)
            return False
        return True

    def read_all(self) -> list[dict[str, Any]]:
        """Return every record, sorted by node then daemon."""
        records = []
        scanned = self.store.call(lambda: list(self.store.scan(PREFIX)))
        for key, value in scanned:
            if isinstance(value, dict):
                value.setdefault("key", key)
                records.append(value)
        records.sort(key=lambda r: (str(r.get("node")), str(r.get("daemon"))))
        return records
