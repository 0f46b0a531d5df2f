"""The change log, sync points, unreferenced data and reclaim of a container.

As the sqlite driver's :mod:`~storaged.catalog.sync_points`,
:mod:`~storaged.catalog.garbage` and :mod:`~storaged.catalog.reclaim`.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from typing import Any

from storaged.catalog.metadata import dump_stored
from storaged.catalog.postgresql.base import LOG
from storaged.catalog.postgresql.base import OBJECT_COLS
from storaged.catalog.postgresql.base import RECLAIM_BATCH
from storaged.catalog.postgresql.base import ContainerBase
from storaged.catalog.postgresql.base import check_count
from storaged.catalog.postgresql.base import check_worker
from storaged.catalog.postgresql.base import cutoff_of
from storaged.catalog.postgresql.base import object_row
from storaged.catalog.postgresql.connection import Conn
from storaged.catalog.records import Garbage
from storaged.catalog.records import ObjectRow
from storaged.catalog.timestamp import Timestamp


class UpkeepMixin(ContainerBase):
    """What the sync daemon, the garbage collector and reclaim use."""

    def get_max_row(self) -> int:
        """Return the largest row id given (-1 if none): the change log's end."""
        return self._conns.read(self._read_state)[1]

    def get_items_since(self, start_row: int, limit: int = 1000) -> list[ObjectRow]:
        """Rows with a row id above ``start_row``, in row id order, tombstones too."""
        if isinstance(start_row, bool) or not isinstance(start_row, int):
            raise ValueError("start_row must be an integer")
        check_count(limit, "limit")

        def work(conn: Conn) -> list[ObjectRow]:
            cid = self._any_id(conn)
            rows = conn.execute(
                f"SELECT {OBJECT_COLS} FROM objects WHERE container_id = %s "  # noqa: S608
                "AND row_id > %s ORDER BY row_id LIMIT %s",
                (cid, start_row, limit),
            ).fetchall()
            return [object_row(r) for r in rows]

        return self._conns.read(work)

    def get_sync_points(self, worker: str) -> tuple[int, int]:
        """Return ``(point1, point2)`` of a sync worker; ``(-1, -1)`` when unset."""
        worker = check_worker(worker)

        def work(conn: Conn) -> tuple[int, int]:
            cid = self._any_id(conn)
            row = conn.execute(
                "SELECT point1, point2 FROM sync_points WHERE container_id = %s "
                "AND worker = %s", (cid, worker),
            ).fetchone()
            return (-1, -1) if row is None else (int(row[0]), int(row[1]))

        return self._conns.read(work)

    def set_sync_points(
        self, worker: str, point1: int | None = None, point2: int | None = None
    ) -> None:
        """Record a sync worker's points; None leaves a point as it is."""
        worker = check_worker(worker)
        for point in (point1, point2):
            if point is not None and (
                isinstance(point, bool) or not isinstance(point, int) or point < -1
            ):
                raise ValueError(f"a sync point is an integer >= -1, not {point!r}")

        def work(conn: Conn) -> None:
            cid, _max_row, _state = self._lock_state(conn)
            conn.execute(
                "INSERT INTO sync_points AS s (container_id, worker, point1, point2, "
                "updated_at) VALUES (%(cid)s, %(worker)s, coalesce(%(p1)s, -1), "
                "coalesce(%(p2)s, -1), %(now)s) ON CONFLICT (container_id, worker) "
                "DO UPDATE SET point1 = coalesce(%(p1)s, s.point1), "
                "point2 = coalesce(%(p2)s, s.point2), updated_at = excluded.updated_at",
                {"cid": cid, "worker": worker, "p1": point1, "p2": point2,
                 "now": Timestamp.now().internal},
            )

        self._conns.transaction(work)

    def reset_sync_points(self, worker: str | None = None) -> None:
        """Forget the sync points of one worker, or of all (back to -1)."""
        if worker is not None:
            worker = check_worker(worker)

        def work(conn: Conn) -> None:
            cid, _max_row, _state = self._lock_state(conn)
            conn.execute(
                "DELETE FROM sync_points WHERE container_id = %s "
                "AND (%s::text IS NULL OR worker = %s)",
                (cid, worker, worker),
            )

        self._conns.transaction(work)

    def list_sync_points(self) -> dict[str, tuple[int, int]]:
        """Return every worker's ``(point1, point2)``."""

        def work(conn: Conn) -> list[tuple[Any, ...]]:
            cid = self._any_id(conn)
            return conn.execute(
                "SELECT worker, point1, point2 FROM sync_points "
                "WHERE container_id = %s ORDER BY worker", (cid,),
            ).fetchall()

        return {r[0]: (int(r[1]), int(r[2])) for r in self._conns.read(work)}

    # -- unreferenced data ---------------------------------------------------------

    def list_garbage(self, limit: int = 100) -> list[Garbage]:
        """Entries of data no row refers to any more, oldest first."""
        check_count(limit, "limit")

        def work(conn: Conn) -> list[tuple[Any, ...]]:
            cid = self._any_id(conn)
            return conn.execute(
                "SELECT id, backend, location, added_at FROM garbage "
                "WHERE container_id = %s ORDER BY id LIMIT %s", (cid, limit),
            ).fetchall()

        rows = self._conns.read(work)
        return [Garbage(int(r[0]), r[1], r[2], float(r[3])) for r in rows]

    def forget_garbage(self, garbage_ids: Iterable[int]) -> int:
        """Remove garbage entries (their data is deleted); returns how many."""
        ids = []
        for garbage_id in garbage_ids:
            if isinstance(garbage_id, bool) or not isinstance(garbage_id, int):
                raise ValueError(f"a garbage id is an integer, not {garbage_id!r}")
            ids.append(garbage_id)
        ids = sorted(set(ids))
        if not ids:
            return 0

        def work(conn: Conn) -> int:
            cid, _max_row, _state = self._lock_state(conn)
            removed = conn.execute(
                "DELETE FROM garbage WHERE container_id = %s AND id = ANY(%s)",
                (cid, ids),
            ).rowcount
            if removed:
                self._bump(conn, cid, "garbage_count = garbage_count - %(n)s, ",
                           {"n": removed})
            return removed

        return self._conns.transaction(work)

    def collect_garbage(
        self, delete: Callable[[str, str], None], limit: int = 100
    ) -> tuple[int, int]:
        """Delete unreferenced data from the back ends and forget it."""
        done: list[int] = []
        failed = 0
        for entry in self.list_garbage(limit):
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

    # -- reclaim ---------------------------------------------------------------------

    def reclaim(self, age: float | None = None, now: float | None = None) -> int:
        """Remove tombstones (and deleted metadata keys) older than ``age``."""
        cutoff = cutoff_of(self.reclaim_age if age is None else age, now)

        def batch(conn: Conn) -> int:
            cid, _max_row, _state = self._lock_state(conn)
            removed: int = conn.execute(
                "DELETE FROM objects WHERE container_id = %(cid)s AND name IN ("
                "SELECT name FROM objects WHERE container_id = %(cid)s AND deleted "
                "AND created_at < %(cutoff)s LIMIT %(n)s)",
                {"cid": cid, "cutoff": cutoff.internal, "n": RECLAIM_BATCH},
            ).rowcount
            return removed

        removed = 0
        while True:
            count = self._conns.transaction(batch)
            removed += count
            if count < RECLAIM_BATCH:
                break

        def prune(conn: Conn) -> None:
            cid, _max_row, state = self._lock_state(conn)
            kept = {k: v for k, v in state.metadata.items()
                    if v[0] or Timestamp(v[1]) >= cutoff}
            if kept != state.metadata:
                conn.execute("UPDATE containers SET metadata = %s WHERE id = %s",
                             (dump_stored(kept), cid))

        self._conns.transaction(prune)
        return removed

    def remove_if_reclaimable(
        self, age: float | None, now: float | None = None
    ) -> bool:
        """Remove the container if it was deleted over ``age`` ago and has no garbage.

        :returns: whether it was removed (with its tombstones and sync points).
        """
        cutoff = cutoff_of(self.reclaim_age if age is None else age, now)

        def work(conn: Conn) -> bool:
            cid, _max_row, state = self._lock_state(conn)
            if state.alive or state.object_count or state.status_changed_at >= cutoff:
                return False
            # Read from the table itself, not the counter: never lose an entry.
            left = conn.execute(
                "SELECT count(*) FROM garbage WHERE container_id = %s", (cid,)
            ).fetchone()
            if left and left[0]:
                LOG.info(
                    "Kept deleted container %s/%s: %d entries of unreferenced "
                    "data to collect first", state.account, state.container, left[0],
                )
                return False
            conn.execute("DELETE FROM containers WHERE id = %s", (cid,))
            return True

        return self._conns.transaction(work)
