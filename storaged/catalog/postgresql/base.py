"""A container in the PostgreSQL catalog: its row, locks and row ids.

The semantics are those of the sqlite driver's
:class:`~storaged.catalog.broker.ContainerBroker` (its docstring has the
worked example); what differs is how they are kept.

**Row ids in commit order.**  A sync worker reads "rows after N" and moves
its point to the last row it saw.  If row ids came from a sequence, two
writers of one container could take 7 and 8, the one with 8 commit first,
and a reader pass 8 before 7 commits: row 7 would never be read.  So row
ids come from the container's own counter, ``containers.max_row``, bumped
by an ``UPDATE`` in the writing transaction: every write of a container
first locks the container's row (``SELECT ... FOR UPDATE``), which it holds
until it commits, so the writers of one container take their row ids one
after the other, each after the previous one committed.  A reader that
sees row ``n`` therefore sees every row below ``n`` that still exists, as
with sqlite's single writer.  Writers of different containers never wait
for each other.

**Counts, garbage, the account index** change in the same transaction as
the row, in the same ``UPDATE`` of the container's row: the
``containers`` table *is* the account index, with no lag.

Rows are updated in place (``ON CONFLICT ... DO UPDATE``) with their new
row id: unlike sqlite's ``ROWID`` the row id is a column, so no
delete-and-insert is needed for a change to move to the end of the log.
"""

from __future__ import annotations

from collections.abc import Mapping
import json
import logging
import time
from types import TracebackType
from typing import Any
from typing import Final
from typing import Self

from storaged import exception
from storaged.catalog import names
from storaged.catalog.broker_base import DEFAULT_RECLAIM_AGE
from storaged.catalog.broker_base import ContainerState
from storaged.catalog.metadata import SYNC_KEY_KEY
from storaged.catalog.metadata import SYNC_TO_KEY
from storaged.catalog.metadata import StoredMetadata
from storaged.catalog.metadata import dump_stored
from storaged.catalog.metadata import merge_entries
from storaged.catalog.metadata import stored_value
from storaged.catalog.postgresql.connection import Conn
from storaged.catalog.postgresql.connection import Connections
from storaged.catalog.records import ObjectRow
from storaged.catalog.timestamp import Timestamp

LOG = logging.getLogger("storaged.catalog.broker")

