"""The read path of the ``file`` driver: open, recorded metadata, verified reads.

Objects are opened below their data directory without following any
symbolic link; their recorded metadata (extended attribute or sidecar) is
parsed into a :class:`Meta`, and a verified read checks the data against
the fast check recorded with it (XXH3-64, or CRC-32 for older objects, or
else the digest).  A verified read that takes more than one chunk holds the
last chunk back until the check matched (:class:`FileChunks`).
"""

from __future__ import annotations

from collections.abc import Callable
import dataclasses
import errno
import functools
import json
import logging
import os
import re
import stat
from typing import Any
import zlib

import xxhash

from storaged import concurrency
from storaged import exception
from storaged.objectstore import hashing
from storaged.objectstore.driver import ChunkIterator
from storaged.objectstore.driver import InvalidRange
from storaged.objectstore.drivers.file_datadirs import PATH_FLAGS
from storaged.objectstore.drivers.file_datadirs import READ_FLAGS
from storaged.objectstore.drivers.file_datadirs import SIDECAR_PREFIX
from storaged.objectstore.drivers.file_datadirs import XATTR_NAME
from storaged.objectstore.drivers.file_datadirs import DataDir
from storaged.objectstore.drivers.file_datadirs import short

LOG = logging.getLogger(__name__)

_CRC_RE = re.compile(r"[0-9a-f]{8}\Z")
_XXH3_RE = re.compile(r"[0-9a-f]{16}\Z")

#: turns an OS error into the back end's storaged error, naming ``what``.
Translate = Callable[[OSError, str], exception.StoreError]


@dataclasses.dataclass(frozen=True)
class Meta:
    """An object's recorded metadata."""

    size: int
    algo: str
    digest: str
    #: hex CRC-32 of the data (objects written when it was the fast check)
    crc32: str | None = None
    #: hex XXH3-64 of the data (the fast check of objects written now)
    xxh3_64: str | None = None

    def read_check(self) -> tuple[Any, str, str]:
        """What a verified read computes: (fresh hasher, expected, its name)."""
        if self.xxh3_64 is not None:
            return xxhash.xxh3_64(), self.xxh3_64, "xxh3_64"
        if self.crc32 is not None:
            return _Crc32(), self.crc32, "crc32"
        return hashing.new(self.algo), self.digest, self.algo


class _Crc32:
    """CRC-32 with the ``update`` / ``hexdigest`` interface of hashlib."""

    __slots__ = ("_value",)

    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes) -> None:
        self._value = zlib.crc32(data, self._value)

    def hexdigest(self) -> str:
        return "%08x" % self._value


@functools.lru_cache(maxsize=4096)
def parse_meta(raw: bytes) -> Meta:
    """Parse recorded metadata (kept: objects are read again and again)."""
    data = json.loads(raw)
    crc = data.get("crc32")
    if crc is not None and not (isinstance(crc, str) and _CRC_RE.match(crc)):
        raise ValueError("crc32 is not 8 hex digits: %r" % (crc,))
    xxh = data.get("xxh3_64")
    if xxh is not None and not (isinstance(xxh, str) and _XXH3_RE.match(xxh)):
        raise ValueError("xxh3_64 is not 16 hex digits: %r" % (xxh,))
    meta = Meta(int(data["size"]), str(data["algo"]), str(data["digest"]), crc, xxh)
    hashing.check(meta.algo)
    return meta


def check_meta(location: str, raw: bytes | None) -> Meta:
    """Parse the metadata read with an object.

    :raises storaged.exception.CorruptObject: if it is missing or unreadable.
    """
    if raw is None:
        raise exception.CorruptObject(
            what=short(location), reason="no recorded digest (metadata missing)"
        )
    try:
        return parse_meta(raw)
    except (ValueError, KeyError, TypeError, exception.StoreError) as err:
        raise exception.CorruptObject(
            what=short(location), reason=f"metadata unreadable: {err}"
        ) from err


