"""What the container broker returns: rows, infos and stats.

:class:`ObjectRow` is one object (or tombstone) of a container,
:class:`Garbage` an entry of object data no row refers to any more,
:class:`ContainerInfo` a container's state for callers (secrets masked when
shown) and :class:`ContainerStats` the figures the account index keeps.
:class:`TimestampConflict` is the error of a container PUT or DELETE that
lost to a newer one.
"""

from __future__ import annotations

from collections.abc import Mapping
import dataclasses
import json
from typing import Any
from typing import Final

from storaged import exception
from storaged.catalog.metadata import MASK
from storaged.catalog.metadata import SECRET_KEYS
from storaged.catalog.metadata import SYNC_KEY_KEY
from storaged.catalog.metadata import SYNC_TO_KEY
from storaged.catalog.timestamp import Timestamp

#: The columns :meth:`ObjectRow.from_row` reads, in its order.
SELECT_OBJECTS: Final = (
    "SELECT ROWID, name, created_at, size, content_type, etag, deleted, backend, "
    "location, metadata FROM objects"
)


class TimestampConflict(exception.CatalogError):
    """A container PUT or DELETE lost to a newer DELETE or PUT (Swift: 409)."""

    msg_fmt = (
        "Container %(account)s/%(container)s: %(operation)s at %(timestamp)s "
        "lost to a newer change"
    )


@dataclasses.dataclass(frozen=True)
class ObjectRow:
    """One object of a container as the catalog records it.

    A tombstone (``deleted``) keeps only the name and ``created_at`` (the
    delete's timestamp); its other fields are empty.

    :ivar row_id: the change's place in the change log; a later change of
        the same name gets a larger one.
    :ivar created_at: the timestamp of the write (PUT, POST or DELETE) that
        made this row: what last-writer-wins compares and what container
        sync sends as ``X-Timestamp``.
    :ivar backend: id of the object store back end holding the data.
    :ivar location: where the back end keeps the data.
    :ivar metadata: the object's headers (``X-Object-Meta-*``,
        ``Content-Disposition`` ...), canonical case.
    """

    row_id: int
    name: str
    created_at: Timestamp
    size: int
    content_type: str
    etag: str
    deleted: bool
    backend: str
    location: str
    metadata: Mapping[str, str]

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> ObjectRow:
        """Build from a row of :data:`SELECT_OBJECTS`."""
        return cls(
            row_id=int(row[0]),
            name=row[1],
            created_at=Timestamp(row[2]),
            size=int(row[3]),
            content_type=row[4],
            etag=row[5],
            deleted=bool(row[6]),
            backend=row[7],
            location=row[8],
            metadata=json.loads(row[9]),
        )


@dataclasses.dataclass(frozen=True, repr=False)
class Garbage:
    """Object data that no row of the container refers to any more.

    Recorded when a newer PUT or a DELETE replaced the row that pointed at
    it; to be deleted from its back end, then forgotten
    (:meth:`ContainerBroker.collect_garbage`).  ``repr`` leaves the
    location out: it may hold credentials.

    :ivar garbage_id: the entry's id, never given twice in a database.
    :ivar backend: id of the object store back end holding the data.
    :ivar location: where that back end keeps it.
    :ivar added_at: when the entry was written (seconds since the epoch).
    """

    garbage_id: int
    backend: str
    location: str
    added_at: float

    def __repr__(self) -> str:
        return (
            f"Garbage(garbage_id={self.garbage_id}, backend={self.backend!r}, "
            f"added_at={self.added_at!r})"
        )


@dataclasses.dataclass(frozen=True, repr=False)
class ContainerInfo:
    """A container's state, as :meth:`ContainerBroker.info` reads it.

    Secrets: ``metadata`` holds the sync key (and temp URL keys) in clear,
    because the sync daemon needs it.  To show or log an info, use
    ``repr(info)``, :meth:`masked_metadata` or :meth:`as_dict`, which mask
    every key in :data:`SECRET_KEYS`.

    :ivar created_at: when this database was made.
    :ivar status_changed_at: when the container last went from live to
        deleted or back.
    :ivar max_row: the largest row id ever given in this database (-1 if
        none); rows up to it are the change log so far.
    :ivar metadata: live metadata, key -> value (keys deleted with an
        empty value are left out).
    :ivar metadata_timestamps: key -> timestamp of its last update, deleted
        keys included (until reclaimed).
    :ivar garbage_count: entries of object data no longer referenced, not
        yet collected (see :meth:`ContainerBroker.list_garbage`).
    """

    account: str
    container: str
    db_id: str
    created_at: Timestamp
    put_timestamp: Timestamp
    delete_timestamp: Timestamp
    status_changed_at: Timestamp
    object_count: int
    bytes_used: int
    max_row: int
    metadata: Mapping[str, str]
    metadata_timestamps: Mapping[str, Timestamp]
    garbage_count: int = 0

    @property
    def deleted(self) -> bool:
        """True when the last DELETE is newer than the last PUT."""
        return self.delete_timestamp >= self.put_timestamp

    @property
    def sync_to(self) -> str:
        """``X-Container-Sync-To``, or ``""``."""
        return self.metadata.get(SYNC_TO_KEY, "")

    @property
    def sync_key(self) -> str:
        """``X-Container-Sync-Key``, or ``""``.  A secret: never log it."""
        return self.metadata.get(SYNC_KEY_KEY, "")

    @property
    def syncing(self) -> bool:
        """True when both sync metadata are set: the sync daemon's work."""
        return bool(self.sync_to and self.sync_key)

    def masked_metadata(self) -> dict[str, str]:
        """The metadata with every secret value replaced by :data:`MASK`."""
        return {k: (MASK if k in SECRET_KEYS else v) for k, v in self.metadata.items()}

    def as_dict(self, mask_secrets: bool = True) -> dict[str, Any]:
        """A JSON-ready dict (timestamps in internal form)."""
        return {
            "account": self.account,
            "container": self.container,
            "db_id": self.db_id,
            "created_at": self.created_at.internal,
            "put_timestamp": self.put_timestamp.internal,
            "delete_timestamp": self.delete_timestamp.internal,
            "status_changed_at": self.status_changed_at.internal,
            "object_count": self.object_count,
            "bytes_used": self.bytes_used,
            "max_row": self.max_row,
            "garbage_count": self.garbage_count,
            "deleted": self.deleted,
            "metadata": self.masked_metadata() if mask_secrets else dict(self.metadata),
        }

    def __repr__(self) -> str:
        return (
            f"ContainerInfo(account={self.account!r}, container={self.container!r}, "
            f"object_count={self.object_count}, bytes_used={self.bytes_used}, "
            f"put_timestamp={self.put_timestamp.internal}, "
            f"delete_timestamp={self.delete_timestamp.internal}, "
            f"max_row={self.max_row}, metadata={self.masked_metadata()!r})"
        )


@dataclasses.dataclass(frozen=True)
class ContainerStats:
    """What the account index keeps of a container (no secrets).

    ``garbage`` counts the entries of unreferenced object data.
    """

    account: str
    container: str
    db_id: str
    db_created_at: Timestamp
    version: int
    put_timestamp: Timestamp
    delete_timestamp: Timestamp
    status_changed_at: Timestamp
    object_count: int
    bytes_used: int
    deleted: bool
    sync: bool
    garbage: int = 0

