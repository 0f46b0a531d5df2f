"""The embedded state store: one sqlite file on this host.

URL: ``sqlite:///`` followed by an absolute path, for example
``sqlite:////var/lib/storaged/state.sqlite``.  The directory must exist
(:func:`storaged.kvs.get_store` creates it); the file is created with mode
0640.

Durability
    WAL journal.  With ``sqlite_synchronous = normal`` (the default) a write
    that returned survives the death of the process (SIGKILL) but the last
    commits may be lost if the machine loses power; with ``full`` every
    commit is fsynced before it returns and survives power loss too, at
    several times the cost per write.

Several processes
    Any number of processes of this host may open the same file.  Writers
    take sqlite's write lock one at a time and wait for it up to
    ``timeout`` seconds (sqlite's busy timeout); each operation is one
    statement or one ``BEGIN IMMEDIATE`` transaction, so it is atomic and
    waits for the lock up front instead of failing half way.  The file must
    be on a local filesystem (WAL needs shared memory between processes).

Clock
    Expiry of keys and leases is judged with the host's wall clock
    (:func:`time.time`) read by whichever process runs the statement.  All
    processes sharing the file share that clock, which is why the back end
    is "the host" here.  A lease's local deadline uses the monotonic clock
    and is never later than its expiry in the file.

Threads, green threads and eventlet's thread pool
    Each native OS thread gets its own connection, found in a dict keyed
    by ``(process id, native thread id)``.  The native thread id comes from
    :func:`threading.get_native_id`, which eventlet's monkey-patching leaves
    alone, so green threads of one native thread share that thread's
    connection while every thread of eventlet's pool (where
    :func:`storaged.concurrency.run_blocking` sends calls) gets its own.
    Sharing one connection between green threads is safe because an
    operation never yields to the hub half way: every call into sqlite
    blocks the whole native thread until it returns.  For the same reason
    callers running under eventlet should wrap calls in ``run_blocking``:
    waiting for another process's write lock would otherwise stall the
    hub.  No lock guards the dict: a key is only ever inserted by its own
    thread, and dict operations are atomic.  When more than a few
    connections exist, those of threads that have exited are closed as a
    new one is opened.  A new process (after ``fork``) opens its own
    connections and never touches its parent's.  Prepared statements are
    cached per connection by the :mod:`sqlite3` module.

Schema
    Versioned with ``PRAGMA user_version`` (1 today); a file written by a
    newer storaged is refused rather than misread.

    * ``kv(key, value, version, expires_at)``: JSON text, a version that
      grows with each write, expiry as a Unix time or NULL (never);
    * ``locks(name, token, expires_at)``: one row per lock name; the token
      of the last holder (the persisted counter) and when that hold ends
      (0 once released).  A new holder's token is
      ``max(previous token + 1, now in microseconds)``;
    * ``meta``: ``fence_floor``, the highest token among the lock rows that
      :meth:`~storaged.kvs.base.KeyValueStore.purge_expired` removed, so
      that a name whose row was removed still never reuses a token.
"""

from __future__ import annotations

from collections.abc import Iterator
import json
import os
import sqlite3
import threading
import time
from types import TracebackType
from typing import Final

from storaged import exception
from storaged.kvs import base
from storaged.kvs import keys

SCHEMA_VERSION: Final = 1

_PAGE: Final = 500
#: Number of open connections beyond which exited threads' ones are closed.
_REAP_AT: Final = 16

_SCHEMA: Final = (
    """CREATE TABLE kv (
        key TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL,
        version INTEGER NOT NULL,
        expires_at REAL
    ) WITHOUT ROWID""",
    "CREATE INDEX kv_expires_at ON kv (expires_at) WHERE expires_at IS NOT NULL",
    """CREATE TABLE locks (
        name TEXT PRIMARY KEY NOT NULL,
        token INTEGER NOT NULL,
        expires_at REAL NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE meta (
        name TEXT PRIMARY KEY NOT NULL,
        value INTEGER NOT NULL
    ) WITHOUT ROWID""",
    "INSERT INTO meta (name, value) VALUES ('fence_floor', 0)",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)

# Every statement is a constant (no value is ever formatted into SQL), so the
# sqlite3 module's statement cache prepares each one once per connection.
_GET: Final = (
    "SELECT value FROM kv WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)"
)
_GET_VERSIONED: Final = (
    "SELECT value, version FROM kv "
    "WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)"
)
_GET_MULTI: Final = (
    "SELECT kv.key, kv.value FROM json_each(?1) AS wanted "
    "JOIN kv ON kv.key = wanted.value "
    "WHERE kv.expires_at IS NULL OR kv.expires_at > ?2"
)

