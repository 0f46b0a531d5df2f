"""The container broker: one container's sqlite database.

Callers in green threads must not call the broker directly: every method
does sqlite I/O (and fsync at each commit), which would stall the eventlet
hub.  Wrap the calls in :func:`storaged.concurrency.run_blocking`::

    info = run_blocking(broker.info)
    applied = run_blocking(broker.put_object, name, ts, size, ctype, etag)

A broker may be shared by several OS threads (its connection is guarded by
a lock) and any number of processes may open the same container at once.

The broker is built in parts, one module each:

* :mod:`storaged.catalog.records`: what it returns (rows, infos, stats);
* :mod:`storaged.catalog.metadata`: container (and account) metadata and its merge;
* :mod:`storaged.catalog.broker_base`: its database, names and transactions;
* :mod:`storaged.catalog.sync_points`: the change log and sync points;
* :mod:`storaged.catalog.garbage`: object data no longer referenced;
* :mod:`storaged.catalog.reclaim`: tombstones and deleted containers;
* this module: the container and its objects, in :class:`ContainerBroker`.

Callers may import every name in ``__all__`` from this module, wherever it
is defined.
"""

from __future__ import annotations

from collections.abc import Mapping
import sqlite3
import time

from storaged import exception
from storaged.catalog import listing
from storaged.catalog import names
from storaged.catalog.broker_base import DEFAULT_RECLAIM_AGE
from storaged.catalog.broker_base import ContainerState
from storaged.catalog.garbage import GarbageMixin
from storaged.catalog.listing import check_limit
from storaged.catalog.listing import check_listing_params
from storaged.catalog.metadata import MASK
from storaged.catalog.metadata import SECRET_KEYS
from storaged.catalog.metadata import SYNC_KEY_KEY
from storaged.catalog.metadata import SYNC_TO_KEY
from storaged.catalog.metadata import check_container_metadata
from storaged.catalog.metadata import live_values
from storaged.catalog.metadata import merge_metadata
from storaged.catalog.reclaim import ReclaimMixin
from storaged.catalog.records import SELECT_OBJECTS
from storaged.catalog.records import ContainerInfo
from storaged.catalog.records import ContainerStats
from storaged.catalog.records import Garbage
from storaged.catalog.records import ObjectRow
from storaged.catalog.records import TimestampConflict
from storaged.catalog.sync_points import SyncPointsMixin
from storaged.catalog.timestamp import Timestamp
from storaged.catalog.timestamp import TimestampLike
from storaged.catalog.timestamp import parse_timestamp

__all__ = [
    "DEFAULT_RECLAIM_AGE",
    "MASK",
    "SECRET_KEYS",
    "SYNC_KEY_KEY",
    "SYNC_TO_KEY",
    "ContainerBroker",
    "ContainerInfo",
    "ContainerStats",
    "Garbage",
    "ObjectRow",
    "TimestampConflict",
    "check_limit",
    "check_listing_params",
]


# -- the broker ----------------------------------------------------------------


