"""The coordinator: membership, locks and work division over tooz.

One :class:`Coordinator` per process (per worker), created in the service's
``start()`` (never before a fork) and stopped in its ``stop()``::

    coordinator = Coordinator.from_conf(conf, "sync", worker=0)
    coordinator.start()
    coordinator.join_group("sync", {"version": "1.2"})
    share = coordinator.partitioner("sync")
    for container in containers:
        if share.owns(container):
            with coordinator.lock("sync-" + container, blocking=False) as lock:
                ...
    coordinator.stop()

What it adds to a bare tooz coordinator:

* heartbeats from a native thread (:mod:`storaged.coordination.heart`),
  whatever the green threads do;
* locks that know when they are lost, with fencing tokens
  (:mod:`storaged.coordination.lock`, :mod:`storaged.coordination.backends`);
* on every heartbeat, for each group it belongs to or watches: one read of
  the members, which serves the join / leave callbacks, the partitioners,
  the single-host check of ``file://`` and the self-eviction check (an
  evicted member re-joins at once, with the same capabilities);
* a stable member id, replacing its own registration left by a crashed
  predecessor, and a clean leave on :meth:`Coordinator.stop`;
* after a back end failure: every held lock reported lost at once, calls
  failing fast with :class:`CoordinationUnavailable`, reconnection with
  jittered exponential backoff from the heartbeat thread, then every group
  re-joined;
* counters (:meth:`Coordinator.stats`).
"""

from __future__ import annotations

from collections.abc import Callable
import logging
import math
import random
import re
import socket
import time
from typing import Any

from oslo_config import cfg
import tooz
import tooz.coordination as tooz_coordination

from storaged import concurrency
from storaged.coordination import backends
from storaged.coordination import errors
from storaged.coordination import heart as heart_mod
from storaged.coordination.lock import Lock
from storaged.coordination.lock import LockInfo
from storaged.coordination.lock import MultiLock
from storaged.coordination.lock import shown_name
from storaged.coordination.partitioner import Partitioner

LOG = logging.getLogger(__name__)

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}$")
_GROUP_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")

#: Polling of a taken lock: first delay, longest delay (seconds).
POLL_FIRST = 0.005
POLL_MAX = 0.1

Watcher = tuple[Callable[[str], None], Callable[[str], None]]


