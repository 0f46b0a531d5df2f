"""The expirer's periodic worker: one pass over the expiries due.

:class:`ExpirerWorker` is what :func:`storaged.common.daemon.run_daemon`
drives.  Per pass, at the time ``now`` it starts:

1. the coordination group's members are read (as ``storaged-sync`` reads
   its group: :class:`storaged.sync.engine.View`); this expirer takes the
   entries whose object hashes to it among them.  Alone, or when the group
   cannot be read, it takes everything: two expirers handling one entry
   delete the object once (:mod:`.reaper`), the other finds it stale;
2. the queue containers whose hour has begun are read, oldest first, each
   up to its first entry not yet due, ``batch_size`` entries at a time;
3. this expirer's entries are reaped by ``concurrency`` green threads,
   each entry isolated (a failure is counted, logged once, and the entry
   stays for the next pass);
4. queue containers emptied and over are deleted, old queue tombstones
   reclaimed.

It ends with one line, ``expirer pass: reaped N, stale M, failed K in S s``,
besides the shared pass summary and status record (``storaged-manage
status``).
"""

from __future__ import annotations

from collections.abc import Callable
import logging
import queue as queue_mod
import time
from typing import Any
from typing import Protocol

from storaged import concurrency
from storaged import exception
from storaged.common.daemon import PassContext
from storaged.coordination.errors import CoordinationUnavailable
from storaged.expirer import reaper
from storaged.objects import expiry
from storaged.objects.repository import ObjectRepository
from storaged.sync.engine import View

LOG = logging.getLogger(__name__)


class _Coordinator(Protocol):
    member_id: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def join_group(self, group: str, capabilities: dict[str, Any]) -> None: ...

    def get_members(self, group: str) -> dict[str, dict[str, Any]]: ...


class ExpirerWorker:
    """The periodic worker of ``storaged-expirer``.

    :param objects: the object service (without expiry's read filter).
    :param queue: the queue of pending expiries.
    :param coordinator: the coordination member, or None to work alone.
    :param group: the expirers' coordination group.
    :param concurrency: objects deleted at once.
    :param batch_size: queue entries read per query.
    :param clock: the time (tests).
    """

    name = "expirer"

    def __init__(
        self,
        objects: ObjectRepository,
        queue: expiry.ExpiryQueue,
        coordinator: _Coordinator | None,
        group: str = "storaged-expirer",
        concurrency: int = 8,
        batch_size: int = 1000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.objects = objects
        self.queue = queue
        self.coordinator = coordinator
        self.group = group
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.clock = clock

    @property
    def member_id(self) -> str:
        """This expirer's member id (``<node_id>:expirer[:<worker>]``)."""
        return self.coordinator.member_id if self.coordinator else "expirer"

    # -- service hooks ---------------------------------------------------------

    def start(self) -> None:
        """Join the group (the back end may be down: retried behind)."""
        if self.coordinator is None:
            return
        try:
            self.coordinator.start()
        except CoordinationUnavailable:
            pass
        try:
            self.coordinator.join_group(self.group, {"daemon": "expirer"})
        except CoordinationUnavailable:
            LOG.info("Expirer group %s: %s joins once coordination is back, and "
                     "reaps every expiry meanwhile", self.group, self.member_id)
        else:
            LOG.info("Joined expirer group %s as %s", self.group, self.member_id)

    def stop(self) -> None:
        """Leave the group."""
        if self.coordinator is not None:
            self.coordinator.stop()

    # -- one pass ------------------------------------------------------------------

    def view(self) -> View:
        """Return the group as it is now (this expirer alone if unknown)."""
        me = self.member_id
        if self.coordinator is None:
            return View.of(me, ())
        try:
            members = concurrency.run_blocking(self.coordinator.get_members,
                                               self.group)
        except exception.StoragedError as err:
            LOG.warning("Expirer group %s unreadable (%s): this expirer reaps "
                        "every expiry for now", self.group, err)
            return View.of(me, ())
        if me not in members:
            return View.of(me, ())
        return View.of(me, members)

    def run_pass(self, ctx: PassContext) -> None:
        """Reap every expiry due now that is this expirer's."""
        started = time.monotonic()
        now = self.clock()
        for counter in (reaper.REAPED, reaper.STALE, "failed", "others"):
            ctx.count(counter, 0)
        try:
            view = self.view()
            buckets = concurrency.run_blocking(self.queue.buckets, now)
            for bucket in buckets:
                if ctx.stopping:
                    ctx.stats.interrupted = True
                    LOG.info("expirer: stop requested, leaving the pass")
                    break
                self._bucket(ctx, bucket, now, view)
            if not ctx.stopping:
                concurrency.run_blocking(self.queue.reclaim)
        finally:
            counters = ctx.stats.counters
            LOG.info("expirer pass: reaped %d, stale %d, failed %d in %.2f s",
                     counters[reaper.REAPED], counters[reaper.STALE],
                     counters["failed"], time.monotonic() - started)

    def _bucket(self, ctx: PassContext, bucket: str, now: float, view: View) -> None:
        marker = ""
        while not ctx.stopping:
            page, marker = concurrency.run_blocking(
                self.queue.due_page, bucket, now, marker, self.batch_size
            )
            mine = [e for e in page if view.mine(e.account, e.container, e.obj)]
            ctx.count("others", len(page) - len(mine))
            self._reap_all(ctx, mine)
            if not marker:
                break
        if not ctx.stopping:
            concurrency.run_blocking(self.queue.drop_if_empty, bucket, now)

    def _reap_all(self, ctx: PassContext, entries: list[expiry.Entry]) -> None:
        todo: queue_mod.SimpleQueue[expiry.Entry] = queue_mod.SimpleQueue()
        for entry in entries:
            todo.put(entry)

        def work() -> None:
            while not ctx.stopping:
                try:
                    entry = todo.get_nowait()
                except queue_mod.Empty:
                    return
                outcome = ctx.run_item(
                    entry.path, concurrency.run_blocking,
                    reaper.reap, self.objects, self.queue, entry,
                )
                if outcome is not None:
                    ctx.count(outcome)

        tasks = [concurrency.spawn(work)
                 for _ in range(min(self.concurrency, len(entries)))]
        for task in tasks:
            task.wait()
        if ctx.stopping and not todo.empty():
            ctx.stats.interrupted = True
