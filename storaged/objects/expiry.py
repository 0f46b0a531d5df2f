"""Object expiry: the ``X-Delete-At`` an object keeps, and the queue of expiries.

An object that expires keeps its time in its metadata, under
:data:`DELETE_AT` (integer seconds, ten digits, as Swift writes it).  From
that second on it is gone for every reader, whether or not it was reaped:
:class:`ExpiringObjects` answers :class:`~storaged.exception.ObjectNotFound`
for it.  Its row stays in the catalog (and in container listings, as in
Swift) until ``storaged-expirer`` deletes it.

The queue of pending expiries
    The expirer must find what is due without scanning every container.
    Like Swift's ``.expiring_objects`` account, the queue is a catalog of
    its own: :class:`ExpiryQueue` keeps it in the directory ``expirer``
    inside the catalog's (one more set of container databases, the same
    storage kind, shared by whatever shares the catalog).  The API serves
    only the main catalog, so no client request can reach the queue.

    One account, :data:`QUEUE_ACCOUNT`; one container per hour of expiry
    times (its name: the hour's first second, ten digits); one entry per
    ``(delete-at, account, container, object)``, named
    ``<delete-at>-<account>/<container>/<object>``.  Names sort by time, so
    a pass lists the containers whose hour has begun and reads each up to
    the first entry not yet due.  For example an object ``AUTH_a/c/o`` given
    ``X-Delete-At: 1700003700`` gets the entry
    ``1700003700-AUTH_a/c/o`` in the container ``1700002800``.

Crash safety
    Every write of an object that expires adds its entry *first*, then
    writes the object: a crash between the two leaves an entry without its
    object (found stale and dropped when due), never an expiring object
    that no entry names.

Stale entries
    Entries are never removed when an object is overwritten, given another
    expiry or none: when an entry is due, the expirer looks at the object
    and deletes it only if it still has the entry's ``X-Delete-At`` (as
    Swift's ``X-If-Delete-At``), with a tombstone at the expiry's own
    timestamp, so a write made after the expiry always wins and container
    sync carries the delete like any other.  Otherwise the entry is stale
    and is dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Mapping
import dataclasses
import logging
import time
from typing import Final

from storaged import exception
from storaged.catalog import Timestamp
from storaged.catalog.interface import CatalogAPI
from storaged.objects.repository import ObjectInfo
from storaged.objects.repository import ObjectRepository
from storaged.objects.repository import PutResult
from storaged.objectstore.driver import Source

LOG = logging.getLogger(__name__)

#: The metadata key (and header) of an object's expiry time.
DELETE_AT: Final = "X-Delete-At"
#: The largest expiry time (Swift's: ten digits).
MAX_DELETE_AT: Final = 9999999999
#: The queue's directory, inside the catalog's.
QUEUE_DIR: Final = "expirer"
#: The queue catalog's one account.
QUEUE_ACCOUNT: Final = "expiring_objects"
#: Seconds of expiry times per queue container.
BUCKET_SECONDS: Final = 3600
_ENTRY_TYPE: Final = "application/x-storaged-expiry"
_EMPTY_MD5: Final = "d41d8cd98f00b204e9800998ecf8427e"


def normalize_delete_at(value: float) -> int:
    """Clamp an expiry time to what Swift keeps: 0 to :data:`MAX_DELETE_AT`."""
    return int(min(max(0.0, float(value)), MAX_DELETE_AT))


def format_delete_at(value: int) -> str:
    """Return an expiry time as Swift writes it (ten digits)."""
    return "%010d" % value


def delete_at_of(metadata: Mapping[str, str]) -> int | None:
    """Return an object's expiry time, or None when it has none."""
    value = metadata.get(DELETE_AT)
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def is_expired(metadata: Mapping[str, str], now: float | None = None) -> bool:
    """Tell whether an object with this metadata has expired (at ``now``)."""
    delete_at = delete_at_of(metadata)
    if delete_at is None:
        return False
    return delete_at <= (time.time() if now is None else now)


