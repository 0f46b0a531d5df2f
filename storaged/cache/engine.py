"""The object cache: reads served from a local directory, filled on a miss.

Layout of ``[cache] cache_dir`` (Glance's, with stricter names)::

    CACHE_DIR/<id>                  an entry: a verified copy of one object
    CACHE_DIR/incomplete/<id>       a fill in progress (its writer holds an
                                    exclusive flock on it)
    CACHE_DIR/incomplete/.<x>.<y>   a fill being set up (a few microseconds)
    CACHE_DIR/invalid/<id>.<ns>     a failed fill, its error recorded with it
    CACHE_DIR/queue/<ns>-<key>      an object waiting to be prefetched
    CACHE_DIR/.lock                 the maintenance lock (prune, clean)
    CACHE_DIR/.index.sqlite         entry metadata, only without user xattrs

``<id>`` is the sha256 of ``<back end id>\\n<location>`` in 64 lowercase hex
digits: it never comes from a client, and a name of any other shape is not
an entry.  Ids handed in from outside (``storaged-manage cache delete``)
are checked by :func:`validate_entry_id` before any path is built.  As a
write gives an object a new location, an overwritten or deleted object's
entry is never served again; it ages out.

**A hit** opens the entry *first*, then checks it (regular file, the size
and digest the catalog expects), records the hit and streams from the open
file.  A prune (or ``cache delete``) that unlinks the entry afterwards only
removes the name: the open file stays whole until the reader closes it, so
a read that has begun always ends with the whole body.

**A miss** of a whole object is *single flight* across threads and
processes.  Each reader creates a file of its own in ``incomplete/``
(``O_CREAT|O_EXCL`` under a private name), takes an exclusive ``flock`` on
it, and publishes it as ``incomplete/<id>`` with a rename that never
replaces (``renameat2(RENAME_NOREPLACE)``; ``link`` where that is missing):

* the one whose rename succeeds is the *writer*; its file is locked before
  anyone can see it.  It checks admission (size limit, free space),
  reserves the space (``fallocate``), fetches the
  object from the back end once and streams it to its caller while
  appending it to the file.  After the last byte it ``fsync``\\ s the file,
  **re-reads the file** and compares its digest with the digest the catalog
  recorded (the md5 ETag) or, when there is none, with the sha256 of the
  bytes received, records the metadata and renames the file into place
  without replacing anything (``renameat2(RENAME_NOREPLACE)``).  Any failure
  moves the file to ``invalid/`` with the error recorded (truncated to 0
  bytes when the failure was about space or the back end, so that failed
  fills never hold space the cache needs); the caller is still served, the
  data came from the back end;
* every other reader (its rename failed: the name exists) removes its own
  file and is a *follower*: it opens the published file and streams
  what is written so far, polling for more; it hands out the last chunk
  only once the writer has committed.  If the writer fails or stalls
  (``fill_wait_timeout``), the follower reads the rest from the back end
  (a ranged read) and checks the whole stream against the catalog's digest;
* a file in ``incomplete/`` whose lock is free belongs to a dead writer
  (SIGKILL): the next reader removes it, holding its lock, and fills anew;
  the cleaner removes those no reader came for.

A name in ``incomplete/`` is only ever moved or removed by a process that
holds the flock of the file it names and has checked that it still names
that file; with ``O_EXCL`` creation this makes every race between writers,
followers and the cleaner safe (see ``docs/cache.rst`` for the cases).

Ranged reads are served from complete entries; a ranged miss goes to the
back end without filling.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
import ctypes
import ctypes.util
import dataclasses
import errno
import fcntl
import hashlib
import logging
import os
import re
import secrets
import stat
import time
from typing import Any
from urllib import parse as urlparse

from oslo_config import cfg

from storaged import concurrency
from storaged import exception
from storaged.cache import metadata as metadata_mod
from storaged.cache.metadata import EntryMeta
from storaged.cache.metadata import MetadataStore
from storaged.conf import cache as cache_conf
from storaged.objectstore.driver import InvalidRange
from storaged.objectstore.drivers import fsutil

LOG = logging.getLogger(__name__)

MiB = 1024 * 1024

INCOMPLETE = "incomplete"
INVALID = "invalid"
QUEUE = "queue"
SUBDIRS = (INCOMPLETE, INVALID, QUEUE)

#: length of an entry id (hex digits of a sha256)
ENTRY_ID_LENGTH = 64
ENTRY_ID_RE = re.compile(r"[0-9a-f]{64}\Z")
#: name of a fill's file before it is published in incomplete/
TEMP_NAME_RE = re.compile(r"\.[0-9a-f]{16}\.[0-9a-f]{16}\Z")
#: name of a file in invalid/: the entry id, then when it failed (ns)
INVALID_NAME_RE = re.compile(r"([0-9a-f]{64})\.([0-9]{1,20})\Z")

#: the digest every entry records
DIGEST_ALGO = "sha256"

DEFAULT_CHUNK_SIZE = MiB
#: bytes re-read at a time when the file of a fill is checked
_CHECK_BLOCK = 4 * MiB

#: how long a process trusts its estimate of the cache's size
USAGE_TTL = 10.0
#: a fill about to be refused for want of room re-measures the cache if its
#: estimate is older than this (another process, or a prune, may have made
#: room meanwhile)
USAGE_RECHECK = 1.0
#: attempts to claim a fill before reading from the back end directly
_CLAIM_ATTEMPTS = 50
_POLL_FIRST = 0.002
_POLL_MAX = 0.05

_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_CREATE_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

#: errors that mean the cache filesystem is full
_SPACE_ERRORS = (errno.ENOSPC, errno.EDQUOT)

#: ``fetch(offset, length, verify) -> (chunks, n)``: read from the back end
Fetch = Callable[[int, "int | None", bool], "tuple[Iterator[bytes], int]"]


class CacheError(exception.StoragedError):
    """The cache could not do what was asked."""

    msg_fmt = "Cache error: %(reason)s"


class FillFailed(CacheError):
    """A fill's file did not pass its checks; it went to ``invalid/``."""

    msg_fmt = "Cache fill of %(what)s failed: %(reason)s"


