"""The footing of the container broker: its database, names and transactions.

:class:`BrokerBase` holds what every part of :class:`ContainerBroker
<storaged.catalog.broker.ContainerBroker>` stands on: the database and the
container's names, read and write transactions, the ``container_info`` row
read as a :class:`ContainerState`, and the version bump and report to the
account index after each change.  The parts (sync points, garbage, reclaim,
then objects and the container itself) are built on it.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
import contextlib
import dataclasses
import json
import logging
import sqlite3
from types import TracebackType
from typing import Final
from typing import Self
from typing import TypeVar

from storaged import exception
from storaged.catalog import names
from storaged.catalog.database import Database
from storaged.catalog.database import DatabaseMissing
from storaged.catalog.metadata import SYNC_KEY_KEY
from storaged.catalog.metadata import SYNC_TO_KEY
from storaged.catalog.metadata import StoredMetadata
from storaged.catalog.metadata import stored_value
from storaged.catalog.records import ContainerStats
from storaged.catalog.timestamp import Timestamp

# Under the broker's name, as before its parts had modules of their own:
# logging configuration may refer to it.
LOG = logging.getLogger("storaged.catalog.broker")

#: Default reclaim age, in seconds (a week, as Swift's).
DEFAULT_RECLAIM_AGE: Final = 604800

#: The columns :meth:`BrokerBase._state` reads, in its order.
SELECT_INFO: Final = (
    "SELECT id, account, container, created_at, put_timestamp, delete_timestamp, "
    "status_changed_at, object_count, bytes_used, metadata, version, "
    "garbage_count FROM container_info"
)

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class ContainerState:
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
    metadata: StoredMetadata
    version: int
    garbage_count: int

    @property
    def alive(self) -> bool:
        return self.put_timestamp > self.delete_timestamp

    def meta_value(self, key: str) -> str:
        return stored_value(self.metadata, key)

    @property
    def sync(self) -> bool:
        return bool(self.meta_value(SYNC_TO_KEY) and self.meta_value(SYNC_KEY_KEY))


class BrokerBase:
    """A container database with the transactions the broker's parts share.

    Takes the parameters of :class:`~storaged.catalog.broker.ContainerBroker`.
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
        self, apply: Callable[[sqlite3.Connection, ContainerState], tuple[T, bool]]
    ) -> T:
        """Run ``apply(conn, state)`` in a write transaction.

        ``apply`` returns ``(result, changed)``; when it changed anything,
        the container's version goes up and the new stats are reported.
        Concurrent writes of this process to the container share the
        transaction (:meth:`Database.grouped`).
        """

        def change(conn: sqlite3.Connection) -> tuple[T, ContainerStats | None]:
            result, changed = apply(conn, self._state(conn))
            return result, self._bump(conn) if changed else None

        try:
            result, stats = self._db.grouped(change)
        except DatabaseMissing as err:
            raise self._not_found() from err
        if stats is not None:
            self._report(stats)
        return result

    @contextlib.contextmanager
    def _write_plain(self) -> Iterator[sqlite3.Connection]:
        try:
            with self._db.write() as conn:
                self._state(conn)
                yield conn
        except DatabaseMissing as err:
            raise self._not_found() from err

    def _state(self, conn: sqlite3.Connection) -> ContainerState:
        row = conn.execute(SELECT_INFO).fetchone()
        if row is None:
            raise exception.CatalogError(
                reason=f"{self._db.directory} has no container_info row"
            )
        state = ContainerState(
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
    def _stats(state: ContainerState) -> ContainerStats:
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

    def _require_alive(self, state: ContainerState) -> None:
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

    def check(self, full: bool = False) -> None:
        """Check the database (``quick_check``, or ``integrity_check`` if full).

        :raises storaged.exception.CatalogCorrupt: damaged, now quarantined.
        """
        try:
            self._db.check(full)
        except DatabaseMissing as err:
            raise self._not_found() from err
