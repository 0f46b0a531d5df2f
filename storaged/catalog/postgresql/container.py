"""A container in the PostgreSQL catalog: :class:`PostgresContainerBroker`.

See :mod:`.base` for how row ids stay in commit order.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
import time
from typing import Any
import uuid

from storaged import exception
from storaged.catalog import listing
from storaged.catalog import names
from storaged.catalog.listing import check_limit
from storaged.catalog.listing import check_listing_params
from storaged.catalog.metadata import SYNC_KEY_KEY
from storaged.catalog.metadata import SYNC_TO_KEY
from storaged.catalog.metadata import check_container_metadata
from storaged.catalog.metadata import live_values
from storaged.catalog.postgresql import batch
from storaged.catalog.postgresql.base import OBJECT_COLS
from storaged.catalog.postgresql.base import SELECT_OBJECT_FOR_WRITE
from storaged.catalog.postgresql.base import SELECT_STATE
from storaged.catalog.postgresql.base import WHERE_NAME
from storaged.catalog.postgresql.base import WRITE_ROW
from storaged.catalog.postgresql.base import check_field
from storaged.catalog.postgresql.base import object_row
from storaged.catalog.postgresql.base import state_of
from storaged.catalog.postgresql.connection import Conn
from storaged.catalog.postgresql.sqltext import bounds_sql
from storaged.catalog.postgresql.upkeep import UpkeepMixin
from storaged.catalog.records import ContainerInfo
from storaged.catalog.records import ContainerStats
from storaged.catalog.records import ObjectRow
from storaged.catalog.records import TimestampConflict
from storaged.catalog.timestamp import Timestamp
from storaged.catalog.timestamp import TimestampLike
from storaged.catalog.timestamp import parse_timestamp


class PostgresContainerBroker(UpkeepMixin):
    """One container in the PostgreSQL catalog.

    Cheap to make (it holds no connection): the catalog's pool lends one
    per call.  Shared freely by threads.  The semantics of each method are
    those of :class:`storaged.catalog.broker.ContainerBroker`.

    :param conns: the catalog's connections.
    :param account: the account name (checked).
    :param container: the container name (checked).
    :param limits: naming and metadata limits.
    :param reclaim_age: seconds a tombstone is kept.
    """

    def exists(self) -> bool:
        """Tell whether the container exists (and is not deleted)."""
        try:
            self._conns.read(self._live_id)
        except exception.ContainerNotFound:
            return False
        return True

    def create(
        self,
        put_timestamp: TimestampLike | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> bool:
        """Create or update the container (Swift's container PUT)."""
        ts = parse_timestamp(put_timestamp)
        meta = check_container_metadata(metadata or {}, self.limits)

        def work(conn: Conn) -> bool:
            now = Timestamp.now().internal
            made = conn.execute(
                "INSERT INTO containers (account, container, db_id, created_at, "
                "put_timestamp, status_changed_at) VALUES (%(account)s, "
                "%(container)s, %(db_id)s, %(now)s, %(ts)s, %(now)s) "
                "ON CONFLICT (account, container) DO NOTHING RETURNING id",
                {**self._names, "db_id": uuid.uuid4().hex, "now": now,
                 "ts": ts.internal},
            ).fetchone() is not None
            cid, _max_row, state = self._lock_state(conn)
            was_alive = state.alive and not made
            changed = made
            if ts > state.put_timestamp:
                conn.execute(
                    "UPDATE containers SET put_timestamp = %s WHERE id = %s",
                    (ts.internal, cid),
                )
                changed = True
            alive = max(ts, state.put_timestamp) > state.delete_timestamp
            if not alive:
                raise TimestampConflict(
                    account=self.account, container=self.container,
                    operation="PUT", timestamp=ts.internal,
                )
            if alive != was_alive:
                conn.execute(
                    "UPDATE containers SET status_changed_at = %s WHERE id = %s",
                    (Timestamp.now().internal, cid),
                )
            if meta and self._merge_metadata(conn, cid, state.metadata, meta, ts):
                changed = True
            if changed:
                self._bump(conn, cid)
            return alive and not was_alive

        return self._conns.transaction(work)

    def delete(self, timestamp: TimestampLike | None = None) -> None:
        """Delete the container (Swift's container DELETE); see the sqlite broker."""
        ts = parse_timestamp(timestamp)

        def work(conn: Conn) -> None:
            cid, _max_row, state = self._lock_state(conn)
            self._require_alive(state)
            if state.object_count > 0:
                raise exception.ContainerNotEmpty(
                    account=state.account, container=state.container
                )
            if ts <= state.put_timestamp:
                raise TimestampConflict(
                    account=state.account, container=state.container,
                    operation="DELETE", timestamp=ts.internal,
                )
            cleared = {key: "" for key, (value, _ts) in state.metadata.items() if value}
            if cleared:
                self._merge_metadata(conn, cid, state.metadata, cleared, ts)
            self._bump(
                conn, cid,
                "delete_timestamp = %(deleted)s, status_changed_at = %(now)s, ",
                {"deleted": max(ts, state.delete_timestamp).internal,
                 "now": Timestamp.now().internal},
            )

        self._conns.transaction(work)

    def info(self, include_deleted: bool = False) -> ContainerInfo:
        """Read the container's state (see the sqlite broker)."""
        _cid, max_row, state = self._conns.read(self._read_state)
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

    def stats(self) -> ContainerStats:
        """The figures the account index keeps (deleted containers too)."""
        _cid, _max_row, state = self._conns.read(self._read_state)
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

    def update_metadata(
        self,
        updates: Mapping[str, str],
        timestamp: TimestampLike | None = None,
        touch: bool = False,
    ) -> bool:
        """Merge metadata (Swift's container POST); see the sqlite broker."""
        ts = parse_timestamp(timestamp)
        meta = check_container_metadata(updates, self.limits)

        def work(conn: Conn) -> bool:
            cid, _max_row, state = self._lock_state(conn)
            self._require_alive(state)
            changed = self._merge_metadata(conn, cid, state.metadata, meta, ts)
            if touch and ts > state.put_timestamp:
                conn.execute(
                    "UPDATE containers SET put_timestamp = %s WHERE id = %s",
                    (ts.internal, cid),
                )
                changed = True
            if changed:
                self._bump(conn, cid)
            return changed

        return self._conns.transaction(work)

    def set_sync(
        self, sync_to: str, sync_key: str, timestamp: TimestampLike | None = None
    ) -> bool:
        """Set (or, with empty values, clear) ``X-Container-Sync-To/-Key``."""
        return self.update_metadata(
            {SYNC_TO_KEY: sync_to, SYNC_KEY_KEY: sync_key}, timestamp
        )

    def check(self, full: bool = False) -> None:
        """Check that the container's row is there (PostgreSQL checks its own pages).

        :raises storaged.exception.ContainerNotFound: no such container.
        """
        self._conns.read(self._any_id)

    # -- objects -----------------------------------------------------------------------

    def _write_object(
        self,
        name: str,
        ts: Timestamp,
        decide: Callable[[tuple[Any, ...]], dict[str, Any] | None],
    ) -> bool:
        """Lock the container, let ``decide`` see the name's row, write what it returns.

        ``decide`` gets the row of :data:`SELECT_OBJECT_FOR_WRITE` (all
        None when the name has none) and returns the new row's fields, or
        None to write nothing.
        """
        params = {**self._names, "name": name}

        def work(conn: Conn) -> bool:
            locking = conn.execute(SELECT_STATE + " FOR UPDATE", self._names)
            reading = conn.execute(SELECT_OBJECT_FOR_WRITE, params)
            row = locking.fetchone()
            if row is None:
                raise self._not_found()
            cid, _max_row, state = state_of(row)
            self._require_alive(state)
            old: tuple[Any, ...] = reading.fetchone() or (None,) * 8
            if old[0] is not None and Timestamp(old[1]) >= ts:
                return False
            new = decide(old)
            if new is None:
                return False
            old_live = old[0] is not None and not old[2]
            d_count = int(not new["deleted"]) - int(old_live)
            d_bytes = new["size"] - (int(old[5]) if old_live else 0)
            garbage = old_live and bool(old[4]) and (old[3], old[4]) != (
                new["backend"], new["location"]
            )
            conn.execute(WRITE_ROW, {
                **new, "cid": cid, "name": name, "created_at": ts.internal,
                "d_count": d_count, "d_bytes": d_bytes, "d_garbage": int(garbage),
            })
            if garbage:
                conn.execute(
                    "INSERT INTO garbage (container_id, backend, location, added_at) "
                    "VALUES (%s, %s, %s, %s)",
                    (cid, old[3], old[4], time.time()),
                )
            return True

        return self._conns.transaction(work)

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
        """Record an object write if it is the newest (see the sqlite broker)."""
        name = names.validate_object(name, self.limits)
        ts = Timestamp(timestamp)
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise exception.InvalidName(
                kind="object size", reason="must be a non-negative integer"
            )
        new = {
            "size": size,
            "content_type": check_field(
                content_type, "content type", names.MAX_VALUE_BYTES
            ),
            "etag": check_field(etag, "etag", names.MAX_KEY_BYTES),
            "backend": check_field(backend, "back end id", names.MAX_KEY_BYTES),
            "location": check_field(location, "location", names.MAX_VALUE_BYTES),
            "deleted": False,
            "metadata": names.dump_metadata(names.validate_metadata(
                metadata or {}, kind="object metadata",
                prefix=names.OBJECT_META_PREFIX, limits=self.limits, raw_values=True,
            )),
        }
        return self._put_row(name, ts, new)

    def _put_row(self, name: str, ts: Timestamp, new: dict[str, Any]) -> bool:
        """Write a PUT's or DELETE's row if it is the newest: one round trip.

        The lock, the write (:data:`PUT_ROW`, which decides on the server)
        and the commit go in one pipeline, shared with the rows other
        threads of this process write at the same time (:mod:`.batch`).
        """
        params = {
            **self._names, **new, "name": name, "created_at": ts.internal,
            "live": int(not new["deleted"]), "now": time.time(),
        }
        row, written = batch.write_row(self._conns, self._names, params)
        if row is None:
            raise self._not_found()
        self._require_alive(state_of(row)[2])
        return written

    def delete_object(self, name: str | bytes, timestamp: TimestampLike) -> bool:
        """Record a delete as a tombstone if it is the newest."""
        name = names.validate_object(name, self.limits)
        ts = Timestamp(timestamp)
        new = {"size": 0, "content_type": "", "etag": "", "backend": "",
               "location": "", "deleted": True, "metadata": "{}"}
        return self._put_row(name, ts, new)

    def update_object_metadata(
        self,
        name: str | bytes,
        timestamp: TimestampLike,
        metadata: Mapping[str, str],
        content_type: str | None = None,
    ) -> bool:
        """Replace a live object's metadata if newest (see the sqlite broker)."""
        name = names.validate_object(name, self.limits)
        ts = Timestamp(timestamp)
        meta = names.dump_metadata(names.validate_metadata(
            metadata, kind="object metadata", prefix=names.OBJECT_META_PREFIX,
            limits=self.limits, raw_values=True,
        ))
        if content_type is not None:
            content_type = check_field(
                content_type, "content type", names.MAX_VALUE_BYTES
            )

        def decide(old: tuple[Any, ...]) -> dict[str, Any] | None:
            if old[0] is None or old[2]:
                return None
            return {
                "size": int(old[5]),
                "content_type": old[6] if content_type is None else content_type,
                "etag": old[7], "backend": old[3], "location": old[4],
                "deleted": False, "metadata": meta,
            }

        return self._write_object(name, ts, decide)

    def get_object(
        self, name: str | bytes, include_deleted: bool = False
    ) -> ObjectRow | None:
        """Return the row of an object, or None (see the sqlite broker)."""
        name = names.validate_object(name, self.limits)

        def work(conn: Conn) -> tuple[Any, ...] | None:
            row = conn.execute(
                "SELECT c.put_timestamp > c.delete_timestamp, "  # noqa: S608
                + ", ".join(f"o.{col}" for col in OBJECT_COLS.split(", "))
                + " FROM containers c LEFT JOIN objects o ON o.container_id = c.id "
                f"AND o.name = %(name)s WHERE {WHERE_NAME}",
                {**self._names, "name": name},
            ).fetchone()
            if row is None or not row[0]:
                raise self._not_found()
            return None if row[1] is None else tuple(row[1:])

        found = self._conns.read(work)
        if found is None:
            return None
        obj = object_row(found)
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
        """List live objects, as Swift's container GET (see :mod:`.listing`)."""
        limit = check_limit(limit)
        params = check_listing_params(marker, end_marker, prefix, delimiter)
        if path is not None:
            path = check_listing_params("", "", path, "")["prefix"]

        def work(conn: Conn) -> list[ObjectRow | listing.Subdir]:
            cid = self._live_id(conn)

            def fetch(bounds: listing.Bounds, rev: bool, count: int) -> list[ObjectRow]:
                where, args = bounds_sql(bounds, "name")
                order = "DESC" if rev else "ASC"
                # ``where`` comes from bounds_sql: placeholders only.
                rows = conn.execute(
                    f"SELECT {OBJECT_COLS} FROM objects WHERE container_id = %s "  # noqa: S608
                    f"AND NOT deleted AND {where} ORDER BY name {order} LIMIT %s",
                    (cid, *args, count),
                ).fetchall()
                return [object_row(r) for r in rows]

            return listing.list_entries(
                fetch, lambda r: r.name, limit=limit, reverse=reverse, path=path,
                **params,
            )

        return self._conns.read(work)

    # -- the change log and sync points ----------------------------------------------
