"""The one exception hierarchy of storaged.

Every error storaged raises on purpose is a :class:`StoragedError`.  Each class
carries a ``msg_fmt`` template filled from keyword arguments; a template that
does not match its arguments raises ``KeyError`` at once (a test walks every
class), instead of being swallowed and hiding the real error.

Two markers tell the periodic loops what to do with an error:

* :class:`RetryableError`: the item failed this time and will be tried again
  on a later pass (a timeout, a lost connection, a busy lock);
* :class:`FatalError`: carrying on is pointless (bad configuration, a lost
  fencing lease); the pass stops.

Messages never contain secrets: callers pass names and locations, not keys.
"""

from __future__ import annotations

from typing import Any


class StoragedError(Exception):
    """Root of every storaged error."""

    msg_fmt: str = "An unknown error occurred"

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        self.kwargs = kwargs
        if message is None:
            message = self.msg_fmt % kwargs if kwargs else self.msg_fmt
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        return self.message


class RetryableError(StoragedError):
    """Marker: the operation may succeed if tried again later."""

    msg_fmt = "Temporary failure: %(reason)s"


class InsufficientStorage(StoragedError):
    """Marker: no room left to record a write (object data or catalog).

    A client can do something about it (delete objects) and so can the
    operator (add disks): the API answers 507, as Swift does, and daemons
    retry on a later pass.
    """

    msg_fmt = "No space left: %(reason)s"


class FatalError(StoragedError):
    """Marker: the current pass (or the daemon) cannot go on."""

    msg_fmt = "Fatal error: %(reason)s"


# -- configuration ---------------------------------------------------------


class ConfigError(FatalError):
    """A configuration file or value is wrong.

    ``location`` is the file (or ``command line``), ``group`` and ``option``
    may be empty when the problem is with the file as a whole.
    """

    msg_fmt = "%(location)s: %(where)s%(problem)s"

    def __init__(
        self,
        problem: str,
        location: str = "",
        group: str | None = None,
        option: str | None = None,
    ) -> None:
        where = ""
        if group or option:
            where = "[%s] %s: " % (group or "DEFAULT", option or "")
            if not option:
                where = "[%s]: " % (group or "DEFAULT")
        self.problem = problem
        self.location = location or "configuration"
        self.group = group
        self.option = option
        super().__init__(
            location=self.location, where=where, problem=problem
        )


class InvalidName(StoragedError):
    """A name or key failed validation before being used."""

    msg_fmt = "Invalid %(kind)s: %(reason)s"


class MetadataTooLarge(InvalidName):
    """User metadata, as it would be stored, is over its count or size limit.

    Raised with ``limit`` (``"count"`` or ``"size"``) and ``maximum`` (the
    limit's value), so that the object API can answer with Swift's text.
    """

    @property
    def limit(self) -> str:
        """``"count"`` (too many items) or ``"size"`` (too many bytes)."""
        return str(self.kwargs.get("limit", ""))

    @property
    def maximum(self) -> int:
        """The limit that was exceeded."""
        return int(self.kwargs.get("maximum", 0))


class UsageError(StoragedError):
    """A command line argument is not of the expected form."""

    msg_fmt = "%(reason)s"


# -- state store (KVS) -----------------------------------------------------


class KVSError(StoragedError):
    """Base class of state store errors."""

    msg_fmt = "State store error: %(reason)s"


class KVSNotFound(KVSError):
    """The key does not exist (or has expired)."""

    msg_fmt = "Key not found: %(key)s"


class KVSConflict(KVSError):
    """A compare-and-set found another version than the one expected."""

    msg_fmt = "Version conflict on %(key)s: expected %(expected)s, found %(found)s"


class KVSBackendError(KVSError, RetryableError):
    """The back end (database file, Redis server) failed or is unreachable."""

    msg_fmt = "State store back end %(backend)s failed: %(reason)s"


class LockTimeout(KVSError, RetryableError):
    """A lease could not be acquired within the time allowed."""

    msg_fmt = "Could not lock %(name)s within %(timeout).1fs"


class LeaseLost(KVSError, FatalError):
    """A write was attempted under a lease that expired or was taken over.

    This is the fencing rejection: the holder must stop acting under the lease.
    """

    msg_fmt = "Lease on %(name)s (token %(token)s) is no longer held: %(reason)s"


# -- object store ----------------------------------------------------------


class StoreError(StoragedError):
    """Base class of object store errors."""

    msg_fmt = "Object store error: %(reason)s"


class UnknownBackend(StoreError):
    """No back end with that id is enabled."""

    msg_fmt = "Unknown back end %(backend)s"


class StoreCapabilityError(StoreError):
    """The back end cannot do what was asked (e.g. write to a read-only one)."""

    msg_fmt = "Back end %(backend)s cannot %(operation)s"


class InvalidLocation(StoreError):
    """A location does not belong to the back end, or escapes its data dirs."""

    msg_fmt = "Invalid location for back end %(backend)s: %(reason)s"


class ObjectNotFound(StoreError):
    """No object data at that location (or no object by that name)."""

    msg_fmt = "Object not found: %(what)s"


class ObjectExists(StoreError):
    """An add found an object already stored under the same id."""

    msg_fmt = "Object already exists: %(what)s"


class CorruptObject(StoreError):
    """The data read does not match its recorded digest or size."""

    msg_fmt = "Object %(what)s is corrupt: %(reason)s"


class StorageFull(StoreError, InsufficientStorage, RetryableError):
    """No space left on the back end (ENOSPC, EDQUOT, or below its reserve)."""

    msg_fmt = "No space left on back end %(backend)s: %(reason)s"


class UnsupportedHashAlgorithm(StoreError):
    """The hashing algorithm asked for is not one storaged accepts."""

    msg_fmt = "Unsupported hashing algorithm %(algo)s (use one of: %(allowed)s)"


class InvalidMetadata(StoreError):
    """A driver returned metadata that is not dicts, lists and strings."""

    msg_fmt = "Back end %(backend)s returned invalid metadata: %(reason)s"


class BackendUnavailable(StoreError, RetryableError):
    """The back end did not answer, or answered with a server error."""

    msg_fmt = "Back end %(backend)s unavailable: %(reason)s"


# -- container catalog -----------------------------------------------------


class CatalogError(StoragedError):
    """Base class of container catalog errors."""

    msg_fmt = "Catalog error: %(reason)s"


class AccountNotFound(CatalogError):
    """No such account."""

    msg_fmt = "Account not found: %(account)s"


class ContainerNotFound(CatalogError):
    """No such container (or it was deleted)."""

    msg_fmt = "Container not found: %(account)s/%(container)s"


class ContainerNotEmpty(CatalogError):
    """A container that still lists objects cannot be deleted."""

    msg_fmt = "Container %(account)s/%(container)s is not empty"


class CatalogCorrupt(CatalogError):
    """A catalog database failed its integrity check and was quarantined."""

    msg_fmt = (
        "Catalog database %(path)s is corrupt and was quarantined to %(quarantine)s"
    )


class CatalogFull(CatalogError, InsufficientStorage, RetryableError):
    """No room to record a change in the catalog (disk full, or below its reserve)."""

    msg_fmt = "No space left for catalog %(path)s: %(reason)s"


class CatalogBusy(CatalogError, RetryableError):
    """The catalog database stayed locked by another writer too long."""

    msg_fmt = "Catalog database %(path)s is busy: %(reason)s"