STATE: Final = (
    "c.id, c.db_id, c.account, c.container, c.created_at, c.put_timestamp, "
    "c.delete_timestamp, c.status_changed_at, c.object_count, c.bytes_used, "
    "c.metadata, c.version, c.garbage_count, c.max_row"
)
WHERE_NAME: Final = "c.account = %(account)s AND c.container = %(container)s"
# Statements are built from constants of this module only; every value is
# a bound parameter.
SELECT_STATE: Final = f"SELECT {STATE} FROM containers c WHERE {WHERE_NAME}"  # noqa: S608
OBJECT_COLS: Final = (
    "row_id, name, created_at, size, content_type, etag, deleted, backend, "
    "location, metadata"
)
# The container's row locked with the object's current row, if any.
# The current row of a name, read *after* the container's row is locked, in
# a statement of its own: under READ COMMITTED each statement reads a new
# snapshot, so this one sees what the writer that held the lock before us
# committed.  (Joined to the locking statement, it would not: a statement
# that waited for a row lock re-reads the locked row only, and the rows
# joined to it stay as its snapshot, taken before the wait, saw them.)
SELECT_OBJECT_FOR_WRITE: Final = (
    "SELECT row_id, created_at, deleted, backend, location, size, content_type, "  # noqa: S608
    "etag FROM objects WHERE container_id = (SELECT c.id FROM containers c WHERE "
    f"{WHERE_NAME}) AND name = %(name)s"
)
# Takes the next row id and writes the row under it, in one statement.
WRITE_ROW: Final = """
WITH c AS (
    UPDATE containers SET max_row = greatest(max_row, 0) + 1, version = version + 1,
        object_count = object_count + %(d_count)s,
        bytes_used = bytes_used + %(d_bytes)s,
        garbage_count = garbage_count + %(d_garbage)s
    WHERE id = %(cid)s RETURNING id, max_row
)
INSERT INTO objects AS o (container_id, name, row_id, created_at, size,
    content_type, etag, deleted, backend, location, metadata)
SELECT c.id, %(name)s, c.max_row, %(created_at)s, %(size)s, %(content_type)s,
    %(etag)s, %(deleted)s, %(backend)s, %(location)s, %(metadata)s FROM c
ON CONFLICT (container_id, name) DO UPDATE SET row_id = excluded.row_id,
    created_at = excluded.created_at, size = excluded.size,
    content_type = excluded.content_type, etag = excluded.etag,
    deleted = excluded.deleted, backend = excluded.backend,
    location = excluded.location, metadata = excluded.metadata
"""
# A PUT or DELETE decided and written by the server in one statement, sent
# right after the statement that locks the container's row (so its snapshot
# is taken once the lock is held, see SELECT_OBJECT_FOR_WRITE): it writes
# only if the container is live and no row of the name is as new, and then
# moves the counts, records the replaced data as garbage and gives the row
# the next row id.  Returns one row when it wrote.
PUT_ROW: Final = f"""
WITH k AS (
    SELECT c.id FROM containers c WHERE {WHERE_NAME}
), old AS (
    SELECT o.created_at, o.deleted, o.backend, o.location, o.size
    FROM objects o, k WHERE o.container_id = k.id AND o.name = %(name)s
), old_live AS (
    SELECT * FROM old WHERE NOT deleted
), freed AS (
    SELECT * FROM old_live WHERE location <> ''
        AND (backend, location) <> (%(backend)s, %(location)s)
), c AS (
    UPDATE containers SET max_row = greatest(max_row, 0) + 1, version = version + 1,
        object_count = object_count + %(live)s - (SELECT count(*) FROM old_live),
        bytes_used = bytes_used + %(size)s
            - coalesce((SELECT sum(size) FROM old_live), 0),
        garbage_count = garbage_count + (SELECT count(*) FROM freed)
    WHERE id = (SELECT id FROM k) AND put_timestamp > delete_timestamp
        AND NOT EXISTS (SELECT 1 FROM old WHERE created_at >= %(created_at)s)
    RETURNING id, max_row
), garbage_row AS (
    INSERT INTO garbage (container_id, backend, location, added_at)
    SELECT c.id, freed.backend, freed.location, %(now)s FROM c, freed
)
INSERT INTO objects AS o (container_id, name, row_id, created_at, size,
    content_type, etag, deleted, backend, location, metadata)
SELECT c.id, %(name)s, c.max_row, %(created_at)s, %(size)s, %(content_type)s,
    %(etag)s, %(deleted)s, %(backend)s, %(location)s, %(metadata)s FROM c
ON CONFLICT (container_id, name) DO UPDATE SET row_id = excluded.row_id,
    created_at = excluded.created_at, size = excluded.size,
    content_type = excluded.content_type, etag = excluded.etag,
    deleted = excluded.deleted, backend = excluded.backend,
    location = excluded.location, metadata = excluded.metadata
RETURNING row_id
"""  # noqa: S608
RECLAIM_BATCH: Final = 1000


def state_of(row: tuple[Any, ...]) -> tuple[int, int, ContainerState]:
    """``(container id, max_row, state)`` from the first columns of ``row``."""
    state = ContainerState(
        db_id=row[1],
        account=row[2],
        container=row[3],
        created_at=Timestamp(row[4]),
        put_timestamp=Timestamp(row[5]),
        delete_timestamp=Timestamp(row[6]),
        status_changed_at=Timestamp(row[7]),
        object_count=int(row[8]),
        bytes_used=int(row[9]),
        metadata=json.loads(row[10]),
        version=int(row[11]),
        garbage_count=int(row[12]),
    )
    return int(row[0]), int(row[13]), state


def object_row(row: tuple[Any, ...]) -> ObjectRow:
    return ObjectRow.from_row(row)


def check_field(value: str, kind: str, max_bytes: int) -> str:
    """Check a text field of an object row (never quoted: may hold credentials)."""
    text = names.check_text(value, kind, show=False)
    if "\r" in text or "\n" in text:
        raise exception.InvalidName(kind=kind, reason="holds CR or LF")
    if len(text.encode("utf-8")) > max_bytes:
        raise exception.InvalidName(kind=kind, reason=f"longer than {max_bytes} bytes")
    return text


def check_worker(worker: str) -> str:
    """Check a sync worker's name."""
    text = names.check_text(worker, "sync worker")
    if not text or len(text.encode("utf-8")) > names.MAX_KEY_BYTES:
        raise exception.InvalidName(
            kind="sync worker", reason=f"must be 1 to {names.MAX_KEY_BYTES} bytes"
        )
    return text


