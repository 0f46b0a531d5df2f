"""The shared state store on PostgreSQL: a database every node points at.

URL: ``postgresql://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE`` (``postgres://``
is the same), with optional parameters ``?schema=NAME`` (default
``storaged``) and ``sslmode``, ``sslrootcert``, ``sslcert``, ``sslkey``
as libpq takes them.  Characters such as ``@``, ``/`` or ``:`` in a password
must be percent-encoded.  Nothing is sent until the first operation; an
unreachable server makes that operation fail with
:class:`~storaged.exception.KVSBackendError`.

Layout
    Three tables in the schema named by the URL, made on first use with
    ``CREATE ... IF NOT EXISTS`` under a transaction-level advisory lock
    (several processes may start at once):

    * ``kv(key, value, version, expires_at)``: JSON text, a version that
      grows with each write, expiry as a ``timestamptz`` or NULL (never);
    * ``locks(name, token, expires_at)``: one row per lock name, the token
      of its last holder and when that hold ends (``-infinity`` once
      released).  A new holder's token is
      ``max(previous token + 1, server clock in microseconds)``;
    * ``meta``: the schema version (1) and ``fence_floor``, the highest
      token among the lock rows that
      :meth:`~storaged.kvs.base.KeyValueStore.purge_expired` removed, so
      that a name whose row was removed never reuses a token.

    Keys and lock names use the ``"C"`` collation, so that ``scan`` sorts by
    code point like the other drivers and a prefix is an index range.  Give
    each storaged cluster its own schema (tests use one schema per run).

Clock
    Expiry of keys and leases is judged by the database server's
    ``clock_timestamp()``, read inside the statement that decides: every
    node agrees on it whatever its own clock says.  (``now()`` would be the
    start of the transaction, earlier than the decision by however long the
    transaction waited for a row lock.)

Isolation, atomicity and fencing
    Every connection runs in autocommit mode at PostgreSQL's default
    ``READ COMMITTED`` isolation; what must not race is made safe with row
    locks, not with a stricter isolation level, because ``SERIALIZABLE``
    would turn ordinary contention into serialization failures the callers
    would have to retry, while row locks simply make the second writer wait
    a few milliseconds:

    * a single-key write, a compare-and-set, an acquisition, a refresh or a
      release is *one* statement (``INSERT ... ON CONFLICT DO UPDATE ...
      WHERE``, ``UPDATE ... WHERE version = ...``).  Such a statement locks
      the row it changes, and if another transaction changed that row
      meanwhile, READ COMMITTED re-evaluates the ``WHERE`` on the newest
      version of the row before writing: two compare-and-sets of one
      version cannot both win, two acquisitions of one name cannot both
      succeed;
    * a write under a lease is a transaction that first reads the lock row
      ``FOR SHARE`` (token matches, not expired by ``clock_timestamp()``)
      and then writes.  The share lock keeps any acquisition, refresh or
      release of that lock waiting until the write has committed, so the
      check cannot go stale before the write: a holder whose lease expired
      or was taken over writes nothing (``LeaseLost``);
    * an acquisition reads ``fence_floor`` ``FOR SHARE`` and
      ``purge_expired`` takes it ``FOR UPDATE`` before it deletes lock rows:
      acquisitions do not wait for each other, but none runs while a purge
      removes rows, so a token handed out never falls below a removed one.

Failures
    Connection problems, a statement running past ``[kvs] timeout``
    (PostgreSQL's ``statement_timeout``) and every other database error
    raise :class:`~storaged.exception.KVSBackendError`; a transaction that
    failed was rolled back whole.  A client that stalls in the middle of a
    transaction (a fenced write holds the lock row ``FOR SHARE``) would keep
    everyone else waiting on that row, so its session is ended by the server
    after ``[kvs] timeout`` idle in the transaction
    (``idle_in_transaction_session_timeout``), which rolls it back.
    Nothing is retried automatically: a statement whose reply was lost may
    have committed.  The connection of a failed operation is closed; the
    next operation opens a new one.

Connections, threads and eventlet
    A small pool: each operation takes a connection of its own for its
    whole duration (never shared by two threads or green threads at once,
    as a transaction must not interleave with another caller's statements)
    and gives it back; up to :data:`_IDLE_MAX` idle ones are kept.  psycopg
    picks how it waits on its socket when it is first imported: after
    eventlet's monkey-patching (this module is loaded through its entry
    point when a store is opened, after :func:`storaged.concurrency.setup`)
    that is the patched ``select()``, so green threads may call the store
    directly.  A process started with
    ``fork`` never uses its parent's connections: it opens its own.
"""

