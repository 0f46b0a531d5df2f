"""One catalog database: its file, connection, transactions and quarantine.

Each database lives alone in a directory of its own, in a file named after
a random id made when the database was created::

    <directory>/<db id>.db        (+ <db id>.db-wal, <db id>.db-shm)

Why a fresh name per database: sqlite removes a database's ``-wal`` and
``-shm`` files *by name* when its last connection closes.  Once a database
has been moved away (quarantined, reclaimed) and a new one made for the
same container, a process still holding a connection to the old one would,
on closing it, delete the new database's WAL if both had the same name.
With a new name per database the old names point at nothing.

The directory itself stays; ``flock`` on it serialises the few operations
that change which file is the database (create, quarantine, reclaim,
removing the empty directory).  Ordinary reads and writes take no such
lock: after ``BEGIN IMMEDIATE`` a writer checks that its file is still the
one in the directory (a database is only moved by a process holding its
write lock), and otherwise reopens.

Connections are opened lazily, one per :class:`Database` object, guarded by
a native (never green) lock so that several OS threads can share it; a
connection made before a ``fork`` is left alone in the child, never used
or closed there.  Every sqlite error is turned into a storaged exception:
"database is locked" after the busy timeout into
:class:`~storaged.exception.CatalogBusy`, "database or disk is full" (and
``ENOSPC`` while a database is built) into
:class:`~storaged.exception.CatalogFull`, damage ("file is not a
database", "database disk image is malformed", a missing schema) into a
quarantine of the files and :class:`~storaged.exception.CatalogCorrupt`.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
import contextlib
import errno
import fcntl
import logging
import os
import sqlite3
import time
from typing import Any
from typing import Final
from typing import TypeVar
import uuid

import tenacity

from storaged import concurrency
from storaged import exception
from storaged.catalog import schema as schema_mod
from storaged.catalog.group_commit import Change
from storaged.catalog.group_commit import GroupCommit
from storaged.catalog.timestamp import Timestamp
from storaged.common import retry

LOG = logging.getLogger(__name__)

T = TypeVar("T")

#: Values of sqlite's ``synchronous`` the catalog accepts.
SYNCHRONOUS: Final = ("normal", "full")

#: Suffix of database files; the name before it is the database id.
DB_SUFFIX: Final = ".db"

# Error texts (lower case) that mean the file is damaged.
_CORRUPT: Final = (
    "file is not a database",
    "file is encrypted or is not a database",
    "database disk image is malformed",
    "malformed database schema",
)
# ... and those that mean another writer held the lock too long.
_BUSY: Final = ("database is locked", "database table is locked", "database is busy")
# sqlite's primary result code for "database or disk is full" (SQLITE_FULL),
# and its text, for an error that carries no code.
_SQLITE_FULL: Final = 13
_FULL_TEXT: Final = "database or disk is full"
# OS errors that mean the filesystem (or the user's quota) is full.
_NO_SPACE: Final = (errno.ENOSPC, errno.EDQUOT)

# Connections inherited across fork(): never used nor closed in the child
# (closing would run sqlite's last-connection clean-up on files the parent
# is still using); kept referenced so the garbage collector leaves them be.
_INHERITED: list[sqlite3.Connection] = []


class DatabaseMissing(exception.CatalogError):
    """There is no database in the directory (never made, or moved away)."""

    msg_fmt = "No catalog database in %(directory)s"


def fsync_dir(path: str) -> None:
    """Make a directory's entries (a rename, a new file) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_disk_full(err: sqlite3.Error) -> bool:
    """Tell whether sqlite failed for want of space (SQLITE_FULL)."""
    code = getattr(err, "sqlite_errorcode", None)
    if code is not None:
        return (int(code) & 0xFF) == _SQLITE_FULL
    return _FULL_TEXT in str(err).lower()


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class Database:
    """A sqlite database in a directory of its own.

    :param directory: the directory holding the database file.
    :param schema: its kind and migrations.
    :param timeout: seconds to wait for another writer (sqlite's busy
        timeout) or for the directory lock.
    :param synchronous: ``"full"`` or ``"normal"`` (sqlite's ``synchronous``).
    :param tmp_dir: where new databases are built, on the same file system.
    :param quarantine_dir: where damaged databases are moved.
    :param on_quarantine: called with the database id after a quarantine.
    :param group: the group commit of this database shared by the other
        connections of this process to it (a group of its own by default).
    """

    def __init__(
        self,
        directory: str,
        *,
        schema: schema_mod.Schema,
        timeout: float,
        synchronous: str,
        tmp_dir: str,
        quarantine_dir: str,
        on_quarantine: Callable[[str], None] | None = None,
        group: GroupCommit | None = None,
    ) -> None:
        if synchronous not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS}")
        self.directory = directory
        self.schema = schema
        self.timeout = timeout
        self.synchronous = synchronous
        self.tmp_dir = tmp_dir
        self.quarantine_dir = quarantine_dir
        self.on_quarantine = on_quarantine
        self._group = group if group is not None else GroupCommit()
        self._lock = concurrency.native_module("threading").RLock()
        self._conn: sqlite3.Connection | None = None
        self._file: str | None = None
        self._ident: tuple[int, int] | None = None
        self._pid = 0

    def __repr__(self) -> str:
        return f"<Database {self.schema.name} {self.directory}>"

    # -- which file ----------------------------------------------------------

    def find_file(self) -> str | None:
        """Return the path of the database file, or None if there is none."""
        try:
            names = os.listdir(self.directory)
        except (FileNotFoundError, NotADirectoryError):
            return None
        found = sorted(n for n in names if n.endswith(DB_SUFFIX))
        if not found:
            return None
        if len(found) > 1:
            LOG.warning(
                "%d database files in %s, using %s",
                len(found), self.directory, found[0],
            )
        return os.path.join(self.directory, found[0])

    def exists(self) -> bool:
        """Tell whether a database file is in place."""
        return self.find_file() is not None

    @staticmethod
    def db_id_of(path: str) -> str:
        """Return the database id that a database file's name holds."""
        return os.path.basename(path)[: -len(DB_SUFFIX)]

    def _still_current(self) -> bool:
        if self._file is None:
            return False
        try:
            st = os.stat(self._file)
        except FileNotFoundError:
            return False
        return (st.st_dev, st.st_ino) == self._ident

    # -- connections -----------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None:
            if self._pid != os.getpid():
                _INHERITED.append(self._conn)
                self._forget()
            elif not self._still_current():
                self._close_connection()
        if self._conn is None:
            self._open()
        assert self._conn is not None
        return self._conn

    def _forget(self) -> None:
        self._conn = None
        self._file = None
        self._ident = None

    def _close_connection(self) -> None:
        conn = self._conn
        self._forget()
        if conn is not None:
            # Safe even when the file was moved away: its -wal and -shm
            # names are unique to it (see the module docstring).
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def _open(self) -> None:
        path = self.find_file()
        if path is None:
            raise DatabaseMissing(directory=self.directory)
        try:
            conn = sqlite3.connect(
                path,
                timeout=self.timeout,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as err:
            raise exception.CatalogError(reason=f"cannot open {path}: {err}") from err
        try:
            st = os.stat(path)
        except FileNotFoundError as err:
            conn.close()
            raise DatabaseMissing(directory=self.directory) from err
        self._conn, self._file = conn, path
        self._ident, self._pid = (st.st_dev, st.st_ino), os.getpid()
        try:
            with self._translate():
                version = schema_mod.user_version(conn)
                if version == 0:
                    raise self._quarantine("the file holds no catalog schema")
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise exception.CatalogError(
                        reason=f"{path}: cannot use WAL journal mode (got {mode})"
                    )
                # The value is one of SYNCHRONOUS, checked in __init__.
                conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
                schema_mod.migrate(conn, self.schema)
                try:
                    conn.execute(self.schema.check).fetchall()
                except sqlite3.OperationalError as err:
                    if "no such" in str(err).lower():
                        raise self._quarantine(str(err)) from err
                    raise
        except BaseException:
            self._close_connection()
            raise

    def close(self) -> None:
        """Close the connection (it reopens on the next use)."""
        with self._lock:
            if self._conn is not None and self._pid != os.getpid():
                _INHERITED.append(self._conn)
                self._forget()
            self._close_connection()

    # -- transactions ------------------------------------------------------------

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: a consistent snapshot of the database.

        :raises DatabaseMissing: no database in the directory.
        :raises storaged.exception.CatalogCorrupt: damaged, now quarantined.
        :raises storaged.exception.CatalogBusy: locked too long.
        """
        with self._lock, self._translate():
            conn = self._connection()
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                self._rollback(conn)

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``), committed on success.

        Only one process writes a database at a time; others wait up to
        ``timeout`` seconds, then get :class:`~storaged.exception.CatalogBusy`.
        An exception in the block rolls everything back.
        """
        with self._lock, self._translate():
            conn = self._begin_immediate()
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                self._rollback(conn)
                raise

    def grouped(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in a write transaction shared with concurrent callers.

        As :meth:`write`, but the changes that callers of this process make
        at the same time share one transaction and one commit
        (:mod:`storaged.catalog.group_commit`), each in a savepoint of its
        own.  Returns once the transaction is committed.

        :raises: what ``fn`` raised (sqlite errors translated as by
            :meth:`write`; its change alone is rolled back), or the errors
            of the transaction itself, as :meth:`write`.
        """
        return self._group.submit(fn, self._run_batch)

    def _run_batch(self, batch: list[Change[Any]]) -> None:
        with self._lock, self._translate():
            conn = self._begin_immediate()
            try:
                for change in batch:
                    conn.execute("SAVEPOINT change")
                    try:
                        with self._translate():
                            change.result = change.fn(conn)
                    except Exception as err:
                        conn.execute("ROLLBACK TO change")
                        change.error = err
                    conn.execute("RELEASE change")
                conn.execute("COMMIT")
            except BaseException:
                self._rollback(conn)
                raise

    def _begin_immediate(self) -> sqlite3.Connection:
        for _attempt in range(5):
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            # Holding the write lock, nobody can move the file any more:
            # check we locked the database that is in place, not one that
            # was quarantined or reclaimed while we waited.
            if self._still_current():
                return conn
            self._rollback(conn)
            self._close_connection()
        raise exception.CatalogBusy(
            path=self.directory, reason="the database kept being replaced"
        )

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    @contextlib.contextmanager
    def _translate(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as err:
            text = str(err).lower()
            if isinstance(err, sqlite3.DatabaseError) and any(
                marker in text for marker in _CORRUPT
            ):
                raise self._quarantine(str(err)) from err
            if any(marker in text for marker in _BUSY):
                raise exception.CatalogBusy(
                    path=self._file or self.directory, reason=str(err)
                ) from err
            if is_disk_full(err):
                # Not damage: the transaction was rolled back, the database
                # is as it was; the write may succeed once space is freed.
                raise exception.CatalogFull(
                    path=self._file or self.directory, reason=str(err)
                ) from err
            raise exception.CatalogError(
                reason=f"{self._file or self.directory}: {err}"
            ) from err

    # -- creation --------------------------------------------------------------

    def create(self, init: Callable[[sqlite3.Connection, str], None]) -> bool:
        """Make the database if there is none, atomically.

        The database is built in ``tmp_dir`` (schema, then ``init(conn,
        db_id)`` in one transaction), synced to disk, and renamed into the
        directory under the directory lock, so that other processes see
        either no database or a complete one, and only one is ever made.

        :returns: True if this call made it, False if one was there.
        """
        if self.find_file() is not None:
            return False
        db_id = uuid.uuid4().hex
        os.makedirs(self.tmp_dir, exist_ok=True)
        tmp = os.path.join(self.tmp_dir, db_id + DB_SUFFIX)
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
                schema_mod.migrate(conn, self.schema)
                conn.execute("BEGIN IMMEDIATE")
                init(conn, db_id)
                conn.execute("COMMIT")
            finally:
                conn.close()
            _fsync_file(tmp)
            with self._dir_lock():
                if self.find_file() is not None:
                    return False
                os.rename(tmp, os.path.join(self.directory, db_id + DB_SUFFIX))
                fsync_dir(self.directory)
                fsync_dir(os.path.dirname(self.directory))
            return True
        except sqlite3.Error as err:
            if is_disk_full(err):
                raise exception.CatalogFull(
                    path=self.directory, reason=str(err)
                ) from err
            raise exception.CatalogError(
                reason=f"cannot create a {self.schema.name} database: {err}"
            ) from err
        except OSError as err:
            if err.errno in _NO_SPACE:
                raise exception.CatalogFull(
                    path=self.directory, reason=err.strerror or str(err)
                ) from err
            raise
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                _remove_quietly(tmp + suffix)

    # -- moving a database away ------------------------------------------------

    @contextlib.contextmanager
    def _dir_lock(self) -> Iterator[None]:
        """Hold ``flock`` on the directory (made if missing), bounded by timeout."""
        deadline = time.monotonic() + self.timeout
        while True:
            os.makedirs(self.directory, exist_ok=True)
            try:
                fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
            except FileNotFoundError:
                continue
            try:
                try:
                    retry.retrying(
                        retry=tenacity.retry_if_exception_type(BlockingIOError),
                        stop=lambda _state: time.monotonic() > deadline,
                        wait=tenacity.wait_fixed(0.005),
                        sleep=concurrency.native_sleep,
                    )(fcntl.flock, fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise exception.CatalogBusy(
                        path=self.directory,
                        reason="directory lock held for over "
                        f"{self.timeout:.1f}s",
                    ) from None
                # Locked: but is it still the directory at that path?
                try:
                    st = os.stat(self.directory)
                except FileNotFoundError:
                    continue
                fst = os.fstat(fd)
                if (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino):
                    yield
                    return
            finally:
                os.close(fd)

    def _move_files(self, path: str, dest_root: str) -> str | None:
        """Move a database file and its -wal/-shm into a new directory.

        Caller holds the directory lock.  :returns: the new directory, or
        None if the file was gone already.
        """
        os.makedirs(dest_root, exist_ok=True)
        base = f"{os.path.basename(self.directory)}-{Timestamp.now().normal}"
        dest = os.path.join(dest_root, base)
        serial = 0
        while True:
            try:
                os.mkdir(dest)
                break
            except FileExistsError:
                serial += 1
                dest = os.path.join(dest_root, f"{base}-{serial}")
        name = os.path.basename(path)
        for suffix in ("", "-wal", "-shm"):
            try:
                os.rename(path + suffix, os.path.join(dest, name + suffix))
            except FileNotFoundError:
                if not suffix:
                    os.rmdir(dest)
                    return None
        fsync_dir(self.directory)
        fsync_dir(dest)
        return dest

    def _quarantine(self, reason: str) -> exception.CatalogCorrupt:
        """Move the damaged database away and return the error to raise.

        Never raises itself: a failure to move is logged, and the error
        returned says so.
        """
        path, ident = self._file, self._ident
        self._close_connection()
        dest: str | None = None
        where = "(already moved)"
        if path is not None:
            try:
                with self._dir_lock():
                    try:
                        st = os.stat(path)
                    except FileNotFoundError:
                        st = None
                    # Move only the file we found damaged, never a newer one.
                    if st is not None and (st.st_dev, st.st_ino) == ident:
                        dest = self._move_files(path, self.quarantine_dir)
            except (OSError, exception.CatalogError) as err:
                where = f"(not moved: {err})"
                LOG.error("Could not quarantine %s database %s: %s",
                          self.schema.name, path, err)
        where = dest or where
        LOG.error("Quarantined corrupt %s database %s to %s: %s",
                  self.schema.name, path or self.directory, where, reason)
        if dest is not None and path is not None and self.on_quarantine is not None:
            try:
                self.on_quarantine(self.db_id_of(path))
            except Exception:
                LOG.exception("Error after quarantining %s", path)
        return exception.CatalogCorrupt(path=path or self.directory, quarantine=where)

    def quarantine(self, reason: str) -> exception.CatalogCorrupt:
        """Quarantine the database now (e.g. after a failed check)."""
        with self._lock:
            if self._conn is None or not self._still_current():
                self._close_connection()
                path = self.find_file()
                if path is None:
                    raise DatabaseMissing(directory=self.directory)
                st = os.stat(path)
                self._file, self._ident = path, (st.st_dev, st.st_ino)
            return self._quarantine(reason)

    def move_away_locked(self, conn: sqlite3.Connection, dest_root: str) -> str | None:
        """Move the database out of its directory, inside a write transaction.

        The caller holds the write lock (it is in :meth:`write`), so no
        other process can have written since it looked; processes that wait
        for the lock see, once they get it, that the file was moved.

        :returns: where the files went, or None if they were gone.
        """
        if not conn.in_transaction or self._file is None:
            raise exception.CatalogError(reason="move_away_locked outside a write")
        with self._dir_lock():
            return self._move_files(self._file, dest_root)

    def remove_directory_if_empty(self) -> bool:
        """Remove the directory when no database (nor anything) is left in it."""
        with self._lock:
            try:
                with self._dir_lock():
                    try:
                        os.rmdir(self.directory)
                    except OSError as err:
                        if err.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                            return False
                        raise
                    return True
            except exception.CatalogBusy:
                return False

    def remove_stale_files(self) -> int:
        """Delete ``-wal``/``-shm`` files of databases that were moved away.

        A process that held a connection to a database when it was moved may
        leave such files behind; they are harmless (their names are unique)
        but would keep the directory from being removed.  Done under the
        directory lock, so that no database can appear meanwhile; the files
        of the database in place are never touched.

        :returns: how many files were removed.
        """
        removed = 0
        with self._lock:
            try:
                with self._dir_lock():
                    current = self.find_file()
                    keep = os.path.basename(current) if current else None
                    for name in os.listdir(self.directory):
                        base, sep, suffix = name.rpartition(DB_SUFFIX + "-")
                        if not sep or base + DB_SUFFIX == keep:
                            continue
                        if suffix not in ("wal", "shm", "journal"):
                            continue
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(os.path.join(self.directory, name))
                            removed += 1
            except exception.CatalogBusy:
                return removed
        return removed

    # -- checks ----------------------------------------------------------------

    def check(self, full: bool = False) -> None:
        """Run ``PRAGMA quick_check`` (or ``integrity_check``); quarantine on failure.

        :raises storaged.exception.CatalogCorrupt: the check failed.
        """
        pragma = "integrity_check" if full else "quick_check"
        with self.read() as conn:
            rows = [str(r[0]) for r in conn.execute(f"PRAGMA {pragma}").fetchall()]
        if rows != ["ok"]:
            with self._lock:
                raise self._quarantine(f"{pragma}: " + "; ".join(rows[:5]))