def check_count(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be a non-negative integer")
    return value


def cutoff_of(age: float, now: float | None) -> Timestamp:
    """The timestamp ``age`` seconds before ``now`` (default: the clock)."""
    moment = (time.time() if now is None else now) - age
    return Timestamp(max(0.0, moment))



class ContainerBase:
    """The footing of the PostgreSQL container broker: its row, locks, metadata.

    Cheap to make (it holds no connection): the catalog's pool lends one
    per call.  Shared freely by threads.

    :param conns: the catalog's connections.
    :param account: the account name (checked).
    :param container: the container name (checked).
    :param limits: naming and metadata limits.
    :param reclaim_age: seconds a tombstone is kept.
    """

    def __init__(
        self,
        conns: Connections,
        account: str,
        container: str,
        *,
        limits: names.Limits = names.DEFAULT_LIMITS,
        reclaim_age: float = DEFAULT_RECLAIM_AGE,
    ) -> None:
        self._conns = conns
        self._names = {"account": account, "container": container}
        self.limits = limits
        self.reclaim_age = reclaim_age

    def __repr__(self) -> str:
        return f"<PostgresContainerBroker {self.account}/{self.container}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release: connections go back to the pool after each call."""

    @property
    def account(self) -> str:
        return self._names["account"]

    @property
    def container(self) -> str:
        return self._names["container"]

    def _not_found(self) -> exception.ContainerNotFound:
        return exception.ContainerNotFound(
            account=self.account, container=self.container
        )

    # -- reading and writing the container's row -----------------------------------

    def _read_state(self, conn: Conn) -> tuple[int, int, ContainerState]:
        row = conn.execute(SELECT_STATE, self._names).fetchone()
        if row is None:
            raise self._not_found()
        return state_of(row)

    def _lock_state(self, conn: Conn) -> tuple[int, int, ContainerState]:
        row = conn.execute(SELECT_STATE + " FOR UPDATE", self._names).fetchone()
        if row is None:
            raise self._not_found()
        return state_of(row)

    def _require_alive(self, state: ContainerState) -> None:
        if not state.alive:
            raise self._not_found()

    def _live_id(self, conn: Conn) -> int:
        row = conn.execute(
            "SELECT c.id, c.put_timestamp > c.delete_timestamp FROM containers c "  # noqa: S608
            f"WHERE {WHERE_NAME}",
            self._names,
        ).fetchone()
        if row is None or not row[1]:
            raise self._not_found()
        return int(row[0])

    def _any_id(self, conn: Conn) -> int:
        row = conn.execute(
            f"SELECT c.id FROM containers c WHERE {WHERE_NAME}",  # noqa: S608
            self._names,
        ).fetchone()
        if row is None:
            raise self._not_found()
        return int(row[0])

    @staticmethod
    def _bump(
        conn: Conn, cid: int, sets: str = "", params: Mapping[str, Any] | None = None
    ) -> None:
        # ``sets`` is constant text of this module; values are parameters.
        conn.execute(
            f"UPDATE containers SET {sets}version = version + 1 "  # noqa: S608
            "WHERE id = %(cid)s",
            {**(params or {}), "cid": cid},
        )

    def _merge_metadata(
        self, conn: Conn, cid: int, current: StoredMetadata,
        updates: Mapping[str, str], ts: Timestamp,
    ) -> bool:
        """Merge ``updates`` at ``ts`` (as the sqlite driver's ``merge_metadata``)."""
        merged = merge_entries(current, updates, ts)
        if merged == current:
            return False
        names.check_user_metadata_totals(
            {k: v[0] for k, v in merged.items()},
            kind="container metadata",
            prefix=names.CONTAINER_META_PREFIX,
            limits=self.limits,
        )
        if stored_value(current, SYNC_TO_KEY) != stored_value(merged, SYNC_TO_KEY):
            # A new target: everything must be pushed again (as Swift does).
            conn.execute("DELETE FROM sync_points WHERE container_id = %s", (cid,))
        sync = bool(
            stored_value(merged, SYNC_TO_KEY) and stored_value(merged, SYNC_KEY_KEY)
        )
        conn.execute(
            "UPDATE containers SET metadata = %s, sync = %s WHERE id = %s",
            (dump_stored(merged), sync, cid),
        )
        return True

    # -- the container ---------------------------------------------------------------
