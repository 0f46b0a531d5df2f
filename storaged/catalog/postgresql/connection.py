"""Connections to the catalog's PostgreSQL: a small pool, transactions, errors.

Each call of :meth:`Connections.transaction` takes a connection of its own
for the whole transaction (never shared by two threads at once: a
transaction must not interleave with another caller's statements) and
gives it back; up to ``idle_max`` idle ones are kept.  The pool is guarded
by a native lock, so OS threads (``run_blocking``'s pool) share it.  A
process started with ``fork`` never uses its parent's connections: it
leaves them alone (closing one would end the parent's session) and opens
its own.

Isolation: PostgreSQL's default ``READ COMMITTED``.  What must not race is
serialised with row locks, not a stricter isolation level: every write
locks its container's row first (see :mod:`.container`).  A transaction
that fails with a serialization failure or a deadlock (which PostgreSQL
rolls back whole) is run again, at most :data:`ATTEMPTS` times in all.
Nothing else is retried: a transaction whose reply was lost may have
committed.

Errors: a server that cannot be reached, a statement waiting past
``[catalog] timeout`` (``statement_timeout``) or a lock held too long raise
:class:`~storaged.exception.CatalogBusy` (the API answers 503, daemons try
again on their next pass); any other database error raises
:class:`~storaged.exception.CatalogError`.  The connection of a failed
transaction is closed.
"""

from __future__ import annotations

from collections.abc import Callable
import contextlib
import logging
import math
import os
import random
from typing import Any
from typing import Final
from typing import TypeVar

import psycopg
from psycopg import errors as pg_errors

from storaged import concurrency
from storaged import exception
from storaged.catalog.group_commit import MAX_BATCH
from storaged.catalog.group_commit import GroupCommit
from storaged.catalog.postgresql import schema as schema_mod

LOG = logging.getLogger(__name__)

#: Times a transaction is run when it keeps failing to serialise.
ATTEMPTS: Final = 5
#: Idle connections kept by default.
IDLE_MAX: Final = 16

T = TypeVar("T")

Conn = psycopg.Connection[Any]

# Failures that roll the whole transaction back and may pass if run again.
_RETRY: Final = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected)
# Failures that mean "not now": the server, or a lock, was not available.
_BUSY: Final = (
    psycopg.OperationalError,
    pg_errors.QueryCanceled,
    pg_errors.LockNotAvailable,
    pg_errors.AdminShutdown,
    pg_errors.CannotConnectNow,
)


