"""Daemon status records in the state store.

Every periodic daemon writes one record per pass under
``status/<node_id>/<daemon>``; ``storaged-manage status`` reads them all back
with one prefix scan, so an operator sees every daemon of every node sharing
the state store.  A record is a plain JSON object (see :meth:`StatusBoard.publish`).
"""

from __future__ import annotations

from collections.abc import Mapping
import logging
import time
from typing import Any
from typing import Protocol

from storaged import concurrency
from storaged import exception

LOG = logging.getLogger(__name__)

PREFIX = "status/"


class _Store(Protocol):
    def set(self, key: str, value: Any, *, ttl: float | None = None) -> None: ...

    def scan(self, prefix: str) -> Any: ...


def status_key(node_id: str, daemon: str) -> str:
    """Return the state store key of one daemon's status."""
    return "%s%s/%s" % (PREFIX, node_id, daemon)


class StatusBoard:
    """Reads and writes daemon status records in a state store."""

    def __init__(self, store: _Store) -> None:
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
            concurrency.run_blocking(self.store.set, status_key(node_id, daemon), value)
        except exception.StoragedError as err:
            LOG.warning("Could not publish the status of %s: %s", daemon, err)
            return False
        return True

    def read_all(self) -> list[dict[str, Any]]:
        """Return every record, sorted by node then daemon."""
        records = []
        scanned = concurrency.run_blocking(lambda: list(self.store.scan(PREFIX)))
        for key, value in scanned:
            if isinstance(value, dict):
                value.setdefault("key", key)
                records.append(value)
        records.sort(key=lambda r: (str(r.get("node")), str(r.get("daemon"))))
        return records
