"""The catalog of one node: container and account databases, the account index.

Layout under ``[catalog] path``::

    containers/<h[:2]>/<h>/<db id>.db   one database per container, where
                                        h = sha256("<account>/<container>")
    accounts/<h[:2]>/<h>/<db id>.db     one database per account with
                                        metadata, h = sha256("<account>")
    index/<db id>.db                    the account index
    quarantined/containers/<h>-<ts>/    damaged databases, moved aside
    quarantined/accounts/<h>-<ts>/
    quarantined/index/index-<ts>/
    tmp/                                databases being built, reclaimed ones

Names never become path components: a container's directory is a hash of
its name, and the names are kept inside its database.

The account index lists every container of the node with its object count,
bytes used, timestamps and whether it syncs.  It is derived data: each
container change reports the container's new figures to it (after the
change commits; a report carries the container's write counter so that
late reports never roll figures back), and :meth:`Catalog.reclaim`, which
visits every container database, reports each one again.  So the index may
lag behind a container by one change when a process dies between the two
commits, until the next change or reclaim pass.  A missing or damaged index
is rebuilt from the container databases; what cannot be derived from
them, an account's metadata, is kept in the account's own database instead
(:mod:`storaged.catalog.account`).

Callers in green threads wrap every call in
:func:`storaged.concurrency.run_blocking`: all of it is file and sqlite I/O.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import dataclasses
import hashlib
import logging
import os
import shutil
import sqlite3
import time
from typing import Any
from typing import Final
import weakref

from oslo_config import cfg
import tenacity

from storaged import concurrency
from storaged import exception
from storaged.catalog import listing
from storaged.catalog import names
from storaged.catalog import schema
from storaged.catalog.account import AccountBroker
from storaged.catalog.broker import ContainerBroker
from storaged.catalog.broker_base import DEFAULT_RECLAIM_AGE
from storaged.catalog.database import DB_SUFFIX
from storaged.catalog.database import Database
from storaged.catalog.database import DatabaseMissing
from storaged.catalog.group_commit import MAX_BATCH
from storaged.catalog.group_commit import GroupCommit
from storaged.catalog.listing import check_limit
from storaged.catalog.listing import check_listing_params
from storaged.catalog.pool import DEFAULT_POOL_SIZE
from storaged.catalog.pool import BrokerPool
from storaged.catalog.records import ContainerStats
from storaged.catalog.timestamp import Timestamp
from storaged.common import retry
from storaged.common.freespace import Reserve

LOG = logging.getLogger(__name__)

#: Leftover files in ``tmp/`` older than this (seconds) are removed by reclaim.
STALE_TMP_AGE: Final = 3600.0
# Index rows read per query by iter_containers.
_PAGE = 1000

_SELECT_LISTING: Final = (
    "SELECT container, object_count, bytes_used, put_timestamp FROM containers "
    "WHERE account = ? AND deleted = 0"
)

_UPSERT: Final = """
INSERT INTO containers (account, container, db_id, db_created_at, version,
    put_timestamp, delete_timestamp, status_changed_at, object_count,
    bytes_used, deleted, sync, garbage)
VALUES (:account, :container, :db_id, :db_created_at, :version,
    :put_timestamp, :delete_timestamp, :status_changed_at, :object_count,
    :bytes_used, :deleted, :sync, :garbage)
ON CONFLICT (account, container) DO UPDATE SET
    db_id = excluded.db_id, db_created_at = excluded.db_created_at,
    version = excluded.version, put_timestamp = excluded.put_timestamp,
    delete_timestamp = excluded.delete_timestamp,
    status_changed_at = excluded.status_changed_at,
    object_count = excluded.object_count, bytes_used = excluded.bytes_used,
    deleted = excluded.deleted, sync = excluded.sync,
    garbage = excluded.garbage
WHERE excluded.db_created_at > containers.db_created_at
    OR (excluded.db_id = containers.db_id AND excluded.version > containers.version)
