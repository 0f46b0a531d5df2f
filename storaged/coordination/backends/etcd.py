"""Locks on an etcd (v3) back end, over tooz's etcd3gw client.

``etcd3+http(s)://``
    key ``storaged/coord/locks/<stored name>`` attached to **one** lease per
    process, kept alive by the heartbeat and revoked on stop; the token is
    the key's create revision.
"""

from __future__ import annotations

import time
from typing import Any
from typing import Final

from storaged import concurrency
from storaged.coordination.backends.base import Held
from storaged.coordination.backends.base import LockBackend
from storaged.coordination.backends.base import tooz_attr
from storaged.coordination.backends.settings import ETCD

ETCD_LOCK_PREFIX: Final = "storaged/coord/locks/"


def _b64(data: str | bytes) -> str:
    import base64

    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")


class EtcdLocks(LockBackend):
    """Keys on one lease per process, over tooz's etcd3gw client."""

    kind = ETCD

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client = tooz_attr(self.driver, "client")
        self._lease: Any = None
        self._lease_since = 0.0
        # Callers of several threads may need the lease at once: grant one.
        self._lease_lock = concurrency.native_module("threading").Lock()

    def _ensure_lease(self) -> tuple[Any, float]:
        """The lease and when its TTL last started counting (monotonic)."""
        with self._lease_lock:
            if self._lease is None:
                sent = time.monotonic()
                self._lease = self.client.lease(self.settings.lock_ttl)
                self._lease_since = sent
            return self._lease, self._lease_since

    def _drop_lease(self, lease: Any) -> bool:
        """Forget ``lease`` if it is still the current one."""
        with self._lease_lock:
            if self._lease is not lease:
                return False
            self._lease = None
            return True

    @property
    def lease_id(self) -> int | None:
        """The id of this process' lock lease, if it has one."""
        return None if self._lease is None else int(self._lease.id)

    def try_acquire(self, key: str) -> Held | None:
        from etcd3gw import exceptions as etcd_exc

        full = _b64(ETCD_LOCK_PREFIX + key)
        for _attempt in range(2):
            lease, since = self._ensure_lease()
            txn = {
                "compare": [
                    {"key": full, "result": "EQUAL", "target": "CREATE",
                     "create_revision": 0}
                ],
                "success": [
                    {"request_put": {"key": full, "value": _b64(self.member_id),
                                     "lease": lease.id}}
                ],
                "failure": [],
            }
            try:
                result = self.client.transaction(txn)
            except etcd_exc.Etcd3Exception as err:
                if "lease not found" not in (err.detail_text or "").lower():
                    raise
                # The lease expired (this process was silent for a TTL):
                # every lock on it is gone.  Start over on a new lease.
                if self._drop_lease(lease):
                    self.on_lost("the lock lease expired")
                continue
            if not result.get("succeeded"):
                return None
            return Held(key, int(result["header"]["revision"]), full, self, since)
        return None

    def release(self, held: Held) -> bool:
        txn = {
            "compare": [
                {"key": held.data, "result": "EQUAL", "target": "CREATE",
                 "create_revision": held.token}
            ],
            "success": [{"request_delete_range": {"key": held.data}}],
            "failure": [],
        }
        return bool(self.client.transaction(txn).get("succeeded"))

    def refresh(self, held: list[Held]) -> set[str]:
        # Kept alive on every heartbeat, held locks or not: a lock taken
        # later lives only as long as the lease's last refresh allows.
        lease = self._lease
        if lease is None:
            return {h.key for h in held}
        sent = time.monotonic()
        if lease.refresh() == -1:
            self._drop_lease(lease)
            return {h.key for h in held}
        with self._lease_lock:
            if self._lease is lease:
                self._lease_since = max(self._lease_since, sent)
        if not held:
            return set()
        txn = {
            "compare": [
                {"key": h.data, "result": "EQUAL", "target": "CREATE",
                 "create_revision": h.token}
                for h in held
            ],
            "success": [],
            "failure": [],
        }
        if self.client.transaction(txn).get("succeeded"):
            return set()
        lost = set()
        for h in held:
            found = self.client.get(ETCD_LOCK_PREFIX + h.key, metadata=True)
            if not found or int(found[0][1].get("create_revision", 0)) != h.token:
                lost.add(h.key)
        return lost

    def list_locks(self) -> list[str]:
        end = ETCD_LOCK_PREFIX[:-1] + chr(ord(ETCD_LOCK_PREFIX[-1]) + 1)
        found = self.client.get(
            ETCD_LOCK_PREFIX, metadata=True, range_end=end, keys_only=True
        )
        names = []
        for _value, meta in found:
            key = meta["key"]
            key = key.decode() if isinstance(key, bytes) else key
            names.append(key[len(ETCD_LOCK_PREFIX):])
        return sorted(names)

    def close(self, reachable: bool = True) -> None:
        with self._lease_lock:
            lease, self._lease = self._lease, None
        if lease is not None and reachable:
            lease.revoke()
