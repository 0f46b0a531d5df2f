"""The coordinator's side of locks: taking, registering, releasing, losing.

A :class:`~storaged.coordination.lock.Lock` is a handle, made by
:meth:`Coordinator.lock <storaged.coordination.coordinator.Coordinator.lock>`
(a Lock belongs to a whole coordinator); what it holds is kept here: the
acquisition poll (:data:`POLL_FIRST` to :data:`POLL_MAX`), the register of
held locks with their validity (TTL minus a margin), the release, and the
marking of locks lost (by the heartbeat, a failed connection or the back
end itself) with their ``on_lost`` callbacks.  The heartbeat refreshes
them (:meth:`Coordinator._beat
<storaged.coordination.coordinator.Coordinator._beat>`).
"""

from __future__ import annotations

from collections.abc import Callable
import logging
import math
import time
from typing import Any

import tenacity

from storaged.common import retry
from storaged.coordination import backends
from storaged.coordination import errors
from storaged.coordination import heart as heart_mod
from storaged.coordination import metrics as coord_metrics
from storaged.coordination.core import CoordinatorCore
from storaged.coordination.lock import Lock

# Every part of the coordinator logs under the coordinator's name, as it
# did when it was one module: log levels set for it still apply.
LOG = logging.getLogger("storaged.coordination.coordinator")

#: Polling of a taken lock: first delay, longest delay (seconds).
POLL_FIRST = 0.005
POLL_MAX = 0.1