@dataclasses.dataclass(frozen=True)
class Entry:
    """One pending expiry: an object and the time it expires."""

    delete_at: int
    account: str
    container: str
    obj: str

    @property
    def name(self) -> str:
        """The entry's name in the queue."""
        return "%s-%s/%s/%s" % (format_delete_at(self.delete_at), self.account,
                                self.container, self.obj)

    @property
    def bucket(self) -> str:
        """The queue container the entry is kept in."""
        return format_delete_at(self.delete_at - self.delete_at % BUCKET_SECONDS)

    @property
    def path(self) -> str:
        """``account/container/object``, for logs."""
        return "%s/%s/%s" % (self.account, self.container, self.obj)

    @classmethod
    def parse(cls, name: str) -> Entry | None:
        """Read an entry's name; None for one that is not an entry's."""
        stamp, sep, rest = name.partition("-")
        parts = rest.split("/", 2)
        if not sep or len(parts) != 3 or not all(parts) or not stamp.isdigit():
            return None
        return cls(int(stamp), parts[0], parts[1], parts[2])


class ExpiryQueue:
    """The pending expiries, in a catalog of their own (see the module).

    :param catalog: the queue's catalog (not the objects').
    """

    def __init__(self, catalog: CatalogAPI) -> None:
        self.catalog = catalog

    @classmethod
    def beside(cls, objects: CatalogAPI) -> ExpiryQueue:
        """Open the queue kept inside the objects' catalog directory."""
        limits = dataclasses.replace(
            objects.limits,
            # An entry's name holds an account, a container and an object.
            max_object_name_length=(
                objects.limits.max_object_name_length
                + objects.limits.max_account_name_length
                + objects.limits.max_container_name_length + 16
            ),
        )
        return cls(objects.sibling(QUEUE_DIR, limits=limits))

    def close(self) -> None:
        """Close the queue's catalog."""
        self.catalog.close()

    def add(self, entry: Entry) -> None:
        """Record a pending expiry (idempotent)."""
        ts = Timestamp.now()
        with self.catalog.broker(QUEUE_ACCOUNT, entry.bucket) as broker:
            if not broker.exists():
                broker.create(put_timestamp=ts)
            broker.put_object(entry.name, ts, 0, _ENTRY_TYPE, _EMPTY_MD5)

    def remove(self, entry: Entry) -> None:
        """Drop an entry once handled."""
        with self.catalog.broker(QUEUE_ACCOUNT, entry.bucket) as broker:
            try:
                broker.delete_object(entry.name, Timestamp.now())
            except exception.ContainerNotFound:
                pass

    def buckets(self, now: float) -> list[str]:
        """Return the queue containers whose hour has begun, oldest first."""
        found: list[str] = []
        marker = ""
        while True:
            page = self.catalog.list_containers(QUEUE_ACCOUNT, marker=marker,
                                                limit=1000)
            for item in page:
                name = getattr(item, "name", "")
                if not name.isdigit() or int(name) > now:
                    return found
                found.append(name)
            if len(page) < 1000:
                return found
            marker = getattr(page[-1], "name", "")

    def due(self, bucket: str, now: float, batch: int = 1000) -> Iterator[Entry]:
        """Yield a queue container's entries due at ``now``, oldest first.

        Reads ``batch`` names at a time (:meth:`due_page`).
        """
        marker = ""
        while True:
            page, marker = self.due_page(bucket, now, marker, batch)
            yield from page
            if not marker:
                return

    def due_page(
        self, bucket: str, now: float, marker: str = "", limit: int = 1000
    ) -> tuple[list[Entry], str]:
        """Return up to ``limit`` entries due at ``now`` after ``marker``.

        :returns: the entries, and the marker of the next page ("" when
            there is none: the container is read up to its first entry not
            yet due).  Entries removed meanwhile may show (handling one
            twice is harmless).
        """
        with self.catalog.broker(QUEUE_ACCOUNT, bucket) as broker:
            try:
                rows = broker.list_objects(limit=limit, marker=marker)
            except exception.ContainerNotFound:
                return [], ""
        entries: list[Entry] = []
        for row in rows:
            name = getattr(row, "name", "")
            entry = Entry.parse(name)
            if entry is None:
                LOG.warning("Expiry queue: %s/%s is not an entry, ignored",
                            bucket, name)
                continue
            if entry.delete_at > now:
                return entries, ""
            entries.append(entry)
        if len(rows) < limit:
            return entries, ""
        return entries, getattr(rows[-1], "name", "")

    def reclaim(self) -> None:
        """Forget the queue's old tombstones and its deleted containers.

        They only stop an older write of the same entry: one coming back
        later is found stale and dropped again, so an hour is kept.
        """
        self.catalog.reclaim(age=BUCKET_SECONDS)

    def drop_if_empty(self, bucket: str, now: float) -> bool:
        """Delete a queue container whose hour is over and that is empty."""
        if int(bucket) + BUCKET_SECONDS > now:
            return False
        with self.catalog.broker(QUEUE_ACCOUNT, bucket) as broker:
            try:
                broker.delete()
            except (exception.ContainerNotEmpty, exception.ContainerNotFound):
                return False
            except exception.StoragedError as err:
                LOG.debug("Expiry queue container %s kept: %s", bucket, err)
                return False
        return True


class ExpiringObjects(ObjectRepository):
    """The object service, with expiry: what clients see through the API.

    * an object past its ``X-Delete-At`` is not found by
      :meth:`head_object`, :meth:`get_object` nor
      :meth:`update_object_metadata`, though its row is still there;
    * a write of an object that expires records its queue entry first.

    :param queue: the queue of pending expiries.
    """

    def __init__(
        self, objects: ObjectRepository, queue: ExpiryQueue
    ) -> None:
        super().__init__(objects.catalog, objects.backends, objects.cache)
        self.queue = queue

    @classmethod
    def over(cls, objects: ObjectRepository) -> ExpiringObjects:
        """Give an object service expiry (itself when it has it already)."""
        if isinstance(objects, ExpiringObjects):
            return objects
        return cls(objects, ExpiryQueue.beside(objects.catalog))

    def close(self) -> None:
        """Close the queue and the object service's parts."""
        try:
            self.queue.close()
        finally:
            super().close()

    def _enqueue(
        self, account: str, container: str, name: str,
        metadata: Mapping[str, str] | None,
    ) -> None:
        delete_at = delete_at_of(metadata or {})
        if delete_at is not None:
            self.queue.add(Entry(delete_at, account, container, name))

    def put_object(
        self,
        account: str,
        container: str,
        name: str,
        source: Source,
        size: int | None = None,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        timestamp: Timestamp | None = None,
        etag: str | None = None,
        backend: str | None = None,
    ) -> PutResult:
        """Store an object, its expiry's entry first (see the module)."""
        self._enqueue(account, container, name, metadata)
        return super().put_object(
            account, container, name, source, size, content_type=content_type,
            metadata=metadata, timestamp=timestamp, etag=etag, backend=backend,
        )

    def update_object_metadata(
        self,
        account: str,
        container: str,
        name: str,
        timestamp: Timestamp,
        metadata: Mapping[str, str],
        content_type: str | None = None,
    ) -> bool | None:
        """Replace an object's metadata; None for an expired object too."""
        try:
            self.head_object(account, container, name)
        except exception.ObjectNotFound:
            return None
        self._enqueue(account, container, name, metadata)
        return super().update_object_metadata(
            account, container, name, timestamp, metadata, content_type
        )

    def head_any(self, account: str, container: str, name: str) -> ObjectInfo:
        """Return an object's info, expired or not."""
        return super().head_object(account, container, name)

    def head_object(self, account: str, container: str, name: str) -> ObjectInfo:
        """Return a live, unexpired object's info."""
        info = super().head_object(account, container, name)
        if is_expired(info.metadata):
            raise exception.ObjectNotFound(what="%s/%s/%s" % (account, container, name))
        return info

    def get_object(
        self,
        account: str,
        container: str,
        name: str,
        *,
        offset: int = 0,
        length: int | None = None,
        verify: bool = False,
        chunk_size: int | None = None,
    ) -> tuple[ObjectInfo, Iterator[bytes], int]:
        """Open a live, unexpired object."""
        info, chunks, n = super().get_object(
            account, container, name, offset=offset, length=length,
            verify=verify, chunk_size=chunk_size,
        )
        if is_expired(info.metadata):
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
            raise exception.ObjectNotFound(what="%s/%s/%s" % (account, container, name))
        return info, chunks, n
