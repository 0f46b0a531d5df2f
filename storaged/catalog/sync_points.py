"""The change log of a container and the sync points that follow it.

Rows in row id order are the container's change log, each object name at
its latest change (see :class:`~storaged.catalog.broker.ContainerBroker`);
each container-sync worker keeps two points in it, ``point1`` and
``point2``, stored in the database itself.
"""

from __future__ import annotations

import sqlite3

from storaged import exception
from storaged.catalog import names
from storaged.catalog.broker_base import BrokerBase
from storaged.catalog.broker_base import ContainerState
from storaged.catalog.records import SELECT_OBJECTS
from storaged.catalog.records import ObjectRow
from storaged.catalog.timestamp import Timestamp


class SyncPointsMixin(BrokerBase):
    """The change log and the sync points of a container's sync workers."""

    @staticmethod
    def _max_row(conn: sqlite3.Connection) -> int:
        row = conn.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'objects'"
        ).fetchone()
        return -1 if row is None else int(row[0])

    def get_max_row(self) -> int:
        """Return the largest row id ever given (-1 if none): the change log's end."""
        with self._read() as conn:
            return self._max_row(conn)

    def get_items_since(self, start_row: int, limit: int = 1000) -> list[ObjectRow]:
        """Return rows with ``ROWID > start_row`` in row id order, tombstones included.

        This is the change log the sync daemon follows: each name appears
        once, at its latest change.  Works on a deleted container too (its
        database is kept until reclaimed).

        :param start_row: the last row already seen (-1 for the start).
        :param limit: at most this many rows.
        """
        if isinstance(start_row, bool) or not isinstance(start_row, int):
            raise ValueError("start_row must be an integer")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError("limit must be a non-negative integer")
        with self._read() as conn:
            self._state(conn)
            rows = conn.execute(
                SELECT_OBJECTS + " WHERE ROWID > ? ORDER BY ROWID LIMIT ?",
                (start_row, limit),
            ).fetchall()
        return [ObjectRow.from_row(r) for r in rows]

    @staticmethod
    def _check_worker(worker: str) -> str:
        text = names.check_text(worker, "sync worker")
        if not text or len(text.encode("utf-8")) > names.MAX_KEY_BYTES:
            raise exception.InvalidName(
                kind="sync worker",
                reason=f"must be 1 to {names.MAX_KEY_BYTES} bytes",
            )
        return text

    def get_sync_points(self, worker: str) -> tuple[int, int]:
        """Return ``(point1, point2)`` of a sync worker; ``(-1, -1)`` when unset."""
        worker = self._check_worker(worker)
        with self._read() as conn:
            self._state(conn)
            row = conn.execute(
                "SELECT point1, point2 FROM sync_points WHERE worker = ?", (worker,)
            ).fetchone()
        return (-1, -1) if row is None else (int(row[0]), int(row[1]))

    def set_sync_points(
        self, worker: str, point1: int | None = None, point2: int | None = None
    ) -> None:
        """Record a sync worker's points; None leaves a point as it is.

        Points may go down as well as up (a failed row sends ``point2``
        back to just before it, so it is retried).
        """
        worker = self._check_worker(worker)
        for point in (point1, point2):
            if point is not None and (
                isinstance(point, bool) or not isinstance(point, int) or point < -1
            ):
                raise ValueError(f"a sync point is an integer >= -1, not {point!r}")

        def apply(conn: sqlite3.Connection, state: ContainerState) -> tuple[None, bool]:
            conn.execute(
                "INSERT INTO sync_points (worker, point1, point2, updated_at) "
                "VALUES (?, coalesce(?, -1), coalesce(?, -1), ?) "
                "ON CONFLICT (worker) DO UPDATE SET "
                "point1 = coalesce(?, point1), point2 = coalesce(?, point2), "
                "updated_at = excluded.updated_at",
                (worker, point1, point2, Timestamp.now().internal, point1, point2),
            )
            return None, False

        self._write(apply)

    def reset_sync_points(self, worker: str | None = None) -> None:
        """Forget the sync points of one worker, or of all (back to -1)."""
        if worker is not None:
            worker = self._check_worker(worker)

        def apply(conn: sqlite3.Connection, state: ContainerState) -> tuple[None, bool]:
            if worker is None:
                conn.execute("DELETE FROM sync_points")
            else:
                conn.execute("DELETE FROM sync_points WHERE worker = ?", (worker,))
            return None, False

        self._write(apply)

    def list_sync_points(self) -> dict[str, tuple[int, int]]:
        """Return every worker's ``(point1, point2)``."""
        with self._read() as conn:
            self._state(conn)
            rows = conn.execute(
                "SELECT worker, point1, point2 FROM sync_points ORDER BY worker"
            ).fetchall()
        return {r[0]: (int(r[1]), int(r[2])) for r in rows}
