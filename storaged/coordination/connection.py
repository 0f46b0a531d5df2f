"""The coordinator's connection: connecting, losing it, reconnecting, outages.

After a back end failure every held lock is reported lost at once and
calls fail fast with
:class:`~storaged.coordination.errors.CoordinationUnavailable`; the
heartbeat thread reconnects with jittered exponential backoff
(``initial_reconnect_backoff`` doubling up to ``max_reconnect_backoff``),
then re-joins every group.  An outage is logged once when it starts, then
every ``outage_log_interval``, then once when it ends.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import tooz.coordination as tooz_coordination

from storaged.coordination import backends
from storaged.coordination import errors
from storaged.coordination import metrics as coord_metrics
from storaged.coordination.membership import Membership

# Every part of the coordinator logs under the coordinator's name, as it
# did when it was one module: log levels set for it still apply.
LOG = logging.getLogger("storaged.coordination.coordinator")


class Connection(Membership):
    """The back end connection of one coordinator (see the module)."""

    # -- internals: connection ---------------------------------------------

    def _lose_connection(self, gen: int, reason: str) -> None:
        with self._mutex:
            if gen != self._gen or not self._connected:
                return
            self._connected = False
            self._last_error = reason
            self._stats["disconnects"] += 1
            m = coord_metrics.process()
            m.incr("coordination_disconnects")
            m.set("coordination_connected", 0)
            self._teardown.append((self._driver, self._locks))
            self._driver = None
            self._locks = None
            self._last_beat_start = None
            self._backoff = self.settings.initial_reconnect_backoff
            self._next_reconnect = self._now() + self._jitter(self._backoff)
            self._mark_lost(list(self._held.values()), "connection lost: " + reason)
            for part in self._partitioners.values():
                part.forget()
            self._down_since = self._down_logged_at = self._now()
        LOG.warning("Lost the coordination back end %s: %s; reconnecting in the "
                    "background", self.settings.masked_url, reason)
        if self._heart is not None:
            self._heart.wake()

    @staticmethod
    def _jitter(delay: float) -> float:
        return delay * random.uniform(0.5, 1.0)  # noqa: S311 (not crypto)

    def _connect(self) -> bool:
        """Connect and join every remembered group (heartbeat thread)."""
        with self._mutex:
            if self._connected:
                return True
            self._stats["reconnect_attempts"] += 1
            first = not self._ever_connected
            groups = dict(self._groups)
        driver: Any = None
        locks: backends.LockBackend | None = None
        failure: Exception | None = None
        try:
            driver = tooz_coordination.get_coordinator(
                self.settings.url,
                self.member_id.encode(),
                **self.settings.tooz_options(),
            )
            backends.prepare_driver(driver, self.settings)
            driver.start(start_heart=False)
            locks = backends.make_lock_backend(
                driver, self.settings, self.member_id, self._on_backend_lost
            )
            views = {}
            for group, caps in groups.items():
                self._join(driver, group, caps)
                views[group] = self._fetch(driver, group)
        except (errors.CoordinationError, *backends.unavailable_types()) as err:  # type: ignore[misc]
            failure = err
        if failure is not None:
            # Handled outside the except block: oslo.log appends the active
            # exception to a warning, which would repeat the error's text.
            self._close_quietly(driver, locks, reachable=False)
            with self._mutex:
                self._last_error = "connect: " + backends.errno_text(failure)
                self._backoff = (
                    self.settings.initial_reconnect_backoff
                    if not self._backoff
                    else min(self._backoff * 2, self.settings.max_reconnect_backoff)
                )
                self._next_reconnect = self._now() + self._jitter(self._backoff)
            self._log_still_down()
            return False
        with self._mutex:
            self._driver = driver
            self._locks = locks
            self._gen += 1
            self._connected = True
            self._ever_connected = True
            self._backoff = 0.0
            self._backend_lost = None
            self._last_error = ""
            self._next_beat = self._now() + self.settings.heartbeat_interval
            m = coord_metrics.process()
            m.set("coordination_connected", 1)
            if not first:
                self._stats["reconnects"] += 1
                m.incr("coordination_reconnects")
            down_since, self._down_since = self._down_since, None
        for group, members in views.items():
            self._set_view(group, members)
        if down_since is not None:
            LOG.info("Reconnected to the coordination back end %s, down for "
                     "%.0fs; re-joined %s", self.settings.masked_url,
                     self._now() - down_since,
                     ", ".join(sorted(groups)) or "no group")
        return True

    def _log_still_down(self) -> None:
        """Log a failed connection attempt: loud only when it says something new.

        The first failure of an outage that began here (the back end was
        unreachable at start) is a warning, as :meth:`_lose_connection` is for
        one that began while connected; after that one reminder every
        ``outage_log_interval``, the attempts in between at debug level.
        """
        now = self._now()
        with self._mutex:
            attempts = self._stats["reconnect_attempts"]
            started = self._down_since is None
            if started:
                self._down_since = self._down_logged_at = now
            remind = (not started and now - self._down_logged_at
                      >= self.settings.outage_log_interval)
            if remind:
                self._down_logged_at = now
            down_since = self._down_since
            assert down_since is not None
        url, error = self.settings.masked_url, self._last_error
        if started:
            LOG.warning("Cannot reach the coordination back end %s (%s); "
                        "retrying in the background", url, error)
        elif remind:
            LOG.warning("Coordination back end %s still down after %.0fs "
                        "(%d connection attempts): %s", url, now - down_since,
                        attempts, error)
        else:
            LOG.debug("Cannot reach the coordination back end %s (%s); next "
                      "attempt in %.2fs", url, error, self._next_reconnect - now)

    def _close_quietly(
        self, driver: Any, locks: backends.LockBackend | None, reachable: bool = True
    ) -> None:
        """Stop a tooz driver and its lock back end, ignoring failures.

        :param reachable: ``False`` if the back end is known to be down.
        """
        if locks is not None:
            try:
                locks.close(reachable)
            except Exception as err:
                LOG.debug("Closing the lock back end failed: %s", err)
        if driver is None:
            return
        lease = getattr(driver, "_membership_lease", None)
        if lease is not None and reachable:
            # tooz leaves its etcd membership lease to expire; give it back.
            try:
                lease.revoke()
            except Exception as err:
                LOG.debug("Revoking the membership lease failed: %s", err)
        try:
            if driver.is_started:
                driver.stop()
        except Exception as err:
            LOG.debug("Stopping the tooz driver failed: %s", err)