from __future__ import annotations

from collections.abc import Iterator
import math
import os
from types import TracebackType
from typing import Any
from typing import Final

import psycopg
from psycopg import sql

from storaged import concurrency
from storaged import exception
from storaged.common import pgurl
from storaged.kvs import base
from storaged.kvs import keys

SCHEMA_VERSION: Final = 1
DEFAULT_SCHEMA: Final = "storaged"

_PAGE: Final = 500
#: Idle connections kept for reuse.
_IDLE_MAX: Final = 8
#: Arbitrary constant: the advisory lock taken while the schema is made.
_SCHEMA_LOCK_KEY: Final = 0x5354_4B56  # "STKV"


#: The server's clock in whole microseconds (seed of versions and tokens).
_NOW_US: Final = "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint"
_LIVE: Final = "(expires_at IS NULL OR expires_at > clock_timestamp())"
_EXPIRY: Final = "clock_timestamp() + make_interval(secs => %(ttl)s)"


def _q(template: str) -> sql.SQL:
    """A statement of this module: constant text (see :meth:`PostgresKVS._sql`)."""
    return sql.SQL(template)  # type: ignore[arg-type]


_SCHEMA: Final = (
    "CREATE SCHEMA IF NOT EXISTS {schema}",
    """CREATE TABLE IF NOT EXISTS {schema}.kv (
        key text COLLATE "C" PRIMARY KEY,
        value text NOT NULL,
        version bigint NOT NULL,
        expires_at timestamptz
    )""",
    "CREATE INDEX IF NOT EXISTS kv_expires_at ON {schema}.kv (expires_at) "
    "WHERE expires_at IS NOT NULL",
    """CREATE TABLE IF NOT EXISTS {schema}.locks (
        name text COLLATE "C" PRIMARY KEY,
        token bigint NOT NULL,
        expires_at timestamptz NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS {schema}.meta (
        name text PRIMARY KEY,
        value bigint NOT NULL
    )""",
    "INSERT INTO {schema}.meta (name, value) VALUES ('fence_floor', 0), "
    "('schema_version', {schema_version}) ON CONFLICT (name) DO NOTHING",
)
_SCHEMA_VERSION: Final = "SELECT value FROM {schema}.meta WHERE name = 'schema_version'"