class ContainerBroker(SyncPointsMixin, GarbageMixin, ReclaimMixin):
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
        meta = check_container_metadata(metadata or {}, self.limits)
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

        def apply(conn: sqlite3.Connection, state: ContainerState) -> tuple[bool, bool]:
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
            if meta and merge_metadata(conn, state.metadata, meta, ts, self.limits):
                changed = True
            return (alive and not was_alive), changed

        return self._write(apply)

    def delete(self, timestamp: TimestampLike | None = None) -> None:
        """Delete the container (Swift's container DELETE).

        The database stays, with its tombstones, until reclaim removes it
        ``reclaim_age`` seconds later; a newer :meth:`create` brings the
        container back meanwhile, without the metadata it had (cleared at
        this DELETE's timestamp, as Swift clears it).

        :raises storaged.exception.ContainerNotFound: missing or deleted (404).
        :raises storaged.exception.ContainerNotEmpty: it lists objects (409).
        :raises TimestampConflict: its PUT is newer than this DELETE (409).
        """
        ts = parse_timestamp(timestamp)

        def apply(conn: sqlite3.Connection, state: ContainerState) -> tuple[None, bool]:
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
            # Its metadata goes with it, as Swift's delete_db clears it: a
            # container made again under the name starts bare (no ACL, no
            # sync target of the old one).
            cleared = {key: "" for key, (value, _ts) in state.metadata.items() if value}
            if cleared:
                merge_metadata(conn, state.metadata, cleared, ts, self.limits)
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
            metadata=live_values(state.metadata),
            metadata_timestamps={k: Timestamp(v[1]) for k, v in state.metadata.items()},
            garbage_count=state.garbage_count,
        )

    def update_metadata(
        self,
        updates: Mapping[str, str],
        timestamp: TimestampLike | None = None,
        touch: bool = False,
    ) -> bool:
        """Merge metadata into the container's (Swift's container POST).

        Keys are header names (``X-Container-Meta-Color``,
        ``X-Container-Sync-To`` ...), case-insensitive, stored in canonical
        case.  Each key is updated only if ``timestamp`` is newer than the
        key's; an empty value deletes the key.  When the effective
        ``X-Container-Sync-To`` changes, every worker's sync points are
        reset.

        :param touch: also move the container's put timestamp to
            ``timestamp`` when that is newer, in the same transaction, as
            Swift's container server does on a POST (its ``Last-Modified``
            and ``X-Put-Timestamp`` follow).
        :returns: whether anything changed.
        :raises storaged.exception.ContainerNotFound: missing or deleted.
        :raises storaged.exception.InvalidName: a bad key or value, or the
            user metadata would exceed the limits.
        """
        ts = parse_timestamp(timestamp)
        meta = check_container_metadata(updates, self.limits)

        def apply(conn: sqlite3.Connection, state: ContainerState) -> tuple[bool, bool]:
            self._require_alive(state)
            changed = merge_metadata(conn, state.metadata, meta, ts, self.limits)
            if touch and ts > state.put_timestamp:
                conn.execute(
                    "UPDATE container_info SET put_timestamp = ?", (ts.internal,)
                )
                changed = True
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

        def apply(conn: sqlite3.Connection, state: ContainerState) -> tuple[bool, bool]:
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

        def apply(conn: sqlite3.Connection, state: ContainerState) -> tuple[bool, bool]:
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

        def apply(conn: sqlite3.Connection, state: ContainerState) -> tuple[bool, bool]:
            self._require_alive(state)
            row = conn.execute(
                SELECT_OBJECTS + " WHERE name = ? AND deleted = 0",
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
                SELECT_OBJECTS + " WHERE name = ?", (name,)
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
        path: str | None = None,
    ) -> list[ObjectRow | listing.Subdir]:
        """List live objects (tombstones never show), as Swift's container GET.

        See :mod:`storaged.catalog.listing` for the semantics (``path`` too).

        :param limit: at most this many entries; default and maximum
            :data:`~storaged.catalog.listing.MAX_LIMIT` (10,000).
        :raises ValueError: ``limit`` outside 0..10,000.
        :raises storaged.exception.InvalidName: a parameter is not text.
        :raises storaged.exception.ContainerNotFound: missing or deleted.
        """
        limit = check_limit(limit)
        params = check_listing_params(marker, end_marker, prefix, delimiter)
        if path is not None:
            path = check_listing_params("", "", path, "")["prefix"]
        with self._read() as conn:
            self._require_alive_fast(conn)

            def fetch(
                bounds: listing.Bounds, rev: bool, count: int
            ) -> list[ObjectRow]:
                where, args = bounds.sql("name")
                order = "DESC" if rev else "ASC"
                # ``where`` comes from Bounds.sql: placeholders only.
                rows = conn.execute(
                    f"{SELECT_OBJECTS} WHERE deleted = 0 AND {where} "
                    f"ORDER BY name {order} LIMIT ?",
                    (*args, count),
                ).fetchall()
                return [ObjectRow.from_row(r) for r in rows]

            return listing.list_entries(
                fetch, lambda r: r.name, limit=limit, reverse=reverse, path=path,
                **params,
            )
