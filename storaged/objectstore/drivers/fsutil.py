"""Small POSIX helpers the file driver needs and ``os`` does not offer.

* :func:`rename_noreplace`: publish a file under a name only if the name is
  free, atomically.  Linux ``renameat2(RENAME_NOREPLACE)`` through ctypes;
  where the kernel or filesystem refuses it, ``link`` + ``unlink`` (which
  is just as exclusive: ``link`` fails with ``EEXIST``).
* :func:`start_writeback`: ask the kernel to start writing a range of a file
  to disk now (``sync_file_range(SYNC_FILE_RANGE_WRITE)``), so the final
  ``fsync`` of a large object has little left to do.
* :func:`fsync_dir`: make a directory entry (a rename, an unlink) durable.

All of them block: callers run them through ``run_blocking``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from typing import Any

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_SYNC_FILE_RANGE_WRITE = 2

#: errors meaning "this kernel or filesystem cannot do RENAME_NOREPLACE".
_NOREPLACE_UNSUPPORTED = (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP)


def _load_libc() -> Any:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return None


_libc = _load_libc()
_renameat2 = getattr(_libc, "renameat2", None) if _libc is not None else None
if _renameat2 is not None:
    _renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    _renameat2.restype = ctypes.c_int
_sync_file_range = (
    getattr(_libc, "sync_file_range", None) if _libc is not None else None
)
if _sync_file_range is not None:
    _sync_file_range.argtypes = [
        ctypes.c_int,
        ctypes.c_longlong,
        ctypes.c_longlong,
        ctypes.c_uint,
    ]
    _sync_file_range.restype = ctypes.c_int


def have_renameat2() -> bool:
    """Tell whether the C library offers ``renameat2``."""
    return _renameat2 is not None


def renameat2_noreplace(src: str, dst: str) -> bool:
    """Rename ``src`` to ``dst`` unless ``dst`` exists, in one system call.

    :returns: False if the kernel or filesystem does not support it (the
        caller falls back to :func:`link_noreplace`); True when done.
    :raises FileExistsError: ``dst`` exists (``src`` is left in place).
    :raises OSError: any other failure.
    """
    if _renameat2 is None:
        return False
    rc = _renameat2(
        _AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE
    )
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in _NOREPLACE_UNSUPPORTED:
        return False
    raise OSError(err, os.strerror(err), src, None, dst)


def link_noreplace(src: str, dst: str) -> None:
    """Give ``src``'s file the name ``dst`` unless it exists, then drop ``src``.

    :raises FileExistsError: ``dst`` exists (``src`` is left in place).
    """
    os.link(src, dst)
    try:
        os.unlink(src)
    except FileNotFoundError:
        pass


def rename_noreplace(src: str, dst: str, use_renameat2: bool = True) -> bool:
    """Publish ``src`` as ``dst`` without ever replacing an existing ``dst``.

    :returns: whether ``renameat2`` worked (so the caller can skip trying it
        again on a filesystem that does not support it).
    :raises FileExistsError: ``dst`` exists.
    """
    if use_renameat2 and renameat2_noreplace(src, dst):
        return True
    link_noreplace(src, dst)
    return False


def start_writeback(fd: int, offset: int, nbytes: int) -> None:
    """Start writing ``nbytes`` at ``offset`` of ``fd`` to disk, without waiting.

    A hint only: ignored where unsupported.
    """
    if _sync_file_range is None or nbytes <= 0:
        return
    _sync_file_range(fd, offset, nbytes, _SYNC_FILE_RANGE_WRITE)


def fsync_dir(path: str) -> None:
    """Flush a directory's entries to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
