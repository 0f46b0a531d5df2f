"""What a back end can do, declared as flags and checked by callers.

Every driver class declares ``CAPABILITIES``; callers ask before they act::

    require(driver, Capability.WRITE)          # raises StoreCapabilityError
    if driver.capabilities & Capability.VERIFY_READ:
        ...

The public operations of :class:`storaged.objectstore.driver.Driver` check
the flags themselves, so a read-only back end refuses ``add`` with a clear
error instead of failing somewhere inside the driver.
"""

from __future__ import annotations

import enum
from typing import Protocol

from storaged import exception


class Capability(enum.Flag):
    """Flags a driver sets in its ``CAPABILITIES``."""

    NONE = 0
    #: ``get`` and ``get_size`` work.
    READ = enum.auto()
    #: ``add`` works.
    WRITE = enum.auto()
    #: ``delete`` works.
    DELETE = enum.auto()
    #: ``get`` honours ``offset`` and ``length``.
    RANGE_READ = enum.auto()
    #: one driver instance serves every call: it is created once, at load.
    REUSABLE = enum.auto()
    #: the instance may be used from several threads or green threads at once.
    THREAD_SAFE = enum.auto()
    #: ``get(verify=True)`` checks the recorded digest and raises
    #: :class:`~storaged.exception.CorruptObject` on a mismatch.
    VERIFY_READ = enum.auto()
    #: ``scrub`` walks the back end and reports corrupt and orphaned data.
    SCRUB = enum.auto()
    #: an acknowledged ``add`` survives a crash or power loss.
    DURABLE_WRITE = enum.auto()

    READ_WRITE = READ | WRITE | DELETE


#: how each flag reads in an error message ("back end X cannot ...").
_OPERATION = {
    Capability.READ: "read objects",
    Capability.WRITE: "add objects (it is read-only)",
    Capability.DELETE: "delete objects",
    Capability.RANGE_READ: "read a range of an object",
    Capability.REUSABLE: "be reused between calls",
    Capability.THREAD_SAFE: "be shared between threads",
    Capability.VERIFY_READ: "verify what it reads",
    Capability.SCRUB: "scrub its data",
    Capability.DURABLE_WRITE: "write durably",
}


class HasCapabilities(Protocol):
    """Anything with a back end id and capabilities (a driver)."""

    @property
    def backend_id(self) -> str: ...

    @property
    def capabilities(self) -> Capability: ...


def describe(capability: Capability) -> str:
    """Return the operation a capability allows, for error messages."""
    missing = [
        _OPERATION.get(flag, str(flag.name).lower())
        for flag in Capability
        if flag and flag in capability and flag in _OPERATION
    ]
    return " and ".join(missing) or "do nothing"


def require(driver: HasCapabilities, capability: Capability) -> None:
    """Raise unless ``driver`` has every flag of ``capability``.

    :raises storaged.exception.StoreCapabilityError: naming the back end and
        the first missing operation.
    """
    # Plain integers: flag arithmetic on enum members costs microseconds,
    # and this runs on every call of every operation.
    if capability.value & ~driver.capabilities.value:
        missing = capability & ~driver.capabilities
        raise exception.StoreCapabilityError(
            backend=driver.backend_id, operation=describe(missing)
        )