def validate_entry_id(value: object) -> str:
    """Return ``value`` if it is an entry id (64 lowercase hex digits).

    Checked before any path is built: ``..``, ``/``, NUL, an over-long or
    empty value, anything but ``[0-9a-f]`` is refused.

    :raises storaged.exception.InvalidName: saying which rule was broken.
    """
    if not isinstance(value, str):
        reason = "must be a string, not %s" % type(value).__name__
    elif not value:
        reason = "must not be empty"
    elif len(value) > ENTRY_ID_LENGTH:
        reason = "is %d characters long (an id has %d)" % (len(value), ENTRY_ID_LENGTH)
    elif "\x00" in value:
        reason = "must not contain a NUL character"
    elif "/" in value or "\\" in value or value.startswith("."):
        reason = "must not contain '/' or '\\' or start with '.'"
    elif not ENTRY_ID_RE.match(value):
        reason = "must be %d lowercase hexadecimal digits" % ENTRY_ID_LENGTH
    else:
        return value
    shown = repr(value[:40]) if isinstance(value, str) else ""
    raise exception.InvalidName(
        kind="cache entry id", reason=reason + (" (got %s)" % shown if shown else "")
    )


def entry_id_for(backend: str, location: str) -> str:
    """Return the entry id of the object at ``location`` on ``backend``."""
    key = "%s\n%s" % (backend, location)
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _redact(location: str) -> str:
    """Return a location fit to show: no password, bounded length."""
    try:
        parts = urlparse.urlsplit(location)
        if parts.password is not None:
            host = parts.netloc.rsplit("@", 1)[-1]
            location = urlparse.urlunsplit(
                parts._replace(netloc="%s:***@%s" % (parts.username or "", host))
            )
    except ValueError:
        location = "<unparsable location>"
    return location if len(location) <= 300 else location[:300] + "..."


@dataclasses.dataclass(frozen=True)
class CacheRef:
    """One object as the cache sees it.

    :ivar backend: the back end id.
    :ivar location: where the back end keeps it.
    :ivar size: its size, as the catalog records it (None if unknown).
    :ivar expected: digests the catalog records, by algorithm (e.g.
        ``{"md5": etag}``); a fill is committed only if its file matches.
    :ivar name: what the object is called (``account/container/object``).
    """

    backend: str
    location: str
    size: int | None = None
    expected: Mapping[str, str] = dataclasses.field(default_factory=dict)
    name: str = ""

    @property
    def entry_id(self) -> str:
        """The id of this object's entry."""
        return entry_id_for(self.backend, self.location)

    @property
    def source(self) -> str:
        """What the entry is a copy of, for listings (no secrets)."""
        if self.name:
            return "%s:%s" % (self.backend, self.name)
        return "%s:%s" % (self.backend, _redact(self.location))


@dataclasses.dataclass
class EntryInfo:
    """An entry as listings show it."""

    id: str
    size: int
    hits: int
    last_access: int
    created: int
    digest: str
    source: str

    def as_dict(self) -> dict[str, Any]:
        """Return plain data (``--format json``)."""
        return dataclasses.asdict(self)


# -- space reservation ------------------------------------------------------

_FALLOC_FL_KEEP_SIZE = 1


def _load_fallocate() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return None
    fn = getattr(libc, "fallocate", None)
    if fn is not None:
        fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
        fn.restype = ctypes.c_int
    return fn


_fallocate = _load_fallocate()


def reserve_space(fd: int, size: int) -> bool:
    """Reserve ``size`` bytes for ``fd`` without changing its length.

    ``FALLOC_FL_KEEP_SIZE`` keeps the file's length at what was written, so
    followers reading the growing file never see reserved zeros.

    :returns: False where the filesystem cannot reserve (nothing done).
    :raises OSError: ENOSPC and the like.
    """
    if _fallocate is None or size <= 0:
        return False
    if _fallocate(fd, _FALLOC_FL_KEEP_SIZE, 0, size) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
        return False
    raise OSError(err, os.strerror(err))


# -- small file helpers (blocking) -------------------------------------------


