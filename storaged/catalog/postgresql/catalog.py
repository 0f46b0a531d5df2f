"""The PostgreSQL catalog: :class:`PostgresCatalog`, brokers and the account index."""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import logging
import os
import time
from typing import Any
from typing import Final

from storaged import exception
from storaged.catalog import listing
from storaged.catalog import names
from storaged.catalog.broker_base import DEFAULT_RECLAIM_AGE
from storaged.catalog.group_commit import MAX_BATCH
from storaged.catalog.listing import check_limit
from storaged.catalog.listing import check_listing_params
from storaged.catalog.postgresql import url as url_mod
from storaged.catalog.postgresql.account import PostgresAccountBroker
from storaged.catalog.postgresql.connection import Conn
from storaged.catalog.postgresql.connection import Connections
from storaged.catalog.postgresql.container import PostgresContainerBroker
from storaged.catalog.postgresql.sqltext import bounds_sql
from storaged.catalog.store import AccountInfo
from storaged.catalog.store import ContainerListing
from storaged.catalog.store import ReclaimStats
from storaged.catalog.timestamp import Timestamp

LOG = logging.getLogger(__name__)

# Containers read per query when iterating.
_PAGE: Final = 1000
_LIVE: Final = "put_timestamp > delete_timestamp"


class PostgresCatalog:
    """The container catalog in a PostgreSQL database, shared by every node.

    Takes the parameters of :class:`storaged.catalog.store.Catalog`, but
    the URL instead of the directory:

    :param url: ``postgresql://...`` (see :mod:`.url`).
    :param path: this node's directory for local work files (name locks);
        made on demand by whoever keeps files there.
    :param schema: the schema of the tables, instead of the URL's.
    :param group_commit: rows that concurrent callers write share a
        transaction, this many at most (:mod:`.batch`); 1 commits each alone.
    :raises ValueError: a bad URL.
    """

    def __init__(
        self,
        url: str,
        *,
        path: str = "",
        reclaim_age: float = DEFAULT_RECLAIM_AGE,
        timeout: float = 10.0,
        synchronous: str = "full",
        limits: names.Limits = names.DEFAULT_LIMITS,
        schema: str | None = None,
        group_commit: int = MAX_BATCH,
    ) -> None:
        kwargs = url_mod.parse_url(url)
        self.url = url
        url_schema: str = kwargs.pop("schema")
        self.schema = url_schema if schema is None else schema
        url_mod.check_schema_name(self.schema)
        self.path = path
        self.reclaim_age = reclaim_age
        self.timeout = timeout
        self.synchronous = synchronous
        self.limits = limits
        self.group_commit = group_commit
        self._conns = Connections(
            kwargs, self.schema, timeout=timeout, synchronous=synchronous,
            group_commit=group_commit,
        )

    def __repr__(self) -> str:
        return f"<PostgresCatalog {self._conns.where}>"

    def close(self) -> None:
        """Close the pooled connections."""
        self._conns.close()

    def sibling(
        self, name: str, *, limits: names.Limits | None = None
    ) -> PostgresCatalog:
        """Open a catalog of its own in the schema ``<schema>_<name>``.

        Same database and settings; local files under ``<path>/<name>``.

        :raises ValueError: ``<schema>_<name>`` is not a valid schema name
            (longer than 63 characters, say).
        """
        return PostgresCatalog(
            self.url,
            path=os.path.join(self.path, name) if self.path else "",
            reclaim_age=self.reclaim_age,
            timeout=self.timeout,
            synchronous=self.synchronous,
            limits=self.limits if limits is None else limits,
            schema=f"{self.schema}_{name}",
            group_commit=self.group_commit,
        )

    def require_space(self) -> None:
        """Nothing to check here: the database server manages its own space.

        A full server fails the write itself (a :class:`CatalogError`).
        """

    # -- brokers -----------------------------------------------------------------

    def container(
        self, account: str | bytes, container: str | bytes
    ) -> PostgresContainerBroker:
        """Return the broker of a container (which may not exist yet).

        :raises storaged.exception.InvalidName: a bad account or container name.
        """
        return PostgresContainerBroker(
            self._conns,
            names.validate_account(account, self.limits),
            names.validate_container(container, self.limits),
            limits=self.limits,
            reclaim_age=self.reclaim_age,
        )

    @contextlib.contextmanager
    def broker(
        self, account: str | bytes, container: str | bytes
    ) -> Iterator[PostgresContainerBroker]:
        """Lend a container's broker (brokers hold no connection: cheap)."""
        yield self.container(account, container)

    def account(self, account: str | bytes) -> PostgresAccountBroker:
        """Return the broker of an account's metadata.

        :raises storaged.exception.InvalidName: a bad account name.
        """
        return PostgresAccountBroker(
            self._conns,
            names.validate_account(account, self.limits),
            limits=self.limits,
        )

    # -- the account index -------------------------------------------------------

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
        """List an account's live containers, as Swift's account GET."""
        account = names.validate_account(account, self.limits)
        limit = check_limit(limit)
        params = check_listing_params(marker, end_marker, prefix, delimiter)

        def work(conn: Conn) -> list[ContainerListing | listing.Subdir]:
            def fetch(
                bounds: listing.Bounds, rev: bool, count: int
            ) -> list[ContainerListing]:
                where, args = bounds_sql(bounds, "container")
                order = "DESC" if rev else "ASC"
                # ``where`` comes from bounds_sql: placeholders only.
                rows = conn.execute(
                    "SELECT container, object_count, bytes_used, put_timestamp "  # noqa: S608
                    f"FROM containers WHERE account = %s AND {_LIVE} AND {where} "
                    f"ORDER BY container {order} LIMIT %s",
                    (account, *args, count),
                ).fetchall()
                return [
                    ContainerListing(r[0], int(r[1]), int(r[2]), Timestamp(r[3]))
                    for r in rows
                ]

            return listing.list_entries(
                fetch, lambda c: c.name, limit=limit, reverse=reverse, **params
            )

        return self._conns.read(work)

    def account_info(self, account: str | bytes) -> AccountInfo:
        """Return the totals of an account's live containers.

        :raises storaged.exception.AccountNotFound: no container of this
            account (live, or deleted and not yet reclaimed).
        """
        account = names.validate_account(account, self.limits)

        def work(conn: Conn) -> tuple[Any, ...]:
            row: tuple[Any, ...] | None = conn.execute(
                f"SELECT count(*), count(*) FILTER (WHERE {_LIVE}), "  # noqa: S608
                f"coalesce(sum(object_count) FILTER (WHERE {_LIVE}), 0), "
                f"coalesce(sum(bytes_used) FILTER (WHERE {_LIVE}), 0) "
                "FROM containers WHERE account = %s",
                (account,),
            ).fetchone()
            assert row is not None
            return row

        total, live, objects, used = self._conns.read(work)
        if not total:
            raise exception.AccountNotFound(account=account)
        return AccountInfo(account, int(live), int(objects), int(used))

    def list_accounts(self) -> list[str]:
        """Return the accounts with at least one live container, sorted."""

        def work(conn: Conn) -> list[str]:
            rows = conn.execute(
                f"SELECT DISTINCT account FROM containers WHERE {_LIVE} "  # noqa: S608
                "ORDER BY account"
            ).fetchall()
            return [r[0] for r in rows]

        return self._conns.read(work)

    def iter_containers(
        self, include_deleted: bool = False, sync_only: bool = False
    ) -> Iterator[tuple[str, str]]:
        """Yield ``(account, container)`` of every container, in pages.

        :param include_deleted: also deleted containers not yet reclaimed.
        :param sync_only: only live containers with sync-to and sync-key set.
        """
        where = "TRUE"
        if sync_only:
            where = f"sync AND {_LIVE}"
        elif not include_deleted:
            where = _LIVE
        return self._iter(where)

    def iter_garbage_containers(self) -> Iterator[tuple[str, str]]:
        """Yield ``(account, container)`` of the containers with garbage (no lag)."""
        return self._iter("garbage_count > 0")

    def _iter(self, where: str) -> Iterator[tuple[str, str]]:
        last: tuple[str, str] = ("", "")
        while True:
            def page(conn: Conn, after: tuple[str, str] = last) -> list[Any]:
                # ``where`` is one of the constant conditions of the callers.
                return conn.execute(
                    f"SELECT account, container FROM containers WHERE {where} "  # noqa: S608
                    "AND (account, container) > (%s, %s) "
                    "ORDER BY account, container LIMIT %s",
                    (*after, _PAGE),
                ).fetchall()

            rows = self._conns.read(page)
            for row in rows:
                yield row[0], row[1]
            if len(rows) < _PAGE:
                return
            last = (rows[-1][0], rows[-1][1])

    def containers_with_sync(self) -> list[tuple[str, str]]:
        """Return ``(account, container)`` of the live containers that sync."""
        return list(self.iter_containers(sync_only=True))

    def rebuild_index(self) -> None:
        """Nothing to rebuild: the index is the ``containers`` table itself."""

    # -- reclaim -----------------------------------------------------------------

    def reclaim(
        self, age: float | None = None, now: float | None = None
    ) -> ReclaimStats:
        """One pass over every container, as the sqlite catalog's ``reclaim``.

        Several nodes may run it at once: each step locks its container's
        row, so two passes only repeat each other's work.
        """
        age = self.reclaim_age if age is None else age
        stats = ReclaimStats()
        started = time.monotonic()
        for account, container in self.iter_containers(include_deleted=True):
            broker = self.container(account, container)
            try:
                stats.containers += 1
                stats.tombstones += broker.reclaim(age, now)
                if broker.remove_if_reclaimable(age, now):
                    stats.removed += 1
                    LOG.info("Reclaimed deleted container %s/%s", account, container)
            except exception.ContainerNotFound:
                continue
            except exception.CatalogBusy as err:
                stats.errors += 1
                LOG.warning(
                    "Reclaim skipped %s/%s this pass: %s", account, container, err
                )
            except exception.CatalogError:
                stats.errors += 1
                LOG.exception("Reclaim failed on %s/%s", account, container)
        LOG.info(
            "Catalog reclaim: %d containers, %d tombstones reclaimed, %d deleted "
            "containers removed, %d errors in %.2fs",
            stats.containers, stats.tombstones, stats.removed, stats.errors,
            time.monotonic() - started,
        )
        return stats
