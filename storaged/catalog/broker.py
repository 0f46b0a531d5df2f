"""The container broker: one container's sqlite database.

Callers in green threads must not call the broker directly: every method
does sqlite I/O (and fsync at each commit), which would stall the eventlet
hub.  Wrap the calls in :func:`storaged.concurrency.run_blocking`::

    info = run_blocking(broker.info)
    applied = run_blocking(broker.put_object, name, ts, size, ctype, etag)

A broker may be shared by several OS threads (its connection is guarded by
a lock) and any number of processes may open the same container at once.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
import contextlib
import dataclasses
import json
import logging
import sqlite3
import time
from types import TracebackType
from typing import Any
from typing import Final
from typing import TypeVar

from storaged import exception
from storaged.catalog import listing
from storaged.catalog import names
from storaged.catalog.database import Database
from storaged.catalog.database import DatabaseMissing
from storaged.catalog.timestamp import Timestamp
from storaged.catalog.timestamp import TimestampLike
from storaged.catalog.timestamp import parse_timestamp

LOG = logging.getLogger(__name__)

#: Container metadata keys that configure container sync (Swift's headers).
SYNC_TO_KEY: Final = "X-Container-Sync-To"
SYNC_KEY_KEY: Final = "X-Container-Sync-Key"
#: Container metadata whose values are secrets: masked in reprs and dumps.
SECRET_KEYS: Final = frozenset(
    {SYNC_KEY_KEY, "X-Container-Meta-Temp-Url-Key", "X-Container-Meta-Temp-Url-Key-2"}
)
#: What a secret value is shown as.
MASK: Final = "***"
#: Default reclaim age, in seconds (a week, as Swift's).
DEFAULT_RECLAIM_AGE: Final = 604800

# Rows deleted per transaction by reclaim, so writers are not held up long.
_RECLAIM_BATCH: Final = 1000
# Garbage ids per DELETE statement (well under sqlite's variable limit).
_FORGET_BATCH: Final = 500
_SELECT_OBJECTS: Final = (
    "SELECT ROWID, name, created_at, size, content_type, etag, deleted, backend, "
    "location, metadata FROM objects"
)
_SELECT_INFO: Final = (
    "SELECT id, account, container, created_at, put_timestamp, delete_timestamp, "
    "status_changed_at, object_count, bytes_used, metadata, version, "
    "garbage_count FROM container_info"
)

T = TypeVar("T")


class TimestampConflict(exception.CatalogError):
    """A container PUT or DELETE lost to a newer DELETE or PUT (Swift: 409)."""

    msg_fmt = (
        "Container %(account)s/%(container)s: %(operation)s at %(timestamp)s "
        "lost to a newer change"
    )


# -- what the broker returns ---------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ObjectRow:
    """One object of a container as the catalog records it.

    A tombstone (``deleted``) keeps only the name and ``created_at`` (the
    delete's timestamp); its other fields are empty.

    :ivar row_id: the change's place in the change log; a later change of
        the same name gets a larger one.
    :ivar created_at: the timestamp of the write (PUT, POST or DELETE) that
        made this row: what last-writer-wins compares and what container
        sync sends as ``X-Timestamp``.
    :ivar backend: id of the object store back end holding the data.
    :ivar location: where the back end keeps the data.
    :ivar metadata: the object's headers (``X-Object-Meta-*``,
        ``Content-Disposition`` ...), canonical case.
    """

    row_id: int
    name: str
    created_at: Timestamp
    size: int
    content_type: str
    etag: str
    deleted: bool
    backend: str
    location: str
    metadata: Mapping[str, str]

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> ObjectRow:
        """Build from a row of :data:`_SELECT_OBJECTS`."""
        return cls(
            row_id=int(row[0]),
            name=row[1],
            created_at=Timestamp(row[2]),
            size=int(row[3]),
            content_type=row[4],
            etag=row[5],
            deleted=bool(row[6]),
            backend=row[7],
            location=row[8],
            metadata=json.loads(row[9]),
        )


@dataclasses.dataclass(frozen=True, repr=False)
class Garbage:
    """Object data that no row of the container refers to any more.

    Recorded when a newer PUT or a DELETE replaced the row that pointed at
    it; to be deleted from its back end, then forgotten
    (:meth:`ContainerBroker.collect_garbage`).  ``repr`` leaves the
    location out: it may hold credentials.

    :ivar garbage_id: the entry's id, never given twice in a database.
    :ivar backend: id of the object store back end holding the data.
    :ivar location: where that back end keeps it.
    :ivar added_at: when the entry was written (seconds since the epoch).
    """

    garbage_id: int
    backend: str
    location: str
    added_at: float

    def __repr__(self) -> str:
        return (
            f"Garbage(garbage_id={self.garbage_id}, backend={self.backend!r}, "
            f"added_at={self.added_at!r})"
        )


@dataclasses.dataclass(frozen=True, repr=False)
class ContainerInfo:
    """A container's state, as :meth:`ContainerBroker.info` reads it.

    Secrets: ``metadata`` holds the sync key (and temp URL keys) in clear,
    because the sync daemon needs it.  To show or log an info, use
    ``repr(info)``, :meth:`masked_metadata` or :meth:`as_dict`, which mask
    every key in :data:`SECRET_KEYS`.

    :ivar created_at: when this database was made.
    :ivar status_changed_at: when the container last went from live to
        deleted or back.
    :ivar max_row: the largest row id ever given in this database (-1 if
        none); rows up to it are the change log so far.
    :ivar metadata: live metadata, key -> value (keys deleted with an
        empty value are left out).
    :ivar metadata_timestamps: key -> timestamp of its last update, deleted
        keys included (until reclaimed).
    :ivar garbage_count: entries of object data no longer referenced, not
        yet collected (see :meth:`ContainerBroker.list_garbage`).
    """

    account: str
    container: str
    db_id: str
    created_at: Timestamp
    put_timestamp: Timestamp
    delete_timestamp: Timestamp
    status_changed_at: Timestamp
    object_count: int
    bytes_used: int
    max_row: int
    metadata: Mapping[str, str]
    metadata_timestamps: Mapping[str, Timestamp]
    garbage_count: int = 0

    @property
    def deleted(self) -> bool:
        """True when the last DELETE is newer than the last PUT."""
        return self.delete_timestamp >= self.put_timestamp

    @property
    def sync_to(self) -> str:
        """``X-Container-Sync-To``, or ``""``."""
        return self.metadata.get(SYNC_TO_KEY, "")

    @property
    def sync_key(self) -> str:
        """``X-Container-Sync-Key``, or ``""``.  A secret: never log it."""
        return self.metadata.get(SYNC_KEY_KEY, "")

    @property
    def syncing(self) -> bool:
        """True when both sync metadata are set: the sync daemon's work."""
        return bool(self.sync_to and self.sync_key)

    def masked_metadata(self) -> dict[str, str]:
        """The metadata with every secret value replaced by :data:`MASK`."""
        return {k: (MASK if k in SECRET_KEYS else v) for k, v in self.metadata.items()}

    def as_dict(self, mask_secrets: bool = True) -> dict[str, Any]:
        """A JSON-ready dict (timestamps in internal form)."""
        return {
            "account": self.account,
            "container": self.container,
            "db_id": self.db_id,
            "created_at": self.created_at.internal,
            "put_timestamp": self.put_timestamp.internal,
            "delete_timestamp": self.delete_timestamp.internal,
            "status_changed_at": self.status_changed_at.internal,
            "object_count": self.object_count,
            "bytes_used": self.bytes_used,
            "max_row": self.max_row,
            "garbage_count": self.garbage_count,
            "deleted": self.deleted,
            "metadata": self.masked_metadata() if mask_secrets else dict(self.metadata),
        }

    def __repr__(self) -> str:
        return (
            f"ContainerInfo(account={self.account!r}, container={self.container!r}, "
            f"object_count={self.object_count}, bytes_used={self.bytes_used}, "
            f"put_timestamp={self.put_timestamp.internal}, "
            f"delete_timestamp={self.delete_timestamp.internal}, "
            f"max_row={self.max_row}, metadata={self.masked_metadata()!r})"
        )


