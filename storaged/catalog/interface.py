"""What callers of the catalog use, written down as protocols.

The catalog has two drivers with the same semantics (see ``docs/catalog.rst``
and the contract suite in ``tests/unit/catalog``):

* ``sqlite`` (:class:`storaged.catalog.store.Catalog`), a database per
  container on this node's disk: the default;
* ``postgresql`` (:class:`storaged.catalog.postgresql.PostgresCatalog`),
  one set of tables shared by every node of a cluster.

:func:`storaged.catalog.factory.open_catalog` picks one from
``[catalog] backend_url``.  Code that works on "a catalog" annotates it with
:class:`CatalogAPI`, :class:`ContainerBrokerAPI` and
:class:`AccountBrokerAPI` here, never with a driver's class.  What is not
here (a broker's ``db``, the sqlite catalog's ``container_dir`` or its
account index) is a driver's own business: tests of that driver may use it,
nothing else should.

Every method does blocking I/O: callers in green threads wrap each call in
:func:`storaged.concurrency.run_blocking`.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Protocol
from typing import Self

from storaged.catalog.account import AccountRecord
from storaged.catalog.listing import Subdir
from storaged.catalog.names import Limits
from storaged.catalog.records import ContainerInfo
from storaged.catalog.records import ContainerStats
from storaged.catalog.records import Garbage
from storaged.catalog.records import ObjectRow
from storaged.catalog.store import AccountInfo
from storaged.catalog.store import ContainerListing
from storaged.catalog.store import ReclaimStats
from storaged.catalog.timestamp import TimestampLike

__all__ = ["AccountBrokerAPI", "CatalogAPI", "ContainerBrokerAPI"]


class ContainerBrokerAPI(Protocol):
    """One container: objects, metadata, change log, sync points, garbage.

    See :class:`storaged.catalog.broker.ContainerBroker` for the semantics
    of each method; both drivers keep them.
    """

    limits: Limits
    reclaim_age: float

    @property
    def account(self) -> str: ...

    @property
    def container(self) -> str: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def close(self) -> None: ...

    # -- the container
    def exists(self) -> bool: ...

    def create(
        self,
        put_timestamp: TimestampLike | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> bool: ...

    def delete(self, timestamp: TimestampLike | None = None) -> None: ...

    def info(self, include_deleted: bool = False) -> ContainerInfo: ...

    def stats(self) -> ContainerStats: ...

    def update_metadata(
        self,
        updates: Mapping[str, str],
        timestamp: TimestampLike | None = None,
        touch: bool = False,
    ) -> bool: ...

    def set_sync(
        self, sync_to: str, sync_key: str, timestamp: TimestampLike | None = None
    ) -> bool: ...

    def check(self, full: bool = False) -> None: ...

    # -- objects
    def put_object(
        self,
        name: str | bytes,
        timestamp: TimestampLike,
        size: int,
        content_type: str,
        etag: str,
        *,
        backend: str = "",
        location: str = "",
        metadata: Mapping[str, str] | None = None,
    ) -> bool: ...

    def delete_object(self, name: str | bytes, timestamp: TimestampLike) -> bool: ...

    def update_object_metadata(
        self,
        name: str | bytes,
        timestamp: TimestampLike,
        metadata: Mapping[str, str],
        content_type: str | None = None,
    ) -> bool: ...

    def get_object(
        self, name: str | bytes, include_deleted: bool = False
    ) -> ObjectRow | None: ...

    def list_objects(
        self,
        limit: int | None = None,
        marker: str = "",
        end_marker: str = "",
        prefix: str = "",
        delimiter: str = "",
        reverse: bool = False,
        path: str | None = None,
    ) -> list[ObjectRow | Subdir]: ...

    # -- the change log and sync points
    def get_max_row(self) -> int: ...

    def get_items_since(self, start_row: int, limit: int = 1000) -> list[ObjectRow]: ...

    def get_sync_points(self, worker: str) -> tuple[int, int]: ...

    def set_sync_points(
        self, worker: str, point1: int | None = None, point2: int | None = None
    ) -> None: ...

    def reset_sync_points(self, worker: str | None = None) -> None: ...

    def list_sync_points(self) -> dict[str, tuple[int, int]]: ...

    # -- unreferenced data and reclaim
    def list_garbage(self, limit: int = 100) -> list[Garbage]: ...

    def forget_garbage(self, garbage_ids: Iterable[int]) -> int: ...

    def collect_garbage(
        self, delete: Callable[[str, str], None], limit: int = 100
    ) -> tuple[int, int]: ...

    def reclaim(self, age: float | None = None, now: float | None = None) -> int: ...


class AccountBrokerAPI(Protocol):
    """An account's own record: its metadata (see :mod:`storaged.catalog.account`)."""

    account: str

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def close(self) -> None: ...

    def exists(self) -> bool: ...

    def info(self) -> AccountRecord: ...

    def update_metadata(
        self, updates: Mapping[str, str], timestamp: TimestampLike | None = None
    ) -> bool: ...


class CatalogAPI(Protocol):
    """A whole catalog: brokers, the account index, reclaim.

    See :class:`storaged.catalog.store.Catalog` for the semantics.

    :ivar path: a directory of this node for the catalog's local files
        (``[catalog] path``): the sqlite driver keeps its databases there,
        both drivers give it to callers that keep node-local work files
        beside the catalog (name locks).
    """

    path: str
    limits: Limits
    reclaim_age: float
    timeout: float
    synchronous: str

    def close(self) -> None: ...

    def require_space(self) -> None: ...

    def container(
        self, account: str | bytes, container: str | bytes
    ) -> ContainerBrokerAPI: ...

    def broker(
        self, account: str | bytes, container: str | bytes
    ) -> AbstractContextManager[ContainerBrokerAPI]: ...

    def account(self, account: str | bytes) -> AccountBrokerAPI: ...

    def sibling(self, name: str, *, limits: Limits | None = None) -> CatalogAPI: ...

    def list_containers(
        self,
        account: str | bytes,
        limit: int | None = None,
        marker: str = "",
        end_marker: str = "",
        prefix: str = "",
        delimiter: str = "",
        reverse: bool = False,
    ) -> list[ContainerListing | Subdir]: ...

    def account_info(self, account: str | bytes) -> AccountInfo: ...

    def list_accounts(self) -> list[str]: ...

    def iter_containers(
        self, include_deleted: bool = False, sync_only: bool = False
    ) -> Iterator[tuple[str, str]]: ...

    def iter_garbage_containers(self) -> Iterator[tuple[str, str]]: ...

    def containers_with_sync(self) -> list[tuple[str, str]]: ...

    def rebuild_index(self) -> None: ...

    def reclaim(
        self, age: float | None = None, now: float | None = None
    ) -> ReclaimStats: ...
