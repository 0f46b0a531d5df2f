"""Locks on a ``file://`` back end: ``flock`` on files of a shared directory.

``file://DIR``
    ``DIR/locks/<stored name>``, locked with ``flock``; the file is removed
    by its holder on release (a waiter that then gets the lock on the
    removed file notices that the path no longer names it and tries again),
    so no lock file outlives its lock.  No fencing token: the kernel drops a
    dead holder's lock at once and never takes it from a live one.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import math
import os
import time
from typing import Any
from typing import Final
import urllib.parse

from storaged import concurrency
from storaged.coordination.backends.base import Held
from storaged.coordination.backends.base import LockBackend
from storaged.coordination.backends.settings import FILE

FILE_LOCK_DIR: Final = "locks"


class FileLocks(LockBackend):
    """``flock`` on ``DIR/locks/<key>``; no lock file outlives its use.

    Protocol: a holder removes the file while it still holds the lock, and
    whoever then gets the lock on the removed file sees that the path no
    longer names it (or names a new file) and tries again.

    Creating and removing a file costs two journal updates, expensive on a
    busy filesystem for a name locked over and over.  So a released file
    is kept, unlocked, with its descriptor, for a name that may come back
    soon (at most :attr:`IDLE_MAX` names); :meth:`tidy` (every heartbeat)
    removes those idle for a heartbeat interval, the same way: locked,
    checked, removed, closed.  A lock file of a free name therefore lasts
    at most about one heartbeat.
    """

    kind = FILE
    gives_tokens = False
    #: names whose released file is kept for a while
    IDLE_MAX = 64

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        base = urllib.parse.urlsplit(self.settings.url).path
        self.directory = os.path.join(base, FILE_LOCK_DIR)
        # key -> (fd, dev, ino, path, released at); descriptors NOT locked
        self._idle: collections.OrderedDict[str, tuple[int, int, int, str, float]] = (
            collections.OrderedDict()
        )
        self._idle_lock = concurrency.native_module("threading").Lock()

    def start(self) -> None:
        os.makedirs(self.directory, exist_ok=True)

    @staticmethod
    def _names(fd: int, path: str) -> tuple[int, int] | None:
        """(dev, ino) of ``fd`` if ``path`` still names its file, else None."""
        mine = os.fstat(fd)
        try:
            now = os.stat(path)
        except FileNotFoundError:
            return None
        if (now.st_dev, now.st_ino) != (mine.st_dev, mine.st_ino):
            return None
        return mine.st_dev, mine.st_ino

    def try_acquire(self, key: str) -> Held | None:
        path = os.path.join(self.directory, key)
        with self._idle_lock:
            idle = self._idle.pop(key, None)
        if idle is not None:
            fd = idle[0]
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # another process has it
                return None
            except BaseException:
                os.close(fd)
                raise
            names = self._names(fd, path)
            if names is not None:
                return Held(key, None, (fd, names[0], names[1], path), self)
            os.close(fd)  # removed by another process meanwhile
        for _attempt in range(3):
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except FileNotFoundError:
                os.makedirs(self.directory, exist_ok=True)
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            except BaseException:
                os.close(fd)
                raise
            names = self._names(fd, path)
            if names is None:
                os.close(fd)
                continue
            return Held(key, None, (fd, names[0], names[1], path), self)
        return None

    def _still_ours(self, held: Held) -> bool:
        _fd, dev, ino, path = held.data
        try:
            now = os.stat(path)
        except FileNotFoundError:
            return False
        return (now.st_dev, now.st_ino) == (dev, ino)

    def release(self, held: Held) -> bool:
        fd, dev, ino, path = held.data
        if not self._still_ours(held):
            os.close(fd)
            return False
        fcntl.flock(fd, fcntl.LOCK_UN)
        now = time.monotonic()
        with self._idle_lock:
            previous = self._idle.pop(held.key, None)
            self._idle[held.key] = (fd, dev, ino, path, now)
            evicted = [previous] if previous is not None else []
            while len(self._idle) > self.IDLE_MAX:
                evicted.append(self._idle.popitem(last=False)[1])
        for entry in evicted:
            self._remove(entry)
        return True

    @staticmethod
    def _remove(entry: tuple[int, int, int, str, float]) -> None:
        """Remove an idle lock file if it is free and still ours, close it."""
        fd, dev, ino, path, _when = entry
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # taken meanwhile: its holder removes it
        else:
            try:
                now = os.stat(path)
                if (now.st_dev, now.st_ino) == (dev, ino):
                    os.unlink(path)
            except FileNotFoundError:
                pass
        finally:
            os.close(fd)

    def tidy(self, older_than: float) -> None:
        with self._idle_lock:
            stale = [k for k, e in self._idle.items() if e[4] <= older_than]
            entries = [self._idle.pop(k) for k in stale]
        for entry in entries:
            self._remove(entry)

    def abandon(self, held: Held) -> None:
        # The kernel holds the lock as long as the descriptor is open.
        fd, _dev, _ino, path = held.data
        try:
            if self._still_ours(held):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        finally:
            os.close(fd)

    def refresh(self, held: list[Held]) -> set[str]:
        return {h.key for h in held if not self._still_ours(h)}

    def list_locks(self) -> list[str]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        free = set()
        with self._idle_lock:
            # A file kept for reuse may meanwhile be locked by another
            # process: only those whose lock can be had are free.
            for key, (fd, *_rest) in self._idle.items():
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                fcntl.flock(fd, fcntl.LOCK_UN)
                free.add(key)
        return sorted(n for n in names if not n.startswith(".") and n not in free)

    def close(self, reachable: bool = True) -> None:
        self.tidy(math.inf)
