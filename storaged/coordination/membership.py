"""The coordinator's groups: joining, leaving, views, watchers, partitioners.

Every group it belongs to or watches has a *view*, its members as last read
(on each heartbeat); a new view serves the join / leave callbacks, the
partitioners and the single-host check of ``file://``.  A member that is
found evicted re-joins with the same capabilities (see
:meth:`~storaged.coordination.coordinator.Coordinator._beat`), and an old
registration under its own stable id is replaced.
"""

from __future__ import annotations

from collections.abc import Callable
import logging
import re
from typing import Any

import tooz
import tooz.coordination as tooz_coordination

from storaged.coordination import backends
from storaged.coordination import errors
from storaged.coordination import metrics as coord_metrics
from storaged.coordination.locking import LockKeeping
from storaged.coordination.partitioner import Partitioner

# Every part of the coordinator logs under the coordinator's name, as it
# did when it was one module: log levels set for it still apply.
LOG = logging.getLogger("storaged.coordination.coordinator")

_GROUP_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")


def _decode(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class Membership(LockKeeping):
    """The groups of one coordinator (see the module)."""

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

    # -- internals: calls --------------------------------------------------

    def _check_group(self, group: str) -> None:
        if not isinstance(group, str) or not _GROUP_RE.match(group):
            raise ValueError(
                "group name must be 1 to 128 letters, digits, '.', '_', ':', '@' "
                "or '-', starting with a letter or digit: %r" % (group,)
            )

    def _partitioned(self, group: str) -> bool:
        return any(g == group for g, _n in self._partitioners)

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

    # -- internals: views -----------------------------------------------------

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
                coord_metrics.process().set(
                    "coordination_group_members", len(members), group=group)
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