"""


@dataclasses.dataclass(frozen=True)
class ContainerListing:
    """A container in an account listing (Swift's ``name``, ``count``, ``bytes``)."""

    name: str
    object_count: int
    bytes_used: int
    put_timestamp: Timestamp

    @property
    def last_modified(self) -> str:
        """ISO 8601 text of the put timestamp, as Swift's listings show it."""
        return self.put_timestamp.isoformat


@dataclasses.dataclass(frozen=True)
class AccountInfo:
    """Totals of an account's live containers on this node."""

    account: str
    container_count: int
    object_count: int
    bytes_used: int


@dataclasses.dataclass
class ReclaimStats:
    """What one :meth:`Catalog.reclaim` pass did."""

    containers: int = 0
    tombstones: int = 0
    removed: int = 0
    quarantined: int = 0
    errors: int = 0


def _stats_params(stats: ContainerStats) -> dict[str, Any]:
    return {
        "account": stats.account,
        "container": stats.container,
        "db_id": stats.db_id,
        "db_created_at": stats.db_created_at.internal,
        "version": stats.version,
        "put_timestamp": stats.put_timestamp.internal,
        "delete_timestamp": stats.delete_timestamp.internal,
        "status_changed_at": stats.status_changed_at.internal,
        "object_count": stats.object_count,
        "bytes_used": stats.bytes_used,
        "deleted": int(stats.deleted),
        "sync": int(stats.sync),
        "garbage": stats.garbage,
    }


class Catalog:
    """The container catalog of this node; hands out :class:`ContainerBroker` s.

    Example::

        catalog = Catalog.from_conf(conf)
        with catalog.container("AUTH_test", "photos") as broker:
            broker.create()
            broker.put_object("cat.jpg", Timestamp.now(), 1234, "image/jpeg",
                              etag, backend="file1", location=loc)
        catalog.list_containers("AUTH_test", prefix="ph")

    :param path: the catalog's directory.
    :param reclaim_age: seconds tombstones and deleted containers are kept.
    :param timeout: seconds to wait for a locked database.
    :param synchronous: ``"full"`` (every commit survives power loss) or
        ``"normal"`` (survives a crash of the process) for container
        databases; the account index, which can be rebuilt, always uses
        ``"normal"``.
    :param limits: naming and metadata limits.
    :param reserve: free space that writes adding to the catalog leave on
        its filesystem (see :meth:`require_space`); none by default.
    :param pool_size: container brokers :meth:`broker` keeps open.
    :param group_commit: changes of a container database that concurrent
        callers of this process share a transaction with, at most
        (:mod:`storaged.catalog.group_commit`); 1 commits each alone.
    """

    def __init__(
        self,
        path: str,
        *,
        reclaim_age: float = DEFAULT_RECLAIM_AGE,
        timeout: float = 10.0,
        synchronous: str = "full",
        limits: names.Limits = names.DEFAULT_LIMITS,
        reserve: Reserve | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
        group_commit: int = MAX_BATCH,
    ) -> None:
        self.path = path
        self.group_commit = group_commit
        self.reserve = reserve or Reserve(0, False)
        self.reclaim_age = reclaim_age
        self.timeout = timeout
        self.synchronous = synchronous
        self.limits = limits
        self.containers_dir = os.path.join(path, "containers")
        self.accounts_dir = os.path.join(path, "accounts")
        self.tmp_dir = os.path.join(path, "tmp")
        self.quarantine_dir = os.path.join(path, "quarantined")
        for directory in (self.containers_dir, self.tmp_dir):
            os.makedirs(directory, exist_ok=True)
        self._index = Database(
            os.path.join(path, "index"),
            schema=schema.INDEX,
            timeout=timeout,
            synchronous="normal",
            tmp_dir=self.tmp_dir,
            quarantine_dir=os.path.join(self.quarantine_dir, "index"),
        )
        # The group commit of each container database with open brokers:
        # concurrent writers of this process share transactions.
        self._groups: weakref.WeakValueDictionary[str, GroupCommit] = (
            weakref.WeakValueDictionary())
        self._groups_lock = concurrency.native_lock()
        self._pool = BrokerPool(self.container, pool_size)
        # Made now, so that the first changes are reported to it; when it
        # is missing (removed, quarantined) it is built from the containers.
        self._ensure_index()

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts) -> Catalog:
        """Build the catalog from the ``[catalog]`` options."""
        group = conf.catalog
        return cls(
            group.path,
            reclaim_age=group.reclaim_age,
            timeout=group.timeout,
            synchronous=group.synchronous,
            limits=names.Limits(
                max_account_name_length=group.max_account_name_length,
                max_container_name_length=group.max_container_name_length,
                max_object_name_length=group.max_object_name_length,
                max_meta_name_length=group.max_meta_name_length,
                max_meta_value_length=group.max_meta_value_length,
                max_meta_count=group.max_meta_count,
                max_meta_overall_size=group.max_meta_overall_size,
            ),
            reserve=Reserve.parse(group.fallocate_reserve),
        )

    def __repr__(self) -> str:
        return f"<Catalog {self.path}>"

    def sibling(self, name: str, *, limits: names.Limits | None = None) -> Catalog:
        """Open a catalog of its own beside this one (the expiry queue's).

        It lives in the directory ``name`` inside this catalog's and takes
        this one's settings, with other ``limits`` if given.
        """
        return Catalog(
            os.path.join(self.path, name),
            reclaim_age=self.reclaim_age,
            timeout=self.timeout,
            synchronous=self.synchronous,
            limits=self.limits if limits is None else limits,
        )

    def close(self) -> None:
        """Close the account index connection and the pooled brokers."""
        self._pool.close()
        self._index.close()

    def require_space(self) -> None:
        """Refuse a write that adds to the catalog below the free-space reserve.

        Called before new objects, new containers and metadata updates, never
        before deletes: the reserve is what lets deletes (a tombstone row
        first) go through on a disk that clients filled.

        :raises storaged.exception.CatalogFull: below the reserve.
        """
        try:
            refused = self.reserve.check(self.path)
        except OSError as err:
            raise exception.CatalogError(
                reason=f"cannot measure free space of {self.path}: {err}"
            ) from err
        if refused is not None:
            raise exception.CatalogFull(path=self.path, reason=refused)

    # -- containers ----------------------------------------------------------------

    def container_dir(self, account: str, container: str) -> str:
        """Return the directory of a container's database (names unchecked)."""
        digest = hashlib.sha256(
            f"{account}/{container}".encode()
        ).hexdigest()
        return os.path.join(self.containers_dir, digest[:2], digest)

    def _database(self, directory: str) -> Database:
        return Database(
            directory,
            schema=schema.CONTAINER,
            timeout=self.timeout,
            synchronous=self.synchronous,
            tmp_dir=self.tmp_dir,
            quarantine_dir=os.path.join(self.quarantine_dir, "containers"),
            on_quarantine=self._forget_db,
            group=self._group_for(directory),
        )

    def _group_for(self, directory: str) -> GroupCommit:
        """The group commit every broker of this process shares for ``directory``."""
        with self._groups_lock:
            group = self._groups.get(directory)
            if group is None:
                group = self._groups[directory] = GroupCommit(self.group_commit)
            return group

    def container(
        self, account: str | bytes, container: str | bytes
    ) -> ContainerBroker:
        """Return the broker of a container (which may not exist yet).

        Cheap: the database is opened on first use.  Close the broker (or
        use it in a ``with`` block) when done.

        :raises storaged.exception.InvalidName: a bad account or container name.
        """
        account = names.validate_account(account, self.limits)
        container = names.validate_container(container, self.limits)
        return ContainerBroker(
            self._database(self.container_dir(account, container)),
            account,
            container,
            limits=self.limits,
            reclaim_age=self.reclaim_age,
            reporter=self._report,
        )

    @contextlib.contextmanager
    def broker(
        self, account: str | bytes, container: str | bytes
    ) -> Iterator[ContainerBroker]:
        """Lend a container's broker, kept open for the next caller.

        For request paths: opening a container database costs about ten
        times what a lookup in it does, so brokers come from a bounded pool
        of this process (see :mod:`storaged.catalog.pool`) instead of being
        opened, and closed, per call.  Do not close the broker lent.

        :raises storaged.exception.InvalidName: a bad account or container name.
        """
        account = names.validate_account(account, self.limits)
        container = names.validate_container(container, self.limits)
        with self._pool.lease(account, container) as broker:
            yield broker

    def _broker_at(self, directory: str) -> ContainerBroker:
        return ContainerBroker(
            self._database(directory),
            limits=self.limits,
            reclaim_age=self.reclaim_age,
            reporter=self._report,
        )

    def _container_dirs(self) -> Iterator[str]:
        """Every container directory on disk, in no particular order."""
        try:
            fanouts = sorted(os.listdir(self.containers_dir))
        except FileNotFoundError:
            return
        for fanout in fanouts:
            top = os.path.join(self.containers_dir, fanout)
            try:
                entries = sorted(os.listdir(top))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                yield os.path.join(top, entry)

    # -- accounts ------------------------------------------------------------------

    def account_dir(self, account: str) -> str:
        """Return the directory of an account's database (name unchecked)."""
        digest = hashlib.sha256(account.encode()).hexdigest()
        return os.path.join(self.accounts_dir, digest[:2], digest)

    def account(self, account: str | bytes) -> AccountBroker:
        """Return the broker of an account's database (which may not exist yet).

        Cheap: the database is opened on first use.  Close the broker (or
        use it in a ``with`` block) when done.

        :raises storaged.exception.InvalidName: a bad account name.
        """
        account = names.validate_account(account, self.limits)
        db = Database(
            self.account_dir(account),
            schema=schema.ACCOUNT,
            timeout=self.timeout,
            synchronous=self.synchronous,
            tmp_dir=self.tmp_dir,
            quarantine_dir=os.path.join(self.quarantine_dir, "accounts"),
        )
        return AccountBroker(db, account, limits=self.limits)

    # -- the account index ---------------------------------------------------------

    def _report(self, stats: ContainerStats) -> None:
        try:
            with self._index.write() as conn:
                conn.execute(_UPSERT, _stats_params(stats))
        except DatabaseMissing:
            # Being rebuilt: the rebuild reads the container's figures.
            LOG.debug("No account index; %s/%s not reported",
                      stats.account, stats.container)
        except exception.CatalogError as err:
            # The change itself is committed; the next change of this
            # container, or the next reclaim pass, reports it again.
            LOG.warning("Account index not updated for %s/%s: %s",
                        stats.account, stats.container, err)

    def _forget_db(self, db_id: str) -> None:
        try:
            with self._index.write() as conn:
                conn.execute("DELETE FROM containers WHERE db_id = ?", (db_id,))
        except DatabaseMissing:
            pass

    def _build_index(self, conn: sqlite3.Connection, db_id: str) -> None:
        count = 0
        for directory in self._container_dirs():
            broker = self._broker_at(directory)
            try:
                conn.execute(_UPSERT, _stats_params(broker.stats()))
                count += 1
            except exception.ContainerNotFound:
                continue
            except exception.CatalogError as err:
                LOG.error("Account index rebuild: skipped %s: %s", directory, err)
            finally:
                broker.close()
        LOG.info("Built the account index from %d container databases", count)

    def rebuild_index(self) -> None:
        """Build the account index again from the container databases.

        The old index is quarantined; the new one is built aside and put in
        place atomically.
        """
        with contextlib.suppress(DatabaseMissing):
            self._index.quarantine("rebuild requested")
        self._ensure_index()

    def _ensure_index(self) -> None:
        if not self._index.exists():
            self._index.create(self._build_index)

    def _query_index(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        def query() -> list[tuple[Any, ...]]:
            with self._index.read() as conn:
                return list(conn.execute(sql, args).fetchall())

        def rebuild(retry_state: tenacity.RetryCallState) -> None:
            assert retry_state.outcome is not None
            if isinstance(retry_state.outcome.exception(), exception.CatalogCorrupt):
                LOG.error("Account index was corrupt; rebuilding it")
            self._ensure_index()

        # A missing or corrupt index is (re)built, then queried once more.
        rows: list[tuple[Any, ...]] = retry.retrying(
            retry=tenacity.retry_if_exception_type(
                (DatabaseMissing, exception.CatalogCorrupt)
            ),
            stop=tenacity.stop_after_attempt(2),
            before_sleep=rebuild,
        )(query)
        return rows

    def list_containers(
        self,
        account: str | bytes,
        limit: int | None = None,
        marker: str = "",
        end_marker: str = "",
        prefix: str = "",
        delimiter: str = "",
        reverse: bool = False,
    ) -> list[ContainerListing | listing.Subdir]:
        """List an account's live containers, as Swift's account GET.

        An account with no container lists empty (accounts exist implicitly).
        See :mod:`storaged.catalog.listing` for the parameters.

        :raises ValueError: ``limit`` outside 0..10,000.
        :raises storaged.exception.InvalidName: a bad account or parameter.
        """
        account = names.validate_account(account, self.limits)
        limit = check_limit(limit)
        params = check_listing_params(marker, end_marker, prefix, delimiter)

        def fetch(
            bounds: listing.Bounds, rev: bool, count: int
        ) -> list[ContainerListing]:
            where, args = bounds.sql("container")
            order = "DESC" if rev else "ASC"
            # ``where`` comes from Bounds.sql: placeholders only.
            rows = self._query_index(
                f"{_SELECT_LISTING} AND {where} "
                f"ORDER BY container {order} LIMIT ?",
                (account, *args, count),
            )
            return [
                ContainerListing(r[0], int(r[1]), int(r[2]), Timestamp(r[3]))
                for r in rows
            ]

        return listing.list_entries(
            fetch, lambda c: c.name, limit=limit, reverse=reverse, **params
        )

    def account_info(self, account: str | bytes) -> AccountInfo:
        """Return the totals of an account's live containers.

        :raises storaged.exception.AccountNotFound: no container of this
            account on this node (live, or deleted and not yet reclaimed).
        """
        account = names.validate_account(account, self.limits)
        rows = self._query_index(
            "SELECT count(*), sum(deleted = 0), "
            "coalesce(sum(CASE WHEN deleted = 0 THEN object_count END), 0), "
            "coalesce(sum(CASE WHEN deleted = 0 THEN bytes_used END), 0) "
            "FROM containers WHERE account = ?",
            (account,),
        )
        total, live, objects, used = rows[0]
        if not total:
            raise exception.AccountNotFound(account=account)
        return AccountInfo(account, int(live or 0), int(objects), int(used))

    def list_accounts(self) -> list[str]:
        """Return the accounts with at least one live container, sorted."""
        rows = self._query_index(
            "SELECT DISTINCT account FROM containers WHERE deleted = 0 "
            "ORDER BY account",
            (),
        )
        return [r[0] for r in rows]

    def iter_containers(
        self, include_deleted: bool = False, sync_only: bool = False
    ) -> Iterator[tuple[str, str]]:
        """Yield ``(account, container)`` of every container on this node.

        Reads the index in pages, holding no transaction between them, so
        containers made or removed meanwhile may or may not show.

        :param include_deleted: also deleted containers not yet reclaimed.
        :param sync_only: only live containers with sync-to and sync-key set.
        """
        where = "1"
        if sync_only:
            where = "sync = 1 AND deleted = 0"
        elif not include_deleted:
            where = "deleted = 0"
        return self._iter_index(where)

    def iter_garbage_containers(self) -> Iterator[tuple[str, str]]:
        """Yield ``(account, container)`` of the containers with garbage.

        Those whose database lists object data no longer referenced, live
        or deleted (a deleted one is only reclaimed once it has none left).
        Found through a partial index of the account index: cheap however
        many containers there are.  The index may lag behind a container
        by one change (see :class:`Catalog`), so a periodic job finds a
        container missed here after the next reclaim pass.
        """
        return self._iter_index("garbage > 0")

    def _iter_index(self, where: str) -> Iterator[tuple[str, str]]:
        last: tuple[str, str] = ("", "")
        while True:
            # ``where`` is one of the constant conditions of the callers.
            rows = self._query_index(
                f"SELECT account, container FROM containers WHERE {where} "  # noqa: S608
                "AND (account, container) > (?, ?) "
                "ORDER BY account, container LIMIT ?",
                (*last, _PAGE),
            )
            for row in rows:
                yield row[0], row[1]
            if len(rows) < _PAGE:
                return
            last = (rows[-1][0], rows[-1][1])

    def containers_with_sync(self) -> list[tuple[str, str]]:
        """Return ``(account, container)`` of the live containers that sync.

        Those with both ``X-Container-Sync-To`` and ``-Key`` set, found
        through a partial index: cheap however many containers there are.
        """
        return list(self.iter_containers(sync_only=True))

    # -- reclaim -------------------------------------------------------------------

    def reclaim(
        self, age: float | None = None, now: float | None = None
    ) -> ReclaimStats:
        """One pass over every container database on this node.

        For each: remove tombstones older than ``age``; remove the database
        of a container deleted more than ``age`` ago (unless it still lists
        garbage, which is never removed here); report its figures to
        the account index again (healing any report that was lost).  Then
        drop index rows whose database is gone, and leftovers in ``tmp/``.
        A failure on one container is counted and logged; the pass goes on.

        ``age`` must exceed the longest time container sync may lag behind:
        a delete reclaimed before it was pushed is never pushed.

        :param age: seconds; default ``reclaim_age``.
        :param now: the current time (tests).
        """
        age = self.reclaim_age if age is None else age
        stats = ReclaimStats()
        started = time.monotonic()
        self._ensure_index()
        for directory in self._container_dirs():
            broker = self._broker_at(directory)
            db = broker.db
            try:
                if not db.exists():
                    db.remove_stale_files()
                    db.remove_directory_if_empty()
                    continue
                stats.containers += 1
                stats.tombstones += broker.reclaim(age, now)
                moved = broker.remove_if_reclaimable(age, self.tmp_dir, now)
                if moved is None:
                    self._report(broker.stats())
                    db.remove_stale_files()
                    continue
                for name in os.listdir(moved):
                    if name.endswith(DB_SUFFIX):
                        self._forget_db(Database.db_id_of(name))
                shutil.rmtree(moved, ignore_errors=True)
                stats.removed += 1
                LOG.info("Reclaimed the database of deleted container %s/%s",
                         broker.account, broker.container)
                db.remove_stale_files()
                db.remove_directory_if_empty()
            except exception.CatalogCorrupt:
                stats.quarantined += 1
            except exception.ContainerNotFound:
                continue
            except exception.CatalogBusy as err:
                stats.errors += 1
                LOG.warning("Reclaim skipped %s this pass: %s", directory, err)
            except (exception.CatalogError, OSError):
                stats.errors += 1
                LOG.exception("Reclaim failed on %s", directory)
            finally:
                broker.close()
        self._prune_index()
        self._remove_stale_tmp()
        LOG.info(
            "Catalog reclaim: %d containers, %d tombstones reclaimed, %d deleted "
            "containers removed, %d quarantined, %d errors in %.2fs",
            stats.containers, stats.tombstones, stats.removed, stats.quarantined,
            stats.errors, time.monotonic() - started,
        )
        return stats

    def _prune_index(self) -> None:
        rows = self._query_index("SELECT account, container, db_id FROM containers", ())
        for account, container, db_id in rows:
            path = os.path.join(self.container_dir(account, container), db_id + ".db")
            if not os.path.exists(path):
                self._forget_db(db_id)

    def _remove_stale_tmp(self) -> None:
        now = time.time()
        try:
            entries = os.listdir(self.tmp_dir)
        except FileNotFoundError:
            return
        for entry in entries:
            path = os.path.join(self.tmp_dir, entry)
            try:
                if now - os.lstat(path).st_mtime < STALE_TMP_AGE:
                    continue
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)
            except FileNotFoundError:
                continue

