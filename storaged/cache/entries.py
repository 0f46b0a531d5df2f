"""Committed entries: hits, the stream of an open entry, the operator's views.

**A hit** opens the entry *first*, then checks it (regular file, the size
and digest the catalog expects), records the hit and streams from the open
file.  A prune (or ``cache delete``) that unlinks the entry afterwards only
removes the name: the open file stays whole until the reader closes it, so
a read that has begun always ends with the whole body.  An entry that fails
its checks is withdrawn to ``invalid/``.

The operator's views (``lookup``, ``entries``, ``delete``,
``invalid_files``) read the same files and metadata and count no hit.
"""

from __future__ import annotations

from collections.abc import Iterator
import dataclasses
import errno
import hashlib
import logging
import os
import stat
import time
from typing import Any

from storaged import concurrency
from storaged import exception
from storaged.cache.directory import READ_FLAGS
from storaged.cache.directory import CacheDirectory
from storaged.cache.directory import close_fd
from storaged.cache.directory import same_file
from storaged.cache.layout import ENTRY_ID_RE
from storaged.cache.layout import INVALID
from storaged.cache.layout import INVALID_NAME_RE
from storaged.cache.layout import validate_entry_id
from storaged.cache.metadata import EntryMeta
from storaged.cache.ref import CacheRef
from storaged.objectstore.driver import InvalidRange

LOG = logging.getLogger(__name__)

#: the digest every entry records
DIGEST_ALGO = "sha256"


