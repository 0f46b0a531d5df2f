"""Coordination between the daemons of all nodes: groups, locks, work shares.

Built on tooz, with what a production storage cluster needs on top (see
:mod:`storaged.coordination.coordinator`): heartbeats from a native thread,
locks that know when they are lost and carry fencing tokens, re-join after
an eviction, no leaked lock files, znodes or leases, fast failure and
background reconnection when the back end is down.

Example::

    from storaged import coordination

    coordinator = coordination.Coordinator.from_conf(conf, "sync", worker=0)
    coordinator.start()
    coordinator.join_group("sync", {"weight": 1})
    with coordinator.lock("container-" + name) as lock:
        ...

See ``docs/coordination.rst`` for back end choice and guarantees.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING
from typing import Any

from storaged.coordination.backends import mask_url
from storaged.coordination.backends import validate_conf
from storaged.coordination.errors import CoordinationError
from storaged.coordination.errors import CoordinationUnavailable
from storaged.coordination.errors import LockAcquireTimeout
from storaged.coordination.errors import LockLost

if TYPE_CHECKING:
    from storaged.coordination.coordinator import Coordinator
    from storaged.coordination.lock import Lock
    from storaged.coordination.lock import LockInfo
    from storaged.coordination.lock import MultiLock
    from storaged.coordination.lock import stored_name
    from storaged.coordination.lock import synchronized
    from storaged.coordination.partitioner import Partitioner

# What needs tooz is imported on first use: tooz imports futurist, which
# imports eventlet, a fifth of a second that checking a configuration
# (validate_conf, mask_url) does not need.
_LAZY = {
    "Coordinator": "storaged.coordination.coordinator",
    "Lock": "storaged.coordination.lock",
    "LockInfo": "storaged.coordination.lock",
    "MultiLock": "storaged.coordination.lock",
    "stored_name": "storaged.coordination.lock",
    "synchronized": "storaged.coordination.lock",
    "Partitioner": "storaged.coordination.partitioner",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "CoordinationError",
    "CoordinationUnavailable",
    "Coordinator",
    "Lock",
    "LockAcquireTimeout",
    "LockInfo",
    "LockLost",
    "MultiLock",
    "Partitioner",
    "mask_url",
    "stored_name",
    "synchronized",
    "validate_conf",
]
