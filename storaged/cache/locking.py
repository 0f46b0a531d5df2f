"""The one lock every prune and clean of a cache directory holds.

Two parts, taken in this order and released in reverse:

1. an exclusive ``flock`` on ``cache_dir/.lock`` (never counted or removed
   as an entry: only 64-hex-digit names are entries).  It needs no
   configuration, it is released by the kernel when its holder dies (a
   SIGKILLed pruner never blocks the next one), and it excludes every
   process of the host: the daemon, cron's ``storaged-cache-prune``,
   ``storaged-manage cache prune`` and the prune a fill may start to make
   room.  Network filesystems that implement ``flock`` across clients
   (NFSv4, CephFS) extend it to every node;
2. with ``[cache] shared_dir = true``, a lease in the state store named
   after the directory's identity (``cache_dir/.cache-id``, a random id made
   once, so that nodes mounting the share at different paths agree).  It
   covers filesystems whose locks are local to each node.  Its holder checks
   the lease's local deadline between batches of removals and stops when it
   has passed; the lease is refreshed between the phases of a pass.

Both are taken without waiting: a pass that finds the lock held skips its
work and says so (the holder is doing the same work).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import secrets
from typing import Any

from storaged import exception

LOG = logging.getLogger(__name__)

LOCK_FILE = ".lock"
ID_FILE = ".cache-id"

#: lease length in the state store; refreshed between the phases of a pass
LEASE_TTL = 300.0


def cache_identity(cache_dir: str) -> str:
    """Return the random id of a cache directory, making it the first time."""
    path = os.path.join(cache_dir, ID_FILE)
    try:
        with open(path, encoding="ascii") as f:
            value = f.read().strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    value = secrets.token_hex(16)
    tmp = "%s.%d.%s" % (path, os.getpid(), secrets.token_hex(4))
    with open(tmp, "w", encoding="ascii") as f:
        f.write(value + "\n")
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)  # exclusive: the first node to get here wins
    except FileExistsError:
        with open(path, encoding="ascii") as f:
            value = f.read().strip()
    finally:
        os.unlink(tmp)
    return value


class MaintenanceLock:
    """Held by a prune or a clean of one cache directory.

    :param cache_dir: the cache directory.
    :param store: a state store shared by the nodes of a shared directory;
        None for a directory of this node only.
    """

    def __init__(self, cache_dir: str, store: Any = None) -> None:
        self.cache_dir = cache_dir
        self.store = store
        self._fd: int | None = None
        self._lease: Any = None

    @property
    def held(self) -> bool:
        """Tell whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> bool:
        """Take the lock without waiting; False if another holder has it.

        :raises storaged.exception.KVSError: the state store failed.
        """
        if self._fd is not None:
            raise RuntimeError("the maintenance lock is not re-entrant")
        fd = os.open(
            os.path.join(self.cache_dir, LOCK_FILE),
            os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o640,
        )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False
            raise
        if self.store is not None:
            name = "cache/maintenance/%s" % cache_identity(self.cache_dir)
            try:
                self._lease = self.store.lock(name, LEASE_TTL, blocking=False)
            except exception.LockTimeout:
                os.close(fd)
                return False
            except BaseException:
                os.close(fd)
                raise
        self._fd = fd
        return True

    def still_held(self) -> bool:
        """Tell, without I/O, whether the holder may go on removing files."""
        if self._fd is None:
            return False
        return self._lease is None or bool(self._lease.valid)

    def refresh(self) -> None:
        """Extend the state store lease (between phases of a pass).

        :raises storaged.exception.LeaseLost: another node took over.
        """
        if self._lease is not None:
            self._lease.refresh()

    def release(self) -> None:
        """Give the lock up (safe to call twice)."""
        lease, self._lease = self._lease, None
        if lease is not None:
            try:
                lease.release()
            except exception.StoragedError as err:
                LOG.warning("Could not release the cache maintenance lease: %s", err)
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> MaintenanceLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
