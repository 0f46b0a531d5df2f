"""The local object cache: fills, hits, and the prune, clean and prefetch passes.

Typical use (the object service does this for back ends with ``cache =
true``)::

    from storaged.cache import CacheRef, ObjectCache

    cache = ObjectCache.from_conf(conf, ["mirror"])
    ref = CacheRef("mirror", location, size, {"md5": etag}, name="a/c/o")
    chunks, n = cache.read(ref, fetch)     # fetch(offset, length, verify)

    Pruner(cache).prune(dry_run=True)      # what would go
    Cleaner(cache).clean()                 # failed and dead fills
    Queue(cache.cache_dir).add({"object": "a/c/o"})

See ``docs/cache.rst`` for the layout, the guarantees and the commands;
:mod:`storaged.cache.daemon` wires the passes into ``storaged-cache``.
"""

from __future__ import annotations

from storaged.cache.cleaner import Cleaner
from storaged.cache.cleaner import CleanResult
from storaged.cache.engine import CacheError
from storaged.cache.engine import CacheRef
from storaged.cache.engine import EntryInfo
from storaged.cache.engine import Fetch
from storaged.cache.engine import FillFailed
from storaged.cache.engine import ObjectCache
from storaged.cache.engine import entry_id_for
from storaged.cache.engine import validate_entry_id
from storaged.cache.locking import MaintenanceLock
from storaged.cache.metadata import EntryMeta
from storaged.cache.prefetcher import InvalidQueueItem
from storaged.cache.prefetcher import NotCacheable
from storaged.cache.prefetcher import Prefetcher
from storaged.cache.prefetcher import Queue
from storaged.cache.prefetcher import QueueItem
from storaged.cache.pruner import Pruner
from storaged.cache.pruner import PruneResult

__all__ = [
    "CacheError",
    "CacheRef",
    "CleanResult",
    "Cleaner",
    "EntryInfo",
    "EntryMeta",
    "Fetch",
    "FillFailed",
    "InvalidQueueItem",
    "MaintenanceLock",
    "NotCacheable",
    "ObjectCache",
    "Prefetcher",
    "PruneResult",
    "Pruner",
    "Queue",
    "QueueItem",
    "entry_id_for",
    "validate_entry_id",
]
