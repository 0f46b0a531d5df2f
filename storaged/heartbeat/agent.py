"""The node agent: membership in the ``storaged`` group and the cluster view.

The agent is the periodic worker of ``storaged-heartbeat``::

    start()      connect to the coordination back end (heartbeats begin on
                 a native thread), join the group with this node's
                 capabilities, watch joins and leaves
    run_pass()   read the members, log changes, publish the cluster view to
                 the state store under ``cluster/view`` and this node's
                 entry under ``cluster/members/<member id>``
    stop()       leave the group (no ghost member), release, disconnect

Liveness never depends on a pass: the coordinator heartbeats on its own
native thread, re-joins the group if the back end evicted the agent, and
reconnects with backoff after an outage.  A pass only fails (and is counted)
when the back end cannot be reached.
"""

from __future__ import annotations

from collections.abc import Callable
import contextlib
import logging
import os
import socket
import time
from typing import Any
from typing import Protocol

from oslo_config import cfg

from storaged import concurrency
from storaged import exception
from storaged import version
from storaged.common.daemon import PassContext

LOG = logging.getLogger(__name__)

VIEW_KEY = "cluster/view"
MEMBER_PREFIX = "cluster/members/"


class _Coordinator(Protocol):
    member_id: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def join_group(self, group: str, capabilities: dict[str, Any]) -> None: ...

    def get_members(self, group: str) -> dict[str, dict[str, Any]]: ...

    def watch_group(self, group: str, on_join: Any, on_leave: Any) -> None: ...

    def stats(self) -> dict[str, Any]: ...


class _StateStore(Protocol):
    def set(self, key: str, value: Any, *, ttl: float | None = None) -> None: ...

    def scan(self, prefix: str) -> Any: ...

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...


def node_capabilities(
    conf: cfg.ConfigOpts, store: _StateStore | None = None
) -> dict[str, Any]:
    """Describe this node for the group: id, host, version, back ends, daemons.

    The daemons are those that have reported a status for this node.
    """
    daemons: list[str] = []
    if store is not None:
        prefix = "status/%s/" % conf.node_id
        try:
            daemons = sorted(k[len(prefix):] for k, _ in store.scan(prefix))
        except exception.StoragedError as err:
            LOG.warning("Could not list this node's daemons: %s", err)
    caps: dict[str, Any] = {
        "node_id": conf.node_id,
        "host": socket.gethostname(),
        "version": version.version_string(),
        "pid": os.getpid(),
        "started_at": time.time(),
        "daemons": daemons,
        "backends": list(conf.enabled_backends or []),
    }
    cache_dir = getattr(getattr(conf, "cache", None), "cache_dir", None)
    if cache_dir:
        caps["cache_dir"] = cache_dir
    return caps


class HeartbeatAgent:
    """Keeps this node in the cluster's group and publishes what it sees.

    :param coordinator: a (not yet started) coordinator.
    :param store: the state store the cluster view is published to.
    :param group: the group every node agent joins.
    :param capabilities: what this node tells the others.
    :param view_ttl: seconds the published view stays valid.
    """

    name = "heartbeat"

    def __init__(
        self,
        coordinator: _Coordinator,
        store: _StateStore,
        group: str,
        capabilities: dict[str, Any],
        view_ttl: float,
    ) -> None:
        self.coordinator = coordinator
        self.store = store
        self.group = group
        self.capabilities = capabilities
        self.view_ttl = view_ttl
        self.members: dict[str, dict[str, Any]] = {}

    def start(self) -> None:
        """Connect, join the group with this node's capabilities, watch it.

        A back end that cannot be reached now does not stop the agent: the
        coordinator keeps connecting in the background and joins the group
        once connected (the passes fail, and are counted, until then).
        """
        from storaged.coordination import CoordinationUnavailable

        member = self.coordinator.member_id
        down: CoordinationUnavailable | None = None
        try:
            self.coordinator.start()
            # remembered by the coordinator even when it cannot be sent now
            self.coordinator.join_group(self.group, self.capabilities)
        except CoordinationUnavailable as err:
            down = err
        if down is None:
            LOG.info("Joined group %s as %s", self.group, member)
        else:
            # The coordinator has logged the outage (once, then reminders):
            # only what it means here, without the error's text again.
            LOG.info("Coordination back end unreachable: %s joins group %s "
                     "once it is reachable", member, self.group)
            with contextlib.suppress(CoordinationUnavailable):
                self.coordinator.join_group(self.group, self.capabilities)
        self.coordinator.watch_group(self.group, self._joined, self._left)

    def stop(self) -> None:
        """Leave the group and disconnect (no ghost member is left behind)."""
        self.coordinator.stop()
        LOG.info("Left group %s", self.group)

    def _joined(self, member: str) -> None:
        LOG.info("Member %s joined group %s", member, self.group)

    def _left(self, member: str) -> None:
        LOG.info("Member %s left group %s", member, self.group)

    def run_pass(self, ctx: PassContext) -> None:
        """Read the members, log changes, publish the cluster view."""
        members = concurrency.run_blocking(self.coordinator.get_members, self.group)
        for member in sorted(set(members) - set(self.members)):
            LOG.info("Member %s is in group %s: %s", member, self.group,
                     _describe(members[member]))
        for member in sorted(set(self.members) - set(members)):
            LOG.info("Member %s is no longer in group %s", member, self.group)
        self.members = members
        stats = self.coordinator.stats()
        ctx.count("members", len(members))
        ctx.count("reconnects", int(stats.get("reconnects", 0)))
        ctx.count("lost_locks", int(stats.get("lost_locks", 0)))
        view = {
            "group": self.group,
            "published_by": self.coordinator.member_id,
            "published_at": time.time(),
            "members": members,
        }
        me = {
            "member_id": self.coordinator.member_id,
            "capabilities": self.capabilities,
            "coordination": _plain(stats),
            "published_at": view["published_at"],
        }
        ctx.run_item("publish cluster view", self._publish, view, me)

    def _publish(self, view: dict[str, Any], me: dict[str, Any]) -> None:
        self.store.call(self.store.set, VIEW_KEY, view, ttl=self.view_ttl)
        self.store.call(
            self.store.set, MEMBER_PREFIX + self.coordinator.member_id, me,
            ttl=self.view_ttl,
        )


def _describe(caps: dict[str, Any]) -> str:
    keys = ("host", "version", "daemons", "backends")
    return ", ".join("%s=%s" % (k, caps[k]) for k in keys if k in caps)


def _plain(stats: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in stats.items() if isinstance(v, (str, int, float, bool))}