class LockKeeping(CoordinatorCore):
    """The held locks of one coordinator (see the module)."""

    # -- storaged.coordination.lock.LockOwner ---------------------------------

    def timeout_for(self, blocking: bool, timeout: float | None) -> float:
        """Return how long an acquisition may wait (``LockOwner``)."""
        if not blocking:
            return 0.0
        return self.settings.lock_timeout if timeout is None else max(0.0, timeout)

    # -- internals: back end operations (heartbeat thread or direct) ----------

    def _list_locks_op(self) -> list[str]:
        _driver, locks, _gen = self._current()
        return locks.list_locks()

    def _try_acquire_op(self, key: str) -> tuple[backends.Held | None, int, float]:
        _driver, locks, gen = self._current()
        sent = self._now()
        return locks.try_acquire(key), gen, sent

    def _release_op(self, hold: backends.Held) -> bool:
        with self._mutex:
            current = self._locks if self._connected else None
        if hold.backend is current:
            return bool(hold.backend.release(hold))
        # Taken on a connection that failed since (so it was reported lost).
        if hold.backend.kind == backends.FILE:
            # Still held by our descriptor: close it.
            hold.backend.abandon(hold)
        elif current is not None:
            # Delete it if it is still ours (same token), rather than keep
            # the name locked until the back end expires it.
            current.release(hold)
        return False


    def acquire_lock(
        self, lock: Lock, blocking: bool, timeout: float | None
    ) -> bool:
        """Take ``lock`` on the back end (``LockOwner``)."""
        if lock.hold is not None:
            raise errors.CoordinationError(
                reason="lock %s is already held by this Lock object" % lock.name
            )
        wait = self.timeout_for(blocking, timeout)
        start = self._now()
        deadline = start + wait
        hold, gen, sent = retry.retrying(
            retry=tenacity.retry_if_result(lambda got: got[0] is None),
            stop=retry.stop_at(deadline if blocking else -math.inf, self._now),
            wait=retry.wait_doubling(
                POLL_FIRST, POLL_MAX, jitter=(0.8, 1.2),
                deadline=deadline, clock=self._now,
            ),
            sleep=heart_mod.pause,
        )(
            self._backend_call, "lock " + lock.name, self._try_acquire_op,
            lock.key, cleanup=self._release_abandoned,
        )
        if hold is not None:
            self._register(lock, hold, gen, sent, start)
            return True
        with self._mutex:
            if blocking:
                self._stats["lock_timeouts"] += 1
            else:
                self._stats["lock_busy"] += 1
        LOG.debug("Lock %s not acquired after %.3fs", lock.name, self._now() - start)
        return False

    def _release_abandoned(self, result: Any) -> None:
        hold = result[0] if result else None
        if hold is not None:
            self._release_op(hold)

    def _register(
        self, lock: Lock, hold: backends.Held, gen: int, sent: float, start: float
    ) -> None:
        now = self._now()
        waited = now - start
        with self._mutex:
            stale = gen != self._gen or not self._connected
            if not stale:
                lock.hold = hold
                lock.generation = gen
                lock.marked_lost = None
                lock.token = hold.token
                lock.acquired_at = time.time()
                lock.held_since = now
                ttl = self._lock_ttl()
                margin = self.settings.lock_margin
                if hold.since is not None:
                    sent = min(sent, hold.since)
                lock.valid_until = math.inf if math.isinf(ttl) else sent + ttl - margin
                self._held[id(lock)] = lock
                self._stats["lock_acquires"] += 1
                self._stats["lock_wait_total"] += waited
                self._stats["lock_wait_max"] = max(self._stats["lock_wait_max"], waited)
        if stale:
            # Taken on a connection that failed meanwhile: worthless.
            self._release_op(hold)
            raise self._unavailable()
        LOG.debug(
            "Lock %s acquired after %.3fs (token %s)", lock.name, waited, hold.token
        )

    def _lock_ttl(self) -> float:
        ttl = self.settings.effective_lock_ttl
        locks = self._locks
        if locks is not None:
            ttl = min(ttl, locks.ttl_limit())
        return ttl

    def release_lock(self, lock: Lock) -> bool:
        """Release ``lock`` (``LockOwner``)."""
        with self._mutex:
            hold = lock.hold
            if hold is None:
                return False
            was_lost = lock.lost
            if was_lost and lock.marked_lost is None:
                lock.marked_lost = "not refreshed in time"
            lock.hold = None
            self._held.pop(id(lock), None)
            held_for = self._now() - lock.held_since
            self._stats["lock_hold_total"] += held_for
            self._stats["lock_hold_max"] = max(self._stats["lock_hold_max"], held_for)
        released = False
        try:
            if self._connected and not self._stopped:
                released = bool(
                    self._backend_call("unlock " + lock.name, self._release_op, hold)
                )
            else:
                self._release_op(hold)
        except errors.CoordinationError as err:
            LOG.warning("Could not release lock %s: %s", lock.name, err)
        LOG.debug("Lock %s released after %.3fs%s", lock.name, held_for,
                  " (it was lost)" if was_lost else "")
        return released and not was_lost

    def add_lost_callback(
        self, lock: Lock, callback: Callable[[Lock], None]
    ) -> None:
        """Call ``callback(lock)`` once ``lock`` is lost (``LockOwner``)."""
        with self._mutex:
            lock.lost_callbacks.append(callback)
            already = lock.hold is not None and lock.lost
        if already:
            self._run_callback(callback, lock)

    def _mark_lost(self, locks: list[Lock], reason: str) -> None:
        """Mark held locks lost and queue their callbacks (mutex held)."""
        for lock in locks:
            if lock.hold is None or lock.marked_lost is not None:
                continue
            lock.marked_lost = reason
            self._stats["lost_locks"] += 1
            coord_metrics.process().incr("coordination_lock_losses")
            LOG.warning("Lock %s (token %s) lost: %s", lock.name, lock.token, reason)
            self._callbacks.extend((cb, lock) for cb in lock.lost_callbacks)

    @staticmethod
    def _run_callback(callback: Callable[[Lock], None], lock: Lock) -> None:
        try:
            callback(lock)
        except Exception:
            LOG.exception("on_lost callback of lock %s failed", lock.name)

    def _on_backend_lost(self, reason: str) -> None:
        # Called from a back end client's own thread: flag, wake the heart.
        with self._mutex:
            self._backend_lost = reason
        if self._heart is not None:
            self._heart.wake()

    # -- internals: heartbeat thread -------------------------------------------

    def _expire(self, now: float) -> None:
        with self._mutex:
            late = [
                lk for lk in self._held.values()
                if lk.marked_lost is None and now > lk.valid_until
            ]
            if late:
                self._mark_lost(late, "not refreshed within its TTL")

    def _drain_callbacks(self) -> None:
        with self._mutex:
            callbacks, self._callbacks = self._callbacks, []
        for callback, lock in callbacks:
            self._run_callback(callback, lock)
