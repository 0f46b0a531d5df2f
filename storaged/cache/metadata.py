"""Metadata of cache entries: user xattrs, or an sqlite index where there are none.

Each entry has a static part, written once when the fill is committed, and
an access part that every hit updates:

==============  ===========================================================
static          ``size``, ``digest`` (``sha256:<hex>`` of the file, checked
                before the entry was committed), ``checks`` (other digests
                the file was checked against, e.g. the catalog's md5),
                ``source`` (what the entry is a copy of), ``created`` (ns)
access          ``hits`` and ``last_access`` (ns, recorded by storaged;
                the kernel's atime is never used: ``noatime`` and
                ``relatime`` mounts make it meaningless)
==============  ===========================================================

:class:`XattrMetadata` keeps them in two user xattrs of the entry file
(``user.storaged.cache.meta``, JSON, and ``user.storaged.cache.access``,
``b"<hits> <last_access_ns>"``), so they travel with the file through the
rename that commits it and vanish with it.  A hit is a read-modify-write of
the access xattr; it runs under an exclusive ``flock`` of the entry, taken
on the reader's own open file, so concurrent readers (threads or processes)
never lose a hit.

:class:`IndexMetadata` keeps the same fields in ``cache_dir/.index.sqlite``
(WAL); a hit is one ``UPDATE ... SET hits = hits + 1``, atomic in sqlite.
A row is written before the file is renamed into place; a row without a
file is dropped by the cleaner, a file without a row is adopted (hits 0, last
access = its modification time), so the two can never disagree in a way that
stops a prune.

Every method blocks: the engine calls them through
:func:`storaged.concurrency.run_blocking`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from collections.abc import Iterable
import dataclasses
import errno
import fcntl
import json
import logging
import os
import sqlite3
import time
from typing import Any

from storaged import concurrency
from storaged import exception

LOG = logging.getLogger(__name__)

XATTR_META = "user.storaged.cache.meta"
XATTR_ACCESS = "user.storaged.cache.access"
XATTR_ERROR = "user.storaged.cache.error"
XATTR_PROBE = "user.storaged.cache.probe"

INDEX_FILE = ".index.sqlite"

#: errors meaning "this filesystem has no user xattrs"
_NO_XATTR = (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM)
_NO_DATA = (errno.ENODATA,)

#: longest error text recorded with a failed fill
MAX_ERROR_LENGTH = 1000

#: (file name, last access in ns or None when nothing is recorded)
AccessLookup = Callable[[str, str], int | None]


@dataclasses.dataclass
class EntryMeta:
    """What is known of one entry."""

    size: int
    digest: str
    source: str
    created: int
    checks: dict[str, str] = dataclasses.field(default_factory=dict)
    hits: int = 0
    last_access: int = 0

    def static_json(self) -> bytes:
        """Return the static part, as stored in the ``meta`` xattr."""
        return json.dumps(
            {
                "size": self.size,
                "digest": self.digest,
                "source": self.source,
                "created": self.created,
                "checks": self.checks,
            },
            sort_keys=True,
        ).encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes, access: bytes | None) -> EntryMeta | None:
        """Parse the two xattrs; None if the static part is unreadable."""
        try:
            data = json.loads(raw)
            meta = cls(
                size=int(data["size"]),
                digest=str(data["digest"]),
                source=str(data.get("source", "")),
                created=int(data.get("created", 0)),
                checks={
                    str(k): str(v) for k, v in dict(data.get("checks", {})).items()
                },
            )
        except (ValueError, KeyError, TypeError):
            return None
        hits, last = parse_access(access)
        meta.hits, meta.last_access = hits, last or meta.created
        return meta

    def as_dict(self) -> dict[str, Any]:
        """Return plain data (for listings)."""
        return dataclasses.asdict(self)


def parse_access(raw: bytes | None) -> tuple[int, int | None]:
    """Parse ``b"<hits> <last_access_ns>"``; (0, None) when absent or bad."""
    if not raw:
        return 0, None
    try:
        hits_text, last_text = raw.split(b" ", 1)
        return int(hits_text), int(last_text)
    except ValueError:
        return 0, None


class MetadataBackend(abc.ABC):
    """Where entry metadata lives; see the module docstring."""

    #: ``xattr`` or ``index``
    kind: str = ""

    @abc.abstractmethod
    def write(self, fd: int, entry_id: str, meta: EntryMeta) -> None:
        """Record a new entry's metadata (on the fill's open file)."""

    @abc.abstractmethod
    def read(self, fd: int, entry_id: str) -> EntryMeta | None:
        """Return an entry's metadata (None when nothing is recorded)."""

    @abc.abstractmethod
    def record_hit(self, fd: int, entry_id: str, now_ns: int) -> None:
        """Count one hit and set the last access, atomically."""

    @abc.abstractmethod
    def access_lookup(self, directory: str) -> AccessLookup:
        """Return a function giving the recorded last access of an entry.

        Built once per prune: the index loads every row at once, xattrs are
        read one file at a time.
        """

    @abc.abstractmethod
    def record_error(self, fd: int, name: str, text: str) -> None:
        """Record why a fill failed (on the failed file, before it moves)."""

    @abc.abstractmethod
    def read_error(self, path: str, name: str) -> str | None:
        """Return the recorded error of a file in ``invalid/``."""

    def forget(self, entry_ids: Iterable[str]) -> None:
        """Drop the metadata of removed entries (the index only)."""
        return None

    def forget_errors(self, names: Iterable[str]) -> None:
        """Drop the errors of removed invalid files (the index only)."""
        return None

    def reconcile(self, present: set[str]) -> int:
        """Drop metadata of entries that are no longer on disk; return how many."""
        return 0

    def close(self) -> None:
        """Release what the store holds."""
        return None


