"""Locks on a ZooKeeper back end, over tooz's kazoo client.

``zookeeper://``
    ephemeral znode ``/storaged/locks/<stored name>`` of the coordinator's
    session (no sequential contender nodes, no parent znode per name); the
    token is the znode's ``czxid``.
"""

from __future__ import annotations

from typing import Any
from typing import Final

from storaged.coordination.backends.base import Held
from storaged.coordination.backends.base import LockBackend
from storaged.coordination.backends.base import tooz_attr
from storaged.coordination.backends.settings import ZOOKEEPER

ZK_LOCK_PATH: Final = "/storaged/locks"


class ZooKeeperLocks(LockBackend):
    """Ephemeral znodes of the coordinator's session, over tooz's kazoo client."""

    kind = ZOOKEEPER

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client = tooz_attr(self.driver, "_coord")
        self._session: int | None = None
        self._session_lost = False

    def start(self) -> None:
        self.client.ensure_path(ZK_LOCK_PATH)
        self._session = self._session_id()
        self.client.add_listener(self._state_changed)

    def check_connected(self) -> None:
        # kazoo queues a request made while it reconnects and waits, without
        # a timeout, for the connection to come back.
        if self.client.state != "CONNECTED" or self._session_lost:
            from kazoo import exceptions as kazoo_exc

            raise kazoo_exc.ConnectionLoss(
                "ZooKeeper connection %s" % str(self.client.state).lower()
            )

    def close(self, reachable: bool = True) -> None:
        # A client that is not connected is stopped first: tooz's stop then
        # fails fast instead of waiting for the connection to leave groups.
        if not reachable or self.client.state != "CONNECTED":
            self.client.stop()

    def _session_id(self) -> int | None:
        client_id = self.client.client_id
        return None if client_id is None else int(client_id[0])

    def _state_changed(self, state: str) -> bool:
        # Called on kazoo's thread; only flag it and tell the coordinator.
        if state == "LOST":
            self._session_lost = True
            self.on_lost("the ZooKeeper session expired")
            return True  # remove the listener: this session is over
        return False

    def try_acquire(self, key: str) -> Held | None:
        from kazoo import exceptions as kazoo_exc

        path = ZK_LOCK_PATH + "/" + key
        for _attempt in range(2):
            try:
                created, stat = self.client.create(
                    path, self.member_id.encode(), ephemeral=True, include_data=True
                )
            except kazoo_exc.NodeExistsError:
                return None
            except kazoo_exc.NoNodeError:
                self.client.ensure_path(ZK_LOCK_PATH)
                continue
            session = self._session_id()
            return Held(key, int(stat.czxid), (created, session), self)
        return None

    def _ours(self, held: Held, stat: Any) -> bool:
        _path, session = held.data
        return (
            stat is not None
            and int(stat.czxid) == held.token
            and int(stat.ephemeralOwner) == session
        )

    def release(self, held: Held) -> bool:
        from kazoo import exceptions as kazoo_exc

        path, _session = held.data
        stat = self.client.exists(path)
        if not self._ours(held, stat):
            return False
        try:
            self.client.delete(path, version=stat.version)
        except (kazoo_exc.NoNodeError, kazoo_exc.BadVersionError):
            return False
        return True

    def refresh(self, held: list[Held]) -> set[str]:
        if (
            self._session_lost
            or self.client.state != "CONNECTED"
            or self._session_id() != self._session
        ):
            return {h.key for h in held}
        pending = [(h, self.client.exists_async(h.data[0])) for h in held]
        timeout = self.settings.io_timeout
        return {
            h.key for h, result in pending
            if not self._ours(h, result.get(timeout=timeout))
        }

    def list_locks(self) -> list[str]:
        from kazoo import exceptions as kazoo_exc

        try:
            return sorted(self.client.get_children(ZK_LOCK_PATH))
        except kazoo_exc.NoNodeError:
            return []

    def ttl_limit(self) -> float:
        """The session timeout the server granted, in seconds.

        A lock is an ephemeral znode of the session: it goes when the
        session expires, which the server may make sooner than ``lock_ttl``.
        """
        granted = getattr(self.client, "_session_timeout", None)
        if granted:
            return float(granted) / 1000.0
        return self.settings.effective_lock_ttl