@dataclasses.dataclass
class EntryInfo:
    """An entry as listings show it."""

    id: str
    size: int
    hits: int
    last_access: int
    created: int
    digest: str
    source: str

    def as_dict(self) -> dict[str, Any]:
        """Return plain data (``--format json``)."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Hit:
    """An entry opened and checked for a reader: its file, size, metadata."""

    fd: int
    size: int
    meta: EntryMeta


class Entries(CacheDirectory):
    """The committed entries of a cache directory: hits and listings."""

    # -- hits ---------------------------------------------------------------

    def _open_entry(self, entry_id: str, ref: CacheRef) -> Hit | None:
        """Open an entry, check it against the catalog, count the hit."""
        path = self.entry_path(entry_id)
        try:
            fd = os.open(path, READ_FLAGS)
        except FileNotFoundError:
            return None
        except OSError as err:
            if err.errno != errno.ELOOP:
                raise
            LOG.warning("Cache entry %s is a symbolic link: not served", entry_id)
            return None
        try:
            st = os.fstat(fd)
            problem = None
            meta = self.meta.read(fd, entry_id) if stat.S_ISREG(st.st_mode) else None
            if not stat.S_ISREG(st.st_mode):
                problem = "not a regular file"
            elif meta is None:
                problem = "no metadata recorded"
            elif ref.size is not None and st.st_size != ref.size:
                problem = "holds %d bytes where the object has %d" % (
                    st.st_size, ref.size)
            elif st.st_size != meta.size:
                problem = "holds %d bytes, %d were recorded" % (st.st_size, meta.size)
            else:
                for algo, digest in ref.expected.items():
                    have = meta.checks.get(algo)
                    if have is not None and have != digest:
                        problem = "its %s is %s, the object's is %s" % (
                            algo, have, digest)
            if problem is not None:
                LOG.warning("Cache entry %s (%s) not served: %s", entry_id,
                            ref.source, problem)
                if stat.S_ISREG(st.st_mode):
                    self._invalidate(fd, entry_id, problem)
                close_fd(fd)
                self.count("stale")
                return None
            assert meta is not None
            self.meta.record_hit(fd, entry_id, time.time_ns())
        except BaseException:
            close_fd(fd)
            raise
        return Hit(fd, st.st_size, meta)

    def _invalidate(self, fd: int, entry_id: str, problem: str) -> None:
        """Move an entry that must not be served to ``invalid/``."""
        path = self.entry_path(entry_id)
        if not same_file(path, fd):
            return  # already gone or replaced
        name, target = self._invalid_path(entry_id)
        try:
            self.meta.record_error(fd, name, "entry withdrawn: %s" % problem)
            os.rename(path, target)
        except FileNotFoundError:
            return
        self.meta.forget([entry_id])

    def _serve(
        self,
        hit: Hit,
        entry_id: str,
        offset: int,
        length: int | None,
        verify: bool,
        chunk: int,
    ) -> tuple[Iterator[bytes], int]:
        if offset > hit.size:
            close_fd(hit.fd)
            raise InvalidRange(
                what="cache entry %s" % entry_id,
                reason="offset %d is beyond its %d bytes" % (offset, hit.size),
            )
        n = hit.size - offset if length is None else min(length, hit.size - offset)
        digest = hit.meta.digest if verify else None
        return EntryChunks(self, hit.fd, entry_id, offset, n, chunk, digest), n

    # -- operator views -------------------------------------------------------

    def _lookup_fd(self, entry_id: str) -> EntryInfo | None:
        path = self.entry_path(entry_id)
        try:
            fd = os.open(path, READ_FLAGS)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as err:
            if err.errno == errno.ELOOP:
                return None
            raise
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None
            meta = self.meta.read(fd, entry_id)
        finally:
            close_fd(fd)
        if meta is None:
            return EntryInfo(entry_id, st.st_size, 0, st.st_mtime_ns, st.st_mtime_ns,
                             "", "")
        return EntryInfo(entry_id, st.st_size, meta.hits, meta.last_access,
                         meta.created, meta.digest, meta.source)

    def lookup(self, entry_id: str) -> EntryInfo | None:
        """Return an entry's info (no hit is counted), or None.

        :raises storaged.exception.InvalidName: not an entry id.
        """
        validate_entry_id(entry_id)
        return concurrency.run_blocking(self._lookup_fd, entry_id)

    def entries(self) -> list[EntryInfo]:
        """List every entry, most recently read first."""
        result = []
        for name in concurrency.run_blocking(os.listdir, self.cache_dir):
            if ENTRY_ID_RE.match(name):
                info = concurrency.run_blocking(self._lookup_fd, name)
                if info is not None:
                    result.append(info)
        result.sort(key=lambda e: e.last_access, reverse=True)
        return result

    def delete(self, entry_id: str, dry_run: bool = False) -> bool:
        """Remove an entry; True if there was one.

        A reader that already opened it still reads it whole.

        :raises storaged.exception.InvalidName: not an entry id.
        """
        path = self.entry_path(entry_id)
        if dry_run:
            return concurrency.run_blocking(os.path.isfile, path)
        try:
            concurrency.run_blocking(os.unlink, path)
        except FileNotFoundError:
            return False
        concurrency.run_blocking(self.meta.forget, [entry_id])
        return True

    def invalid_files(self) -> list[dict[str, Any]]:
        """List ``invalid/`` with each recorded error, newest first."""
        directory = os.path.join(self.cache_dir, INVALID)
        result: list[dict[str, Any]] = []
        for name in concurrency.run_blocking(os.listdir, directory):
            match = INVALID_NAME_RE.match(name)
            if not match:
                continue
            path = os.path.join(directory, name)
            try:
                st = os.stat(path, follow_symlinks=False)
            except FileNotFoundError:
                continue
            result.append({
                "name": name,
                "id": match.group(1),
                "size": st.st_size,
                "failed_at": st.st_mtime,
                "error": concurrency.run_blocking(self.meta.read_error, path, name),
            })
        result.sort(key=lambda r: r["failed_at"], reverse=True)
        return result


class EntryChunks:
    """The chunks of an open entry; optionally verified against its digest."""

    def __init__(
        self,
        cache: Entries,
        fd: int,
        entry_id: str,
        offset: int,
        n: int,
        chunk: int,
        digest: str | None,
    ) -> None:
        self._cache = cache
        self._fd: int | None = fd
        self._entry_id = entry_id
        self._pos = offset
        self._remaining = n
        self._chunk = chunk
        self._digest = digest
        self._hasher: Any = None
        if digest is not None:
            algo = digest.partition(":")[0] or DIGEST_ALGO
            self._hasher = hashlib.new(algo)

    def __iter__(self) -> EntryChunks:
        return self

    def __enter__(self) -> EntryChunks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self, fd: int, size: int) -> bytes:
        data = os.pread(fd, size, self._pos)
        if self._hasher is not None:
            self._hasher.update(data)
        return data

    def __next__(self) -> bytes:
        fd = self._fd
        if fd is None or self._remaining <= 0:
            self.close()
            raise StopIteration
        try:
            data = concurrency.run_blocking(
                self._read, fd, min(self._chunk, self._remaining)
            )
            if not data:
                raise exception.CorruptObject(
                    what="cache entry %s" % self._entry_id,
                    reason="it ended %d bytes early" % self._remaining)
            self._pos += len(data)
            self._remaining -= len(data)
            if self._remaining == 0 and self._hasher is not None:
                self._check(fd)
        except BaseException:
            self.close()
            raise
        return data

    def _check(self, fd: int) -> None:
        assert self._digest is not None
        actual = "%s:%s" % (self._hasher.name, self._hasher.hexdigest())
        if actual != self._digest:
            concurrency.run_blocking(
                self._cache._invalidate, fd, self._entry_id,
                "its data no longer matches its digest",
            )
            raise exception.CorruptObject(
                what="cache entry %s" % self._entry_id,
                reason="its %s is %s, %s was recorded" % (
                    self._hasher.name, actual, self._digest),
            )

    def close(self) -> None:
        """Close the entry (safe to call twice)."""
        fd, self._fd = self._fd, None
        close_fd(fd)

    def __del__(self) -> None:
        self.close()