_SET: Final = (
    "INSERT INTO kv (key, value, version, expires_at) VALUES (?1, ?2, ?3, ?4) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
    "version = kv.version + 1, expires_at = excluded.expires_at"
)
# The fence check is part of the one statement that writes: it cannot pass
# and then go stale before the write.
_SET_FENCED: Final = (
    "INSERT INTO kv (key, value, version, expires_at) "
    "SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM locks "
    "WHERE name = ?5 AND token = ?6 AND expires_at > ?7) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
    "version = kv.version + 1, expires_at = excluded.expires_at"
)
_FENCE_HELD: Final = (
    "SELECT 1 FROM locks WHERE name = ? AND token = ? AND expires_at > ?"
)
_DELETE: Final = "DELETE FROM kv WHERE key = ? RETURNING expires_at"
_DELETE_MULTI: Final = "DELETE FROM kv WHERE key IN (SELECT value FROM json_each(?))"
_CREATE: Final = (
    "INSERT INTO kv (key, value, version, expires_at) VALUES (?1, ?2, ?3, ?4) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
    "version = kv.version + 1, expires_at = excluded.expires_at "
    "WHERE kv.expires_at IS NOT NULL AND kv.expires_at <= ?5 RETURNING version"
)
_REPLACE: Final = (
    "UPDATE kv SET value = ?1, version = version + 1, expires_at = ?2 "
    "WHERE key = ?3 AND version = ?4 AND (expires_at IS NULL OR expires_at > ?5) "
    "RETURNING version"
)
_SCAN: Final = {
    # (first page, with an upper bound)
    (True, True): "SELECT key, value FROM kv WHERE key >= ?1 AND key < ?2 AND "
    "(expires_at IS NULL OR expires_at > ?3) ORDER BY key LIMIT ?4",
    (False, True): "SELECT key, value FROM kv WHERE key > ?1 AND key < ?2 AND "
    "(expires_at IS NULL OR expires_at > ?3) ORDER BY key LIMIT ?4",
    (True, False): "SELECT key, value FROM kv WHERE key >= ?1 AND "
    "(expires_at IS NULL OR expires_at > ?3) ORDER BY key LIMIT ?4",
    (False, False): "SELECT key, value FROM kv WHERE key > ?1 AND "
    "(expires_at IS NULL OR expires_at > ?3) ORDER BY key LIMIT ?4",
}
_PURGE: Final = (
    "DELETE FROM kv WHERE expires_at <= ?",
    "UPDATE meta SET value = max(value, coalesce((SELECT max(token) FROM locks "
    "WHERE expires_at <= ?1), 0)) WHERE name = 'fence_floor'",
    "DELETE FROM locks WHERE expires_at <= ?",
)
_ACQUIRE: Final = (
    "INSERT INTO locks (name, token, expires_at) VALUES "
    "(?1, max(?2, (SELECT value FROM meta WHERE name = 'fence_floor') + 1), ?3) "
    "ON CONFLICT (name) DO UPDATE SET token = max(locks.token + 1, ?2), "
    "expires_at = excluded.expires_at WHERE locks.expires_at <= ?4 "
    "RETURNING token"
)
_REFRESH: Final = (
    "UPDATE locks SET expires_at = ?1 "
    "WHERE name = ?2 AND token = ?3 AND expires_at > ?4"
)
_RELEASE: Final = (
    "UPDATE locks SET expires_at = 0 WHERE name = ?1 AND token = ?2 AND expires_at > ?3"
)