_GET: Final = "SELECT value FROM {schema}.kv WHERE key = %(key)s AND {live}"
_GET_VERSIONED: Final = (
    "SELECT value, version FROM {schema}.kv WHERE key = %(key)s AND {live}"
)
_GET_MULTI: Final = (
    "SELECT key, value FROM {schema}.kv WHERE key = ANY(%(keys)s) AND {live}"
)
_SET: Final = (
    "INSERT INTO {schema}.kv AS kv (key, value, version, expires_at) "
    "VALUES (%(key)s, %(value)s, {now_us}, {expiry}) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
    "version = kv.version + 1, expires_at = excluded.expires_at"
)
# Holds the lock row until the transaction ends: no acquisition, refresh or
# release of that name can commit in between the check and the write.
_FENCE_HELD: Final = (
    "SELECT 1 FROM {schema}.locks WHERE name = %(name)s AND token = %(token)s "
    "AND expires_at > clock_timestamp() FOR SHARE"
)
_DELETE: Final = (
    "DELETE FROM {schema}.kv WHERE key = %(key)s "
    "RETURNING (expires_at IS NULL OR expires_at > clock_timestamp())"
)
_DELETE_MULTI: Final = "DELETE FROM {schema}.kv WHERE key = ANY(%(keys)s)"
_CREATE: Final = (
    "INSERT INTO {schema}.kv AS kv (key, value, version, expires_at) "
    "VALUES (%(key)s, %(value)s, {now_us}, {expiry}) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
    "version = kv.version + 1, expires_at = excluded.expires_at "
    "WHERE kv.expires_at IS NOT NULL AND kv.expires_at <= clock_timestamp() "
    "RETURNING version"
)
_REPLACE: Final = (
    "UPDATE {schema}.kv SET value = %(value)s, version = version + 1, "
    "expires_at = {expiry} "
    "WHERE key = %(key)s AND version = %(expected)s AND {live} "
    "RETURNING version"
)
_SCAN: Final = {
    # (first page, with an upper bound)
    (True, True): "SELECT key, value FROM {schema}.kv WHERE key >= %(after)s "
    "AND key < %(upper)s AND {live} ORDER BY key LIMIT %(page)s",
    (False, True): "SELECT key, value FROM {schema}.kv WHERE key > %(after)s "
    "AND key < %(upper)s AND {live} ORDER BY key LIMIT %(page)s",
    (True, False): "SELECT key, value FROM {schema}.kv WHERE key >= %(after)s "
    "AND {live} ORDER BY key LIMIT %(page)s",
    (False, False): "SELECT key, value FROM {schema}.kv WHERE key > %(after)s "
    "AND {live} ORDER BY key LIMIT %(page)s",
}
_PURGE_KEYS: Final = (
    "DELETE FROM {schema}.kv WHERE expires_at <= clock_timestamp()"
)
_FLOOR_SHARE: Final = (
    "SELECT value FROM {schema}.meta WHERE name = 'fence_floor' FOR SHARE"
)
_FLOOR_UPDATE: Final = (
    "SELECT value FROM {schema}.meta WHERE name = 'fence_floor' FOR UPDATE"
)
# The floor takes exactly the tokens of the rows this statement deleted.
_PURGE_LOCKS: Final = (
    "WITH gone AS (DELETE FROM {schema}.locks "
    "WHERE expires_at <= clock_timestamp() RETURNING token) "
    "UPDATE {schema}.meta SET value = greatest(value, "
    "coalesce((SELECT max(token) FROM gone), 0)) WHERE name = 'fence_floor'"
)
_ACQUIRE: Final = (
    "INSERT INTO {schema}.locks AS locks (name, token, expires_at) "
    "VALUES (%(name)s, greatest({now_us}, %(floor)s + 1), {expiry}) "
    "ON CONFLICT (name) DO UPDATE SET token = greatest(locks.token + 1, {now_us}), "
    "expires_at = excluded.expires_at "
    "WHERE locks.expires_at <= clock_timestamp() RETURNING token"
)
_REFRESH: Final = (
    "UPDATE {schema}.locks SET expires_at = {expiry} "
    "WHERE name = %(name)s AND token = %(token)s AND expires_at > clock_timestamp()"
)
_RELEASE: Final = (
    "UPDATE {schema}.locks SET expires_at = '-infinity' "
    "WHERE name = %(name)s AND token = %(token)s AND expires_at > clock_timestamp()"
)


class _Errors:
    """Translate psycopg failures into :class:`KVSBackendError`.

    The message names the server and database and PostgreSQL's (or libpq's)
    reason, which never holds the password.
    """

    def __init__(self, backend: str) -> None:
        self.backend = backend

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, psycopg.Error):
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise exception.KVSBackendError(
                backend=self.backend, reason=f"{type(exc).__name__}: {reason}"
            ) from exc


