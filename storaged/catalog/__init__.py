"""The catalog: Swift-style container and account databases on this node.

Objects live in containers (``account/container/object``).  Each container
has a sqlite database (WAL) with one row per object name, its metadata with
per-key timestamps (``X-Container-Sync-To`` and ``-Key`` among them) and
the sync points of each container-sync worker.  Every change gets a new,
increasing row id, so the rows after a given id are the change log the sync
daemon follows.  Writes are last-writer-wins by Swift's timestamps; deletes
leave tombstones, reclaimed after ``[catalog] reclaim_age``.  Object data
that a newer write left unreferenced is recorded as garbage in the same
transaction, for the object service to delete.  An account index lists
each account's containers with their counts; an account's metadata (with
per-key timestamps, as a container's) is in a database of its own.

Everything here is synchronous file and sqlite I/O.  Callers in green
threads wrap each call in :func:`storaged.concurrency.run_blocking`::

    catalog = Catalog.from_conf(conf)
    broker = catalog.container("AUTH_test", "photos")
    run_blocking(broker.create)
    applied = run_blocking(broker.put_object, "cat.jpg", Timestamp.now(),
                           1234, "image/jpeg", etag)

Brokers and the catalog may be shared by OS threads, and several processes
may use the same catalog at once.  See ``docs/catalog.rst``.
"""

from __future__ import annotations

from storaged.catalog.account import AccountBroker
from storaged.catalog.account import AccountRecord
from storaged.catalog.broker import ContainerBroker
from storaged.catalog.listing import MAX_LIMIT
from storaged.catalog.listing import Subdir
from storaged.catalog.metadata import MASK
from storaged.catalog.metadata import SECRET_KEYS
from storaged.catalog.metadata import SYNC_KEY_KEY
from storaged.catalog.metadata import SYNC_TO_KEY
from storaged.catalog.names import Limits
from storaged.catalog.names import validate_account
from storaged.catalog.names import validate_container
from storaged.catalog.names import validate_metadata
from storaged.catalog.names import validate_object
from storaged.catalog.records import ContainerInfo
from storaged.catalog.records import Garbage
from storaged.catalog.records import ObjectRow
from storaged.catalog.records import TimestampConflict
from storaged.catalog.store import AccountInfo
from storaged.catalog.store import Catalog
from storaged.catalog.store import ContainerListing
from storaged.catalog.store import ReclaimStats
from storaged.catalog.timestamp import Timestamp

__all__ = [
    "MASK",
    "MAX_LIMIT",
    "SECRET_KEYS",
    "SYNC_KEY_KEY",
    "SYNC_TO_KEY",
    "AccountBroker",
    "AccountInfo",
    "AccountRecord",
    "Catalog",
    "ContainerBroker",
    "ContainerInfo",
    "ContainerListing",
    "Garbage",
    "Limits",
    "ObjectRow",
    "ReclaimStats",
    "Subdir",
    "Timestamp",
    "TimestampConflict",
    "validate_account",
    "validate_container",
    "validate_metadata",
    "validate_object",
]
