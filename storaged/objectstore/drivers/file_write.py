"""The durable write path of the ``file`` driver.

An object is written under an invisible name in ``.tmp/``, made durable, and
published under its final name without ever replacing one (the steps are
listed in :mod:`storaged.objectstore.drivers.file`):

* :class:`WriterLocks`: this process's writer lock in each data directory,
  the temporary file names it hands out, and how temporary files whose
  writer is gone are recognised (and reclaimed);
* :class:`Sink`: writes an object's bytes to its temporary file;
* :func:`seal`, :func:`publish`: record the metadata, ``fsync``, rename
  atomically, write the sidecar where there are no extended attributes;
* :func:`discard`: forget a failed add.

Everything here blocks: the driver runs it through ``run_blocking``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import itertools
import mmap
import os
import re
import secrets
import time
from typing import Any

from storaged import concurrency
from storaged import exception
from storaged.objectstore.driver import ScrubFinding
from storaged.objectstore.driver import ScrubReport
from storaged.objectstore.drivers import fsutil
from storaged.objectstore.drivers.file_datadirs import CREATE_FLAGS
from storaged.objectstore.drivers.file_datadirs import SIDECAR_PREFIX
from storaged.objectstore.drivers.file_datadirs import TMP_DIR
from storaged.objectstore.drivers.file_datadirs import XATTR_NAME
from storaged.objectstore.drivers.file_datadirs import DataDir
from storaged.objectstore.drivers.file_datadirs import fanout

MiB = 1024 * 1024

_TOKEN_RE = re.compile(r"[0-9]+-[0-9a-f]+\Z")

#: a writer lock file that was never filled in is left alone this long.
LOCK_GRACE = 60.0

#: objects larger than this are written with O_DIRECT, by aligned blocks of
#: this size (the page cache is not worth filling with them, and the final
#: fsync has nothing left to write); smaller ones, and the tail, are buffered.
DIRECT_BLOCK = 4 * MiB

_IOV_MAX = 512

#: chunks at least this large are hashed in another thread while written.
PIPELINE_MIN = MiB


@dataclasses.dataclass
class _Writer:
    """This process's lock in one data directory's ``.tmp``."""

    token: str
    fd: int
    pid: int


class WriterLocks:
    """This process's writer locks, and the temporary files they cover.

    A process writing to a data directory holds (``flock``) the lock file
    ``.tmp/TOKEN.lock``; its temporary files are named ``.tmp/TOKEN.SEQ-ID``.
    A temporary file whose writer's lock is free belongs to a writer that is
    gone, and may be removed.
    """

    def __init__(self) -> None:
        # Native: held briefly, never across a yield, and taken both by
        # green threads and by the native pool that runs blocking I/O.
        self._lock = concurrency.native_module("threading").Lock()
        self._writers: dict[str, _Writer] = {}
        self._seq = itertools.count(1)

    def _writer(self, dd: DataDir) -> str:
        """Return this process's token in ``dd``, taking its lock if needed."""
        pid = os.getpid()
        with self._lock:
            writer = self._writers.get(dd.path)
            if writer is not None and writer.pid == pid:
                return writer.token
            if writer is not None:
                # Inherited through fork: the parent's lock is not ours.
                with contextlib.suppress(OSError):
                    os.close(writer.fd)
            token = f"{pid}-{secrets.token_hex(6)}"
            path = os.path.join(dd.tmp, token + ".lock")
            fd = os.open(path, (CREATE_FLAGS & ~os.O_WRONLY) | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                # Written only once the lock is held: a scrubber that can
                # lock a non-empty lock file knows its writer is gone.
                os.write(fd, b"%d\n" % pid)
            except BaseException:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(path)
                raise
            self._writers[dd.path] = _Writer(token, fd, pid)
            return token

    def temp_path(self, dd: DataDir, label: str) -> str:
        """Return a new temporary file name in ``dd`` (taking the lock)."""
        token = concurrency.run_blocking(self._writer, dd)
        return os.path.join(dd.tmp, f"{token}.{next(self._seq):x}-{label}")

    def _token_state(self, dd: DataDir, token: str, has_lock: bool) -> tuple[str, int]:
        """Say whether the writer ``token`` is alive; return a held fd if dead.

        :returns: ``("alive" | "dead", fd)``; ``fd`` is the dead writer's
            lock file, locked by us, or -1.
        """
        writer = self._writers.get(dd.path)
        if writer is not None and writer.token == token and writer.pid == os.getpid():
            return "alive", -1
        if not has_lock:
            return "dead", -1
        path = os.path.join(dd.tmp, token + ".lock")
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return "dead", -1
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return "alive", -1
        st = os.fstat(fd)
        if st.st_size == 0 and time.time() - st.st_ctime < LOCK_GRACE:
            # Created but not yet locked by its writer, perhaps: wait.
            os.close(fd)
            return "alive", -1
        return "dead", fd

    def scan_tmp(self, dd: DataDir, report: ScrubReport, reclaim: bool) -> None:
        """Report (and reclaim) temporary files of writers that are gone."""
        try:
            entries = concurrency.run_blocking(os.listdir, dd.tmp)
        except OSError as err:
            report.errors.append(ScrubFinding(dd.tmp, err.strerror or str(err)))
            return
        by_token: dict[str, list[str]] = {}
        locks: set[str] = set()
        for name in entries:
            if name.endswith(".lock") and _TOKEN_RE.match(name[:-5]):
                locks.add(name[:-5])
                by_token.setdefault(name[:-5], [])
                continue
            token = name.split(".", 1)[0]
            by_token.setdefault(token if _TOKEN_RE.match(token) else "", []).append(
                name
            )
        for token, files in sorted(by_token.items()):
            state, fd = concurrency.run_blocking(
                self._token_state, dd, token, token in locks
            )
            if state == "alive":
                report.in_progress += len(files)
                continue
            try:
                for name in files:
                    path = os.path.join(dd.tmp, name)
                    report.orphans.append(
                        ScrubFinding(path, "temporary file of a writer that is gone")
                    )
                    if reclaim:
                        with contextlib.suppress(FileNotFoundError):
                            concurrency.run_blocking(os.unlink, path)
                        report.reclaimed.append(path)
                if reclaim and token in locks:
                    with contextlib.suppress(FileNotFoundError):
                        concurrency.run_blocking(
                            os.unlink, os.path.join(dd.tmp, token + ".lock")
                        )
            except OSError as err:
                report.errors.append(ScrubFinding(dd.tmp, err.strerror or str(err)))
            finally:
                if fd >= 0:
                    os.close(fd)

    def close(self) -> None:
        """Drop this process's writer locks (their files are removed)."""
        with self._lock:
            writers, self._writers = self._writers, {}
        for dd_path, writer in writers.items():
            if writer.pid != os.getpid():
                continue
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(dd_path, TMP_DIR, writer.token + ".lock"))
            with contextlib.suppress(OSError):
                os.close(writer.fd)