class PostgresKVS(base.KeyValueStore):
    """A :class:`~storaged.kvs.base.KeyValueStore` in a PostgreSQL database."""

    schemes = ("postgresql", "postgres")

    @classmethod
    def parse_url(cls, url: str) -> dict[str, Any]:
        """Return the connection arguments and schema of a ``postgresql://`` URL.

        The messages never quote the URL: a password with unencoded special
        characters would spill into whichever part gets quoted.
        """
        return pgurl.parse_url(url, DEFAULT_SCHEMA)

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        sqlite_synchronous: str = "normal",
        default_lock_ttl: float = 30.0,
    ) -> None:
        super().__init__(
            url,
            timeout=timeout,
            sqlite_synchronous=sqlite_synchronous,
            default_lock_ttl=default_lock_ttl,
        )
        kwargs = self.parse_url(url)
        self.schema: str = kwargs.pop("schema")
        self.server = f"{kwargs['host']}:{kwargs['port']}/{kwargs['dbname']}"
        self._errors = _Errors(f"postgresql {self.server} schema {self.schema}")
        timeout_ms = math.ceil(self.timeout * 1000)
        self._connect_kwargs = {
            **kwargs,
            # libpq takes whole seconds, and 1 would be rounded up to 2.
            "connect_timeout": max(2, math.ceil(self.timeout)),
            # A statement waits for a row lock at most ``timeout``; a client
            # that stalls inside a transaction (SIGSTOP, a long pause) has
            # its session ended after as long, which frees its row locks.
            "options": f"-c statement_timeout={timeout_ms} "
            f"-c idle_in_transaction_session_timeout={timeout_ms}",
            "application_name": "storaged",
            "autocommit": True,
        }
        self._statements: dict[tuple[str, bool], sql.Composed] = {}
        # Native: callers under eventlet enter through run_blocking's pool.
        self._pool_lock = concurrency.native_lock()
        self._idle: list[psycopg.Connection[Any]] = []
        #: Connections inherited through fork: never used, never closed.
        self._inherited: list[psycopg.Connection[Any]] = []
        self._pid = os.getpid()
        self._schema_ready = False

    def __repr__(self) -> str:
        return f"<PostgresKVS {self.server} schema={self.schema}>"

    # -- connections --------------------------------------------------------

    def _sql(self, template: str, ttl: float | None = None) -> sql.Composed:
        """The statement ``template`` for this store's schema, composed once.

        Only constants of this module are formatted in (the schema name was
        checked by :meth:`parse_url` and is quoted as an identifier); every
        value is a bound parameter.  ``{expiry}`` becomes NULL (never) when
        ``ttl`` is ``None``, else ``ttl`` seconds from the server's now.
        """
        cache_key = (template, ttl is None)
        statement = self._statements.get(cache_key)
        if statement is None:
            statement = _q(template).format(
                schema=sql.Identifier(self.schema),
                live=_q(_LIVE),
                now_us=_q(_NOW_US),
                expiry=_q("NULL" if ttl is None else _EXPIRY),
                schema_version=sql.Literal(SCHEMA_VERSION),
            )
            self._statements[cache_key] = statement
        return statement

    def _take(self) -> psycopg.Connection[Any]:
        if self._closed:
            raise self._closed_error()
        with self._pool_lock:
            if os.getpid() != self._pid:
                # Closing the parent's connections here would end its
                # sessions: keep them referenced and open new ones.
                self._inherited.extend(self._idle)
                self._idle = []
                self._pid = os.getpid()
            if self._idle:
                return self._idle.pop()
        conn: psycopg.Connection[Any] = psycopg.connect(**self._connect_kwargs)
        if not self._schema_ready:
            try:
                self._init_schema(conn)
            except BaseException:
                conn.close()
                raise
        return conn

    def _give_back(self, conn: psycopg.Connection[Any]) -> None:
        with self._pool_lock:
            keep = (
                not self._closed
                and os.getpid() == self._pid
                and len(self._idle) < _IDLE_MAX
                and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            )
            if keep:
                self._idle.append(conn)
                return
        conn.close()

    def _run(self, work: Any) -> Any:
        """Run ``work(conn)`` on a connection of its own; map the errors."""
        with self._errors:
            conn = self._take()
            try:
                result = work(conn)
            except BaseException:
                # Whatever state it is in (broken, mid-transaction), a fresh
                # connection is cheaper than finding out.
                conn.close()
                raise
            self._give_back(conn)
            return result

    def _init_schema(self, conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            conn.execute(
                "SELECT pg_advisory_xact_lock(%(key)s)", {"key": _SCHEMA_LOCK_KEY}
            )
            exists = conn.execute(
                "SELECT to_regclass(%(name)s)",
                {"name": f'"{self.schema}".meta'},
            ).fetchone()
            if exists is None or exists[0] is None:
                for statement in _SCHEMA:
                    conn.execute(self._sql(statement))
            row = conn.execute(self._sql(_SCHEMA_VERSION)).fetchone()
        version = None if row is None else int(row[0])
        if version != SCHEMA_VERSION:
            raise exception.KVSError(
                reason=f"the state store in schema {self.schema} of {self.server} "
                f"has schema version {version}; this storaged knows version "
                f"{SCHEMA_VERSION}"
            )
        self._schema_ready = True

    def close(self) -> None:
        """Close the idle connections; those in use close as they come back."""
        super().close()
        with self._pool_lock:
            idle = self._idle if os.getpid() == self._pid else []
            self._idle = []
        for conn in idle:
            try:
                conn.close()
            except psycopg.Error:
                pass

    def _execute(
        self, template: str, params: dict[str, Any], ttl: float | None = None
    ) -> list[tuple[Any, ...]]:
        """Run one statement (its own transaction) and return its rows."""
        statement = self._sql(template, ttl)

        def work(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
            cursor = conn.execute(statement, {**params, "ttl": ttl})
            return cursor.fetchall() if cursor.description else [(cursor.rowcount,)]

        result: list[tuple[Any, ...]] = self._run(work)
        return result

    def _check_fence(self, conn: psycopg.Connection[Any], fence: base.Fence) -> None:
        held = conn.execute(
            self._sql(_FENCE_HELD), {"name": fence[0], "token": fence[1]}
        ).fetchall()
        if not held:
            raise base.FenceRejected()

    # -- primitives ---------------------------------------------------------

    def _get(self, key: str) -> str | None:
        rows = self._execute(_GET, {"key": key})
        return rows[0][0] if rows else None

    def _get_versioned(self, key: str) -> tuple[str, int] | None:
        rows = self._execute(_GET_VERSIONED, {"key": key})
        return (rows[0][0], int(rows[0][1])) if rows else None

    def _get_multi(self, keys: list[str]) -> list[str | None]:
        found = dict(self._execute(_GET_MULTI, {"keys": keys}))
        return [found.get(key) for key in keys]

    def _set(
        self, key: str, raw: str, ttl: float | None, fence: base.Fence | None
    ) -> None:
        self._set_multi([(key, raw)], ttl, fence)

    def _set_multi(
        self, items: list[tuple[str, str]], ttl: float | None, fence: base.Fence | None
    ) -> None:
        statement = self._sql(_SET, ttl)
        params = [{"key": key, "value": raw, "ttl": ttl} for key, raw in items]

        def work(conn: psycopg.Connection[Any]) -> None:
            if fence is None and len(params) == 1:
                conn.execute(statement, params[0])
                return
            with conn.transaction():
                if fence is not None:
                    self._check_fence(conn, fence)
                with conn.cursor() as cursor:
                    cursor.executemany(statement, params)

        self._run(work)

    def _delete(self, key: str, fence: base.Fence | None) -> bool:
        statement = self._sql(_DELETE)

        def work(conn: psycopg.Connection[Any]) -> bool:
            if fence is None:
                rows = conn.execute(statement, {"key": key}).fetchall()
            else:
                with conn.transaction():
                    self._check_fence(conn, fence)
                    rows = conn.execute(statement, {"key": key}).fetchall()
            return bool(rows) and bool(rows[0][0])

        done: bool = self._run(work)
        return done

    def _delete_multi(self, keys: list[str], fence: base.Fence | None) -> None:
        statement = self._sql(_DELETE_MULTI)

        def work(conn: psycopg.Connection[Any]) -> None:
            if fence is None:
                conn.execute(statement, {"keys": keys})
                return
            with conn.transaction():
                self._check_fence(conn, fence)
                conn.execute(statement, {"keys": keys})

        self._run(work)

    def _compare_and_set(
        self, key: str, expected: int | None, raw: str, ttl: float | None
    ) -> tuple[bool, int | None]:
        params = {"key": key, "value": raw, "expected": expected}
        rows = self._execute(_CREATE if expected is None else _REPLACE, params, ttl)
        if rows:
            return True, int(rows[0][0])
        # Only for the message: the version that won.
        found = self._get_versioned(key)
        return False, found[1] if found else None

    def _scan(self, prefix: str) -> Iterator[tuple[str, str]]:
        upper = keys.prefix_upper_bound(prefix)
        after = prefix
        first = True
        while True:
            rows = self._execute(
                _SCAN[(first, upper is not None)],
                {"after": after, "upper": upper, "page": _PAGE},
            )
            yield from ((key, value) for key, value in rows)
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]
            first = False

    def _purge_expired(self) -> int:
        def work(conn: psycopg.Connection[Any]) -> int:
            purged = conn.execute(self._sql(_PURGE_KEYS)).rowcount
            with conn.transaction():
                # Waits for acquisitions in flight; new ones wait for us.
                conn.execute(self._sql(_FLOOR_UPDATE))
                conn.execute(self._sql(_PURGE_LOCKS))
            return purged

        purged: int = self._run(work)
        return purged

    def _acquire(self, name: str, ttl: float) -> int | None:
        statement = self._sql(_ACQUIRE, ttl)

        def work(conn: psycopg.Connection[Any]) -> int | None:
            with conn.transaction():
                row = conn.execute(self._sql(_FLOOR_SHARE)).fetchone()
                floor = 0 if row is None else row[0]
                rows = conn.execute(
                    statement, {"name": name, "ttl": ttl, "floor": floor}
                ).fetchall()
            return int(rows[0][0]) if rows else None

        token: int | None = self._run(work)
        return token

    def _refresh(self, name: str, token: int, ttl: float) -> bool:
        rows = self._execute(_REFRESH, {"name": name, "token": token}, ttl)
        return bool(rows[0][0] == 1)

    def _release(self, name: str, token: int) -> bool:
        rows = self._execute(_RELEASE, {"name": name, "token": token})
        return bool(rows[0][0] == 1)