def _decode(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class Coordinator:
    """Group membership, locks and partitioners of one process.

    :param conf: the parsed configuration (``[coordination]`` options).
    :param member_id: this process' member id; stable across restarts
        (see :meth:`from_conf`).
    :param backend_url: use this back end instead of ``[coordination]
        backend_url``.
    :raises storaged.exception.ConfigError: unusable options.
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

    @classmethod
    def from_conf(
        cls, conf: cfg.ConfigOpts, daemon: str, worker: int | None = None
    ) -> Coordinator:
        """Build the coordinator of a daemon (worker) of this node.

        The member id is ``<node_id>:<daemon>[:<worker>]``: stable across
        restarts, so that a restarted process replaces its own registration
        instead of leaving a ghost beside it.
        """
        member_id = "%s:%s" % (conf.node_id, daemon)
        if worker is not None:
            member_id += ":%d" % worker
        return cls(conf, member_id)

    # -- life cycle --------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the back end is reachable (as of the last call or beat)."""
        return self._connected

    @property
    def backend(self) -> str:
        """The back end kind: ``file``, ``redis``, ``etcd`` or ``zookeeper``."""
        return self.settings.kind

    def start(self) -> None:
        """Connect to the back end and start the heartbeat thread.

        :raises CoordinationUnavailable: the back end cannot be reached;
            the heartbeat thread keeps trying in the background (groups
            joined meanwhile are joined once connected).
        """
        with self._mutex:
            if self._started:
                raise errors.CoordinationError(reason="coordinator already started")
            self._started = True
            self._direct = not concurrency.is_eventlet()
        LOG.info(
            "Coordinating as %s through %s (heartbeat %.3gs, lock TTL %ss, "
            "membership TTL %ss)",
            self.member_id,
            self.settings.masked_url,
            self.settings.heartbeat_interval,
            self.settings.lock_ttl,
            self.settings.membership_ttl,
        )
        self._heart = heart_mod.Heart(
            "coordination-heartbeat", self._tick, self._shutdown
        )
        self._heart.start()
        try:
            ok = self._heart.call(self._connect, timeout=self._call_timeout() * 4)
        except TimeoutError:
            ok = False  # the attempt goes on in the background
        if not ok:
            raise self._unavailable()

    def stop(self) -> None:
        """Leave every group, release every lock, disconnect.  Idempotent."""
        with self._mutex:
            if not self._started or self._stopped:
                self._stopped = True
                return
            self._stopped = True
        heart = self._heart
        if heart is not None:
            heart.stop(timeout=self._call_timeout() * 4 + 5.0)
        LOG.info("Stopped coordinating as %s", self.member_id)

    # -- groups ------------------------------------------------------------

    def join_group(self, group: str, capabilities: dict[str, Any]) -> None:
        """Join ``group`` (created if needed) with ``capabilities``.

        The group and capabilities are remembered: the coordinator re-joins
        after an eviction or a reconnection.  ``host`` is set to this host's
        name in the capabilities.

        :raises CoordinationUnavailable: not connected now (the group will
            be joined once connected).
        :raises CoordinationError: a ``file://`` group with members on
            another host.
        """
        self._check_group(group)
        caps = dict(capabilities)
        caps["host"] = self.hostname
        with self._mutex:
            self._groups[group] = caps
            self._views.setdefault(group, None)
        try:
            self._backend_call("join group " + group, self._join_op, group, caps, True)
        except errors.CoordinationUnavailable:
            raise  # remembered: joined once connected
        except errors.CoordinationError:
            with self._mutex:
                self._groups.pop(group, None)
            raise
        LOG.debug("Member %s joined group %s", self.member_id, group)

    def leave_group(self, group: str) -> None:
        """Leave ``group`` (best effort if the back end is unreachable)."""
        with self._mutex:
            known = self._groups.pop(group, None) is not None
            if group not in self._watchers and not self._partitioned(group):
                self._views.pop(group, None)
        if not known or not self._connected:
            return
        try:
            self._backend_call("leave group " + group, self._leave_op, group)
        except errors.CoordinationUnavailable as err:
            LOG.warning("Could not leave group %s: %s", group, err)

    def get_members(self, group: str) -> dict[str, dict[str, Any]]:
        """Return the live members of ``group`` and their capabilities.

        :raises CoordinationUnavailable: the back end cannot be reached.
        """
        self._check_group(group)
        members = self._backend_call("get members of " + group, self._members_op, group)
        return {m: dict(c) if isinstance(c, dict) else {} for m, c in members.items()}

    def watch_group(
        self,
        group: str,
        on_join: Callable[[str], None],
        on_leave: Callable[[str], None],
    ) -> None:
        """Call ``on_join(member_id)`` / ``on_leave(member_id)`` on changes.

        Members present now are not reported.  Callbacks run on the
        heartbeat thread, at most one heartbeat after the change is visible
        on the back end; they must be quick and must not raise.
        """
        self._check_group(group)
        with self._mutex:
            self._watchers.setdefault(group, []).append((on_join, on_leave))
            baseline = self._views.get(group)
        if baseline is None and self._connected:
            try:
                members = self._backend_call(
                    "get members of " + group, self._members_op, group
                )
            except errors.CoordinationUnavailable:
                return
            with self._mutex:
                if self._views.get(group) is None:
                    self._views[group] = members

    def partitioner(self, group: str, partitions: int | None = None) -> Partitioner:
        """Return the partitioner of ``group`` (one per group and size).

        It is refreshed from every heartbeat; this member owns keys only
        while it is a member of ``group`` (:meth:`join_group`).
        """
        self._check_group(group)
        count = partitions or self.settings.partitions
        with self._mutex:
            found = self._partitioners.get((group, count))
            if found is None:
                found = Partitioner(
                    self.member_id, group, count, self.settings.settle_time, self._now
                )
                self._partitioners[(group, count)] = found
                self._views.setdefault(group, None)
                view = self._views.get(group)
                if view is not None:
                    found.update(view)
        if self._heart is not None:
            self._heart.wake()
        return found

    # -- locks -------------------------------------------------------------

    def lock(
        self, name: str, *, blocking: bool = True, timeout: float | None = None
    ) -> Lock:
        """Return a lock on ``name`` (not yet acquired).

        Use it as a context manager, or call ``acquire()`` / ``release()``.

        :param blocking: whether ``acquire()`` waits.
        :param timeout: seconds to wait; ``None`` means ``[coordination]
            lock_timeout`` (never forever).
        """
        return Lock(self, name, blocking=blocking, timeout=timeout)

    def locks(
        self, *names: str, blocking: bool = True, timeout: float | None = None
    ) -> MultiLock:
        """Return a lock on several names, taken in sorted order."""
        return MultiLock(self, names, blocking=blocking, timeout=timeout)

    def held_locks(self) -> list[LockInfo]:
        """List the locks this process holds now."""
        with self._mutex:
            held = list(self._held.values())
        return sorted(
            (
                LockInfo(
                    name=lock.name,
                    token=lock.token,
                    acquired_at=lock.acquired_at or 0.0,
                    valid_until=lock.valid_until,
                    lost=lock.lost,
                )
                for lock in held
            ),
            key=lambda info: info.name,
        )

    def list_locks(self) -> list[str]:
        """List the names of every lock held on the back end, by anyone.

        Best effort: lock files on ``file://``, keys on Redis, the key
        range on etcd, the children of the lock znode on ZooKeeper.  Hashed
        names (long ones) are listed as stored.

        :raises CoordinationUnavailable: the back end cannot be reached.
        """
        stored = self._backend_call("list locks", self._list_locks_op)
        return [shown_name(s) for s in stored]

    # -- statistics ----------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters and state, for status reports and metrics.

        Keys: ``member_id``, ``backend``, ``connected``, ``beats``,
        ``last_beat`` (wall-clock time of the last good heartbeat),
        ``last_beat_gap`` and ``max_beat_gap`` (seconds between the starts
        of consecutive heartbeats while connected), ``reconnects``,
        ``reconnect_attempts``, ``disconnects``, ``lost_locks``, ``rejoins``
        (after evictions), ``held_locks``, ``members_seen`` (distinct
        members in the last views), ``groups``, ``lock_acquires``,
        ``lock_busy`` (non-blocking misses), ``lock_timeouts``,
        ``lock_wait_total`` / ``lock_wait_max`` and ``lock_hold_total`` /
        ``lock_hold_max`` (seconds), ``last_error``, ``refusal``.
        """
        with self._mutex:
            stats = dict(self._stats)
            seen: set[str] = set()
            for view in self._views.values():
                if view:
                    seen.update(view)
            stats.update(
                member_id=self.member_id,
                backend=self.settings.kind,
                connected=self._connected,
                held_locks=len(self._held),
                members_seen=len(seen),
                groups=sorted(self._groups),
                last_error=None if self._connected else self._last_error,
                refusal=self._refusal,
            )
        return stats

    # -- internals: calls --------------------------------------------------

    @staticmethod
    def _now() -> float:
        return time.monotonic()

    def _call_timeout(self) -> float:
        return self.settings.io_timeout * 2 + self.settings.heartbeat_interval

    def _timeout_for(self, blocking: bool, timeout: float | None) -> float:
        if not blocking:
            return 0.0
        return self.settings.lock_timeout if timeout is None else max(0.0, timeout)

    def _check_group(self, group: str) -> None:
        if not isinstance(group, str) or not _GROUP_RE.match(group):
            raise ValueError(
                "group name must be 1 to 128 letters, digits, '.', '_', ':', '@' "
                "or '-', starting with a letter or digit: %r" % (group,)
            )

    def _partitioned(self, group: str) -> bool:
        return any(g == group for g, _n in self._partitioners)

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

    # -- internals: back end operations (heartbeat thread or direct) ----------

    def _join_op(self, group: str, caps: dict[str, Any], strict: bool) -> None:
        driver, _locks, _gen = self._current()
        self._join(driver, group, caps)
        members = self._fetch(driver, group)
        foreign = self._foreign_hosts(members)
        if foreign and strict:
            try:
                driver.leave_group(group.encode()).get()
            except tooz.ToozError:
                pass
            raise errors.CoordinationError(reason=self._refusal_text(foreign))
        self._set_view(group, members)

    def _join(self, driver: Any, group: str, caps: dict[str, Any]) -> None:
        gid = group.encode()
        for _attempt in range(5):
            try:
                driver.join_group(gid, caps).get()
                return
            except tooz_coordination.GroupNotCreated:
                try:
                    driver.create_group(gid).get()
                except tooz_coordination.GroupAlreadyExist:
                    pass
            except tooz_coordination.MemberAlreadyExist:
                # A registration under this stable id: left by a crashed
                # predecessor, or by this process before a reconnection.
                # Replace it rather than keep it beside us as a ghost.
                LOG.info("Replacing the stale registration of %s in group %s",
                         self.member_id, group)
                try:
                    driver.leave_group(gid).get()
                except (tooz_coordination.MemberNotJoined,
                        tooz_coordination.GroupNotCreated):
                    pass
        raise errors.CoordinationError(
            reason="could not join group %s (created and left under our feet)" % group
        )

    def _leave_op(self, group: str) -> None:
        driver, _locks, _gen = self._current()
        try:
            driver.leave_group(group.encode()).get()
        except (tooz_coordination.MemberNotJoined, tooz_coordination.GroupNotCreated):
            pass

    def _members_op(self, group: str) -> dict[str, dict[str, Any]]:
        driver, _locks, _gen = self._current()
        return self._fetch(driver, group)

    def _fetch(self, driver: Any, group: str) -> dict[str, dict[str, Any]]:
        try:
            found = driver.get_members_with_capabilities(group.encode()).get()
        except tooz_coordination.GroupNotCreated:
            return {}
        return {
            _decode(m): (c if isinstance(c, dict) else {}) for m, c in found.items()
        }

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

    # -- internals: locks ------------------------------------------------------

    def _acquire(self, lock: Lock, blocking: bool, timeout: float | None) -> bool:
        if lock._hold is not None:
            raise errors.CoordinationError(
                reason="lock %s is already held by this Lock object" % lock.name
            )
        wait = self._timeout_for(blocking, timeout)
        start = self._now()
        deadline = start + wait
        delay = POLL_FIRST
        while True:
            hold, gen, sent = self._backend_call(
                "lock " + lock.name, self._try_acquire_op, lock.key,
                cleanup=self._release_abandoned,
            )
            if hold is not None:
                self._register(lock, hold, gen, sent, start)
                return True
            now = self._now()
            if not blocking or now >= deadline:
                with self._mutex:
                    if blocking:
                        self._stats["lock_timeouts"] += 1
                    else:
                        self._stats["lock_busy"] += 1
                LOG.debug("Lock %s not acquired after %.3fs", lock.name, now - start)
                return False
            jitter = random.uniform(0.8, 1.2)  # noqa: S311 (not crypto)
            heart_mod.pause(min(delay * jitter, deadline - now))
            delay = min(delay * 2, POLL_MAX)

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
                lock._hold = hold
                lock._gen = gen
                lock._lost_reason = None
                lock.token = hold.token
                lock.acquired_at = time.time()
                lock._started = now
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
        if isinstance(locks, backends.ZooKeeperLocks):
            ttl = min(ttl, locks.session_timeout())
        return ttl

    def _release(self, lock: Lock) -> bool:
        with self._mutex:
            hold = lock._hold
            if hold is None:
                return False
            was_lost = lock.lost
            if was_lost and lock._lost_reason is None:
                lock._lost_reason = "not refreshed in time"
            lock._hold = None
            self._held.pop(id(lock), None)
            held_for = self._now() - lock._started
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

    def _add_lost_callback(self, lock: Lock, callback: Callable[[Lock], None]) -> None:
        with self._mutex:
            lock._callbacks.append(callback)
            already = lock._hold is not None and lock.lost
        if already:
            self._run_callback(callback, lock)

    def _mark_lost(self, locks: list[Lock], reason: str) -> None:
        """Mark held locks lost and queue their callbacks (mutex held)."""
        for lock in locks:
            if lock._hold is None or lock._lost_reason is not None:
                continue
            lock._lost_reason = reason
            self._stats["lost_locks"] += 1
            LOG.warning("Lock %s (token %s) lost: %s", lock.name, lock.token, reason)
            self._callbacks.extend((cb, lock) for cb in lock._callbacks)

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

    # -- internals: connection ---------------------------------------------

    def _lose_connection(self, gen: int, reason: str) -> None:
        with self._mutex:
            if gen != self._gen or not self._connected:
                return
            self._connected = False
            self._last_error = reason
            self._stats["disconnects"] += 1
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
            if not first:
                self._stats["reconnects"] += 1
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

    # -- internals: heartbeat thread -------------------------------------------

    def _tick(self) -> float:
        """One round of the heartbeat thread; returns the next deadline."""
        with self._mutex:
            teardown, self._teardown = self._teardown, []
            lost_reason, self._backend_lost = self._backend_lost, None
            if lost_reason is not None:
                locks = self._locks
                self._mark_lost(
                    [lk for lk in self._held.values()
                     if lk._hold is not None and lk._hold.backend is locks],
                    lost_reason,
                )
        for driver, locks in teardown:
            self._close_quietly(driver, locks, reachable=False)
        now = self._now()
        if self._connected:
            if now >= self._next_beat:
                self._beat(now)
        elif now >= self._next_reconnect:
            self._connect()
        self._expire(self._now())
        self._drain_callbacks()
        with self._mutex:
            deadline = self._next_beat if self._connected else self._next_reconnect
            for lock in self._held.values():
                if lock._lost_reason is None and lock.valid_until < deadline:
                    deadline = lock.valid_until
        return deadline

    def _expire(self, now: float) -> None:
        with self._mutex:
            late = [
                lk for lk in self._held.values()
                if lk._lost_reason is None and now > lk.valid_until
            ]
            if late:
                self._mark_lost(late, "not refreshed within its TTL")

    def _drain_callbacks(self) -> None:
        with self._mutex:
            callbacks, self._callbacks = self._callbacks, []
        for callback, lock in callbacks:
            self._run_callback(callback, lock)

    def _beat(self, start: float) -> None:
        with self._mutex:
            if self._last_beat_start is not None:
                gap = start - self._last_beat_start
                self._stats["last_beat_gap"] = gap
                self._stats["max_beat_gap"] = max(self._stats["max_beat_gap"], gap)
            self._last_beat_start = start
            self._next_beat = start + self.settings.heartbeat_interval
            driver, locks, gen = self._driver, self._locks, self._gen
            assert locks is not None
            holds = [
                (lk, lk._hold) for lk in self._held.values()
                if lk._lost_reason is None and lk._hold is not None
                and lk._hold.backend is locks
            ]
            groups = dict(self._groups)
            viewed = set(self._views)
        try:
            locks.check_connected()
            driver.heartbeat()
            lost = locks.refresh([h for _lk, h in holds])
            locks.tidy(start - self.settings.heartbeat_interval)
            ttl = self._lock_ttl()
            with self._mutex:
                self._mark_lost(
                    [lk for lk, h in holds if h.key in lost and lk._hold is h],
                    "the back end no longer has it",
                )
                if not math.isinf(ttl):
                    until = start + ttl - self.settings.lock_margin
                    for lk, h in holds:
                        fine = h.key not in lost and lk._lost_reason is None
                        if fine and lk._hold is h:
                            lk.valid_until = max(lk.valid_until, until)
            for group in sorted(viewed):
                members = self._fetch(driver, group)
                caps = groups.get(group)
                if caps is not None and self.member_id not in members:
                    LOG.warning("Member %s was evicted from group %s; re-joining",
                                self.member_id, group)
                    self._join(driver, group, caps)
                    # Counted as soon as it is done: others see it from now.
                    with self._mutex:
                        self._stats["rejoins"] += 1
                        for (g, _n), part in self._partitioners.items():
                            if g == group:
                                part.forget()
                    members = self._fetch(driver, group)
                self._set_view(group, members)
        except errors.CoordinationError as err:
            problem: BaseException = err
        except backends.unavailable_types() as err:
            problem = err
        else:
            with self._mutex:
                self._stats["beats"] += 1
                self._stats["last_beat"] = time.time()
            return
        # Logged outside the except block (see _guarded).
        if isinstance(problem, errors.CoordinationError):
            LOG.warning("Coordination heartbeat: %s", problem)
            return
        self._lose_connection(gen, "heartbeat: " + backends.errno_text(problem))

    def _foreign_hosts(self, members: dict[str, dict[str, Any]]) -> dict[str, str]:
        if self.settings.kind != backends.FILE or not self.settings.file_single_host:
            return {}
        return {
            m: str(c["host"]) for m, c in members.items()
            if c.get("host") and c["host"] != self.hostname
        }

    def _refusal_text(self, foreign: dict[str, str]) -> str:
        member, host = sorted(foreign.items())[0]
        return (
            "the file:// back end %s is shared with host %s (member %s); file "
            "locks do not work across hosts: use redis, etcd or zookeeper"
            % (self.settings.masked_url, host, member)
        )

    def _set_view(self, group: str, members: dict[str, dict[str, Any]]) -> None:
        """Record a membership view: watchers, partitioners, host check."""
        foreign = self._foreign_hosts(members)
        events: list[tuple[Callable[[str], None], str]] = []
        with self._mutex:
            if foreign:
                refusal = self._refusal_text(foreign)
                if refusal != self._refusal:
                    LOG.error("Refusing locks: %s", refusal)
                self._refusal = refusal
                self._mark_lost(list(self._held.values()), refusal)
            elif self._refusal is not None and group in self._groups:
                LOG.info("No member of another host left in group %s", group)
                self._refusal = None
            old = self._views.get(group)
            if group in self._views or group in self._groups:
                self._views[group] = members
            if old is not None:
                joined = sorted(set(members) - set(old))
                left = sorted(set(old) - set(members))
                for on_join, on_leave in self._watchers.get(group, ()):
                    events.extend((on_join, m) for m in joined)
                    events.extend((on_leave, m) for m in left)
            parts = [p for (g, _n), p in self._partitioners.items() if g == group]
        for part in parts:
            part.update(members)
        for callback, member in events:
            try:
                callback(member)
            except Exception:
                LOG.exception("Watcher of group %s failed on %s", group, member)

    def _shutdown(self) -> None:
        """Release, leave and disconnect (heartbeat thread, on stop)."""
        with self._mutex:
            held = list(self._held.values())
            # Whoever still works under one of these must stop.
            self._mark_lost(held, "the coordinator stopped")
            self._held.clear()
            driver, locks = self._driver, self._locks
            connected = self._connected
            groups = sorted(self._groups)
            teardown, self._teardown = self._teardown, []
            self._connected = False
            self._driver = None
            self._locks = None
        # Once one call fails the back end is not reachable: skip the rest
        # (each would only wait for its timeout).
        reachable = connected and locks is not None
        for lock in held:
            hold = lock._hold
            lock._hold = None
            if hold is None:
                continue
            try:
                if hold.backend.kind == backends.FILE:
                    hold.backend.release(hold)
                elif reachable and hold.backend is locks:
                    hold.backend.check_connected()
                    hold.backend.release(hold)
            except Exception as err:
                reachable = hold.backend.kind == backends.FILE and reachable
                LOG.debug("Releasing lock %s on stop failed: %s", lock.name, err)
        for group in groups if reachable else ():
            try:
                assert locks is not None
                locks.check_connected()
                driver.leave_group(group.encode()).get()
            except (tooz_coordination.MemberNotJoined,
                    tooz_coordination.GroupNotCreated):
                pass
            except Exception as err:
                LOG.warning("Could not leave group %s on stop: %s", group, err)
                reachable = False
                break
        self._close_quietly(driver, locks, reachable)
        for old_driver, old_locks in teardown:
            self._close_quietly(old_driver, old_locks, reachable=False)
        self._drain_callbacks()
