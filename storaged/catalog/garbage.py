"""Object data no row of a container refers to any more.

A newer PUT or a DELETE that replaces a live row pointing at other data
records that data in the ``garbage`` table, in the same transaction (see
:class:`~storaged.catalog.broker.ContainerBroker`).  Here it is listed,
deleted from its back end, and forgotten.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
import logging
import sqlite3
from typing import Final

from storaged.catalog.broker_base import BrokerBase
from storaged.catalog.broker_base import ContainerState
from storaged.catalog.records import Garbage

# Under the broker's name, as before its parts had modules of their own:
# logging configuration may refer to it.
LOG = logging.getLogger("storaged.catalog.broker")

# Garbage ids per DELETE statement (well under sqlite's variable limit).
_FORGET_BATCH: Final = 500


class GarbageMixin(BrokerBase):
    """Listing, collecting and forgetting a container's unreferenced data."""

    def list_garbage(self, limit: int = 100) -> list[Garbage]:
        """Return entries of object data no row refers to any more, oldest first.

        Works on a deleted container too: its garbage must be collected
        before reclaim removes its database.

        :param limit: at most this many entries.
        :raises ValueError: ``limit`` is not a non-negative integer.
        :raises storaged.exception.ContainerNotFound: no database.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError("limit must be a non-negative integer")
        with self._read() as conn:
            self._state(conn)
            rows = conn.execute(
                "SELECT id, backend, location, added_at FROM garbage "
                "ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
        return [Garbage(int(r[0]), r[1], r[2], float(r[3])) for r in rows]

    def forget_garbage(self, garbage_ids: Iterable[int]) -> int:
        """Remove garbage entries (their data was deleted from its back end).

        Ids that are not there (forgotten already) are skipped.

        :returns: how many entries were removed.
        :raises ValueError: an id is not an integer.
        :raises storaged.exception.ContainerNotFound: no database.
        """
        ids = []
        for garbage_id in garbage_ids:
            if isinstance(garbage_id, bool) or not isinstance(garbage_id, int):
                raise ValueError(f"a garbage id is an integer, not {garbage_id!r}")
            ids.append(garbage_id)
        ids = sorted(set(ids))
        if not ids:
            return 0

        def apply(conn: sqlite3.Connection, state: ContainerState) -> tuple[int, bool]:
            removed = 0
            for start in range(0, len(ids), _FORGET_BATCH):
                batch = ids[start:start + _FORGET_BATCH]
                marks = ", ".join("?" * len(batch))
                # ``marks`` is placeholders only.
                removed += conn.execute(
                    f"DELETE FROM garbage WHERE id IN ({marks})",  # noqa: S608
                    batch,
                ).rowcount
            # Reported, so the account index knows the count went down.
            return removed, removed > 0

        return self._write(apply)

    def collect_garbage(
        self, delete: Callable[[str, str], None], limit: int = 100
    ) -> tuple[int, int]:
        """Delete unreferenced data from the back ends, and forget it.

        Calls ``delete(backend, location)`` for each of the oldest ``limit``
        entries, holding no transaction meanwhile.  An entry whose delete
        returned is forgotten; one whose delete raised is kept for a later
        pass and logged (never its location, which may hold credentials).
        ``delete`` must return when the data is already gone (another
        collector may have deleted it) and raise only for real failures.

        :returns: ``(collected, failed)``.
        :raises storaged.exception.ContainerNotFound: no database.
        """
        entries = self.list_garbage(limit)
        done: list[int] = []
        failed = 0
        for entry in entries:
            try:
                delete(entry.backend, entry.location)
            except Exception as err:
                failed += 1
                LOG.warning(
                    "Could not delete unreferenced data (garbage id %d of "
                    "%s/%s) from back end %s: %s; kept for a later pass",
                    entry.garbage_id, self.account, self.container,
                    entry.backend, type(err).__name__,
                )
                continue
            done.append(entry.garbage_id)
        if done:
            self.forget_garbage(done)
        return len(done), failed
