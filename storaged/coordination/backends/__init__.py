"""What storaged knows about each coordination back end.

tooz gives group membership on every back end; its locks are left aside
because each of them falls short somewhere (no fencing token, lock files
and znodes never removed, one etcd lease per attempt, a lock expiring
silently under its holder).  This package holds, per back end:

* how the ``[coordination]`` TTLs become tooz driver options, and which
  URLs are refused (:func:`check_url`, :func:`validate_conf`, in
  :mod:`.settings`);
* the lock primitives storaged uses instead of tooz's
  (:class:`LockBackend` in :mod:`.base`, and one subclass per back end
  family in :mod:`.file`, :mod:`.redis`, :mod:`.etcd` and
  :mod:`.zookeeper`, each with its lock layout and fencing token), all
  *try-lock* operations: the caller polls, so that no back end call ever
  waits for a lock;
* listing what exists on the back end (:meth:`LockBackend.list_locks`);
* adjusting a tooz driver before it starts (:func:`prepare_driver`; only
  the Redis one needs it).

Tokens are integers that grow for every new holder of a name on one back
end, like the state store's lease tokens; compare them only with tokens of
the same name from the same back end.

Every name the coordination layer uses is importable from this package.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from typing import Final

from storaged.coordination.backends.base import Held
from storaged.coordination.backends.base import LockBackend
from storaged.coordination.backends.base import errno_text
from storaged.coordination.backends.base import unavailable_types
from storaged.coordination.backends.etcd import ETCD_LOCK_PREFIX
from storaged.coordination.backends.etcd import EtcdLocks
from storaged.coordination.backends.file import FILE_LOCK_DIR
from storaged.coordination.backends.file import FileLocks
from storaged.coordination.backends.redis import REDIS_FENCE_KEY
from storaged.coordination.backends.redis import REDIS_LOCK_PREFIX
from storaged.coordination.backends.redis import RedisLocks
from storaged.coordination.backends.redis import prepare_driver
from storaged.coordination.backends.settings import ETCD
from storaged.coordination.backends.settings import FILE
from storaged.coordination.backends.settings import REDIS
from storaged.coordination.backends.settings import REFUSED
from storaged.coordination.backends.settings import RESERVED_PARAMS
from storaged.coordination.backends.settings import SCHEMES
from storaged.coordination.backends.settings import ZOOKEEPER
from storaged.coordination.backends.settings import Settings
from storaged.coordination.backends.settings import check_url
from storaged.coordination.backends.settings import kind_of
from storaged.coordination.backends.settings import mask_url
from storaged.coordination.backends.settings import settings_from_conf
from storaged.coordination.backends.settings import validate_conf
from storaged.coordination.backends.zookeeper import ZK_LOCK_PATH
from storaged.coordination.backends.zookeeper import ZooKeeperLocks

__all__ = [
    "ETCD",
    "ETCD_LOCK_PREFIX",
    "FILE",
    "FILE_LOCK_DIR",
    "REDIS",
    "REDIS_FENCE_KEY",
    "REDIS_LOCK_PREFIX",
    "REFUSED",
    "RESERVED_PARAMS",
    "SCHEMES",
    "ZK_LOCK_PATH",
    "ZOOKEEPER",
    "EtcdLocks",
    "FileLocks",
    "Held",
    "LockBackend",
    "RedisLocks",
    "Settings",
    "ZooKeeperLocks",
    "check_url",
    "errno_text",
    "kind_of",
    "make_lock_backend",
    "mask_url",
    "prepare_driver",
    "settings_from_conf",
    "unavailable_types",
    "validate_conf",
]

_LOCK_BACKENDS: Final[dict[str, type[LockBackend]]] = {
    FILE: FileLocks,
    REDIS: RedisLocks,
    ETCD: EtcdLocks,
    ZOOKEEPER: ZooKeeperLocks,
}


def make_lock_backend(
    driver: Any, settings: Settings, member_id: str, on_lost: Callable[[str], None]
) -> LockBackend:
    """Build and start the lock back end matching ``settings.kind``."""
    backend = _LOCK_BACKENDS[settings.kind](driver, settings, member_id, on_lost)
    backend.start()
    return backend
