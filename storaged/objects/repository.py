"""Objects in containers: data in the object store, rows in the catalog.

:class:`ObjectRepository` is the one place that writes both, in an order that
keeps them consistent through a crash at any point:

PUT ``account/container/name``
    1. names checked (before any I/O), container must exist;
    2. data added to a back end under a fresh id (``add`` is atomic and
       durable: temp file, fsync, rename), sha256 recorded, md5 computed in
       the same pass for the Swift ETag;
    3. the catalog row written (last writer wins by timestamp); the row it
       replaced, if any, is recorded as garbage in the same transaction;
    4. garbage collected: data no longer referenced is deleted.

    A write that loses to a newer one (an older ``X-Timestamp``) deletes its
    own data and reports ``applied=False`` (Swift answers 202).  A crash
    between 2 and 3 leaves data no row refers to (found by reconciliation);
    never a row that refers to missing or partial data.

DELETE
    a tombstone row first (so sync propagates it), then the data.

Free space: writes that add (PUT, container PUT, POST) are refused with
:class:`~storaged.exception.InsufficientStorage` when the catalog's
filesystem is below its reserve (``[catalog] fallocate_reserve``) and a
``file`` back end's data directories below theirs; deletes never are, so
a disk that clients filled can be emptied again through the API.

Reads resolve the row, then stream from its back end, verifying the digest
when asked; reads of a back end with ``cache = true`` go through the object
cache (:mod:`storaged.cache`).

Container brokers are lent by the catalog's per-process pool
(:meth:`Catalog.broker <storaged.catalog.Catalog.broker>`) and returned at
the end of each call: a process holds a bounded number of databases open
however many requests it serves.

Every call is synchronous; callers in green threads use
:func:`storaged.concurrency.run_blocking`.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Mapping
import dataclasses
import hashlib
import logging
import mimetypes
import secrets
from typing import Any

from oslo_config import cfg

from storaged import exception
from storaged import objectstore
from storaged.cache.engine import ObjectCache
from storaged.catalog import ContainerInfo
from storaged.catalog import ObjectRow
from storaged.catalog import Timestamp
from storaged.catalog import validate_account
from storaged.catalog import validate_container
from storaged.catalog import validate_object
from storaged.catalog.factory import open_catalog
from storaged.catalog.interface import CatalogAPI
from storaged.catalog.interface import ContainerBrokerAPI
from storaged.objectstore import Backends
from storaged.objectstore.driver import Source

LOG = logging.getLogger(__name__)

DEFAULT_CONTENT_TYPE = "application/octet-stream"


class EtagMismatch(exception.StoreError):
    """The data received does not match the ETag the client sent."""

    msg_fmt = "ETag mismatch for %(what)s: client sent %(expected)s, data is %(actual)s"


@dataclasses.dataclass(frozen=True)
class ObjectInfo:
    """An object as the catalog records it (no secrets, no location)."""

    account: str
    container: str
    name: str
    size: int
    etag: str
    content_type: str
    timestamp: Timestamp
    metadata: Mapping[str, str]
    backend: str

    @classmethod
    def from_row(cls, account: str, container: str, row: ObjectRow) -> ObjectInfo:
        """Build from a catalog row."""
        return cls(
            account, container, row.name, row.size, row.etag, row.content_type,
            row.created_at, dict(row.metadata), row.backend,
        )

    def as_dict(self) -> dict[str, Any]:
        """Return plain data for ``--format json`` and the API."""
        return {
            "account": self.account,
            "container": self.container,
            "name": self.name,
            "bytes": self.size,
            "hash": self.etag,
            "content_type": self.content_type,
            "timestamp": self.timestamp.normal,
            "last_modified": self.timestamp.isoformat,
            "metadata": dict(self.metadata),
            "backend": self.backend,
        }


@dataclasses.dataclass(frozen=True)
class PutResult:
    """What a PUT did: ``applied`` False when a newer write already won."""

    applied: bool
    info: ObjectInfo


def store_object_id(account: str, container: str, name: str, ts: Timestamp) -> str:
    """Return a fresh object store id for one write of one object.

    The id is derived from the full name (so an operator can tell which
    object data belongs to) plus the write's timestamp and a random part, so
    two writes never share an id.
    """
    digest = hashlib.sha256(
        ("%s/%s/%s" % (account, container, name)).encode("utf-8")
    ).hexdigest()[:32]
    return "%s-%s-%s" % (digest, ts.internal.replace(".", "_"), secrets.token_hex(4))


class ObjectRepository:
    """Containers and objects over a :class:`Catalog` and :class:`Backends`.

    :param catalog: the container catalog.
    :param backends: the object store back ends.
    :param cache: the object cache reads of cached back ends go through.
    """

    def __init__(
        self, catalog: CatalogAPI, backends: Backends, cache: ObjectCache | None = None
    ) -> None:
        self.catalog = catalog
        self.backends = backends
        self.cache = cache

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts) -> ObjectRepository:
        """Build the catalog, the back ends and the cache from a configuration."""
        backends = objectstore.load_backends(conf)
        return cls(
            open_catalog(conf), backends, ObjectCache.for_backends(conf, backends)
        )

    def close(self) -> None:
        """Release the catalog, the back ends and the cache."""
        self.catalog.close()
        self.backends.close()
        if self.cache is not None:
            self.cache.close()

    # -- accounts ------------------------------------------------------------

    def account_metadata(self, account: str) -> dict[str, str]:
        """Return an account's metadata (empty for an account that has none)."""
        with self.catalog.account(account) as broker:
            try:
                return dict(broker.info().metadata)
            except exception.AccountNotFound:
                return {}

    def update_account_metadata(
        self,
        account: str,
        updates: Mapping[str, str],
        timestamp: Timestamp | None = None,
    ) -> bool:
        """Set (or, with an empty value, remove) account metadata.

        Accounts exist implicitly: the first update makes the account's
        database.

        :returns: whether anything changed.
        :raises storaged.exception.InvalidName: bad metadata, or over the
            limits once merged (:class:`~storaged.exception.MetadataTooLarge`).
        :raises storaged.exception.CatalogFull: below the catalog's reserve.
        """
        self.catalog.require_space()
        with self.catalog.account(account) as broker:
            return broker.update_metadata(dict(updates), timestamp)

    # -- containers ----------------------------------------------------------

    def create_container(
        self,
        account: str,
        container: str,
        metadata: Mapping[str, str] | None = None,
        timestamp: Timestamp | None = None,
    ) -> bool:
        """Create a container (or update it); True if it was created.

        :raises storaged.exception.CatalogFull: below the catalog's reserve
            (whether the container exists or not, as Swift answers 507).
        """
        with self.catalog.broker(account, container) as broker:
            self.catalog.require_space()
            return broker.create(
                put_timestamp=timestamp, metadata=dict(metadata or {})
            )

    def delete_container(
        self, account: str, container: str, timestamp: Timestamp | None = None
    ) -> None:
        """Delete an empty container.

        :raises storaged.exception.ContainerNotEmpty: it still lists objects.
        :raises storaged.exception.ContainerNotFound: no such container.
        """
        with self.catalog.broker(account, container) as broker:
            if not broker.exists():
                raise exception.ContainerNotFound(
                    account=account, container=container
                )
            broker.delete(timestamp)

    def container_info(self, account: str, container: str) -> ContainerInfo:
        """Return a container's info (counts, metadata, sync settings).

        :raises storaged.exception.ContainerNotFound: no such container.
        """
        with self.catalog.broker(account, container) as broker:
            return broker.info()

    def update_container_metadata(
        self,
        account: str,
        container: str,
        updates: Mapping[str, str],
        timestamp: Timestamp | None = None,
        touch: bool = False,
    ) -> bool:
        """Set (or, with an empty value, remove) container metadata.

        :param touch: move the container's put timestamp too (a client's
            POST, see :meth:`ContainerBroker.update_metadata`).
        :raises storaged.exception.ContainerNotFound: no such container.
        :raises storaged.exception.CatalogFull: below the catalog's reserve.
        """
        with self.catalog.broker(account, container) as broker:
            if not broker.exists():
                raise exception.ContainerNotFound(
                    account=account, container=container
                )
            self.catalog.require_space()
            return broker.update_metadata(dict(updates), timestamp, touch=touch)

    def list_containers(self, account: str, **listing: Any) -> list[Any]:
        """List an account's containers (prefix, marker, limit, delimiter...)."""
        return self.catalog.list_containers(account, **listing)

    # -- objects -------------------------------------------------------------

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
        """Store an object's data and record it in its container.

        :param source: a file-like object or an iterable of bytes.
        :param size: the declared size, or None when unknown (chunked).
        :param etag: the md5 the client expects; a mismatch stores nothing.
        :param timestamp: the write's time (``X-Timestamp``); now if None.
        :param backend: back end id; the default back end if None.
        :raises storaged.exception.InvalidName: a bad name (nothing written).
        :raises storaged.exception.ContainerNotFound: no such container.
        :raises EtagMismatch: the data is not what the client sent.
        :raises storaged.exception.InsufficientStorage: below the catalog's
            or the back end's free-space reserve, or out of space.
        """
        validate_account(account)
        validate_container(container)
        name = validate_object(name)
        # The broker is not held while the data streams in (that may take
        # minutes): it goes back to the pool, and is lent again for the row.
        with self.catalog.broker(account, container) as broker:
            if not broker.exists():
                raise exception.ContainerNotFound(
                    account=account, container=container
                )
        # Before any data is written: the row must find room too.
        self.catalog.require_space()
        ts = timestamp or Timestamp.now()
        driver = (
            self.backends.default if backend is None else self.backends.get(backend)
        )
        result = driver.add(
            store_object_id(account, container, name, ts),
            source,
            size,
            checksum_algo="md5",
        )
        what = "%s/%s/%s" % (account, container, name)
        assert result.checksum is not None
        if etag is not None and etag.strip('"').lower() != result.checksum:
            self._discard(driver.backend_id, result.location)
            raise EtagMismatch(what=what, expected=etag, actual=result.checksum)
        ctype = content_type or mimetypes.guess_type(name)[0] or DEFAULT_CONTENT_TYPE
        with self.catalog.broker(account, container) as broker:
            try:
                applied = broker.put_object(
                    name, ts, result.size, ctype, result.checksum,
                    backend=driver.backend_id, location=result.location,
                    metadata=dict(metadata or {}),
                )
            except BaseException:
                self._discard(driver.backend_id, result.location)
                raise
            if not applied:
                # A newer write won: this data is referenced by nothing.
                self._discard(driver.backend_id, result.location)
            else:
                self._collect(broker)
        info = ObjectInfo(
            account, container, name, result.size, result.checksum, ctype, ts,
            dict(metadata or {}), driver.backend_id,
        )
        return PutResult(applied, info)

    def update_object_metadata(
        self,
        account: str,
        container: str,
        name: str,
        timestamp: Timestamp,
        metadata: Mapping[str, str],
        content_type: str | None = None,
    ) -> bool | None:
        """Replace an object's user metadata (Swift's object POST).

        :returns: True if applied, False if a newer write won, None if there
            is no live object by that name.
        :raises storaged.exception.CatalogFull: below the catalog's reserve.
        """
        with self.catalog.broker(account, container) as broker:
            self.catalog.require_space()
            if broker.update_object_metadata(
                name, timestamp, dict(metadata), content_type=content_type
            ):
                return True
            return False if broker.get_object(name) is not None else None

    def head_object(self, account: str, container: str, name: str) -> ObjectInfo:
        """Return an object's info.

        :raises storaged.exception.ObjectNotFound: no live object by that name.
        """
        row = self._row(account, container, name)
        return ObjectInfo.from_row(account, container, row)

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
        """Return an object's info and a stream of its data (or a range).

        :param verify: check the digest while reading (whole objects only);
            the stream raises :class:`~storaged.exception.CorruptObject`
            instead of handing out the last chunk when it does not match.
        :returns: ``(info, chunks, number of bytes the chunks hold)``.
        """
        row = self._row(account, container, name)
        driver = self.backends.get(row.backend)
        if self.cache is not None and self.cache.serves(row.backend):
            chunks, n = self.cache.read_object(
                account, container, row, driver, offset=offset, length=length,
                verify=verify, chunk_size=chunk_size,
            )
        else:
            chunks, n = driver.get(
                row.location, offset=offset, length=length, verify=verify,
                chunk_size=chunk_size,
            )
        return ObjectInfo.from_row(account, container, row), chunks, n

    def delete_object(
        self,
        account: str,
        container: str,
        name: str,
        timestamp: Timestamp | None = None,
    ) -> bool:
        """Delete an object: tombstone first, then its data.

        :returns: True if the delete was applied (False if a newer write won).
        :raises storaged.exception.ObjectNotFound: nothing live by that name
            (and no timestamp was given: a sync delete records a tombstone
            even for an object this side never had).
        """
        validate_account(account)
        validate_container(container)
        name = validate_object(name)
        with self.catalog.broker(account, container) as broker:
            if timestamp is None and broker.get_object(name) is None:
                raise exception.ObjectNotFound(
                    what="%s/%s/%s" % (account, container, name)
                )
            applied = broker.delete_object(name, timestamp or Timestamp.now())
            if applied:
                self._collect(broker)
            return applied

    def list_objects(self, account: str, container: str, **listing: Any) -> list[Any]:
        """List a container's live objects (prefix, delimiter, marker, limit...)."""
        with self.catalog.broker(account, container) as broker:
            return broker.list_objects(**listing)

    # -- internals -----------------------------------------------------------

    def _row(self, account: str, container: str, name: str) -> ObjectRow:
        validate_account(account)
        validate_container(container)
        name = validate_object(name)
        with self.catalog.broker(account, container) as broker:
            row = broker.get_object(name)
        if row is None:
            raise exception.ObjectNotFound(what="%s/%s/%s" % (account, container, name))
        return row

    def _delete_data(self, backend: str, location: str) -> None:
        try:
            self.backends.get(backend).delete(location)
        except exception.ObjectNotFound:
            pass  # already gone: what we wanted

    def _discard(self, backend: str, location: str) -> None:
        try:
            self._delete_data(backend, location)
        except exception.StoragedError as err:
            LOG.warning("Could not remove unreferenced data on %s: %s", backend, err)

    def _collect(self, broker: ContainerBrokerAPI) -> None:
        try:
            broker.collect_garbage(self._delete_data)
        except exception.StoragedError as err:
            LOG.warning("Garbage collection in %s/%s deferred: %s",
                        broker.account, broker.container, err)