@dataclasses.dataclass(frozen=True)
class ContainerStats:
    """What the account index keeps of a container (no secrets).

    ``garbage`` counts the entries of unreferenced object data.
    """

    account: str
    container: str
    db_id: str
    db_created_at: Timestamp
    version: int
    put_timestamp: Timestamp
    delete_timestamp: Timestamp
    status_changed_at: Timestamp
    object_count: int
    bytes_used: int
    deleted: bool
    sync: bool
    garbage: int = 0


@dataclasses.dataclass(frozen=True)
class _State:
    """The ``container_info`` row, read inside a transaction."""

    db_id: str
    account: str
    container: str
    created_at: Timestamp
    put_timestamp: Timestamp
    delete_timestamp: Timestamp
    status_changed_at: Timestamp
    object_count: int
    bytes_used: int
    metadata: dict[str, list[str]]
    version: int
    garbage_count: int

    @property
    def alive(self) -> bool:
        return self.put_timestamp > self.delete_timestamp

    def meta_value(self, key: str) -> str:
        entry = self.metadata.get(key)
        return entry[0] if entry else ""

    @property
    def sync(self) -> bool:
        return bool(self.meta_value(SYNC_TO_KEY) and self.meta_value(SYNC_KEY_KEY))


# -- the broker ----------------------------------------------------------------


