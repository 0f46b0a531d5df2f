"""A cache directory: its settings, its paths, its counters, small file helpers.

:class:`CacheDirectory` is the base of :class:`~storaged.cache.engine.ObjectCache`:
it makes the directory and its subdirectories, opens the metadata store and
holds what every part of the engine shares (limits, the size estimate, the
counters).  Each concern of the engine adds to it in its own module: entries
and hits (:mod:`~storaged.cache.entries`), fills and single flight
(:mod:`~storaged.cache.fill`), followers (:mod:`~storaged.cache.follow`).

The helpers below work on open files and block: call them off the hub
(``concurrency.run_blocking``).
"""

from __future__ import annotations

from collections.abc import Callable
import errno
import fcntl
import os
import time

from storaged import concurrency
from storaged import exception
from storaged.cache import metadata as metadata_mod
from storaged.cache import metrics as cache_metrics
from storaged.cache import usage
from storaged.cache.layout import INCOMPLETE
from storaged.cache.layout import INVALID
from storaged.cache.layout import SUBDIRS
from storaged.cache.layout import validate_entry_id
from storaged.cache.metadata import MetadataBackend

MiB = 1024 * 1024
DEFAULT_CHUNK_SIZE = MiB

#: the first and the longest pause of a reader polling a fill
POLL_FIRST = 0.002
POLL_MAX = 0.05

READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
CREATE_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

#: errors that mean the cache filesystem is full
SPACE_ERRORS = (errno.ENOSPC, errno.EDQUOT)

#: ``measure(cache) -> bytes``: what the cache holds now (blocking)
Measure = Callable[[usage.CacheDir], int]
#: ``make_room(cache, size) -> freed``: prune so a fill of ``size`` fits;
#: True if anything was removed (blocking)
MakeRoom = Callable[["CacheDirectory", int], bool]


class CacheDirectory:
    """The directory, the settings and the state shared by the engine's parts.

    See :class:`~storaged.cache.engine.ObjectCache` for the parameters.

    :param measure: returns the bytes the cache holds (admission).
    :param make_room: prunes to make room for a fill, or None: fills never
        prune.
    """

    def __init__(
        self,
        cache_dir: str,
        *,
        max_size: int = 0,
        low_watermark: float = 0.8,
        min_free_space: float = 0.0,
        stall_time: float = 86400.0,
        invalid_grace: float = 3600.0,
        fill_wait_timeout: float = 60.0,
        metadata_store: str = "auto",
        shared_dir: bool = False,
        backends: tuple[str, ...] | list[str] = (),
        reserve: bool = True,
        measure: Measure = usage.measure,
        make_room: MakeRoom | None = None,
    ) -> None:
        self.cache_dir = os.path.abspath(cache_dir)
        self.max_size = int(max_size)
        self.low_watermark = float(low_watermark)
        self.min_free_space = float(min_free_space)
        self.stall_time = float(stall_time)
        self.invalid_grace = float(invalid_grace)
        self.fill_wait_timeout = float(fill_wait_timeout)
        self.shared_dir = bool(shared_dir)
        self.backends = frozenset(backends)
        self.reserve = reserve
        self.counters: dict[str, int] = {}
        self._measure = measure
        self._room_maker = make_room
        # Native: taken only in native threads (run_blocking).
        self._usage_lock = concurrency.native_module("threading").Lock()
        self._usage: tuple[float, int] | None = None
        self._last_room_prune = 0.0
        try:
            os.makedirs(self.cache_dir, mode=0o750, exist_ok=True)
            for sub in SUBDIRS:
                os.makedirs(
                    os.path.join(self.cache_dir, sub), mode=0o750, exist_ok=True
                )
        except OSError as err:
            raise exception.ConfigError(
                "cannot create the cache directory %s: %s"
                % (err.filename or self.cache_dir, err.strerror),
                group="cache",
                option="cache_dir",
            ) from err
        self.meta: MetadataBackend = metadata_mod.open_store(
            self.cache_dir, metadata_store
        )

    def close(self) -> None:
        """Release the metadata store."""
        self.meta.close()

    def serves(self, backend_id: str) -> bool:
        """Tell whether reads of ``backend_id`` go through the cache."""
        return backend_id in self.backends

    @property
    def target_size(self) -> int:
        """Bytes a prune brings the cache down to (0 when there is no limit)."""
        return int(self.max_size * self.low_watermark) if self.max_size else 0

    def count(self, name: str, n: int = 1) -> None:
        """Add to one of this process's counters (hits, misses, fills...)."""
        self.counters[name] = self.counters.get(name, 0) + n
        cache_metrics.event(name, n)

    def forget_usage(self) -> None:
        """Drop the size estimate (a prune or clean just changed the size).

        No lock: a prune that makes room for a fill runs under it.
        """
        self._usage = None

    # -- paths ------------------------------------------------------------

    def entry_path(self, entry_id: str) -> str:
        """Return the path of an entry (the id is validated first)."""
        return os.path.join(self.cache_dir, validate_entry_id(entry_id))

    def incomplete_path(self, entry_id: str) -> str:
        """Return the path of an entry's fill in progress."""
        return os.path.join(self.cache_dir, INCOMPLETE, validate_entry_id(entry_id))

    def _invalid_path(self, entry_id: str) -> tuple[str, str]:
        name = "%s.%d" % (validate_entry_id(entry_id), time.time_ns())
        return name, os.path.join(self.cache_dir, INVALID, name)


# -- small file helpers (blocking) -------------------------------------------


def same_file(path: str, fd: int) -> bool:
    """Tell whether ``path`` still names the file open as ``fd``."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def try_lock(fd: int, how: int) -> bool:
    """Take ``flock(how)`` without waiting; False if another holds it."""
    try:
        fcntl.flock(fd, how | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    return True


def close_fd(fd: int | None) -> None:
    """Close ``fd`` if there is one, ignoring errors."""
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass
