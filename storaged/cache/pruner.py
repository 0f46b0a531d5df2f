"""The pruner: the cache brought back under ``max_size`` in one pass.

One pass, under the maintenance lock (:mod:`storaged.cache.locking`):

1. **one snapshot** (:func:`storaged.cache.usage.scan`): one ``scandir`` of
   the cache directory, one ``stat`` and one read of the recorded last
   access per entry (one ``getxattr``; with the sqlite index, one
   ``SELECT`` for all of them), plus one ``scandir`` each of
   ``incomplete/`` and ``invalid/``, whose bytes count;
2. nothing to do unless the total is above ``max_size``; otherwise a heap
   of the entries by recorded last access (never the kernel's atime) and the
   victims popped until the total is at ``low_watermark * max_size``;
   failed fills in ``invalid/`` go first (oldest first: under space pressure
   their grace period yields), then entries, least recently read first;
3. the victims unlinked; one that vanished meanwhile (a ``cache delete``, a
   reader that withdrew it) counts as gone, never as an error.

That is ``O(N + K log N)`` for N entries and K victims, with one directory
scan, where Glance's xattr pruner rescanned and re-sorted the whole
directory for every victim.  Fills in ``incomplete/`` count but are never
pruned (the cleaner removes dead ones).  Readers that opened an entry keep
reading it whole after it is unlinked.

Worked example: ``max_size`` 100 MiB, ``low_watermark`` 0.8, so the target is
80 MiB.  The snapshot holds entries A (10 MiB, last read at t=5),
B (30, t=1), C (40, t=9), D (20, t=3), one failed fill X (5) and one fill in
progress Y (5): 110 MiB in all.  Victims: X (105 left), then B (75 left, at
most 80: stop).  A, C, D and Y stay.
"""

from __future__ import annotations

from collections.abc import Callable
import dataclasses
import heapq
import logging
import os
import time
from typing import TYPE_CHECKING
from typing import Any

from storaged import concurrency
from storaged import exception
from storaged.cache import metrics as cache_metrics
from storaged.cache.directory import CacheDirectory
from storaged.cache.layout import INVALID
from storaged.cache.locking import MaintenanceLock

# Re-exported: callers that read a snapshot (``storaged-manage cache stats``)
# take it from here, as they did before it moved to usage.
from storaged.cache.usage import Snapshot as Snapshot
from storaged.cache.usage import scan as scan

if TYPE_CHECKING:
    from storaged.common.daemon import PassContext

LOG = logging.getLogger(__name__)

#: victims removed between two checks of the stop flag and the lease
_BATCH = 256
#: victims shown by a dry run's listing (all are counted)
MAX_LISTED = 10000

ENTRY = "entry"
FAILED_FILL = "invalid"


@dataclasses.dataclass
class PruneResult:
    """The outcome of one prune."""

    dry_run: bool = False
    #: another prune or clean held the lock: nothing was done
    locked_out: bool = False
    max_size: int = 0
    target: int = 0
    entries_before: int = 0
    total_before: int = 0
    incomplete_bytes: int = 0
    invalid_bytes: int = 0
    adopted: int = 0
    #: entries removed (or, in a dry run, that would be)
    pruned: int = 0
    pruned_bytes: int = 0
    #: failed fills removed from invalid/
    invalid_removed: int = 0
    #: victims that were already gone when their turn came
    vanished: int = 0
    total_after: int = 0
    interrupted: bool = False
    victims: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        """One line for logs and the command line."""
        if self.locked_out:
            return "skipped: another prune or clean of this cache is running"
        verb = "would prune" if self.dry_run else "pruned"
        return (
            "%s %d entries (%d bytes) and %d failed fills; %d -> %d bytes "
            "(max %d, target %d); %d vanished, %d errors%s"
            % (verb, self.pruned, self.pruned_bytes, self.invalid_removed,
               self.total_before, self.total_after, self.max_size, self.target,
               self.vanished, len(self.errors),
               ", interrupted" if self.interrupted else "")
        )

    def as_dict(self) -> dict[str, Any]:
        """Return plain data (``--format json``)."""
        return dataclasses.asdict(self)


def plan(
    snap: Snapshot, max_size: int, target: int, room: int = 0
) -> list[tuple[str, str, int, int]]:
    """Choose the victims: ``(kind, name, bytes, last access)``, in order.

    Nothing when the snapshot plus ``room`` is within ``max_size`` (or there
    is no limit).

    :param room: bytes a fill about to start needs; the prune then goes down
        to ``target - room``, so that the cache is at the low watermark once
        that fill is in.
    """
    total = snap.total
    if not max_size or total + room <= max_size:
        return []
    target = max(0, target - room)
    victims: list[tuple[str, str, int, int]] = []
    for mtime, name, size in sorted(snap.invalid):
        if total <= target:
            return victims
        victims.append((FAILED_FILL, name, size, mtime))
        total -= size
    heap = list(snap.entries)
    heapq.heapify(heap)
    pop = heapq.heappop
    while heap and total > target:
        last, name, size = pop(heap)
        victims.append((ENTRY, name, size, last))
        total -= size
    return victims