class XattrMetadata(MetadataBackend):
    """Metadata in user extended attributes of each entry file."""

    kind = "xattr"

    def write(self, fd: int, entry_id: str, meta: EntryMeta) -> None:
        os.setxattr(fd, XATTR_META, meta.static_json())
        os.setxattr(fd, XATTR_ACCESS, b"%d %d" % (meta.hits, meta.last_access))

    def read(self, fd: int, entry_id: str) -> EntryMeta | None:
        try:
            raw = os.getxattr(fd, XATTR_META)
        except OSError as err:
            if err.errno in _NO_DATA:
                return None
            raise
        try:
            access: bytes | None = os.getxattr(fd, XATTR_ACCESS)
        except OSError as err:
            if err.errno not in _NO_DATA:
                raise
            access = None
        return EntryMeta.from_json(raw, access)

    def record_hit(self, fd: int, entry_id: str, now_ns: int) -> None:
        # flock is per open file description: every reader opened the entry
        # itself, so readers in threads of one process exclude each other
        # just as readers in different processes do.
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            try:
                hits, _ = parse_access(os.getxattr(fd, XATTR_ACCESS))
            except OSError as err:
                if err.errno not in _NO_DATA:
                    raise
                hits = 0
            os.setxattr(fd, XATTR_ACCESS, b"%d %d" % (hits + 1, now_ns))
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def access_lookup(self, directory: str) -> AccessLookup:
        getxattr = os.getxattr
        prefix = directory.rstrip("/") + "/"

        def lookup(name: str, path: str | None = None) -> int | None:
            try:
                raw = getxattr(path or prefix + name, XATTR_ACCESS,
                               follow_symlinks=False)
            except OSError:
                return None  # no record, or the file just vanished
            return parse_access(raw)[1]

        return lookup

    def record_error(self, fd: int, name: str, text: str) -> None:
        os.setxattr(fd, XATTR_ERROR, text[:MAX_ERROR_LENGTH].encode("utf-8", "replace"))

    def read_error(self, path: str, name: str) -> str | None:
        try:
            return os.getxattr(path, XATTR_ERROR, follow_symlinks=False).decode(
                "utf-8", "replace"
            )
        except OSError:
            return None


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS entries (id TEXT PRIMARY KEY, size INTEGER, "
    "digest TEXT, source TEXT, created INTEGER, checks TEXT, "
    "hits INTEGER NOT NULL DEFAULT 0, last_access INTEGER NOT NULL DEFAULT 0) "
    "WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS errors (name TEXT PRIMARY KEY, error TEXT, "
    "at INTEGER) WITHOUT ROWID",
)