def seal(sink: Sink, dd: DataDir, raw: bytes, file_mode: int) -> None:
    """Write what is left, record the metadata, make it all durable."""
    fd = sink.fd
    try:
        sink.finish()
        if dd.metadata == "xattr":
            os.setxattr(fd, XATTR_NAME, raw)
        os.fchmod(fd, file_mode)
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(
    dd: DataDir,
    tmp: str,
    object_id: str,
    raw: bytes,
    *,
    locks: WriterLocks,
    file_mode: int,
    backend_id: str,
) -> None:
    """Give the temporary file its final name, never replacing one.

    :raises storaged.exception.ObjectExists: if the name is taken.
    """
    fan_dir = os.path.join(dd.path, fanout(object_id))
    sidecar = ""
    try:
        if dd.metadata == "sidecar":
            # The sidecar goes first: the object's name then never exists
            # without its metadata (a sidecar of no object is what a killed
            # add leaves, and scrub reclaims it once old enough).
            meta_tmp = _write_sidecar(locks, dd, raw, file_mode)
            try:
                sidecar = _rename_into(dd, fan_dir, meta_tmp,
                                       SIDECAR_PREFIX + object_id)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(meta_tmp)
                raise
            # Durable before the object's name can be.
            fsutil.fsync_dir(fan_dir)
        _rename_into(dd, fan_dir, tmp, object_id)
    except FileExistsError:
        if sidecar:
            with contextlib.suppress(OSError):
                os.unlink(sidecar)
        raise exception.ObjectExists(
            what=f"{object_id} in back end {backend_id}"
        ) from None
    except BaseException:
        if sidecar:
            with contextlib.suppress(OSError):
                os.unlink(sidecar)
        raise
    fsutil.fsync_dir(fan_dir)


def _rename_into(dd: DataDir, fan_dir: str, tmp: str, name: str) -> str:
    """Rename ``tmp`` to ``fan_dir/name``, never replacing; return the new path.

    :raises FileExistsError: the name is taken.
    """
    final = os.path.join(fan_dir, name)
    try:
        dd.renameat2 = fsutil.rename_noreplace(tmp, final, dd.renameat2)
    except FileNotFoundError:
        if os.path.isdir(fan_dir) or not os.path.exists(tmp):
            raise
        # Someone removed the subdirectory: make it again.
        os.makedirs(fan_dir, 0o750, exist_ok=True)
        fsutil.fsync_dir(dd.path)
        dd.renameat2 = fsutil.rename_noreplace(tmp, final, dd.renameat2)
    return final