class Pruner:
    """One prune pass of a cache directory; the ``cache-prune`` worker.

    :param cache: the cache.
    :param store: the state store shared by the nodes of a shared cache
        directory (``[cache] shared_dir``), else None.
    :param dry_run: only say what would be removed.
    """

    name = "cache-prune"

    def __init__(
        self, cache: CacheDirectory, store: Any = None, dry_run: bool = False
    ) -> None:
        self.cache = cache
        self.store = store
        self.dry_run = dry_run

    def run_pass(self, ctx: PassContext) -> None:
        """One pass for :class:`~storaged.common.daemon.PeriodicService`."""
        result = ctx.run_item(
            "prune %s" % self.cache.cache_dir,
            self.prune,
            stopping=lambda: ctx.stopping,
        )
        if result is None:
            return
        record(ctx, result)

    def prune(
        self,
        dry_run: bool | None = None,
        stopping: Callable[[], bool] | None = None,
        room: int = 0,
        progress: Callable[[int, int], None] | None = None,
    ) -> PruneResult:
        """Run one prune; safe to call from any thread.

        :param room: bytes to make room for (a fill about to start).
        :param progress: called with ``(victims handled, victims)`` as the
            victims go (``storaged-manage cache prune`` on a terminal).

        :raises storaged.exception.LeaseLost: the shared lease was taken
            over during the pass (the pass stopped).
        """
        dry = self.dry_run if dry_run is None else dry_run
        started = time.monotonic()
        cache = self.cache
        result = PruneResult(dry_run=dry, max_size=cache.max_size,
                             target=cache.target_size)
        lock = MaintenanceLock(cache.cache_dir, self.store)
        if not lock.acquire():
            result.locked_out = True
            LOG.info("Cache prune skipped: another prune or clean of %s is running",
                     cache.cache_dir)
            return result
        try:
            snap = concurrency.run_blocking(scan, cache)
            lock.refresh()
            result.entries_before = len(snap.entries)
            result.total_before = result.total_after = snap.total
            result.incomplete_bytes = snap.incomplete_bytes
            result.invalid_bytes = snap.invalid_bytes
            result.adopted = snap.adopted
            victims = plan(snap, cache.max_size, cache.target_size, room)
            concurrency.run_blocking(
                self._remove, victims, result, dry, lock, stopping or (lambda: False),
                progress,
            )
            if not lock.still_held() and not dry and result.interrupted:
                raise exception.FatalError(
                    reason="the state store lease on the maintenance of %s expired "
                    "during the prune" % cache.cache_dir)
        finally:
            lock.release()
        result.seconds = round(time.monotonic() - started, 6)
        cache_metrics.pruned(result, cache.max_size)
        LOG.info("Cache prune of %s: %s", cache.cache_dir, result.summary())
        return result

    def _remove(
        self,
        victims: list[tuple[str, str, int, int]],
        result: PruneResult,
        dry: bool,
        lock: MaintenanceLock,
        stopping: Callable[[], bool],
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        base = self.cache.cache_dir + "/"
        invalid_base = os.path.join(self.cache.cache_dir, INVALID) + "/"
        unlink = os.unlink
        removed_ids: list[str] = []
        removed_invalid: list[str] = []
        total = len(victims)
        if progress is not None:
            progress(0, total)
        for i, (kind, name, size, last) in enumerate(victims):
            if progress is not None and i % _BATCH == 0 and i:
                progress(i, total)
            if i % _BATCH == 0 and i and (stopping() or not lock.still_held()):
                result.interrupted = True
                LOG.warning("Cache prune of %s stopped after %d of %d victims",
                            self.cache.cache_dir, i, len(victims))
                break
            if dry:
                gone = True
            else:
                try:
                    unlink((base if kind == ENTRY else invalid_base) + name)
                    gone = True
                except FileNotFoundError:
                    result.vanished += 1
                    gone = True
                except OSError as err:
                    gone = False
                    text = "%s %s: %s" % (kind, name, err.strerror or err)
                    result.errors.append(text)
                    LOG.error("Cache prune could not remove %s", text)
            if not gone:
                continue
            result.total_after -= size
            if kind == ENTRY:
                result.pruned += 1
                result.pruned_bytes += size
                removed_ids.append(name)
            else:
                result.invalid_removed += 1
                removed_invalid.append(name)
            if len(result.victims) < MAX_LISTED:
                result.victims.append(
                    {"kind": kind, "name": name, "bytes": size, "last_access": last}
                )
        if progress is not None and not result.interrupted:
            progress(total, total)
        if not dry:
            self.cache.meta.forget(removed_ids)
            self.cache.meta.forget_errors(removed_invalid)
            if removed_ids or removed_invalid:
                self.cache.forget_usage()


def record(ctx: PassContext, result: PruneResult) -> None:
    """Add a prune's figures to a pass's counters."""
    if result.locked_out:
        ctx.count("locked_out")
        return
    ctx.count("entries", result.entries_before)
    ctx.count("bytes_before", result.total_before)
    ctx.count("pruned", result.pruned)
    ctx.count("pruned_bytes", result.pruned_bytes)
    ctx.count("invalid_removed", result.invalid_removed)
    ctx.count("vanished", result.vanished)
    ctx.count("bytes_after", result.total_after)
    if result.errors:
        ctx.count("failed", len(result.errors))
        for text in result.errors[:5]:
            ctx.stats.errors.append(text)