class IndexMetadata(MetadataBackend):
    """Metadata in an sqlite index, for filesystems without user xattrs.

    :param path: the database file (``cache_dir/.index.sqlite``).
    :param timeout: seconds to wait for another process's write.
    """

    kind = "index"

    def __init__(self, path: str, timeout: float = 30.0) -> None:
        self.path = path
        # One connection shared by the threads of this process, guarded by a
        # native lock: every call runs in a native thread (run_blocking).
        self._lock = concurrency.native_module("threading").Lock()
        try:
            self._conn = sqlite3.connect(
                path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            # A lost hit after a power failure does not matter; a fsync per
            # hit would.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            for statement in _SCHEMA:
                self._conn.execute(statement)
        except sqlite3.Error as err:
            raise exception.StoragedError(
                "Cannot open the cache index %s: %s" % (path, err)
            ) from err

    def _run(self, sql: str, args: Any = ()) -> list[Any]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def write(self, fd: int, entry_id: str, meta: EntryMeta) -> None:
        self._run(
            "INSERT OR REPLACE INTO entries (id, size, digest, source, created, "
            "checks, hits, last_access) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (entry_id, meta.size, meta.digest, meta.source, meta.created,
             json.dumps(meta.checks, sort_keys=True), meta.hits, meta.last_access),
        )

    def read(self, fd: int, entry_id: str) -> EntryMeta | None:
        rows = self._run(
            "SELECT size, digest, source, created, checks, hits, last_access "
            "FROM entries WHERE id = ?",
            (entry_id,),
        )
        if not rows:
            return None
        size, digest, source, created, checks, hits, last = rows[0]
        try:
            parsed = {str(k): str(v) for k, v in json.loads(checks or "{}").items()}
        except (ValueError, AttributeError):
            parsed = {}
        return EntryMeta(size, digest, source, created, parsed, hits, last or created)

    def record_hit(self, fd: int, entry_id: str, now_ns: int) -> None:
        # An entry adopted without a row gets one on its first hit.
        self._run(
            "INSERT INTO entries (id, size, digest, source, created, checks, hits, "
            "last_access) VALUES (?, ?, '', '', ?, '{}', 1, ?) "
            "ON CONFLICT(id) DO UPDATE SET hits = hits + 1, last_access = ?",
            (entry_id, os.fstat(fd).st_size, now_ns, now_ns, now_ns),
        )

    def access_lookup(self, directory: str) -> AccessLookup:
        known = dict(self._run("SELECT id, last_access FROM entries"))

        def lookup(name: str, path: str | None = None) -> int | None:
            return known.get(name) or None

        return lookup

    def record_error(self, fd: int, name: str, text: str) -> None:
        self._run(
            "INSERT OR REPLACE INTO errors (name, error, at) VALUES (?, ?, ?)",
            (name, text[:MAX_ERROR_LENGTH], time.time_ns()),
        )

    def read_error(self, path: str, name: str) -> str | None:
        rows = self._run("SELECT error FROM errors WHERE name = ?", (name,))
        return str(rows[0][0]) if rows else None

    def forget(self, entry_ids: Iterable[str]) -> None:
        ids = [(i,) for i in entry_ids]
        if not ids:
            return
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany("DELETE FROM entries WHERE id = ?", ids)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def forget_errors(self, names: Iterable[str]) -> None:
        rows = [(n,) for n in names]
        if rows:
            with self._lock:
                self._conn.executemany("DELETE FROM errors WHERE name = ?", rows)

    def reconcile(self, present: set[str]) -> int:
        known = [row[0] for row in self._run("SELECT id FROM entries")]
        gone = [i for i in known if i not in present]
        self.forget(gone)
        return len(gone)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def probe_xattr(directory: str) -> bool:
    """Tell whether files in ``directory`` can carry user xattrs."""
    path = os.path.join(directory, ".probe-%d" % os.getpid())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.setxattr(fd, XATTR_PROBE, b"1")
        return os.getxattr(fd, XATTR_PROBE) == b"1"
    except OSError as err:
        if err.errno in _NO_XATTR:
            return False
        raise
    finally:
        os.close(fd)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def open_store(directory: str, mode: str = "auto") -> MetadataBackend:
    """Open the metadata store of a cache directory.

    :param mode: ``auto``, ``xattr`` or ``index`` (``[cache] metadata_store``).
    :raises storaged.exception.ConfigError: ``xattr`` asked for on a
        filesystem without user xattrs.
    """
    if mode not in ("auto", "xattr", "index"):
        raise exception.ConfigError(
            "unknown metadata store %r" % mode, group="cache", option="metadata_store"
        )
    if mode != "index":
        if probe_xattr(directory):
            return XattrMetadata()
        if mode == "xattr":
            raise exception.ConfigError(
                "the filesystem of %s has no user extended attributes (mount it "
                "with user_xattr, or set metadata_store = auto or index)" % directory,
                group="cache",
                option="metadata_store",
            )
        LOG.warning(
            "The filesystem of the cache directory %s has no user extended "
            "attributes: entry metadata (hits, last access, digests) goes to the "
            "index %s instead",
            directory,
            os.path.join(directory, INDEX_FILE),
        )
    return IndexMetadata(os.path.join(directory, INDEX_FILE))