def _read_meta(dd: DataDir, dir_fd: int, fd: int, object_id: str) -> bytes | None:
    if dd.metadata == "xattr":
        try:
            return os.getxattr(fd, XATTR_NAME)
        except OSError as err:
            if err.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
    try:
        mfd = os.open(SIDECAR_PREFIX + object_id, READ_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    try:
        return os.read(mfd, 65536)
    finally:
        os.close(mfd)


def open_object(
    dd: DataDir, fan: str, object_id: str, want_meta: bool
) -> tuple[int, int, bytes | None]:
    """Open an object below ``dd`` without following any symbolic link.

    :returns: ``(fd, size, raw metadata or None)``; the caller closes ``fd``.
    """
    dir_fd = os.open(os.path.join(dd.path, fan), PATH_FLAGS)
    try:
        fd = os.open(object_id, READ_FLAGS, dir_fd=dir_fd)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(errno.ELOOP, "not a regular file")
            raw = _read_meta(dd, dir_fd, fd, object_id) if want_meta else None
        except BaseException:
            os.close(fd)
            raise
    finally:
        os.close(dir_fd)
    return fd, st.st_size, raw


def open_for_read(
    dd: DataDir,
    fan: str,
    object_id: str,
    location: str,
    offset: int,
    length: int | None,
    chunk_size: int,
    verify: bool,
    *,
    backend_id: str,
    translate: Translate,
) -> tuple[ChunkIterator, int]:
    """Open an object; read it at once when it fits in one chunk.

    A small object is read, and verified, before ``get`` returns: a
    corrupt one fails the ``get`` itself, and the file is closed at once.

    :param translate: turns the OS errors of later reads into storaged ones.
    :returns: ``(chunks, bytes they will yield)``.
    """
    fd, size, raw = open_object(dd, fan, object_id, verify)
    try:
        meta = None
        if verify:
            meta = check_meta(location, raw)
            if meta.size != size:
                raise exception.CorruptObject(
                    what=short(location),
                    reason=f"{size} bytes on disk, {meta.size} recorded",
                )
        if offset > size:
            raise InvalidRange(
                what=short(location),
                reason=f"offset {offset} is beyond its {size} bytes",
            )
        n = size - offset if length is None else min(length, size - offset)
        if n > chunk_size:
            hasher = meta.read_check()[0] if meta is not None else None
            chunks = FileChunks(
                backend_id, translate, location, fd, offset, n, chunk_size, hasher, meta
            )
            fd = -1  # the iterator owns it now
            return chunks, n
        data = os.pread(fd, n, offset) if n else b""
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) != n:
        raise exception.CorruptObject(
            what=short(location), reason="it shrank while being read"
        )
    if meta is not None:
        h, expected, _name = meta.read_check()
        h.update(data)
        if h.hexdigest() != expected:
            raise _digest_mismatch(backend_id, location, meta)
    return _Buffered(data), n


def stat_object(dd: DataDir, fan: str, object_id: str) -> os.stat_result:
    """Stat an object below ``dd`` without following any symbolic link."""
    dir_fd = os.open(os.path.join(dd.path, fan), PATH_FLAGS)
    try:
        st = os.stat(object_id, dir_fd=dir_fd, follow_symlinks=False)
    finally:
        os.close(dir_fd)
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.ELOOP, "not a regular file")
    return st


class FileChunks:
    """Chunks of an open object file; verified when a hasher is given.

    When verifying, each chunk is handed out only after the next one was read,
    so the last chunk leaves only once the digest of the whole object matched:
    a consumer never receives a complete corrupt object.
    """

    def __init__(
        self,
        backend_id: str,
        translate: Translate,
        location: str,
        fd: int,
        offset: int,
        length: int,
        chunk_size: int,
        hasher: Any,
        meta: Meta | None,
    ) -> None:
        self._backend_id = backend_id
        self._translate = translate
        self._location = location
        self._fd = fd
        self._pos = offset
        self._remaining = length
        self._chunk_size = chunk_size
        self._hasher = hasher
        self._meta = meta
        self._pending: bytes | None = None

    def __iter__(self) -> FileChunks:
        return self

    def __enter__(self) -> FileChunks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self) -> bytes:
        want = min(self._chunk_size, self._remaining)
        try:
            data: bytes = concurrency.run_blocking(
                _pread_hash, self._fd, want, self._pos, self._hasher
            )
        except OSError as err:
            raise self._translate(err, short(self._location)) from err
        if len(data) == 0 and want:
            self.close()
            raise exception.CorruptObject(
                what=short(self._location), reason="it shrank while being read"
            )
        self._pos += len(data)
        self._remaining -= len(data)
        return data

    def __next__(self) -> bytes:
        if self._fd < 0:
            raise StopIteration
        try:
            if self._hasher is None:
                if self._remaining == 0:
                    raise StopIteration
                return self._read()
            if self._pending is None:
                self._pending = self._read() if self._remaining else b""
            if self._remaining:
                out, self._pending = self._pending, self._read()
                return out
            out = self._pending
            self._check()
            self.close()
            if not out:
                raise StopIteration
            return out
        except BaseException:
            self.close()
            raise

    def _check(self) -> None:
        assert self._meta is not None
        if self._hasher.hexdigest() != self._meta.read_check()[1]:
            raise _digest_mismatch(self._backend_id, self._location, self._meta)

    def close(self) -> None:
        """Release the file (safe to call more than once)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        self.close()


def _pread_hash(fd: int, n: int, pos: int, hasher: Any) -> bytes:
    data = os.pread(fd, n, pos)
    if hasher is not None:
        hasher.update(data)
    return data


def _digest_mismatch(
    backend_id: str, location: str, meta: Meta
) -> exception.CorruptObject:
    name = meta.read_check()[2]
    LOG.error(
        "back end %s: %s does not match its recorded %s",
        backend_id,
        short(location),
        name,
    )
    return exception.CorruptObject(
        what=short(location),
        reason=f"{name} does not match the recorded one",
    )


class _Buffered:
    """The chunk iterator of an object already read (at most one chunk)."""

    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data if data else None

    def __iter__(self) -> _Buffered:
        return self

    def __next__(self) -> bytes:
        data, self._data = self._data, None
        if data is None:
            raise StopIteration
        return data

    def close(self) -> None:
        """Drop the data (nothing else is held)."""
        self._data = None
