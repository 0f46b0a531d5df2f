"""The state every part of the coordinator shares, and how a back end call runs.

:class:`~storaged.coordination.coordinator.Coordinator` is built in layers,
each a class in its own module calling only into itself and the layers
below it:

* :mod:`storaged.coordination.core` (here): the shared state, guarded by
  one native mutex, and :meth:`CoordinatorCore._backend_call`, which runs
  a back end operation in the caller's thread (threading) or on the
  heartbeat thread (eventlet) and turns back end errors into
  :class:`~storaged.coordination.errors.CoordinationUnavailable`;
* :mod:`storaged.coordination.locking`: locks, their TTLs and their loss;
* :mod:`storaged.coordination.membership`: groups, views, watchers and
  partitioners;
* :mod:`storaged.coordination.connection`: connecting, losing the
  connection, reconnecting with backoff, logging an outage;
* :mod:`storaged.coordination.coordinator`: the life cycle, the lock
  handles, the heartbeat rounds and the counters.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
import math
import re
import socket
import time
from typing import Any

from oslo_config import cfg

from storaged import concurrency
from storaged.coordination import backends
from storaged.coordination import errors
from storaged.coordination import heart as heart_mod
from storaged.coordination.lock import Lock
from storaged.coordination.partitioner import Partitioner

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}$")

Watcher = tuple[Callable[[str], None], Callable[[str], None]]


class CoordinatorCore(abc.ABC):
    """The state of one coordinator and the way its back end calls run.

    Built with the arguments of
    :class:`~storaged.coordination.coordinator.Coordinator`.
    """

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        member_id: str,
        *,
        backend_url: str | None = None,
    ) -> None:
        if not isinstance(member_id, str) or not _ID_RE.match(member_id):
            raise ValueError(
                "member id must be 1 to 200 letters, digits, '.', '_', ':', '@' "
                "or '-', starting with a letter or digit: %r" % (member_id,)
            )
        self.conf = conf
        self.member_id = member_id
        self.settings = backends.settings_from_conf(conf, backend_url)
        # A lock back end that cannot be loaded stops start-up here rather
        # than failing every reconnection.
        backends.lock_backend_class(self.settings.kind)
        self.hostname = socket.gethostname()
        threading = concurrency.native_module("threading")
        # One native lock guards the state below; it is never held across
        # a back end call.
        self._mutex = threading.RLock()
        # Whether callers make back end calls themselves (threading) or
        # hand them to the heartbeat thread (eventlet); decided in start().
        self._direct = True
        self._heart: heart_mod.Heart | None = None
        self._started = False
        self._stopped = False
        self._driver: Any = None
        self._locks: backends.LockBackend | None = None
        self._gen = 0
        self._connected = False
        self._ever_connected = False
        self._last_error = "not connected yet"
        self._backoff = 0.0
        # An outage is logged once when it starts, then every
        # outage_log_interval, then once when it ends (monotonic times).
        self._down_since: float | None = None
        self._down_logged_at = 0.0
        # The first connection is made by start(); the heartbeat thread
        # only retries after a failure.
        self._next_reconnect = math.inf
        self._next_beat = 0.0
        self._last_beat_start: float | None = None
        self._teardown: list[tuple[Any, backends.LockBackend | None]] = []
        self._groups: dict[str, dict[str, Any]] = {}
        self._watchers: dict[str, list[Watcher]] = {}
        self._views: dict[str, dict[str, dict[str, Any]] | None] = {}
        self._partitioners: dict[tuple[str, int], Partitioner] = {}
        self._held: dict[int, Lock] = {}
        self._callbacks: list[tuple[Callable[[Lock], None], Lock]] = []
        self._backend_lost: str | None = None
        self._refusal: str | None = None
        self._stats: dict[str, Any] = {
            "beats": 0,
            "last_beat": None,
            "last_beat_gap": 0.0,
            "max_beat_gap": 0.0,
            "reconnects": 0,
            "reconnect_attempts": 0,
            "disconnects": 0,
            "lost_locks": 0,
            "rejoins": 0,
            "lock_acquires": 0,
            "lock_busy": 0,
            "lock_timeouts": 0,
            "lock_wait_total": 0.0,
            "lock_wait_max": 0.0,
            "lock_hold_total": 0.0,
            "lock_hold_max": 0.0,
        }

    # -- internals: calls --------------------------------------------------

    @staticmethod
    def _now() -> float:
        return time.monotonic()

    def now(self) -> float:
        """Return the coordinator's monotonic clock (``LockOwner``)."""
        return self._now()

    def _call_timeout(self) -> float:
        return self.settings.io_timeout * 2 + self.settings.heartbeat_interval

    def _unavailable(self) -> errors.CoordinationUnavailable:
        return errors.CoordinationUnavailable(
            backend=self.settings.masked_url, reason=self._last_error
        )

    def _check_usable(self) -> None:
        if not self._started or self._stopped:
            raise errors.CoordinationError(reason="the coordinator is not running")
        if self._refusal is not None:
            raise errors.CoordinationError(reason=self._refusal)
        if not self._connected:
            raise self._unavailable()

    def _current(self) -> tuple[Any, backends.LockBackend, int]:
        with self._mutex:
            if not self._connected or self._driver is None or self._locks is None:
                raise self._unavailable()
            driver, locks, gen = self._driver, self._locks, self._gen
        locks.check_connected()
        return driver, locks, gen

    def _backend_call(
        self,
        what: str,
        fn: Callable[..., Any],
        *args: Any,
        cleanup: Callable[[Any], None] | None = None,
    ) -> Any:
        """Run a back end operation where it must run, translating errors."""
        self._check_usable()
        if self._direct or self._heart is None or self._heart.in_thread():
            return self._guarded(what, fn, *args)
        try:
            return self._heart.call(
                self._guarded, what, fn, *args,
                timeout=self._call_timeout(), cleanup=cleanup,
            )
        except TimeoutError as err:
            raise errors.CoordinationUnavailable(
                backend=self.settings.masked_url, reason=str(err)
            ) from err
        except heart_mod.HeartStopped as err:
            raise errors.CoordinationError(reason=str(err)) from err

    def _guarded(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        gen = self._gen
        try:
            return fn(*args)
        except errors.CoordinationError:
            raise
        except backends.unavailable_types() as err:
            failure = err
        # Outside the except block: _lose_connection logs, and oslo.log would
        # append the active exception to that line.
        reason = "%s: %s" % (what, backends.errno_text(failure))
        self._lose_connection(gen, reason)
        raise errors.CoordinationUnavailable(
            backend=self.settings.masked_url, reason=reason
        ) from failure

    @abc.abstractmethod
    def _lose_connection(self, gen: int, reason: str) -> None:
        """Mark connection ``gen`` lost for ``reason`` (if it is current).

        See :mod:`storaged.coordination.connection`.
        """
