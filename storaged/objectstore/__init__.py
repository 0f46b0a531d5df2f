"""The object store: object data on one or more back ends.

Typical use, with a parsed configuration::

    backends = load_backends(conf)          # checks, builds each driver once
    store = backends.default
    result = store.add(object_id, stream, size)
    chunks, length = store.get(result.location, verify=True)

A back end is a driver (``file``, ``http``) with its own section named after
its id; see ``docs/objectstore.rst`` for configuration and guarantees.
"""

from __future__ import annotations

from storaged.objectstore.backend import Backends
from storaged.objectstore.backend import BackendSpec
from storaged.objectstore.backend import load_backends
from storaged.objectstore.backend import validate_conf
from storaged.objectstore.capabilities import Capability
from storaged.objectstore.capabilities import require
from storaged.objectstore.driver import AddResult
from storaged.objectstore.driver import ChunkIterator
from storaged.objectstore.driver import Driver
from storaged.objectstore.driver import InvalidRange
from storaged.objectstore.driver import ScrubFinding
from storaged.objectstore.driver import ScrubReport
from storaged.objectstore.driver import SizeMismatch
from storaged.objectstore.hashing import ALLOWED_ALGORITHMS
from storaged.objectstore.hashing import DEFAULT_ALGORITHM
from storaged.objectstore.names import MAX_ID_LENGTH
from storaged.objectstore.names import validate_object_id

__all__ = [
    "ALLOWED_ALGORITHMS",
    "DEFAULT_ALGORITHM",
    "MAX_ID_LENGTH",
    "AddResult",
    "BackendSpec",
    "Backends",
    "Capability",
    "ChunkIterator",
    "Driver",
    "InvalidRange",
    "ScrubFinding",
    "ScrubReport",
    "SizeMismatch",
    "load_backends",
    "require",
    "validate_conf",
    "validate_object_id",
]