def _write_sidecar(
    locks: WriterLocks,
    dd: DataDir,
    raw: bytes,
    file_mode: int,
) -> str:
    """Write metadata to a durable temporary file; return its path."""
    tmp = locks.temp_path(dd, "meta")
    fd = os.open(tmp, CREATE_FLAGS, 0o600)
    try:
        os.write(fd, raw)
        os.fchmod(fd, file_mode)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    return tmp


def discard(fd: int, tmp: str) -> None:
    """Forget a failed add: close and remove its temporary file."""
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def update(hashers: list[Any], chunk: bytes) -> None:
    """Feed ``chunk`` to every hasher."""
    for h in hashers:
        h.update(chunk)


def write_hashed(sink: Sink, hashers: list[Any], chunk: bytes) -> None:
    """Feed ``chunk`` to every hasher, then write it."""
    for h in hashers:
        h.update(chunk)
    sink.write(chunk)


class Sink:
    """Writes an object's bytes to its temporary file.

    Up to :data:`DIRECT_BLOCK` bytes are kept in memory and written at the
    end with one buffered write. Beyond that, the bytes are gathered in an
    aligned buffer and written a block at a time with ``O_DIRECT``: they go
    to the disk while the next block is hashed, and the final fsync only has
    the tail and the file's metadata left. Where a filesystem refuses
    ``O_DIRECT``, blocks are written buffered and handed to the disk at once
    (``sync_file_range``), and the data directory is marked so.
    """

    def __init__(self, fd: int, dd: DataDir) -> None:
        self.fd = fd
        self._dd = dd
        self._pending: list[memoryview] = []
        self._pending_len = 0
        self._buf: mmap.mmap | None = None
        self._view: memoryview | None = None
        self._fill = 0
        self._offset = 0
        self._direct = False

    def write(self, chunk: bytes) -> None:
        """Keep ``chunk``, writing whole blocks once there are enough."""
        data = memoryview(chunk)
        if self._buf is None:
            if self._pending_len + len(data) < DIRECT_BLOCK:
                self._pending.append(data)
                self._pending_len += len(data)
                return
            self._buf = mmap.mmap(-1, DIRECT_BLOCK)
            self._view = memoryview(self._buf)
            pending, self._pending, self._pending_len = self._pending, [], 0
            for piece in pending:
                self._stage(piece)
        self._stage(data)

    def _stage(self, data: memoryview) -> None:
        assert self._view is not None
        while data:
            n = min(DIRECT_BLOCK - self._fill, len(data))
            self._view[self._fill : self._fill + n] = data[:n]
            self._fill += n
            data = data[n:]
            if self._fill == DIRECT_BLOCK:
                self._write_block()

    def _set_direct(self, on: bool) -> None:
        flags = fcntl.fcntl(self.fd, fcntl.F_GETFL)
        flags = flags | os.O_DIRECT if on else flags & ~os.O_DIRECT
        fcntl.fcntl(self.fd, fcntl.F_SETFL, flags)
        self._direct = on

    def _write_block(self) -> None:
        assert self._view is not None
        block = self._view[: self._fill]
        if self._dd.direct and not self._direct:
            try:
                self._set_direct(True)
            except OSError:
                self._dd.direct = False
        try:
            _write_all(self.fd, block)
        except OSError as err:
            if not (self._direct and err.errno == errno.EINVAL):
                raise
            # The filesystem does not do O_DIRECT after all: go buffered.
            self._dd.direct = False
            self._set_direct(False)
            _write_all(self.fd, block)
        if not self._direct:
            fsutil.start_writeback(self.fd, self._offset, len(block))
        self._offset += len(block)
        self._fill = 0

    def finish(self) -> None:
        """Write what is left (buffered: it need not be aligned)."""
        if self._direct:
            self._set_direct(False)
        if self._buf is None:
            pieces = self._pending
            while pieces:
                n = os.writev(self.fd, pieces[:_IOV_MAX])
                while pieces and n >= len(pieces[0]):
                    n -= len(pieces[0])
                    pieces = pieces[1:]
                if pieces and n:
                    pieces = [pieces[0][n:], *pieces[1:]]
        elif self._fill:
            assert self._view is not None
            _write_all(self.fd, self._view[: self._fill])
            self._fill = 0
        self._pending = []
        self.release()

    def release(self) -> None:
        """Free the buffer (safe to call more than once)."""
        view, self._view = self._view, None
        buf, self._buf = self._buf, None
        if view is not None:
            view.release()
        if buf is not None:
            buf.close()


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        n = os.write(fd, data)
        data = data[n:]