def _same_file(path: str, fd: int) -> bool:
    """Tell whether ``path`` still names the file open as ``fd``."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _try_lock(fd: int, how: int) -> bool:
    try:
        fcntl.flock(fd, how | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    return True


def _write_all(fd: int, data: bytes, hashers: list[Any]) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
    _update(hashers, data)


def _update(hashers: list[Any], data: bytes) -> None:
    for h in hashers:
        h.update(data)


def _close(fd: int | None) -> None:
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass


@dataclasses.dataclass
class _Hit:
    fd: int
    size: int
    meta: EntryMeta


@dataclasses.dataclass
class _Claim:
    """What a reader got when it asked to fill an entry."""

    role: str  # "writer", "follower", "hit", "retry", "bypass"
    fd: int | None = None
    hit: _Hit | None = None
    reason: str = ""


class ObjectCache:
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
    ) -> None:
        self.cache_dir = os.path.abspath(cache_dir)
        self.max_size = int(max_size)
        self.low_watermark = float(low_watermark)
        self.min_free_space = float(min_free_space)
        self.stall_time = float(stall_time)
        self.invalid_grace = float(invalid_grace)
        self.fill_wait_timeout = float(fill_wait_timeout)
        self.shared_dir = bool(shared_dir)
        self.backends = frozenset(backends)
        self.reserve = reserve
        self.counters: dict[str, int] = {}
        # Native: taken only in native threads (run_blocking).
        self._usage_lock = concurrency.native_module("threading").Lock()
        self._usage: tuple[float, int] | None = None
        self._last_room_prune = 0.0
        try:
            os.makedirs(self.cache_dir, mode=0o750, exist_ok=True)
            for sub in SUBDIRS:
                os.makedirs(
                    os.path.join(self.cache_dir, sub), mode=0o750, exist_ok=True
                )
        except OSError as err:
            raise exception.ConfigError(
                "cannot create the cache directory %s: %s"
                % (err.filename or self.cache_dir, err.strerror),
                group="cache",
                option="cache_dir",
            ) from err
        self.meta: MetadataStore = metadata_mod.open_store(
            self.cache_dir, metadata_store
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

    def close(self) -> None:
        """Release the metadata store."""
        self.meta.close()

    def serves(self, backend_id: str) -> bool:
        """Tell whether reads of ``backend_id`` go through the cache."""
        return backend_id in self.backends

    @property
    def target_size(self) -> int:
        """Bytes a prune brings the cache down to (0 when there is no limit)."""
        return int(self.max_size * self.low_watermark) if self.max_size else 0

    def count(self, name: str, n: int = 1) -> None:
        """Add to one of this process's counters (hits, misses, fills...)."""
        self.counters[name] = self.counters.get(name, 0) + n

    # -- paths ------------------------------------------------------------

    def entry_path(self, entry_id: str) -> str:
        """Return the path of an entry (the id is validated first)."""
        return os.path.join(self.cache_dir, validate_entry_id(entry_id))

    def incomplete_path(self, entry_id: str) -> str:
        """Return the path of an entry's fill in progress."""
        return os.path.join(self.cache_dir, INCOMPLETE, validate_entry_id(entry_id))

    def _invalid_path(self, entry_id: str) -> tuple[str, str]:
        name = "%s.%d" % (validate_entry_id(entry_id), time.time_ns())
        return name, os.path.join(self.cache_dir, INVALID, name)

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
        return self._checked(chunks, n, ref), n

    def _checked(
        self, chunks: Iterator[bytes], n: int, ref: CacheRef
    ) -> Iterator[bytes]:
        """Yield ``chunks``; the last one only if the digests match."""
        hashers = [hashlib.new(algo) for algo in ref.expected]
        seen = 0
        try:
            for chunk in chunks:
                concurrency.run_blocking(_update, hashers, chunk)
                seen += len(chunk)
                if seen >= n:
                    self._check_stream(hashers, ref, seen, n)
                yield chunk
            if seen < n:
                self._check_stream(hashers, ref, seen, n)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    @staticmethod
    def _check_stream(hashers: list[Any], ref: CacheRef, seen: int, n: int) -> None:
        if seen != n:
            raise exception.CorruptObject(
                what=ref.source, reason="%d of %d bytes were received" % (seen, n))
        for h in hashers:
            expected = ref.expected[h.name].lower()
            if h.hexdigest() != expected:
                raise exception.CorruptObject(
                    what=ref.source,
                    reason="its %s is %s, the catalog records %s"
                    % (h.name, h.hexdigest(), expected),
                )

    def _claim_loop(self, entry_id: str, ref: CacheRef) -> _Claim:
        """Claim the fill of an entry until a role other than retry comes out."""
        delay = _POLL_FIRST
        for _attempt in range(_CLAIM_ATTEMPTS):
            claim = concurrency.run_blocking(self._claim, entry_id, ref)
            if claim.role == "follower" and ref.size is None:
                _close(claim.fd)
                claim = _Claim("bypass", reason="unknown_size: its size is unknown")
            if claim.role != "retry":
                if claim.role == "bypass":
                    self.count("bypass_" + claim.reason.split(":", 1)[0])
                return claim
            concurrency.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)
        self.count("bypass_busy")
        return _Claim("bypass", reason="busy: the fill could not be claimed in time")

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
            _close(claim.hit.fd)
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

    # -- hits ---------------------------------------------------------------

    def _open_entry(self, entry_id: str, ref: CacheRef) -> _Hit | None:
        """Open an entry, check it against the catalog, count the hit."""
        path = self.entry_path(entry_id)
        try:
            fd = os.open(path, _READ_FLAGS)
        except FileNotFoundError:
            return None
        except OSError as err:
            if err.errno != errno.ELOOP:
                raise
            LOG.warning("Cache entry %s is a symbolic link: not served", entry_id)
            return None
        try:
            st = os.fstat(fd)
            problem = None
            meta = self.meta.read(fd, entry_id) if stat.S_ISREG(st.st_mode) else None
            if not stat.S_ISREG(st.st_mode):
                problem = "not a regular file"
            elif meta is None:
                problem = "no metadata recorded"
            elif ref.size is not None and st.st_size != ref.size:
                problem = "holds %d bytes where the object has %d" % (
                    st.st_size, ref.size)
            elif st.st_size != meta.size:
                problem = "holds %d bytes, %d were recorded" % (st.st_size, meta.size)
            else:
                for algo, digest in ref.expected.items():
                    have = meta.checks.get(algo)
                    if have is not None and have != digest:
                        problem = "its %s is %s, the object's is %s" % (
                            algo, have, digest)
            if problem is not None:
                LOG.warning("Cache entry %s (%s) not served: %s", entry_id,
                            ref.source, problem)
                if stat.S_ISREG(st.st_mode):
                    self._invalidate(fd, entry_id, problem)
                _close(fd)
                self.count("stale")
                return None
            assert meta is not None
            self.meta.record_hit(fd, entry_id, time.time_ns())
        except BaseException:
            _close(fd)
            raise
        return _Hit(fd, st.st_size, meta)

    def _invalidate(self, fd: int, entry_id: str, problem: str) -> None:
        """Move an entry that must not be served to ``invalid/``."""
        path = self.entry_path(entry_id)
        if not _same_file(path, fd):
            return  # already gone or replaced
        name, target = self._invalid_path(entry_id)
        try:
            self.meta.record_error(fd, name, "entry withdrawn: %s" % problem)
            os.rename(path, target)
        except FileNotFoundError:
            return
        self.meta.forget([entry_id])

    def _serve(
        self,
        hit: _Hit,
        entry_id: str,
        offset: int,
        length: int | None,
        verify: bool,
        chunk: int,
    ) -> tuple[Iterator[bytes], int]:
        if offset > hit.size:
            _close(hit.fd)
            raise InvalidRange(
                what="cache entry %s" % entry_id,
                reason="offset %d is beyond its %d bytes" % (offset, hit.size),
            )
        n = hit.size - offset if length is None else min(length, hit.size - offset)
        digest = hit.meta.digest if verify else None
        return _EntryChunks(self, hit.fd, entry_id, offset, n, chunk, digest), n

    # -- admission -------------------------------------------------------

    def _admit(self, size: int | None) -> str | None:
        """Say why a fill of ``size`` bytes must not start, or None."""
        if size is None:
            return "its size is unknown"
        if self.max_size and size > self.max_size:
            return "it is larger than max_size (%d bytes)" % self.max_size
        st = os.statvfs(self.cache_dir)
        free = st.f_bavail * st.f_frsize
        floor = self.min_free_space * st.f_blocks * st.f_frsize
        if free - size < floor:
            return "the filesystem has %d bytes free" % free
        if not self.max_size:
            return None
        with self._usage_lock:
            usage = self._current_usage()
            if usage + size > self.max_size and self._make_room(size):
                usage = self._current_usage(refresh=True)
            if usage + size > self.max_size and self._usage_age() > USAGE_RECHECK:
                usage = self._current_usage(refresh=True)
            if usage + size > self.max_size:
                return "the cache is full (%d of %d bytes)" % (usage, self.max_size)
            if self._usage is not None:  # a prune elsewhere may have just reset it
                self._usage = (self._usage[0], self._usage[1] + size)
        return None

    def _usage_age(self) -> float:
        if self._usage is None:
            return float("inf")
        return time.monotonic() - self._usage[0]

    def forget_usage(self) -> None:
        """Drop the size estimate (a prune or clean just changed the size).

        No lock: a prune that makes room for a fill runs under it.
        """
        self._usage = None

    def _current_usage(self, refresh: bool = False) -> int:
        now = time.monotonic()
        if refresh or self._usage is None or now - self._usage[0] > USAGE_TTL:
            from storaged.cache import pruner

            self._usage = (now, pruner.measure(self))
        return self._usage[1]

    def _make_room(self, size: int) -> bool:
        """Prune now if no other prune runs (at most once per USAGE_TTL)."""
        if self.shared_dir:
            return False  # only passes holding the shared lease prune
        now = time.monotonic()
        if now - self._last_room_prune < USAGE_TTL:
            return False
        self._last_room_prune = now
        from storaged.cache import pruner

        result = pruner.Pruner(self).prune(room=size)
        freed = result.pruned + result.invalid_removed
        if freed:
            LOG.info("Made room in the cache for a fill: %s", result.summary())
        return bool(freed)

    # -- fills --------------------------------------------------------------

    def _claim(self, entry_id: str, ref: CacheRef) -> _Claim:
        """Become the writer of an entry, or follow its writer.

        The fill's file is created and locked under a private name, then
        published as ``incomplete/<id>`` by a rename that never replaces:
        exclusive, like ``O_EXCL``, and the name never names a file whose
        live writer has not locked it yet.
        """
        path = self.incomplete_path(entry_id)
        tmp = os.path.join(
            self.cache_dir, INCOMPLETE, ".%s.%s" % (entry_id[:16], new_token())
        )
        fd = os.open(tmp, _CREATE_FLAGS, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # a private new file: never waits
            try:
                fsutil.rename_noreplace(tmp, path)
            except FileExistsError:
                os.unlink(tmp)
                _close(fd)
                return self._join(path, entry_id)
        except BaseException:
            _close(fd)
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        try:
            # The entry may have been committed since our hit check.
            hit = self._open_entry(entry_id, ref)
            if hit is not None:
                os.unlink(path)
                _close(fd)
                return _Claim("hit", hit=hit)
            refusal = self._admit(ref.size)
            if refusal is not None:
                os.unlink(path)
                _close(fd)
                return _Claim("bypass", reason="admission: " + refusal)
            if self.reserve and ref.size:
                try:
                    reserve_space(fd, ref.size)
                except OSError as err:
                    os.unlink(path)
                    _close(fd)
                    if err.errno in _SPACE_ERRORS:
                        return _Claim("bypass", reason="no_space: %s" % err)
                    raise
        except BaseException:
            _close(fd)
            raise
        return _Claim("writer", fd=fd)

    def _join(self, path: str, entry_id: str) -> _Claim:
        """Follow the writer of ``path``, or remove it if its writer died."""
        try:
            fd = os.open(path, _READ_FLAGS)
        except FileNotFoundError:
            return _Claim("retry")  # the fill ended just now
        try:
            if not _try_lock(fd, fcntl.LOCK_SH):
                return _Claim("follower", fd=fd)
            fcntl.flock(fd, fcntl.LOCK_UN)
            if not _try_lock(fd, fcntl.LOCK_EX):
                _close(fd)
                return _Claim("retry")
            if _same_file(path, fd):
                # Still in incomplete/ and nobody holds it: its writer died
                # (a published fill is always locked by a live writer).
                os.unlink(path)
                self.count("reaped_dead_fills")
                LOG.warning("Removed the fill of cache entry %s left by a dead "
                            "writer", entry_id)
        except BaseException:
            _close(fd)
            raise
        _close(fd)
        return _Claim("retry")

    def _write(
        self, fd: int, entry_id: str, ref: CacheRef, fetch: Fetch, verify: bool
    ) -> tuple[Iterator[bytes], int]:
        """Fetch the object once; return the stream that fills the entry."""
        # With the catalog's digest the stream is checked here (below),
        # whatever the back end can do.
        try:
            chunks, n = fetch(0, None, verify and not ref.expected)
        except BaseException:
            concurrency.run_blocking(self._abandon, fd, entry_id)
            raise
        if ref.size is not None and n != ref.size:
            LOG.warning("Not caching %s: the back end returns %d bytes, the "
                        "catalog records %d", ref.source, n, ref.size)
            concurrency.run_blocking(self._abandon, fd, entry_id)
            self.count("bypass_size")
            if verify and ref.expected:
                return self._checked(chunks, n, ref), n
            return chunks, n
        self.count("fills_started")
        return self._fill(fd, entry_id, ref, chunks, n, verify), n

    def _fill(
        self,
        fd: int,
        entry_id: str,
        ref: CacheRef,
        chunks: Iterator[bytes],
        n: int,
        verify: bool,
    ) -> Iterator[bytes]:
        """Yield the back end's chunks while appending them to the fill."""
        run = concurrency.run_blocking
        held: int | None = fd
        written = seen = 0
        # Without a digest from the catalog the file is compared with what
        # was received, so the received bytes are hashed as they go.
        hasher = None if ref.expected else hashlib.new(DIGEST_ALGO)
        stream = [hasher] if hasher is not None else []
        # A verified read checks what it hands out against the catalog.
        checks = [hashlib.new(algo) for algo in ref.expected] if verify else []
        try:
            for chunk in chunks:
                seen += len(chunk)
                if held is None:
                    if checks:
                        run(_update, checks, chunk)
                else:
                    try:
                        run(_write_all, held, chunk, stream + checks)
                        written += len(chunk)
                        if written > n:
                            raise FillFailed(
                                what=ref.source,
                                reason="the back end sent more than %d bytes" % n)
                    except (OSError, FillFailed) as err:
                        if checks and written < seen:
                            run(_update, checks, chunk)  # not hashed by the write
                        run(self._fail, held, entry_id, ref, err, False)
                        held = None
                    else:
                        if written == n:
                            # Commit before handing out the last chunk: a
                            # caller that stops once it has n bytes still
                            # leaves a complete entry behind.
                            run(self._commit_or_fail, held, entry_id, ref, n, hasher)
                            held = None
                if checks and seen >= n:
                    self._check_stream(checks, ref, seen, n)
                yield chunk
            if checks and seen < n:
                self._check_stream(checks, ref, seen, n)
            if held is not None:
                if written == n:
                    run(self._commit_or_fail, held, entry_id, ref, n, hasher)
                else:
                    short = FillFailed(what=ref.source, reason="the back end sent "
                                       "%d of %d bytes" % (written, n))
                    run(self._fail, held, entry_id, ref, short, False)
                held = None
        except GeneratorExit:
            if held is not None:
                # The caller went away: nothing is wrong with the data, but
                # nobody will send the rest.
                run(self._abandon, held, entry_id)
                held = None
                self.count("fills_abandoned")
            raise
        except BaseException as err:
            if held is not None:
                run(self._fail, held, entry_id, ref, err, False)
                held = None
            raise
        finally:
            if held is not None:
                run(self._abandon, held, entry_id)
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    def _commit_or_fail(
        self, fd: int, entry_id: str, ref: CacheRef, n: int, hasher: Any
    ) -> None:
        try:
            self._commit(fd, entry_id, ref, n, hasher)
        except FillFailed as err:
            self._fail(fd, entry_id, ref, err, True)
        except Exception as err:
            # Whatever went wrong, the caller's stream comes from the back
            # end and goes on; only the entry is given up.
            self._fail(fd, entry_id, ref, err, False)

    def _commit(
        self, fd: int, entry_id: str, ref: CacheRef, n: int, hasher: Any
    ) -> None:
        """Check the written file and rename it into place (the writer's lock held)."""
        os.fsync(fd)
        size = os.fstat(fd).st_size
        if size != n:
            raise FillFailed(
                what=ref.source,
                reason="the file holds %d bytes, %d were written" % (size, n),
            )
        digests = file_digests(fd, n, {DIGEST_ALGO, *ref.expected})
        checks: dict[str, str] = {}
        for algo, expected in ref.expected.items():
            if digests[algo] != expected.lower():
                raise FillFailed(
                    what=ref.source,
                    reason="the file's %s is %s, the catalog records %s"
                    % (algo, digests[algo], expected),
                )
            checks[algo] = digests[algo]
        if hasher is not None and digests[DIGEST_ALGO] != hasher.hexdigest():
            raise FillFailed(
                what=ref.source,
                reason="the file's %s is %s, the data received had %s"
                % (DIGEST_ALGO, digests[DIGEST_ALGO], hasher.hexdigest()),
            )
        now = time.time_ns()
        meta = EntryMeta(
            size=n,
            digest="%s:%s" % (DIGEST_ALGO, digests[DIGEST_ALGO]),
            source=ref.source,
            created=now,
            checks=checks,
            hits=0,
            last_access=now,
        )
        self.meta.write(fd, entry_id, meta)
        try:
            fsutil.rename_noreplace(self.incomplete_path(entry_id),
                                    self.entry_path(entry_id))
        except FileExistsError:
            # Cannot happen with single flight, unless a file was put there
            # by hand; keep what is there.
            os.unlink(self.incomplete_path(entry_id))
            _close(fd)
            return
        except BaseException:
            self.meta.forget([entry_id])
            raise
        _close(fd)
        self.count("fills")
        LOG.debug("Cached %s as %s (%d bytes)", ref.source, entry_id, n)

    def _fail(
        self, fd: int, entry_id: str, ref: CacheRef, err: BaseException, keep: bool
    ) -> None:
        """Move a failed fill to ``invalid/`` with its error (lock held).

        :param keep: keep the data (a digest mismatch: it is evidence);
            otherwise the file is truncated to 0 bytes first, so a fill that
            failed for lack of space or because the back end failed holds
            no space.
        """
        self.count("fill_failures")
        text = str(err) or type(err).__name__
        if isinstance(err, OSError) and err.errno in _SPACE_ERRORS:
            text = "no space left in the cache: %s" % (err.strerror or err)
        # The log line names the fill itself; the recorded error keeps the
        # whole message (an entry in invalid/ is named by its id only).
        reason = text
        if isinstance(err, FillFailed) and "reason" in err.kwargs:
            reason = str(err.kwargs["reason"])
        LOG.warning("Cache fill of %s (%s) failed: %s", ref.source, entry_id, reason)
        name, target = self._invalid_path(entry_id)
        try:
            if not keep:
                os.ftruncate(fd, 0)
            os.utime(fd)  # the grace period counts from the failure
            try:
                self.meta.record_error(fd, name, text)
            except OSError as rec_err:
                LOG.warning("Could not record the error of %s: %s", name, rec_err)
            os.rename(self.incomplete_path(entry_id), target)
        except OSError as move_err:
            LOG.warning("Could not move the failed fill %s to invalid/: %s",
                        entry_id, move_err)
            try:
                os.unlink(self.incomplete_path(entry_id))
            except OSError:
                pass
        finally:
            _close(fd)

    def _abandon(self, fd: int, entry_id: str) -> None:
        """Remove our own fill (lock held) and release it."""
        try:
            os.unlink(self.incomplete_path(entry_id))
        except FileNotFoundError:
            pass
        finally:
            _close(fd)

    # -- followers ------------------------------------------------------------

    def _writer_state(self, fd: int, entry_id: str) -> str:
        """Return ``writing``, ``committed``, ``orphaned`` or ``failed``."""
        if not _try_lock(fd, fcntl.LOCK_SH):
            return "writing"
        fcntl.flock(fd, fcntl.LOCK_UN)
        if _same_file(self.entry_path(entry_id), fd):
            return "committed"
        if _same_file(self.incomplete_path(entry_id), fd):
            return "orphaned"  # its writer died
        return "failed"

    def _follow(
        self,
        fd: int,
        entry_id: str,
        ref: CacheRef,
        fetch: Fetch,
        verify: bool,
        chunk: int,
    ) -> Iterator[bytes]:
        """Stream another process's fill as it grows; see the module docstring."""
        run = concurrency.run_blocking
        assert ref.size is not None
        n = ref.size
        pos = 0
        hashers = {algo: hashlib.new(algo) for algo in ref.expected}
        last_progress = time.monotonic()
        delay = _POLL_FIRST
        pending: bytes | None = None
        rest: Iterator[bytes] | None = None
        fell_back_at = 0
        try:
            while pos < n:
                data: bytes = run(os.pread, fd, min(chunk, n - pos), pos)
                if data:
                    for h in hashers.values():
                        h.update(data)
                    pos += len(data)
                    last_progress = time.monotonic()
                    delay = _POLL_FIRST
                    if pos < n:
                        yield data
                    else:
                        pending = data  # the last chunk waits for the outcome
                    continue
                state = run(self._writer_state, fd, entry_id)
                if state == "writing" and (
                    time.monotonic() - last_progress < self.fill_wait_timeout
                ):
                    concurrency.sleep(delay)
                    delay = min(delay * 2, _POLL_MAX)
                    continue
                if state == "committed":
                    raise exception.CorruptObject(
                        what="cache entry %s" % entry_id,
                        reason="it ends at %d of %d bytes" % (pos, n))
                self.count("follow_fallbacks")
                fell_back_at = pos
                rest = self._fetch_rest(fetch, pos, verify and not hashers)
                break
            while pending is not None and rest is None:
                state = run(self._writer_state, fd, entry_id)
                if state == "committed":
                    # The writer checked its file; this checks what this
                    # reader read of it (the same bytes, unless the file was
                    # tampered with).
                    if hashers and not self._digests_match(hashers, ref):
                        raise exception.CorruptObject(
                            what=ref.source, reason="the data read from the "
                            "cache fill does not match the catalog's digest")
                    yield pending
                    pending = None
                    return
                if state == "writing" and (
                    time.monotonic() - last_progress < self.fill_wait_timeout
                ):
                    concurrency.sleep(delay)
                    delay = min(delay * 2, _POLL_MAX)
                    continue
                # The writer failed after writing everything: the bytes are
                # suspect unless the catalog's digest vouches for them.
                self.count("follow_fallbacks")
                if not self._digests_match(hashers, ref):
                    raise exception.CorruptObject(
                        what=ref.source, reason="a cache fill failed after this "
                        "read began, and the data cannot be vouched for")
                yield pending
                pending = None
                return
            if rest is not None:
                tail = b""
                for data in rest:
                    for h in hashers.values():
                        h.update(data)
                    pos += len(data)
                    if pos < n:
                        yield data
                    else:
                        tail = data
                if pos != n:
                    raise exception.CorruptObject(
                        what=ref.source,
                        reason="the back end sent %d of %d bytes" % (pos, n))
                if hashers and not self._digests_match(hashers, ref):
                    raise exception.CorruptObject(
                        what=ref.source, reason="the data does not match the "
                        "digest the catalog records")
                if verify and not hashers and fell_back_at:
                    # Part came from the fill, part from a ranged read: no
                    # digest covers the whole.
                    raise exception.CorruptObject(
                        what=ref.source, reason="a cache fill failed after this "
                        "read began, and the data cannot be verified")
                if tail:
                    yield tail
        finally:
            _close(fd)
            if rest is not None:
                close = getattr(rest, "close", None)
                if close is not None:
                    close()

    @staticmethod
    def _digests_match(hashers: dict[str, Any], ref: CacheRef) -> bool:
        if not hashers:
            return False
        return all(
            h.hexdigest() == ref.expected[algo].lower() for algo, h in hashers.items()
        )

    @staticmethod
    def _fetch_rest(fetch: Fetch, pos: int, verify: bool) -> Iterator[bytes]:
        """Read from byte ``pos`` to the end from the back end.

        :param verify: have the back end verify a whole read (``pos`` 0).
        """
        if pos == 0:
            return fetch(0, None, verify)[0]
        try:
            return fetch(pos, None, False)[0]
        except exception.StoreCapabilityError:
            pass
        # No ranged reads: read it all and drop the first pos bytes.
        chunks = fetch(0, None, False)[0]

        def skip() -> Iterator[bytes]:
            left = pos
            for data in chunks:
                if left >= len(data):
                    left -= len(data)
                    continue
                yield data[left:]
                left = 0

        return skip()

    # -- operator views -------------------------------------------------------

    def _lookup_fd(self, entry_id: str) -> EntryInfo | None:
        path = self.entry_path(entry_id)
        try:
            fd = os.open(path, _READ_FLAGS)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as err:
            if err.errno == errno.ELOOP:
                return None
            raise
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None
            meta = self.meta.read(fd, entry_id)
        finally:
            _close(fd)
        if meta is None:
            return EntryInfo(entry_id, st.st_size, 0, st.st_mtime_ns, st.st_mtime_ns,
                             "", "")
        return EntryInfo(entry_id, st.st_size, meta.hits, meta.last_access,
                         meta.created, meta.digest, meta.source)

    def lookup(self, entry_id: str) -> EntryInfo | None:
        """Return an entry's info (no hit is counted), or None.

        :raises storaged.exception.InvalidName: not an entry id.
        """
        validate_entry_id(entry_id)
        return concurrency.run_blocking(self._lookup_fd, entry_id)

    def entries(self) -> list[EntryInfo]:
        """List every entry, most recently read first."""
        result = []
        for name in concurrency.run_blocking(os.listdir, self.cache_dir):
            if ENTRY_ID_RE.match(name):
                info = concurrency.run_blocking(self._lookup_fd, name)
                if info is not None:
                    result.append(info)
        result.sort(key=lambda e: e.last_access, reverse=True)
        return result

    def delete(self, entry_id: str, dry_run: bool = False) -> bool:
        """Remove an entry; True if there was one.

        A reader that already opened it still reads it whole.

        :raises storaged.exception.InvalidName: not an entry id.
        """
        path = self.entry_path(entry_id)
        if dry_run:
            return concurrency.run_blocking(os.path.isfile, path)
        try:
            concurrency.run_blocking(os.unlink, path)
        except FileNotFoundError:
            return False
        concurrency.run_blocking(self.meta.forget, [entry_id])
        return True

    def invalid_files(self) -> list[dict[str, Any]]:
        """List ``invalid/`` with each recorded error, newest first."""
        directory = os.path.join(self.cache_dir, INVALID)
        result: list[dict[str, Any]] = []
        for name in concurrency.run_blocking(os.listdir, directory):
            match = INVALID_NAME_RE.match(name)
            if not match:
                continue
            path = os.path.join(directory, name)
            try:
                st = os.stat(path, follow_symlinks=False)
            except FileNotFoundError:
                continue
            result.append({
                "name": name,
                "id": match.group(1),
                "size": st.st_size,
                "failed_at": st.st_mtime,
                "error": concurrency.run_blocking(self.meta.read_error, path, name),
            })
        result.sort(key=lambda r: r["failed_at"], reverse=True)
        return result


def ref_for_row(account: str, container: str, row: Any) -> CacheRef:
    """Return the cache's view of a catalog row (its md5 ETag is expected)."""
    expected = {"md5": row.etag.lower()} if row.etag else {}
    return CacheRef(
        row.backend, row.location, row.size, expected,
        name="%s/%s/%s" % (account, container, row.name),
    )


def file_digests(fd: int, n: int, algos: set[str]) -> dict[str, str]:
    """Hash the first ``n`` bytes of the file open as ``fd`` (from disk)."""
    hashers = {algo: hashlib.new(algo) for algo in algos}
    pos = 0
    while pos < n:
        data = os.pread(fd, min(_CHECK_BLOCK, n - pos), pos)
        if not data:
            break
        for h in hashers.values():
            h.update(data)
        pos += len(data)
    return {algo: h.hexdigest() for algo, h in hashers.items()}


class _EntryChunks:
    """The chunks of an open entry; optionally verified against its digest."""

    def __init__(
        self,
        cache: ObjectCache,
        fd: int,
        entry_id: str,
        offset: int,
        n: int,
        chunk: int,
        digest: str | None,
    ) -> None:
        self._cache = cache
        self._fd: int | None = fd
        self._entry_id = entry_id
        self._pos = offset
        self._remaining = n
        self._chunk = chunk
        self._digest = digest
        self._hasher: Any = None
        if digest is not None:
            algo = digest.partition(":")[0] or DIGEST_ALGO
            self._hasher = hashlib.new(algo)

    def __iter__(self) -> _EntryChunks:
        return self

    def __enter__(self) -> _EntryChunks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self, fd: int, size: int) -> bytes:
        data = os.pread(fd, size, self._pos)
        if self._hasher is not None:
            self._hasher.update(data)
        return data

    def __next__(self) -> bytes:
        fd = self._fd
        if fd is None or self._remaining <= 0:
            self.close()
            raise StopIteration
        try:
            data = concurrency.run_blocking(
                self._read, fd, min(self._chunk, self._remaining)
            )
            if not data:
                raise exception.CorruptObject(
                    what="cache entry %s" % self._entry_id,
                    reason="it ended %d bytes early" % self._remaining)
            self._pos += len(data)
            self._remaining -= len(data)
            if self._remaining == 0 and self._hasher is not None:
                self._check(fd)
        except BaseException:
            self.close()
            raise
        return data

    def _check(self, fd: int) -> None:
        assert self._digest is not None
        actual = "%s:%s" % (self._hasher.name, self._hasher.hexdigest())
        if actual != self._digest:
            concurrency.run_blocking(
                self._cache._invalidate, fd, self._entry_id,
                "its data no longer matches its digest",
            )
            raise exception.CorruptObject(
                what="cache entry %s" % self._entry_id,
                reason="its %s is %s, %s was recorded" % (
                    self._hasher.name, actual, self._digest),
            )

    def close(self) -> None:
        """Close the entry (safe to call twice)."""
        fd, self._fd = self._fd, None
        _close(fd)

    def __del__(self) -> None:
        self.close()


def new_token() -> str:
    """Return a short random token (queue and temporary names)."""
    return secrets.token_hex(8)
