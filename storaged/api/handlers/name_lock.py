"""A lock per object name, shared by every worker process of a node.

Versioned writes (:mod:`.versioned_writes`) read an object's current
version, archive it, then write the new one; two writers of one name doing
that at once would both archive the same old version and one of the new
ones would be overwritten without ever being archived.  They hold this lock
from the read to the end of the write.

The lock is an exclusive ``flock`` on one of :data:`STRIPES` files under a
directory (the catalog's ``locks/``), chosen by a hash of the name: it needs
no configuration, it covers every worker process of the node (``flock``
locks belong to an open file, so two opens in one process exclude each other
too), and the kernel releases it when its holder dies.  Names that share a
stripe wait for each other, which costs only time: a holder never takes a
second lock, so there is no deadlock.

It is taken without blocking a thread: a holder may be waiting for its
client's upload, and a waiter that sat in the thread pool would take a
thread the holder needs.  A waiter retries every :data:`RETRY_INTERVAL`
seconds, sleeping on the hub, for at most ``wait`` seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import errno
import fcntl
import hashlib
import os
import time
from typing import Final

from storaged import concurrency
from storaged.api.protocol import error

#: Lock files per directory: names are spread over this many.
STRIPES: Final = 4096
#: Seconds between two tries of a held lock.
RETRY_INTERVAL: Final = 0.02


class NameLocks:
    """Exclusive locks by name, across the processes of a node.

    :param directory: where the lock files live (made when first needed).
    :param wait: the longest wait for a lock, in seconds.
    """

    def __init__(self, directory: str, wait: float = 600.0) -> None:
        self.directory = directory
        self.wait = wait

    def path_for(self, *parts: str) -> str:
        """Return the lock file of the name made of ``parts``."""
        key = "\0".join(parts).encode("utf-8", "surrogateescape")
        stripe = int(hashlib.sha256(key).hexdigest(), 16) % STRIPES
        return os.path.join(self.directory, "%03x.lock" % stripe)

    @contextlib.contextmanager
    def hold(self, *parts: str) -> Iterator[None]:
        """Hold the lock of the name made of ``parts`` for a ``with`` block.

        :raises HTTPError: 503 when it stays held longer than ``wait``.
        """
        path = self.path_for(*parts)
        os.makedirs(self.directory, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + self.wait
            while not _try_lock(fd):
                if time.monotonic() > deadline:
                    raise error(503)
                concurrency.sleep(RETRY_INTERVAL)
            yield
        finally:
            os.close(fd)  # releases the lock


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True