class Connections:
    """The pool of one catalog (one schema of one database).

    :param connect_kwargs: libpq arguments (host, port, dbname, user ...).
    :param schema: the schema of the catalog's tables.
    :param timeout: seconds a statement may wait (for a lock) or run.
    :param synchronous: ``full`` (each commit waits for the server's WAL
        flush) or ``normal`` (``synchronous_commit = off``: a crash of the
        server may lose the last commits, never half of one).
    :param group_commit: rows that concurrent callers write share a
        transaction, this many at most (:mod:`.batch`); 1 commits each alone.
    """

    def __init__(
        self,
        connect_kwargs: dict[str, Any],
        schema: str,
        *,
        timeout: float,
        synchronous: str,
        idle_max: int = IDLE_MAX,
        group_commit: int = MAX_BATCH,
    ) -> None:
        self.schema = schema
        #: The queue of the row writes of this catalog's brokers.
        self.group = GroupCommit(group_commit)
        self.where = (
            f"postgresql {connect_kwargs['host']}:{connect_kwargs['port']}/"
            f"{connect_kwargs['dbname']} schema {schema}"
        )
        timeout_ms = math.ceil(timeout * 1000)
        commit = "on" if synchronous == "full" else "off"
        self._kwargs = {
            **connect_kwargs,
            # libpq takes whole seconds, and 1 would be rounded up to 2.
            "connect_timeout": max(2, math.ceil(timeout)),
            # A client stalled inside a transaction holds its container's
            # row lock: the server ends its session after ``timeout``.
            "options": f"-c search_path={schema} -c statement_timeout={timeout_ms} "
            f"-c idle_in_transaction_session_timeout={timeout_ms} "
            f"-c synchronous_commit={commit}",
            "application_name": "storaged-catalog",
            "autocommit": True,
        }
        self._idle_max = idle_max
        # Native, never green: run_blocking's OS threads share the pool.
        self._lock = concurrency.native_module("threading").Lock()
        self._idle: list[Conn] = []
        self._inherited: list[Conn] = []
        self._pid = os.getpid()
        self._schema_ready = False
        self._closed = False

    def _take(self) -> Conn:
        with self._lock:
            if os.getpid() != self._pid:
                self._inherited.extend(self._idle)
                self._idle = []
                self._pid = os.getpid()
            if self._idle:
                return self._idle.pop()
        conn: Conn = psycopg.connect(**self._kwargs)
        if not self._schema_ready:
            try:
                schema_mod.ensure_schema(conn, self.schema, self.where)
            except BaseException:
                conn.close()
                raise
            self._schema_ready = True
        return conn

    def _give_back(self, conn: Conn) -> None:
        with self._lock:
            if (
                not self._closed
                and not conn.closed
                and os.getpid() == self._pid
                and len(self._idle) < self._idle_max
                and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            ):
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Close the idle connections; those in use close as they come back."""
        with self._lock:
            self._closed = True
            idle = self._idle if os.getpid() == self._pid else []
            self._idle = []
        for conn in idle:
            try:
                conn.close()
            except psycopg.Error:
                pass

    def read(self, work: Callable[[Conn], T]) -> T:
        """Run ``work(conn)`` outside a transaction: each statement on its own.

        For reads of one statement (or several that need no common
        snapshot): no ``BEGIN`` and ``COMMIT`` round trips.
        """
        if self._closed:
            raise exception.CatalogError(
                reason=f"the catalog in {self.where} is closed"
            )
        try:
            conn = self._take()
        except psycopg.Error as err:
            raise self._translate(err) from err
        try:
            result = work(conn)
        except psycopg.Error as err:
            conn.close()
            raise self._translate(err) from err
        except BaseException:
            self._give_back(conn)
            raise
        self._give_back(conn)
        return result

    def transaction(self, work: Callable[[Conn], T], batch: bool = False) -> T:
        """Run ``work(conn)`` in one transaction; commit when it returns.

        An exception from ``work`` rolls the transaction back and goes up
        (a database error as a storaged one).  A serialization failure or
        deadlock runs ``work`` again, in a new transaction.

        :param batch: send every statement of ``work`` in one round trip
            (psycopg's pipeline mode, one ``Sync`` at the end).  PostgreSQL
            runs the statements before a ``Sync`` as one implicit
            transaction, committed at the ``Sync`` (or rolled back whole
            when one fails, the rest skipped), so no ``BEGIN`` and
            ``COMMIT`` round trips are needed.  ``work`` must only *send*
            statements and return their cursors, to be read after this
            returns: reading a result inside would send a ``Sync`` and
            commit the transaction half-way.
        """
        if self._closed:
            raise exception.CatalogError(
                reason=f"the catalog in {self.where} is closed"
            )
        for attempt in range(1, ATTEMPTS + 1):
            try:
                conn = self._take()
            except psycopg.Error as err:
                raise self._translate(err) from err
            try:
                with contextlib.ExitStack() as stack:
                    if batch:
                        stack.enter_context(conn.pipeline())
                    else:
                        stack.enter_context(conn.transaction())
                    result = work(conn)
            except _RETRY as err:
                conn.close()
                if attempt == ATTEMPTS:
                    raise self._translate(err) from err
                LOG.debug("Catalog transaction retried (%s)", type(err).__name__)
                concurrency.native_sleep(random.uniform(0, 0.01 * attempt))  # noqa: S311
                continue
            except psycopg.Error as err:
                conn.close()
                raise self._translate(err) from err
            except BaseException:
                # Rolled back (a 404, a conflict): the connection is sound.
                self._give_back(conn)
                raise
            self._give_back(conn)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _translate(self, err: psycopg.Error) -> exception.CatalogError:
        reason = " ".join(str(err).split()) or type(err).__name__
        reason = f"{type(err).__name__}: {reason}"
        if isinstance(err, _BUSY + _RETRY):
            return exception.CatalogBusy(path=self.where, reason=reason)
        return exception.CatalogError(reason=f"{self.where}: {reason}")
