"""The cleaner: failed fills after their grace period, dead fills after the stall time.

One pass, under the same maintenance lock as the pruner:

* ``invalid/``: a failed fill whose failure is older than
  ``invalid_grace`` is removed, with its recorded error;
* ``incomplete/``: a fill is removed only when **both** its writer is gone
  (the file's exclusive ``flock`` can be taken: the kernel releases it when
  a process dies, so a SIGKILLed fill is free at once) **and** it was last
  written more than ``stall_time`` ago.  A fill whose writer is alive is
  never touched, however slow; a live one past the stall time is reported.
  The file is removed while its lock is held and only if the name still
  names that file (a fill that finished meanwhile has been renamed away);
* ``queue/``: temporary files of enqueues that died half-way;
* with the sqlite index: rows of entries that are gone.

Everything is ENOENT-tolerant: whatever vanishes meanwhile was wanted gone.
"""

from __future__ import annotations

from collections.abc import Callable
import dataclasses
import errno
import fcntl
import logging
import os
import time
from typing import TYPE_CHECKING
from typing import Any

from storaged import concurrency
from storaged.cache.engine import ObjectCache
from storaged.cache.layout import ENTRY_ID_RE
from storaged.cache.layout import INCOMPLETE
from storaged.cache.layout import INVALID
from storaged.cache.layout import INVALID_NAME_RE
from storaged.cache.layout import QUEUE
from storaged.cache.layout import TEMP_NAME_RE
from storaged.cache.locking import MaintenanceLock

if TYPE_CHECKING:
    from storaged.common.daemon import PassContext

LOG = logging.getLogger(__name__)

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


@dataclasses.dataclass
class CleanResult:
    """The outcome of one clean."""

    dry_run: bool = False
    locked_out: bool = False
    invalid_removed: int = 0
    invalid_bytes: int = 0
    invalid_kept: int = 0
    incomplete_removed: int = 0
    incomplete_bytes: int = 0
    #: fills whose writer is alive
    in_progress: int = 0
    #: of those, fills not written to for longer than stall_time
    stalled_live: int = 0
    #: dead fills not yet past stall_time
    incomplete_kept: int = 0
    queue_temp_removed: int = 0
    index_rows_dropped: int = 0
    removed: list[str] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        """One line for logs and the command line."""
        if self.locked_out:
            return "skipped: another prune or clean of this cache is running"
        verb = "would remove" if self.dry_run else "removed"
        return (
            "%s %d failed fills (%d bytes) and %d dead fills (%d bytes); kept %d "
            "failed and %d dead fills within their grace; %d fills in progress "
            "(%d stalled); %d errors"
            % (verb, self.invalid_removed, self.invalid_bytes,
               self.incomplete_removed, self.incomplete_bytes, self.invalid_kept,
               self.incomplete_kept, self.in_progress, self.stalled_live,
               len(self.errors))
        )

    def as_dict(self) -> dict[str, Any]:
        """Return plain data (``--format json``)."""
        return dataclasses.asdict(self)


