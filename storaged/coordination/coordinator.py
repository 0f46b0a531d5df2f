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

This module holds the life cycle, the lock handles, the counters and
what the heartbeat thread does; the rest is in the layers
:class:`Coordinator` is built on (see :mod:`storaged.coordination.core`).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from oslo_config import cfg
import tooz.coordination as tooz_coordination

from storaged import concurrency
from storaged.coordination import backends
from storaged.coordination import errors
from storaged.coordination import heart as heart_mod
from storaged.coordination import metrics as coord_metrics
from storaged.coordination.connection import Connection
from storaged.coordination.lock import Lock
from storaged.coordination.lock import LockInfo
from storaged.coordination.lock import MultiLock
from storaged.coordination.lock import shown_name

LOG = logging.getLogger(__name__)


class Coordinator(Connection):
    """Group membership, locks and partitioners of one process.

    :param conf: the parsed configuration (``[coordination]`` options).
    :param member_id: this process' member id; stable across restarts
        (see :meth:`from_conf`).
    :param backend_url: use this back end instead of ``[coordination]
        backend_url``.
    :raises storaged.exception.ConfigError: unusable options.
    """

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
                     if lk.hold is not None and lk.hold.backend is locks],
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
                if lock.marked_lost is None and lock.valid_until < deadline:
                    deadline = lock.valid_until
        return deadline

    def _beat(self, start: float) -> None:
        with self._mutex:
            if self._last_beat_start is not None:
                gap = start - self._last_beat_start
                self._stats["last_beat_gap"] = gap
                self._stats["max_beat_gap"] = max(self._stats["max_beat_gap"], gap)
                m = coord_metrics.process()
                m.set("coordination_heartbeat_gap_seconds", gap)
                m.observe("coordination_heartbeat_gaps_seconds", gap)
            self._last_beat_start = start
            self._next_beat = start + self.settings.heartbeat_interval
            driver, locks, gen = self._driver, self._locks, self._gen
            assert locks is not None
            holds = [
                (lk, lk.hold) for lk in self._held.values()
                if lk.marked_lost is None and lk.hold is not None
                and lk.hold.backend is locks
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
                    [lk for lk, h in holds if h.key in lost and lk.hold is h],
                    "the back end no longer has it",
                )
                if not math.isinf(ttl):
                    until = start + ttl - self.settings.lock_margin
                    for lk, h in holds:
                        fine = h.key not in lost and lk.marked_lost is None
                        if fine and lk.hold is h:
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
                self._stats["last_beat"] = beat_end = time.time()
            coord_metrics.process().set(
                "coordination_last_heartbeat_timestamp_seconds", beat_end)
            return
        # Logged outside the except block (see _guarded).
        if isinstance(problem, errors.CoordinationError):
            LOG.warning("Coordination heartbeat: %s", problem)
            return
        self._lose_connection(gen, "heartbeat: " + backends.errno_text(problem))

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
            hold = lock.hold
            lock.hold = None
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