class _Errors:
    """Translate sqlite failures into :class:`KVSBackendError`.

    Programming errors (a closed connection, a bad binding) are bugs and are
    left alone.  The message names the file and sqlite's reason, nothing
    else.
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
        if isinstance(exc, sqlite3.DatabaseError) and not isinstance(
            exc, sqlite3.ProgrammingError
        ):
            raise exception.KVSBackendError(
                backend=self.backend, reason=str(exc)
            ) from exc
        if isinstance(exc, OSError):
            raise exception.KVSBackendError(
                backend=self.backend, reason=exc.strerror or str(exc)
            ) from exc


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on any error.

    IMMEDIATE takes the write lock at the start (waiting up to the busy
    timeout), so a transaction never fails half way because another process
    started writing after it read.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.conn.execute("COMMIT")
        elif self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                # The original error is the one worth reporting; sqlite rolls
                # back by itself when the connection goes.
                pass


def _live(expires_at: float | None, now: float) -> bool:
    return expires_at is None or expires_at > now


class SqliteKVS(base.KeyValueStore):
    """A :class:`~storaged.kvs.base.KeyValueStore` in one sqlite file."""

    schemes = ("sqlite",)

    @classmethod
    def parse_url(cls, url: str) -> str:
        """Return the absolute file path of ``sqlite:///`` + absolute path (``sqlite:////var/lib/...``)."""
        prefix = "sqlite:///"
        path = url[len(prefix) :] if url.startswith(prefix) else ""
        if not path.startswith("/"):
            raise ValueError(
                "sqlite URL needs an absolute path after sqlite:/// "
                "(e.g. sqlite:////var/lib/storaged/state.sqlite)"
            )
        if "\x00" in path:
            raise ValueError("sqlite URL path contains a NUL character")
        if path.endswith("/") or os.path.basename(path) in (".", ".."):
            raise ValueError("sqlite URL must name a file, not a directory")
        return path

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
        self.path = self.parse_url(url)
        self._errors = _Errors("sqlite " + keys.shown(self.path))
        self._synchronous = sqlite_synchronous.upper()
        self._conns: dict[tuple[int, int], sqlite3.Connection] = {}
        with self._errors:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
            os.close(fd)
            self._init_schema(self._conn())

    def __repr__(self) -> str:
        return f"<SqliteKVS {keys.shown(self.path)}>"

    # -- connections --------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        try:
            return self._conns[(os.getpid(), threading.get_native_id())]
        except KeyError:
            return self._connect()

    def _connect(self) -> sqlite3.Connection:
        if self._closed:
            raise self._closed_error()
        conn = sqlite3.connect(
            self.path,
            timeout=self.timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        except BaseException:
            conn.close()
            raise
        if len(self._conns) >= _REAP_AT:
            self._reap()
        self._conns[(os.getpid(), threading.get_native_id())] = conn
        return conn

    def _reap(self) -> None:
        """Close the connections of threads of this process that have exited.

        Only runs when a new connection is made and many exist, so a process
        that keeps starting short-lived threads does not pile up open files.
        Connections inherited from a parent process are left alone: closing
        them here could disturb the parent's locks on the file.
        """
        if not os.path.isdir("/proc/self/task"):
            return
        pid = os.getpid()
        for key in list(self._conns):
            if key[0] == pid and not os.path.exists(f"/proc/self/task/{key[1]}"):
                conn = self._conns.pop(key, None)
                if conn is not None:
                    conn.close()

    def _init_schema(self, conn: sqlite3.Connection) -> None:
        mode = conn.execute("PRAGMA journal_mode").fetchall()[0][0]
        if mode != "wal":
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchall()[0][0]
            if mode != "wal":
                raise exception.KVSBackendError(
                    backend=self._errors.backend,
                    reason=f"cannot switch the journal to WAL (it is {mode})",
                )
        version = conn.execute("PRAGMA user_version").fetchall()[0][0]
        if version == 0:
            with _Transaction(conn):
                # Another process may have created it while we waited.
                version = conn.execute("PRAGMA user_version").fetchall()[0][0]
                if version == 0:
                    for statement in _SCHEMA:
                        conn.execute(statement)
                    version = SCHEMA_VERSION
        if version != SCHEMA_VERSION:
            raise exception.KVSError(
                reason=f"{keys.shown(self.path)} has schema version {version}; "
                f"this storaged knows version {SCHEMA_VERSION}"
            )

    def close(self) -> None:
        """Close the connections this process opened, in all its threads.

        Connections inherited through ``fork`` are not closed (see
        :meth:`_reap`); they are never used again either.
        """
        super().close()
        pid = os.getpid()
        for key in list(self._conns):
            if key[0] == pid:
                try:
                    self._conns.pop(key).close()
                except (KeyError, sqlite3.Error):
                    pass

    # -- primitives ---------------------------------------------------------

    def _get(self, key: str) -> str | None:
        with self._errors:
            rows = self._conn().execute(_GET, (key, time.time())).fetchall()
        return rows[0][0] if rows else None

    def _get_versioned(self, key: str) -> tuple[str, int] | None:
        with self._errors:
            rows = self._conn().execute(_GET_VERSIONED, (key, time.time())).fetchall()
        return (rows[0][0], rows[0][1]) if rows else None

    def _get_multi(self, keys: list[str]) -> list[str | None]:
        with self._errors:
            rows = (
                self._conn()
                .execute(_GET_MULTI, (json.dumps(keys), time.time()))
                .fetchall()
            )
        found = dict(rows)
        return [found.get(key) for key in keys]

    def _set(
        self, key: str, raw: str, ttl: float | None, fence: base.Fence | None
    ) -> None:
        now = time.time()
        expires_at = None if ttl is None else now + ttl
        with self._errors:
            conn = self._conn()
            if fence is None:
                conn.execute(_SET, (key, raw, base.now_us(now), expires_at))
                return
            cursor = conn.execute(
                _SET_FENCED,
                (key, raw, base.now_us(now), expires_at, fence[0], fence[1], now),
            )
            if cursor.rowcount != 1:
                raise base.FenceRejected()

    def _check_fence(
        self, conn: sqlite3.Connection, fence: base.Fence | None, now: float
    ) -> None:
        if (
            fence is not None
            and not conn.execute(_FENCE_HELD, (fence[0], fence[1], now)).fetchall()
        ):
            raise base.FenceRejected()

    def _set_multi(
        self, items: list[tuple[str, str]], ttl: float | None, fence: base.Fence | None
    ) -> None:
        with self._errors, _Transaction(self._conn()) as conn:
            now = time.time()
            self._check_fence(conn, fence, now)
            first = base.now_us(now)
            expires_at = None if ttl is None else now + ttl
            conn.executemany(
                _SET, [(key, raw, first, expires_at) for key, raw in items]
            )

    def _delete(self, key: str, fence: base.Fence | None) -> bool:
        with self._errors:
            conn = self._conn()
            if fence is None:
                now = time.time()
                rows = conn.execute(_DELETE, (key,)).fetchall()
            else:
                with _Transaction(conn):
                    now = time.time()
                    self._check_fence(conn, fence, now)
                    rows = conn.execute(_DELETE, (key,)).fetchall()
        return bool(rows) and _live(rows[0][0], now)

    def _delete_multi(self, keys: list[str], fence: base.Fence | None) -> None:
        with self._errors:
            conn = self._conn()
            if fence is None:
                conn.execute(_DELETE_MULTI, (json.dumps(keys),))
                return
            with _Transaction(conn):
                self._check_fence(conn, fence, time.time())
                conn.execute(_DELETE_MULTI, (json.dumps(keys),))

    def _compare_and_set(
        self, key: str, expected: int | None, raw: str, ttl: float | None
    ) -> tuple[bool, int | None]:
        now = time.time()
        expires_at = None if ttl is None else now + ttl
        with self._errors:
            conn = self._conn()
            if expected is None:
                rows = conn.execute(
                    _CREATE, (key, raw, base.now_us(now), expires_at, now)
                ).fetchall()
            else:
                rows = conn.execute(
                    _REPLACE, (raw, expires_at, key, expected, now)
                ).fetchall()
            if rows:
                return True, int(rows[0][0])
            # Only for the message: the version that won.
            found = conn.execute(_GET_VERSIONED, (key, time.time())).fetchall()
        return False, int(found[0][1]) if found else None

    def _scan(self, prefix: str) -> Iterator[tuple[str, str]]:
        upper = keys.prefix_upper_bound(prefix)
        after = prefix
        first = True
        while True:
            with self._errors:
                rows = (
                    self._conn()
                    .execute(
                        _SCAN[(first, upper is not None)],
                        (after, upper, time.time(), _PAGE),
                    )
                    .fetchall()
                )
            yield from rows
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]
            first = False

    def _purge_expired(self) -> int:
        with self._errors, _Transaction(self._conn()) as conn:
            now = time.time()
            purged = conn.execute(_PURGE[0], (now,)).rowcount
            conn.execute(_PURGE[1], (now,))
            conn.execute(_PURGE[2], (now,))
        return purged

    def _acquire(self, name: str, ttl: float) -> int | None:
        now = time.time()
        with self._errors:
            rows = (
                self._conn()
                .execute(_ACQUIRE, (name, base.now_us(now), now + ttl, now))
                .fetchall()
            )
        return int(rows[0][0]) if rows else None

    def _refresh(self, name: str, token: int, ttl: float) -> bool:
        now = time.time()
        with self._errors:
            cursor = self._conn().execute(_REFRESH, (now + ttl, name, token, now))
        return cursor.rowcount == 1

    def _release(self, name: str, token: int) -> bool:
        with self._errors:
            cursor = self._conn().execute(_RELEASE, (name, token, time.time()))
        return cursor.rowcount == 1