class Cleaner:
    """One clean pass of a cache directory; the ``cache-clean`` worker.

    :param cache: the cache.
    :param store: the state store of a shared cache directory, else None.
    :param dry_run: only say what would be removed.
    """

    name = "cache-clean"

    def __init__(
        self, cache: ObjectCache, store: Any = None, dry_run: bool = False
    ) -> None:
        self.cache = cache
        self.store = store
        self.dry_run = dry_run

    def run_pass(self, ctx: PassContext) -> None:
        """One pass for :class:`~storaged.common.daemon.PeriodicService`."""
        result = ctx.run_item(
            "clean %s" % self.cache.cache_dir, self.clean,
            stopping=lambda: ctx.stopping,
        )
        if result is None:
            return
        if result.locked_out:
            ctx.count("locked_out")
            return
        ctx.count("invalid_removed", result.invalid_removed)
        ctx.count("incomplete_removed", result.incomplete_removed)
        ctx.count("in_progress", result.in_progress)
        ctx.count("stalled_live", result.stalled_live)
        if result.errors:
            ctx.count("failed", len(result.errors))
            ctx.stats.errors.extend(result.errors[:5])

    def clean(
        self,
        dry_run: bool | None = None,
        stopping: Callable[[], bool] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> CleanResult:
        """Run one clean; safe to call from any thread.

        :param progress: called with ``(steps done, steps)`` after each of
            its steps (failed fills, stalled fills, the queue, the index).
        """
        dry = self.dry_run if dry_run is None else dry_run
        result = CleanResult(dry_run=dry)
        lock = MaintenanceLock(self.cache.cache_dir, self.store)
        if not lock.acquire():
            result.locked_out = True
            LOG.info("Cache clean skipped: another prune or clean of %s is running",
                     self.cache.cache_dir)
            return result
        try:
            stop = stopping or (lambda: False)
            step = progress or (lambda _done, _total: None)
            steps = 3 if dry else 4
            step(0, steps)
            concurrency.run_blocking(self._invalid, result, dry, stop)
            step(1, steps)
            lock.refresh()
            concurrency.run_blocking(self._incomplete, result, dry, stop)
            step(2, steps)
            concurrency.run_blocking(self._queue_temp, result, dry)
            step(3, steps)
            if not dry:
                concurrency.run_blocking(self._index, result)
                step(4, steps)
        finally:
            lock.release()
        LOG.info("Cache clean of %s: %s", self.cache.cache_dir, result.summary())
        return result

    def _invalid(
        self, result: CleanResult, dry: bool, stopping: Callable[[], bool]
    ) -> None:
        directory = os.path.join(self.cache.cache_dir, INVALID)
        deadline = time.time() - self.cache.invalid_grace
        removed = []
        for name in _listdir(directory):
            if stopping():
                return
            if not INVALID_NAME_RE.match(name):
                continue
            path = os.path.join(directory, name)
            try:
                st = os.stat(path, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if st.st_mtime > deadline:
                result.invalid_kept += 1
                continue
            if not dry:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    continue
                except OSError as err:
                    self._error(result, "invalid/%s: %s" % (name, err.strerror))
                    continue
            removed.append(name)
            result.invalid_removed += 1
            result.invalid_bytes += st.st_size
            result.removed.append("invalid/" + name)
        if removed:
            self.cache.meta.forget_errors(removed)

    def _incomplete(
        self, result: CleanResult, dry: bool, stopping: Callable[[], bool]
    ) -> None:
        directory = os.path.join(self.cache.cache_dir, INCOMPLETE)
        deadline = time.time() - self.cache.stall_time
        for name in _listdir(directory):
            if stopping():
                return
            if not (ENTRY_ID_RE.match(name) or TEMP_NAME_RE.match(name)):
                continue
            path = os.path.join(directory, name)
            try:
                fd = os.open(path, _OPEN_FLAGS)
            except FileNotFoundError:
                continue
            except OSError as err:
                self._error(result, "incomplete/%s: %s" % (name, err.strerror))
                continue
            try:
                st = os.fstat(fd)
                stale = st.st_mtime <= deadline
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as err:
                    if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                        raise
                    result.in_progress += 1
                    if stale:
                        result.stalled_live += 1
                        LOG.warning(
                            "Cache fill %s has not been written to for %ds but its "
                            "writer is alive: left alone", name,
                            time.time() - st.st_mtime)
                    continue
                if not stale:
                    result.incomplete_kept += 1
                    continue
                try:
                    here = os.stat(path, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if (here.st_dev, here.st_ino) != (st.st_dev, st.st_ino):
                    continue  # finished meanwhile: it is no longer this file
                if not dry:
                    os.unlink(path)
                result.incomplete_removed += 1
                result.incomplete_bytes += max(st.st_size, st.st_blocks * 512)
                result.removed.append("incomplete/" + name)
            except OSError as err:
                self._error(result, "incomplete/%s: %s" % (name, err.strerror or err))
            finally:
                os.close(fd)

    def _queue_temp(self, result: CleanResult, dry: bool) -> None:
        directory = os.path.join(self.cache.cache_dir, QUEUE)
        deadline = time.time() - self.cache.stall_time
        for name in _listdir(directory):
            if not name.startswith(".tmp-"):
                continue
            path = os.path.join(directory, name)
            try:
                if os.stat(path, follow_symlinks=False).st_mtime > deadline:
                    continue
                if not dry:
                    os.unlink(path)
            except FileNotFoundError:
                continue
            result.queue_temp_removed += 1

    def _index(self, result: CleanResult) -> None:
        present = {n for n in _listdir(self.cache.cache_dir) if ENTRY_ID_RE.match(n)}
        result.index_rows_dropped = self.cache.meta.reconcile(present)

    @staticmethod
    def _error(result: CleanResult, text: str) -> None:
        result.errors.append(text)
        LOG.error("Cache clean: %s", text)


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []
