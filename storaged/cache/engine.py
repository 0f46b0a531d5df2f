"""The object cache: reads served from a local directory, filled on a miss.

:class:`ObjectCache` is the cache's one entry point for reads.  A read
of a whole object opens the entry (a hit) or claims its fill: the claimant
becomes the writer, fetching from the back end once, and every other reader
follows the writer's file.  Ranged reads are served from complete entries;
a ranged miss goes to the back end without filling.  Whatever the cache
cannot do, the reader is served from the back end.

Each part of the work lives in its own module, which this one assembles:

:mod:`~storaged.cache.layout`
    the directory's names and the entry ids;
:mod:`~storaged.cache.ref`
    :class:`CacheRef`, :data:`Fetch` and the cache's errors;
:mod:`~storaged.cache.directory`
    the directory, the settings and the counters shared by the parts;
:mod:`~storaged.cache.entries`
    committed entries: hits, their streams, the operator's views;
:mod:`~storaged.cache.fill`
    single flight, admission and the writer;
:mod:`~storaged.cache.follow`
    followers of another reader's fill;
:mod:`~storaged.cache.checks`
    digest checks of streams and files;
:mod:`~storaged.cache.usage`
    what the cache holds (admission and the pruner measure the same way).

A name in ``incomplete/`` is only ever moved or removed by a process that
holds the flock of the file it names and has checked that it still names
that file; with ``O_EXCL`` creation this makes every race between writers,
followers and the cleaner safe (see ``docs/cache.rst`` for the cases).

A fill that finds the cache full prunes through the ``make_room`` callable;
by default :func:`prune_for_room`, which runs a
:class:`~storaged.cache.pruner.Pruner`.  The pruner does not import this
module, so the dependency goes one way.
"""

from __future__ import annotations

from collections.abc import Iterator
import logging
from typing import Any

from oslo_config import cfg

from storaged import concurrency
from storaged import exception
from storaged.cache import checks
from storaged.cache import pruner
from storaged.cache import usage
from storaged.cache.checks import file_digests
from storaged.cache.directory import DEFAULT_CHUNK_SIZE
from storaged.cache.directory import CacheDirectory
from storaged.cache.directory import MakeRoom
from storaged.cache.directory import Measure
from storaged.cache.directory import close_fd
from storaged.cache.entries import DIGEST_ALGO
from storaged.cache.entries import EntryInfo
from storaged.cache.fill import Fills
from storaged.cache.fill import reserve_space
from storaged.cache.follow import Followers
from storaged.cache.layout import ENTRY_ID_LENGTH
from storaged.cache.layout import ENTRY_ID_RE
from storaged.cache.layout import INCOMPLETE
from storaged.cache.layout import INVALID
from storaged.cache.layout import INVALID_NAME_RE
from storaged.cache.layout import QUEUE
from storaged.cache.layout import SUBDIRS
from storaged.cache.layout import TEMP_NAME_RE
from storaged.cache.layout import entry_id_for
from storaged.cache.layout import new_token
from storaged.cache.layout import validate_entry_id
from storaged.cache.ref import CacheError
from storaged.cache.ref import CacheRef
from storaged.cache.ref import Fetch
from storaged.cache.ref import FillFailed
from storaged.cache.ref import ref_for_row
from storaged.conf import cache as cache_conf

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DIGEST_ALGO",
    "ENTRY_ID_LENGTH",
    "ENTRY_ID_RE",
    "INCOMPLETE",
    "INVALID",
    "INVALID_NAME_RE",
    "QUEUE",
    "SUBDIRS",
    "TEMP_NAME_RE",
    "CacheError",
    "CacheRef",
    "EntryInfo",
    "Fetch",
    "FillFailed",
    "ObjectCache",
    "entry_id_for",
    "file_digests",
    "new_token",
    "prune_for_room",
    "ref_for_row",
    "reserve_space",
    "validate_entry_id",
]

LOG = logging.getLogger(__name__)


def prune_for_room(cache: CacheDirectory, size: int) -> bool:
    """Prune ``cache`` so that a fill of ``size`` bytes fits.

    The prune skips, successfully, if another prune or clean holds the
    lock.

    :returns: True if anything was removed.
    """
    result = pruner.Pruner(cache).prune(room=size)
    freed = result.pruned + result.invalid_removed
    if freed:
        LOG.info("Made room in the cache for a fill: %s", result.summary())
    return bool(freed)


class ObjectCache(Fills, Followers):
    """A cache directory and the reads served through it.

    :param cache_dir: the cache directory (created if missing).
    :param max_size: bytes the cache may hold (0: no limit).
    :param low_watermark: fraction of ``max_size`` a prune goes down to.
    :param min_free_space: fraction of the filesystem kept free by fills.
    :param stall_time: seconds without a write after which an unlocked
        fill counts as stalled (cleaner).
    :param invalid_grace: seconds failed fills are kept (cleaner).
    :param fill_wait_timeout: seconds a follower waits without progress.
    :param metadata_store: ``auto``, ``xattr`` or ``index``.
    :param shared_dir: the directory is shared by several nodes (no prune
        is started by a fill then: only lease-holding passes prune).
    :param backends: ids of the back ends whose reads go through the cache.
    :param reserve: reserve each fill's space with ``fallocate`` first.
    :param measure: returns the bytes the cache holds, for admission
        (default: :func:`storaged.cache.usage.measure`).
    :param make_room: prunes so that a fill fits when the cache is full
        (default: :func:`prune_for_room`).
    :raises storaged.exception.ConfigError: the directory cannot be made,
        or ``xattr`` metadata is asked for where there is none.
    """

    def __init__(
        self,
        cache_dir: str,
        *,
        max_size: int = 0,
        low_watermark: float = 0.8,
        min_free_space: float = 0.0,
        stall_time: float = 86400.0,
        invalid_grace: float = 3600.0,
        fill_wait_timeout: float = 60.0,
        metadata_store: str = "auto",
        shared_dir: bool = False,
        backends: tuple[str, ...] | list[str] = (),
        reserve: bool = True,
        measure: Measure = usage.measure,
        make_room: MakeRoom = prune_for_room,
    ) -> None:
        super().__init__(
            cache_dir,
            max_size=max_size,
            low_watermark=low_watermark,
            min_free_space=min_free_space,
            stall_time=stall_time,
            invalid_grace=invalid_grace,
            fill_wait_timeout=fill_wait_timeout,
            metadata_store=metadata_store,
            shared_dir=shared_dir,
            backends=backends,
            reserve=reserve,
            measure=measure,
            make_room=make_room,
        )

    # -- construction ------------------------------------------------------

    @classmethod
    def from_conf(
        cls, conf: cfg.ConfigOpts, backends: tuple[str, ...] | list[str] = ()
    ) -> ObjectCache:
        """Build the cache the ``[cache]`` options describe."""
        cache_conf.register_opts(conf)
        group = conf.cache
        return cls(
            group.cache_dir,
            max_size=group.max_size,
            low_watermark=group.low_watermark,
            min_free_space=group.min_free_space,
            stall_time=group.stall_time,
            invalid_grace=group.invalid_grace,
            fill_wait_timeout=group.fill_wait_timeout,
            metadata_store=group.metadata_store,
            shared_dir=group.shared_dir,
            backends=backends,
        )

    @classmethod
    def for_backends(cls, conf: cfg.ConfigOpts, backends: Any) -> ObjectCache | None:
        """Build the cache if a back end has ``cache = true``, else None.

        :param backends: the :class:`~storaged.objectstore.Backends`.
        """
        ids = [b for b in backends.ids(include_reserved=True) if conf[b].cache]
        if not ids:
            return None
        return cls.from_conf(conf, ids)

    def configure(self, conf: cfg.ConfigOpts) -> None:
        """Apply the mutable ``[cache]`` options again (after SIGHUP)."""
        group = conf.cache
        self.max_size = int(group.max_size)
        self.low_watermark = float(group.low_watermark)
        self.min_free_space = float(group.min_free_space)
        self.stall_time = float(group.stall_time)
        self.invalid_grace = float(group.invalid_grace)
        self.fill_wait_timeout = float(group.fill_wait_timeout)

    # -- reads -----------------------------------------------------------

    def read(
        self,
        ref: CacheRef,
        fetch: Fetch,
        *,
        offset: int = 0,
        length: int | None = None,
        verify: bool = False,
        chunk_size: int | None = None,
    ) -> tuple[Iterator[bytes], int]:
        """Read an object through the cache.

        :param fetch: reads the object from its back end.
        :param verify: a hit is checked against the digest recorded when it
            was filled, a miss as the back end checks it; the last chunk is
            handed out only once the check passed.
        :returns: ``(chunks, n)`` like a driver's ``get``.
        :raises storaged.exception.CorruptObject: (from the chunks) a
            verified read found data that does not match.
        """
        chunk = chunk_size or DEFAULT_CHUNK_SIZE
        ranged = offset != 0 or length is not None
        if ranged and verify:
            raise exception.StoreCapabilityError(
                backend=ref.backend,
                operation="verify a ranged read (only whole objects are verified)",
            )
        entry_id = ref.entry_id
        hit = concurrency.run_blocking(self._open_entry, entry_id, ref)
        if hit is not None:
            self.count("hits")
            return self._serve(hit, entry_id, offset, length, verify, chunk)
        self.count("misses")
        if ranged:
            self.count("bypass_ranged")
            return fetch(offset, length, False)
        claim = self._claim_loop(entry_id, ref)
        if claim.role == "hit":
            assert claim.hit is not None
            self.count("hits_after_wait")
            return self._serve(claim.hit, entry_id, 0, None, verify, chunk)
        if claim.role == "writer":
            assert claim.fd is not None
            return self._write(claim.fd, entry_id, ref, fetch, verify)
        if claim.role == "follower":
            assert claim.fd is not None and ref.size is not None
            self.count("followed")
            chunks = self._follow(claim.fd, entry_id, ref, fetch, verify, chunk)
            return chunks, ref.size
        LOG.debug("Not caching %s: %s", ref.source, claim.reason)
        return self._direct(ref, fetch, verify)

    def _direct(
        self, ref: CacheRef, fetch: Fetch, verify: bool
    ) -> tuple[Iterator[bytes], int]:
        """Read a whole object from its back end, not filling the cache.

        A verified read is checked here against the catalog's digest when
        there is one, so that back ends that cannot verify (``http``) can
        be read verified through the cache.
        """
        if not (verify and ref.expected):
            return fetch(0, None, verify)
        chunks, n = fetch(0, None, False)
        return checks.checked(chunks, n, ref), n

    def read_object(
        self,
        account: str,
        container: str,
        row: Any,
        driver: Any,
        *,
        offset: int = 0,
        length: int | None = None,
        verify: bool = False,
        chunk_size: int | None = None,
    ) -> tuple[Iterator[bytes], int]:
        """Read a catalog object (``row``, on ``driver``) through the cache."""
        ref = ref_for_row(account, container, row)

        def fetch(off: int, ln: int | None, ver: bool) -> tuple[Iterator[bytes], int]:
            chunks, n = driver.get(
                row.location, offset=off, length=ln, verify=ver, chunk_size=chunk_size
            )
            return chunks, n

        return self.read(
            ref, fetch, offset=offset, length=length, verify=verify,
            chunk_size=chunk_size,
        )

    def fill(self, ref: CacheRef, fetch: Fetch) -> str:
        """Make sure an object is cached (prefetch); no hit is counted.

        :returns: ``cached`` (it was already), ``filled`` (by this call or
            by the fill it waited for).
        :raises CacheError: the object cannot be cached now (admission
            refused, or the fill failed and went to ``invalid/``).
        :raises storaged.exception.StoragedError: the back end failed.
        """
        entry_id = ref.entry_id
        if concurrency.run_blocking(self._lookup_fd, entry_id) is not None:
            return "cached"
        claim = self._claim_loop(entry_id, ref)
        if claim.role == "hit":
            assert claim.hit is not None
            close_fd(claim.hit.fd)
            return "cached"
        if claim.role == "bypass":
            raise CacheError(reason="%s is not cached: %s" % (ref.source, claim.reason))
        assert claim.fd is not None
        if claim.role == "writer":
            chunks, _n = self._write(claim.fd, entry_id, ref, fetch, False)
        else:
            chunks = self._follow(claim.fd, entry_id, ref, fetch, False,
                                  DEFAULT_CHUNK_SIZE)
        try:
            for _chunk in chunks:
                pass
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        if concurrency.run_blocking(self._lookup_fd, entry_id) is None:
            raise CacheError(reason="the fill of %s failed (see invalid/)" % ref.source)
        return "filled"
