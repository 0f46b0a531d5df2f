"""Reclaim: old tombstones, deleted metadata keys and deleted containers.

Tombstones and deleted metadata keys older than the reclaim age are
removed; a container deleted longer ago than that loses its database,
unless it still lists unreferenced data to collect.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from typing import Final

from storaged.catalog.broker_base import BrokerBase
from storaged.catalog.broker_base import ContainerState
from storaged.catalog.timestamp import Timestamp

# Under the broker's name, as before its parts had modules of their own:
# logging configuration may refer to it.
LOG = logging.getLogger("storaged.catalog.broker")

# Rows deleted per transaction by reclaim, so writers are not held up long.
_RECLAIM_BATCH: Final = 1000


class ReclaimMixin(BrokerBase):
    """Removing what a container no longer needs once the reclaim age is past."""

    def reclaim(self, age: float | None = None, now: float | None = None) -> int:
        """Remove tombstones (and deleted metadata keys) older than ``age``.

        Live rows are never touched, nor garbage entries.  Runs in small
        transactions so writers are not held up.  ``age`` must exceed the
        longest time a sync worker may lag behind, or that worker never
        sends those deletes.

        :param age: seconds; default the broker's ``reclaim_age``.
        :param now: the current time (tests).
        :returns: how many tombstones were removed.
        """
        cutoff = _cutoff(self.reclaim_age if age is None else age, now)
        removed = 0
        while True:
            with self._write_plain() as conn:
                count = conn.execute(
                    "DELETE FROM objects WHERE ROWID IN (SELECT ROWID FROM objects "
                    "WHERE deleted = 1 AND created_at < ? LIMIT ?)",
                    (cutoff.internal, _RECLAIM_BATCH),
                ).rowcount
            removed += count
            if count < _RECLAIM_BATCH:
                break

        def prune_metadata(
            conn: sqlite3.Connection, state: ContainerState
        ) -> tuple[None, bool]:
            kept = {
                k: v
                for k, v in state.metadata.items()
                if v[0] or Timestamp(v[1]) >= cutoff
            }
            if kept != state.metadata:
                conn.execute(
                    "UPDATE container_info SET metadata = ?",
                    (json.dumps(kept, sort_keys=True, ensure_ascii=False),),
                )
            return None, False

        self._write(prune_metadata)
        return removed

    def remove_if_reclaimable(
        self, age: float | None, trash_dir: str, now: float | None = None
    ) -> str | None:
        """Move the database away if the container was deleted over ``age`` ago.

        A database that still lists garbage is kept: its entries are the
        only record of that data, which must be collected first.

        :returns: where the files went (the caller deletes them), or None.
        """
        cutoff = _cutoff(self.reclaim_age if age is None else age, now)
        with self._write_plain() as conn:
            state = self._state(conn)
            if state.alive or state.object_count or state.status_changed_at >= cutoff:
                return None
            # Read from the table itself, not the counter: never lose an entry.
            left = conn.execute("SELECT count(*) FROM garbage").fetchone()[0]
            if left:
                LOG.info(
                    "Kept the database of deleted container %s/%s: %d entries "
                    "of unreferenced data to collect first",
                    state.account, state.container, left,
                )
                return None
            dest = self._db.move_away_locked(conn, trash_dir)
        self._db.close()
        return dest


def _cutoff(age: float, now: float | None) -> Timestamp:
    moment = (time.time() if now is None else now) - age
    return Timestamp(max(0.0, moment))