class ContainerBroker:
    """One container: its objects, metadata, change log and sync points.

    **Row ids and the change log.**  The ``objects`` table has one row per
    object name, live or tombstone.  A change never updates a row in place:
    the old row is deleted and a new one inserted, which gets a row id
    larger than any given before (``AUTOINCREMENT``: ids are never reused,
    even after reclaim).  Rows in row id order are therefore the change log
    of the container, each name appearing once, at its latest change;
    :meth:`get_items_since` reads it.  As sqlite has one writer at a time, a
    reader that sees row ``n`` sees every row below ``n`` that still exists.

    **Last writer wins.**  Each write carries a :class:`Timestamp` (the
    client's ``X-Timestamp``, or now).  :meth:`put_object`,
    :meth:`delete_object` and :meth:`update_object_metadata` apply only if
    their timestamp is strictly newer than the row's ``created_at``, and say
    whether they did; an older or equal one changes nothing (Swift answers
    such a PUT with 202).  Container metadata keys are merged the same way,
    one key at a time; an empty value deletes a key (the key keeps its
    timestamp, so an older value cannot come back).

    **Sync points.**  The sync daemon keeps, per container and per worker,
    two row ids: ``point1`` (new rows up to here were looked at, and this
    worker's share of them pushed) and ``point2`` (rows up to here were
    re-checked by this worker).  Changing ``X-Container-Sync-To`` resets
    them all (to -1), as in Swift.  Worked example::

        put a (ts 10) -> row 1      put b (ts 11) -> row 2
        put a (ts 12) -> row 1 goes, row 3          (a's latest change)
        delete b (ts 13) -> row 2 goes, row 4 (tombstone)
        put a (ts 9)  -> ignored, returns False      (older than 12)

        get_items_since(-1)  -> [a@12 (row 3), b deleted@13 (row 4)]
        worker w1 pushes rows 3, 4:  set_sync_points("w1", point1=4)
        put c (ts 14) -> row 5
        get_items_since(4)   -> [c@14 (row 5)]   (nothing is missed)

    Reclaim removes tombstones older than ``reclaim_age``; a sync worker
    that lags further behind than that never sees those deletes.

    **Unreferenced data.**  When a newer PUT or a DELETE replaces a live row
    that points at other object data, that data's ``(backend, location)``
    goes into the ``garbage`` table in the same transaction, so it is never
    lost track of; :meth:`collect_garbage` deletes it from the back ends
    and forgets it.  Garbage is not an object, is never reclaimed, and
    keeps a deleted container's database from being removed.

    :param db: the container's database.
    :param account: account name, or None to read it from the database.
    :param container: container name, or None likewise.
    :param limits: naming and metadata limits.
    :param reclaim_age: seconds a tombstone is kept.
    :param reporter: called after every change with the new
        :class:`ContainerStats` (the catalog updates its account index).
    """

    def __init__(
        self,
        db: Database,
        account: str | None = None,
        container: str | None = None,
        *,
        limits: names.Limits = names.DEFAULT_LIMITS,
        reclaim_age: float = DEFAULT_RECLAIM_AGE,
        reporter: Callable[[ContainerStats], None] | None = None,
    ) -> None:
        self._db = db
        self._account = account
        self._container = container
        self.limits = limits
        self.reclaim_age = reclaim_age
        self._reporter = reporter

    def __repr__(self) -> str:
        return f"<ContainerBroker {self._account}/{self._container}>"

    def __enter__(self) -> ContainerBroker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the database connection (a later call reopens it)."""
        self._db.close()

    @property
    def db(self) -> Database:
        """The database this broker works on."""
        return self._db

    @property
    def account(self) -> str:
        """The account name (read from the database when not given)."""
        if self._account is None:
            self._load_names()
        assert self._account is not None
        return self._account

    @property
    def container(self) -> str:
        """The container name (read from the database when not given)."""
        if self._container is None:
            self._load_names()
        assert self._container is not None
        return self._container

    def _load_names(self) -> None:
        with self._read() as conn:
            self._state(conn)

    def _not_found(self) -> exception.ContainerNotFound:
        return exception.ContainerNotFound(
            account=self._account or "?", container=self._container or "?"
        )

    # -- transactions --------------------------------------------------------------

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        try:
            with self._db.read() as conn:
                yield conn
        except DatabaseMissing as err:
            raise self._not_found() from err

    def _write(
        self, apply: Callable[[sqlite3.Connection, _State], tuple[T, bool]]
    ) -> T:
        """Run ``apply(conn, state)`` in a write transaction.

        ``apply`` returns ``(result, changed)``; when it changed anything,
        the container's version goes up and the new stats are reported.
        """
        try:
            with self._db.write() as conn:
                result, changed = apply(conn, self._state(conn))
                stats = self._bump(conn) if changed else None
        except DatabaseMissing as err:
            raise self._not_found() from err
        if stats is not None:
            self._report(stats)
        return result

    def _state(self, conn: sqlite3.Connection) -> _State:
        row = conn.execute(_SELECT_INFO).fetchone()
        if row is None:
            raise exception.CatalogError(
                reason=f"{self._db.directory} has no container_info row"
            )
        state = _State(
            db_id=row[0],
            account=row[1],
            container=row[2],
            created_at=Timestamp(row[3]),
            put_timestamp=Timestamp(row[4]),
            delete_timestamp=Timestamp(row[5]),
            status_changed_at=Timestamp(row[6]),
            object_count=int(row[7]),
            bytes_used=int(row[8]),
            metadata=json.loads(row[9]),
            version=int(row[10]),
            garbage_count=int(row[11]),
        )
        if self._account is None or self._container is None:
            self._account, self._container = state.account, state.container
        elif (state.account, state.container) != (self._account, self._container):
            raise exception.CatalogError(
                reason=f"{self._db.directory} holds {state.account}/"
                f"{state.container}, not {self._account}/{self._container}"
            )
        return state

    def _bump(self, conn: sqlite3.Connection) -> ContainerStats:
        conn.execute("UPDATE container_info SET version = version + 1")
        return self._stats(self._state(conn))

    @staticmethod
    def _stats(state: _State) -> ContainerStats:
        return ContainerStats(
            account=state.account,
            container=state.container,
            db_id=state.db_id,
            db_created_at=state.created_at,
            version=state.version,
            put_timestamp=state.put_timestamp,
            delete_timestamp=state.delete_timestamp,
            status_changed_at=state.status_changed_at,
            object_count=state.object_count,
            bytes_used=state.bytes_used,
            deleted=not state.alive,
            sync=state.sync and state.alive,
            garbage=state.garbage_count,
        )

    def _report(self, stats: ContainerStats) -> None:
        if self._reporter is None:
            return
        try:
            self._reporter(stats)
        except Exception:
            # The index is derived data, healed by the next report or the
            # reclaim pass; the change itself is committed.
            LOG.exception(
                "Could not update the account index for %s/%s",
                stats.account,
                stats.container,
            )

    def stats(self) -> ContainerStats:
        """Read the figures the account index keeps (deleted containers too)."""
        with self._read() as conn:
            return self._stats(self._state(conn))

    def _require_alive(self, state: _State) -> None:
        if not state.alive:
            raise self._not_found()

    def _require_alive_fast(self, conn: sqlite3.Connection) -> None:
        """Like ``_require_alive(_state(conn))`` for the read paths, cheaper.

        The fixed-width timestamp text compares as the timestamps do.
        """
        row = conn.execute(
            "SELECT account, container, put_timestamp > delete_timestamp "
            "FROM container_info"
        ).fetchone()
        if row is None or self._account is None or self._container is None:
            self._require_alive(self._state(conn))
            return
        if (row[0], row[1]) != (self._account, self._container):
            self._state(conn)  # raises, naming both
        if not row[2]:
            raise self._not_found()

    # -- the container ---------------------------------------------------------------

    def exists(self) -> bool:
        """Tell whether the container exists (has a database and is not deleted)."""
        try:
            with self._read() as conn:
                return self._state(conn).alive
        except exception.ContainerNotFound:
            return False

    def create(
        self,
        put_timestamp: TimestampLike | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> bool:
        """Create the container, or update it if it exists (Swift's container PUT).

        Idempotent.  A deleted container comes back when ``put_timestamp``
        is newer than its delete.  ``metadata`` is merged as by
        :meth:`update_metadata`, with ``put_timestamp``.

        :returns: True if the container did not exist (or was deleted) and
            now does (201), False if it existed already (202).
        :raises TimestampConflict: a newer DELETE keeps it deleted (409).
        :raises storaged.exception.InvalidName: bad metadata.
        """
        if self._account is None or self._container is None:
            raise exception.CatalogError(reason="create() needs the container's name")
        ts = parse_timestamp(put_timestamp)
        meta = self._check_container_metadata(metadata or {})
        account, container = self._account, self._container

        def init(conn: sqlite3.Connection, db_id: str) -> None:
            # Born live: a database never holds a half-made container that
            # a reclaim pass could take for one deleted long ago.
            now = Timestamp.now().internal
            conn.execute(
                "INSERT INTO container_info (id, account, container, created_at, "
                "put_timestamp, status_changed_at) VALUES (?, ?, ?, ?, ?, ?)",
                (db_id, account, container, now, ts.internal, now),
            )

        made = self._db.create(init)

        def apply(conn: sqlite3.Connection, state: _State) -> tuple[bool, bool]:
            was_alive = state.alive and not made
            changed = made
            if ts > state.put_timestamp:
                conn.execute(
                    "UPDATE container_info SET put_timestamp = ?", (ts.internal,)
                )
                changed = True
            alive = max(ts, state.put_timestamp) > state.delete_timestamp
            if not alive:
                raise TimestampConflict(
                    account=account,
                    container=container,
                    operation="PUT",
                    timestamp=ts.internal,
                )
            if alive != was_alive:
                conn.execute(
                    "UPDATE container_info SET status_changed_at = ?",
                    (Timestamp.now().internal,),
                )
            if meta and self._merge_metadata(conn, state, meta, ts):
                changed = True
            return (alive and not was_alive), changed

        return self._write(apply)

    def delete(self, timestamp: TimestampLike | None = None) -> None:
        """Delete the container (Swift's container DELETE).

        The database stays, with its tombstones and sync points, until
        reclaim removes it ``reclaim_age`` seconds later; a newer
        :meth:`create` brings the container back meanwhile.

        :raises storaged.exception.ContainerNotFound: missing or deleted (404).
        :raises storaged.exception.ContainerNotEmpty: it lists objects (409).
        :raises TimestampConflict: its PUT is newer than this DELETE (409).
        """
        ts = parse_timestamp(timestamp)

        def apply(conn: sqlite3.Connection, state: _State) -> tuple[None, bool]:
            self._require_alive(state)
            if state.object_count > 0:
                raise exception.ContainerNotEmpty(
                    account=state.account, container=state.container
                )
            if ts <= state.put_timestamp:
                raise TimestampConflict(
                    account=state.account,
                    container=state.container,
                    operation="DELETE",
                    timestamp=ts.internal,
                )
            conn.execute(
                "UPDATE container_info SET delete_timestamp = ?, status_changed_at = ?",
                (max(ts, state.delete_timestamp).internal, Timestamp.now().internal),
            )
            return None, True

        self._write(apply)

    def info(self, include_deleted: bool = False) -> ContainerInfo:
        """Read the container's state.

        :param include_deleted: return the info of a deleted container too
            (its database is kept until reclaimed) instead of raising.
        :raises storaged.exception.ContainerNotFound: missing (or deleted).
        """
        with self._read() as conn:
            state = self._state(conn)
            max_row = self._max_row(conn)
        if not include_deleted:
            self._require_alive(state)
        return ContainerInfo(
            account=state.account,
            container=state.container,
            db_id=state.db_id,
            created_at=state.created_at,
            put_timestamp=state.put_timestamp,
            delete_timestamp=state.delete_timestamp,
            status_changed_at=state.status_changed_at,
            object_count=state.object_count,
            bytes_used=state.bytes_used,
            max_row=max_row,
            metadata={k: v[0] for k, v in state.metadata.items() if v[0]},
            metadata_timestamps={k: Timestamp(v[1]) for k, v in state.metadata.items()},
            garbage_count=state.garbage_count,
        )

    def _check_container_metadata(self, metadata: Mapping[str, str]) -> dict[str, str]:
        return names.validate_metadata(
            metadata,
            kind="container metadata",
            prefix=names.CONTAINER_META_PREFIX,
            limits=self.limits,
        )

    def _merge_metadata(
        self,
        conn: sqlite3.Connection,
        state: _State,
        updates: Mapping[str, str],
        ts: Timestamp,
    ) -> bool:
        merged = {k: list(v) for k, v in state.metadata.items()}
        for key, value in updates.items():
            old = merged.get(key)
            if old is None or ts > Timestamp(old[1]):
                merged[key] = [value, ts.internal]
        if merged == state.metadata:
            return False
        names.check_user_metadata_totals(
            {k: v[0] for k, v in merged.items()},
            kind="container metadata",
            prefix=names.CONTAINER_META_PREFIX,
            limits=self.limits,
        )
        old_sync_to = state.meta_value(SYNC_TO_KEY)
        new_sync_to = merged[SYNC_TO_KEY][0] if SYNC_TO_KEY in merged else ""
        if old_sync_to != new_sync_to:
            # A new target: everything must be pushed again (as Swift does).
            conn.execute("DELETE FROM sync_points")
        conn.execute(
            "UPDATE container_info SET metadata = ?",
            (json.dumps(merged, sort_keys=True, ensure_ascii=False),),
        )
        return True

    def update_metadata(
        self, updates: Mapping[str, str], timestamp: TimestampLike | None = None
    ) -> bool:
        """Merge metadata into the container's (Swift's container POST).

        Keys are header names (``X-Container-Meta-Color``,
        ``X-Container-Sync-To`` ...), case-insensitive, stored in canonical
        case.  Each key is updated only if ``timestamp`` is newer than the
        key's; an empty value deletes the key.  When the effective
        ``X-Container-Sync-To`` changes, every worker's sync points are
        reset.

        :returns: whether anything changed.
        :raises storaged.exception.ContainerNotFound: missing or deleted.
        :raises storaged.exception.InvalidName: a bad key or value, or the
            user metadata would exceed the limits.
        """
        ts = parse_timestamp(timestamp)
        meta = self._check_container_metadata(updates)

        def apply(conn: sqlite3.Connection, state: _State) -> tuple[bool, bool]:
            self._require_alive(state)
            changed = self._merge_metadata(conn, state, meta, ts)
            return changed, changed

        return self._write(apply)

    def set_sync(
        self, sync_to: str, sync_key: str, timestamp: TimestampLike | None = None
    ) -> bool:
        """Set (or, with empty values, clear) ``X-Container-Sync-To/-Key``.

        :returns: whether anything changed.
        """
        return self.update_metadata(
            {SYNC_TO_KEY: sync_to, SYNC_KEY_KEY: sync_key}, timestamp
        )

    # -- objects -----------------------------------------------------------------------

    def _check_object_name(self, name: str | bytes) -> str:
        return names.validate_object(name, self.limits)

    @staticmethod
    def _check_field(value: str, kind: str, max_bytes: int) -> str:
        # Never quoted: a location may hold credentials.
        text = names.check_text(value, kind, show=False)
        if "\r" in text or "\n" in text:
            raise exception.InvalidName(kind=kind, reason="holds CR or LF")
        if len(text.encode("utf-8")) > max_bytes:
            raise exception.InvalidName(
                kind=kind, reason=f"longer than {max_bytes} bytes"
            )
        return text

    def put_object(
        self,
        name: str | bytes,
        timestamp: TimestampLike,
        size: int,
        content_type: str,
        etag: str,
        *,
        backend: str = "",
        location: str = "",
        metadata: Mapping[str, str] | None = None,
    ) -> bool:
        """Record an object write, if it is the newest (Swift's object PUT).

        :param name: the object name.
        :param timestamp: the write's timestamp (``X-Timestamp``).
        :param size: bytes of data.
        :param content_type: its ``Content-Type``.
        :param etag: its digest as the API reports it.
        :param backend: id of the object store back end with the data.
        :param location: where that back end keeps it.
        :param metadata: headers to keep with the object.
        :returns: True if recorded; False if the row has a timestamp at
            least as new (the write lost: Swift answers 202).
        :raises storaged.exception.ContainerNotFound: missing or deleted.
        :raises storaged.exception.InvalidName: a bad name or field.
        """
        name = self._check_object_name(name)
        ts = Timestamp(timestamp)
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise exception.InvalidName(
                kind="object size", reason="must be a non-negative integer"
            )
        fields = (
            self._check_field(content_type, "content type", names.MAX_VALUE_BYTES),
            self._check_field(etag, "etag", names.MAX_KEY_BYTES),
            self._check_field(backend, "back end id", names.MAX_KEY_BYTES),
            self._check_field(location, "location", names.MAX_VALUE_BYTES),
        )
        meta = names.validate_metadata(
            metadata or {},
            kind="object metadata",
            prefix=names.OBJECT_META_PREFIX,
            limits=self.limits,
            raw_values=True,
        )

        def apply(conn: sqlite3.Connection, state: _State) -> tuple[bool, bool]:
            self._require_alive(state)
            if not self._replace(conn, name, ts, fields[2], fields[3]):
                return False, False
            conn.execute(
                "INSERT INTO objects (name, created_at, size, content_type, etag, "
                "deleted, backend, location, metadata) "
                "VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)",
                (name, ts.internal, size, fields[0], fields[1], fields[2], fields[3],
                 names.dump_metadata(meta)),
            )
            return True, True

        return self._write(apply)

    @staticmethod
    def _replace(
        conn: sqlite3.Connection,
        name: str,
        ts: Timestamp,
        backend: str,
        location: str,
    ) -> bool:
        """Drop the row of ``name`` if ``ts`` is newer; tell whether to write.

        ``backend`` and ``location`` are the data of the row about to be
        written (empty for a tombstone).  When the dropped row was live and
        pointed at other data, that data is recorded as garbage, in this
        same transaction: it is no longer referenced once this commits.
        """
        row = conn.execute(
            "SELECT ROWID, created_at, deleted, backend, location FROM objects "
            "WHERE name = ?",
            (name,),
        ).fetchone()
        if row is None:
            return True
        if Timestamp(row[1]) >= ts:
            return False
        conn.execute("DELETE FROM objects WHERE ROWID = ?", (row[0],))
        old_backend, old_location = row[3], row[4]
        if not row[2] and old_location and (old_backend, old_location) != (
            backend, location
        ):
            conn.execute(
                "INSERT INTO garbage (backend, location, added_at) VALUES (?, ?, ?)",
                (old_backend, old_location, time.time()),
            )
        return True

    def delete_object(self, name: str | bytes, timestamp: TimestampLike) -> bool:
        """Record an object delete as a tombstone, if it is the newest.

        A tombstone is written even when no row existed (so that an older
        PUT arriving later is still refused, and sync propagates the delete).

        :returns: True if recorded; False if the row is at least as new.
        :raises storaged.exception.ContainerNotFound: missing or deleted.
        """
        name = self._check_object_name(name)
        ts = Timestamp(timestamp)

        def apply(conn: sqlite3.Connection, state: _State) -> tuple[bool, bool]:
            self._require_alive(state)
            if not self._replace(conn, name, ts, "", ""):
                return False, False
            conn.execute(
                "INSERT INTO objects (name, created_at, deleted) VALUES (?, ?, 1)",
                (name, ts.internal),
            )
            return True, True

        return self._write(apply)

    def update_object_metadata(
        self,
        name: str | bytes,
        timestamp: TimestampLike,
        metadata: Mapping[str, str],
        content_type: str | None = None,
    ) -> bool:
        """Replace a live object's metadata (Swift's object POST), if newest.

        The data fields stay (so no data becomes garbage); the row gets
        ``timestamp`` as ``created_at`` and a new row id, so container sync
        pushes the object again with its new metadata (as Swift's does).
        One timestamp per row keeps things simple: a PUT older than this
        POST but newer than the data it replaced is refused, where Swift
        would keep that PUT's data.

        :returns: True if applied; False if there is no live object by that
            name or its row is at least as new.
        :raises storaged.exception.ContainerNotFound: missing or deleted.
        """
        name = self._check_object_name(name)
        ts = Timestamp(timestamp)
        meta = names.validate_metadata(
            metadata,
            kind="object metadata",
            prefix=names.OBJECT_META_PREFIX,
            limits=self.limits,
            raw_values=True,
        )
        if content_type is not None:
            content_type = self._check_field(
                content_type, "content type", names.MAX_VALUE_BYTES
            )

        def apply(conn: sqlite3.Connection, state: _State) -> tuple[bool, bool]:
            self._require_alive(state)
            row = conn.execute(
                _SELECT_OBJECTS + " WHERE name = ? AND deleted = 0",
                (name,),
            ).fetchone()
            if row is None:
                return False, False
            old = ObjectRow.from_row(row)
            if old.created_at >= ts:
                return False, False
            conn.execute("DELETE FROM objects WHERE ROWID = ?", (old.row_id,))
            conn.execute(
                "INSERT INTO objects (name, created_at, size, content_type, etag, "
                "deleted, backend, location, metadata) "
                "VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)",
                (name, ts.internal, old.size,
                 old.content_type if content_type is None else content_type,
                 old.etag, old.backend, old.location,
                 names.dump_metadata(meta)),
            )
            return True, True

        return self._write(apply)

    def get_object(
        self, name: str | bytes, include_deleted: bool = False
    ) -> ObjectRow | None:
        """Return the row of an object, or None.

        :param include_deleted: return a tombstone too (else None for it).
        :raises storaged.exception.ContainerNotFound: missing or deleted.
        """
        name = self._check_object_name(name)
        with self._read() as conn:
            self._require_alive_fast(conn)
            row = conn.execute(
                _SELECT_OBJECTS + " WHERE name = ?", (name,)
            ).fetchone()
        if row is None:
            return None
        obj = ObjectRow.from_row(row)
        if obj.deleted and not include_deleted:
            return None
        return obj

    def list_objects(
        self,
        limit: int | None = None,
        marker: str = "",
        end_marker: str = "",
        prefix: str = "",
        delimiter: str = "",
        reverse: bool = False,
    ) -> list[ObjectRow | listing.Subdir]:
        """List live objects (tombstones never show), as Swift's container GET.

        See :mod:`storaged.catalog.listing` for the semantics.

        :param limit: at most this many entries; default and maximum
            :data:`~storaged.catalog.listing.MAX_LIMIT` (10,000).
        :raises ValueError: ``limit`` outside 0..10,000.
        :raises storaged.exception.InvalidName: a parameter is not text.
        :raises storaged.exception.ContainerNotFound: missing or deleted.
        """
        limit = check_limit(limit)
        params = check_listing_params(marker, end_marker, prefix, delimiter)
        with self._read() as conn:
            self._require_alive_fast(conn)

            def fetch(
                bounds: listing.Bounds, rev: bool, count: int
            ) -> list[ObjectRow]:
                where, args = bounds.sql("name")
                order = "DESC" if rev else "ASC"
                # ``where`` comes from Bounds.sql: placeholders only.
                rows = conn.execute(
                    f"{_SELECT_OBJECTS} WHERE deleted = 0 AND {where} "
                    f"ORDER BY name {order} LIMIT ?",
                    (*args, count),
                ).fetchall()
                return [ObjectRow.from_row(r) for r in rows]

            return listing.list_entries(
                fetch, lambda r: r.name, limit=limit, reverse=reverse, **params
            )

    # -- data no longer referenced -----------------------------------------------------

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

        def apply(conn: sqlite3.Connection, state: _State) -> tuple[int, bool]:
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

    # -- the change log and sync points ------------------------------------------------

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
                _SELECT_OBJECTS + " WHERE ROWID > ? ORDER BY ROWID LIMIT ?",
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

        def apply(conn: sqlite3.Connection, state: _State) -> tuple[None, bool]:
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

        def apply(conn: sqlite3.Connection, state: _State) -> tuple[None, bool]:
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

    # -- reclaim and checks ------------------------------------------------------------

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
            conn: sqlite3.Connection, state: _State
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

    @contextlib.contextmanager
    def _write_plain(self) -> Iterator[sqlite3.Connection]:
        try:
            with self._db.write() as conn:
                self._state(conn)
                yield conn
        except DatabaseMissing as err:
            raise self._not_found() from err

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

    def check(self, full: bool = False) -> None:
        """Check the database (``quick_check``, or ``integrity_check`` if full).

        :raises storaged.exception.CatalogCorrupt: damaged, now quarantined.
        """
        try:
            self._db.check(full)
        except DatabaseMissing as err:
            raise self._not_found() from err


# -- helpers -------------------------------------------------------------------------


def _cutoff(age: float, now: float | None) -> Timestamp:
    moment = (time.time() if now is None else now) - age
    return Timestamp(max(0.0, moment))


def check_limit(limit: int | None) -> int:
    """Return the listing limit to use, :data:`listing.MAX_LIMIT` by default.

    :raises ValueError: not an integer in 0..MAX_LIMIT.
    """
    if limit is None:
        return listing.MAX_LIMIT
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise ValueError("limit must be an integer")
    if not 0 <= limit <= listing.MAX_LIMIT:
        raise ValueError(f"limit must be between 0 and {listing.MAX_LIMIT}")
    return limit


def check_listing_params(
    marker: str, end_marker: str, prefix: str, delimiter: str
) -> dict[str, str]:
    """Check the text parameters of a listing; return them as keyword arguments.

    :raises storaged.exception.InvalidName: one is not valid UTF-8 text.
    """
    params = {
        "marker": marker,
        "end_marker": end_marker,
        "prefix": prefix,
        "delimiter": delimiter,
    }
    return {k: names.check_text(v, "listing " + k) for k, v in params.items()}
