"""The driver interface every object store back end type implements.

A driver class declares its options and what it can do::

    class FileStore(Driver):
        OPTIONS = [cfg.ListOpt("data_dirs", ...), ...]
        CAPABILITIES = Capability.READ | Capability.WRITE | ...
        SCHEMES = ("file",)

and implements the underscored methods (``_add``, ``_get``, ...).  The public
methods here do everything that must not depend on the driver: they check the
capability, validate the object id, the hashing algorithm, the range and the
location's scheme *before* the driver runs, and validate the metadata the
driver returns.  A driver is built with ``(conf, backend_id)`` and reads its
options from the group named after its back end id.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
import dataclasses
import time
from typing import Any
from typing import ClassVar
from typing import Protocol
from typing import TypeAlias
from typing import cast
from typing import runtime_checkable

from oslo_config import cfg

from storaged import exception
from storaged import metrics as metrics_mod
from storaged.objectstore import hashing
from storaged.objectstore import names
from storaged.objectstore.capabilities import Capability
from storaged.objectstore.capabilities import require

#: read and write chunk used when a driver has no chunk size of its own.
DEFAULT_CHUNK_SIZE = 1024 * 1024

#: longest location accepted by any driver.
MAX_LOCATION_LENGTH = 8192

_METRIC_LABELS = ["backend", "driver"]


def declare_metrics(metrics: metrics_mod.Metrics) -> None:
    """Declare the object store's metrics (labels: back end id, driver type)."""
    metrics.counter("store_operations", "Object store operations, by back end, "
                    "driver type, operation (add, get, delete) and outcome (ok, "
                    "error: the back end raised).",
                    [*_METRIC_LABELS, "op", "outcome"])
    metrics.counter("store_added_bytes", "Bytes of objects stored.", _METRIC_LABELS)
    metrics.counter("store_read_bytes", "Bytes of objects read (the length of "
                    "each read opened).", _METRIC_LABELS)
    metrics.counter("store_verify_failures", "Failed checks: digest (a verified "
                    "read found corrupt data) or store (verify_store found the "
                    "back end unusable).", [*_METRIC_LABELS, "check"])
    metrics.counter("store_scrub_checked_objects", "Objects checked by scrubs.",
                    _METRIC_LABELS)
    metrics.counter("store_scrub_checked_bytes", "Bytes read by scrubs.",
                    _METRIC_LABELS)
    metrics.counter("store_scrub_corrupt_objects", "Corrupt objects found by "
                    "scrubs.", _METRIC_LABELS)
    metrics.counter("store_scrub_orphans", "Leftovers found by scrubs.",
                    _METRIC_LABELS)
    metrics.gauge("store_scrub_last_timestamp_seconds", "When the last scrub "
                  "of the back end ended (Unix time).", _METRIC_LABELS,
                  multiprocess_mode="max")


def _process_metrics() -> metrics_mod.Metrics:
    m = metrics_mod.process()
    if "store_operations" not in m:
        declare_metrics(m)
    return m


class _CountingCorruption:
    """The chunks of a verified read; a corrupt object found is counted.

    A class, not a generator: ``close`` reaches the driver's chunks even
    when no chunk was read.
    """

    def __init__(self, chunks: ChunkIterator, labels: dict[str, Any]) -> None:
        self._chunks = chunks
        self._it = iter(chunks)
        self._labels = labels

    def __iter__(self) -> _CountingCorruption:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._it)
        except exception.CorruptObject:
            _process_metrics().incr("store_verify_failures", check="digest",
                                    **self._labels)
            raise

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


class InvalidRange(exception.StoreError):
    """``get`` was asked for bytes the object does not have."""

    msg_fmt = "Invalid range for %(what)s: %(reason)s"


class SizeMismatch(exception.StoreError):
    """The data of an ``add`` was shorter or longer than its declared size."""

    msg_fmt = "Size mismatch for object %(what)s: %(reason)s"


@runtime_checkable
class Readable(Protocol):
    """A file-like source of bytes."""

    def read(self, size: int = -1, /) -> bytes: ...


#: what ``add`` accepts: a file-like object or an iterable of bytes chunks.
Source: TypeAlias = Readable | Iterable[bytes]


@runtime_checkable
class ChunkIterator(Protocol):
    """What ``get`` returns: an iterator of bytes that can be closed early.

    Close it (or exhaust it) to release the file or connection behind it.
    """

    def __iter__(self) -> Iterator[bytes]: ...

    def __next__(self) -> bytes: ...

    def close(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class AddResult:
    """What an ``add`` stored.

    :ivar location: where the object is, to hand back to ``get``/``delete``.
    :ivar size: bytes stored.
    :ivar checksum: hex digest by ``checksum_algo`` (e.g. an md5 ETag) when
        one was asked for, else ``None``.
    :ivar multihash: hex digest by ``hashing_algo``.
    :ivar metadata: driver metadata (dicts, lists and strings only).
    :ivar hashing_algo: the algorithm of ``multihash``.
    :ivar backend: the back end id.
    """

    location: str
    size: int
    checksum: str | None
    multihash: str
    metadata: dict[str, Any]
    hashing_algo: str = hashing.DEFAULT_ALGORITHM
    backend: str = ""


@dataclasses.dataclass
class ScrubFinding:
    """One thing a scrub found: where, and what is wrong."""

    where: str
    reason: str


@dataclasses.dataclass
class ScrubReport:
    """The result of one ``scrub`` of a back end.

    :ivar checked: objects whose data was read and checked.
    :ivar bytes_checked: bytes read while checking.
    :ivar corrupt: objects whose data does not match the recorded digest or
        size (reported, never removed: an operator decides).
    :ivar orphans: leftovers: temporary files of dead writers, objects
        without metadata, metadata without an object, unexpected files.
    :ivar reclaimed: paths removed because ``reclaim`` was asked.
    :ivar in_progress: temporary files of writers still running (skipped).
    :ivar errors: entries that could not be checked (I/O errors).
    :ivar on_checked: called with the report after each object is checked
        (progress while a scrub runs; never in the report's data).
    """

    backend: str
    checked: int = 0
    bytes_checked: int = 0
    corrupt: list[ScrubFinding] = dataclasses.field(default_factory=list)
    orphans: list[ScrubFinding] = dataclasses.field(default_factory=list)
    reclaimed: list[str] = dataclasses.field(default_factory=list)
    in_progress: int = 0
    errors: list[ScrubFinding] = dataclasses.field(default_factory=list)
    on_checked: Callable[[ScrubReport], None] | None = dataclasses.field(
        default=None, repr=False, compare=False
    )

    def count_checked(self, nbytes: int) -> None:
        """Count one more object checked, of ``nbytes`` read; tell ``on_checked``."""
        self.checked += 1
        self.bytes_checked += nbytes
        if self.on_checked is not None:
            self.on_checked(self)

    @property
    def clean(self) -> bool:
        """True when nothing is corrupt, orphaned (and left) or unreadable."""
        left = [o for o in self.orphans if o.where not in set(self.reclaimed)]
        return not (self.corrupt or left or self.errors)

    def summary(self) -> str:
        """Return the one-line summary a scrub logs."""
        return (
            f"back end {self.backend}: {self.checked} objects "
            f"({self.bytes_checked} bytes) checked, {len(self.corrupt)} corrupt, "
            f"{len(self.orphans)} orphans ({len(self.reclaimed)} reclaimed), "
            f"{self.in_progress} writes in progress, {len(self.errors)} errors"
        )

    def as_dict(self) -> dict[str, Any]:
        """Return the report as plain data (for ``--format json``)."""
        data = dataclasses.asdict(self)
        del data["on_checked"]
        return data


def validate_metadata(
    backend_id: str, metadata: object, path: str = "metadata"
) -> None:
    """Check that driver metadata is made of dicts, lists and strings only.

    :raises storaged.exception.InvalidMetadata: naming the offending item.
    """
    if isinstance(metadata, str):
        return
    if isinstance(metadata, dict):
        for key, value in metadata.items():
            if not isinstance(key, str):
                raise exception.InvalidMetadata(
                    backend=backend_id,
                    reason=f"key {key!r} in {path} is not a string",
                )
            validate_metadata(backend_id, value, f"{path}[{key!r}]")
        return
    if isinstance(metadata, list):
        for i, value in enumerate(metadata):
            validate_metadata(backend_id, value, f"{path}[{i}]")
        return
    raise exception.InvalidMetadata(
        backend=backend_id,
        reason=f"{path} is a {type(metadata).__name__} "
        "(only dicts, lists and strings are allowed)",
    )


def iter_source(source: Source, chunk_size: int, size: int | None) -> Iterator[bytes]:
    """Yield the data of ``source`` in chunks of about ``chunk_size``.

    With a declared ``size``, at most ``size + 1`` bytes are read from a
    file-like source: one byte more than declared is enough to know the
    declaration was wrong, without reading an endless stream to its end.
    Small chunks of an iterable are joined so that each write (and each
    thread-pool hop) moves a reasonable amount of data.
    """
    # (getattr rather than isinstance against the Protocol: much cheaper.)
    read = getattr(source, "read", None)
    if callable(read):
        remaining = None if size is None else size + 1
        while remaining is None or remaining > 0:
            want = chunk_size if remaining is None else min(chunk_size, remaining)
            data = read(want)
            if not data:
                return
            if remaining is not None:
                remaining -= len(data)
            yield bytes(data) if not isinstance(data, bytes) else data
        return
    pending: list[bytes] = []
    pending_len = 0
    for piece in cast(Iterable[bytes], source):
        if not isinstance(piece, (bytes, bytearray, memoryview)):
            raise TypeError(f"object data must be bytes, not {type(piece).__name__}")
        if not piece:
            continue
        if not pending and len(piece) >= chunk_size:
            yield bytes(piece)
            continue
        pending.append(bytes(piece))
        pending_len += len(piece)
        if pending_len >= chunk_size:
            yield b"".join(pending)
            pending, pending_len = [], 0
    if pending:
        yield b"".join(pending)


class Driver(abc.ABC):
    """Base class of object store drivers.

    :param conf: the parsed configuration; the driver's options are in the
        group named ``backend_id``.
    :param backend_id: the id this back end has in ``enabled_backends``.
    :raises storaged.exception.ConfigError: if the back end's configuration
        is unusable (group and option set).
    """

    #: options of the driver, registered in the group of each back end.
    OPTIONS: ClassVar[list[cfg.Opt]] = []
    #: what the driver can do.
    CAPABILITIES: ClassVar[Capability] = Capability.NONE
    #: URI schemes of the locations the driver hands out and accepts.
    SCHEMES: ClassVar[tuple[str, ...]] = ()
    #: Whether the driver's I/O blocks the process (local files: a caller may
    #: run a whole small read in run_blocking's pool) rather than yield to
    #: other green threads (network clients, whose green locks and sockets
    #: belong to the hub's thread: never call them from the pool).
    BLOCKING_IO: ClassVar[bool] = True

    def __init__(self, conf: cfg.ConfigOpts, backend_id: str) -> None:
        self.conf = conf
        self._backend_id = backend_id
        self.check_conf(conf, backend_id)

    @classmethod
    def check_conf(cls, conf: cfg.ConfigOpts, backend_id: str) -> None:
        """Check the back end's options without touching the back end.

        :raises storaged.exception.ConfigError: with ``group=backend_id``.
        """
        return None

    @property
    def backend_id(self) -> str:
        """The id of the back end this driver serves."""
        return self._backend_id

    @property
    def capabilities(self) -> Capability:
        """What this instance can do."""
        return self.CAPABILITIES

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.backend_id}>"

    def _metric_labels(self) -> dict[str, Any]:
        """The labels of this back end's metrics: its id and its driver type."""
        labels: dict[str, Any] | None = self.__dict__.get("_metric_labels_cache")
        if labels is None:
            name = type(self).__name__.lower()
            if name.endswith("store") and len(name) > 5:
                name = name[:-5]
            labels = {"backend": self._backend_id, "driver": name}
            self.__dict__["_metric_labels_cache"] = labels
        return labels

    # -- public operations: validation, then the driver ------------------

    def add(
        self,
        object_id: str,
        stream: Source,
        size: int | None = None,
        hashing_algo: str = hashing.DEFAULT_ALGORITHM,
        *,
        checksum_algo: str | None = None,
    ) -> AddResult:
        """Store an object.

        :param object_id: the object's id (see :mod:`storaged.objectstore.names`).
        :param stream: a file-like object (``read(n)``) or an iterable of bytes.
        :param size: the declared size, or ``None`` when it is not known;
            data of another length fails with :class:`SizeMismatch` and
            nothing is left behind.
        :param hashing_algo: the digest recorded with the object (``multihash``).
        :param checksum_algo: a second digest computed in the same pass, e.g.
            ``"md5"`` for an ETag (``checksum``); ``None`` for none.
        :raises storaged.exception.StoreCapabilityError: read-only back end.
        :raises storaged.exception.InvalidName: bad id (before any I/O).
        :raises storaged.exception.UnsupportedHashAlgorithm: (before any I/O).
        :raises storaged.exception.ObjectExists: an object has that id.
        :raises storaged.exception.StorageFull: no space (nothing left behind).
        """
        require(self, Capability.WRITE)
        names.validate_object_id(object_id)
        hashing.check(hashing_algo)
        if checksum_algo is not None:
            hashing.check(checksum_algo)
        if size is not None and (
            isinstance(size, bool) or not isinstance(size, int) or size < 0
        ):
            raise SizeMismatch(
                what=object_id, reason=f"declared size {size!r} is not a byte count"
            )
        labels = self._metric_labels()
        m = _process_metrics()
        try:
            result = self._add(object_id, stream, size, hashing_algo, checksum_algo)
        except exception.StoragedError:
            m.incr("store_operations", op="add", outcome="error", **labels)
            raise
        m.incr("store_operations", op="add", outcome="ok", **labels)
        m.incr("store_added_bytes", result.size, **labels)
        validate_metadata(self.backend_id, result.metadata)
        return result

    def get(
        self,
        location: str,
        offset: int = 0,
        chunk_size: int | None = None,
        verify: bool = False,
        length: int | None = None,
    ) -> tuple[ChunkIterator, int]:
        """Read an object, or part of it.

        :param location: as returned by ``add``.
        :param offset: first byte to return.
        :param chunk_size: size of the chunks yielded (the driver's default
            when ``None``); it never limits how much is returned.
        :param verify: check the recorded digest while reading; the last
            chunk is only handed out once the digest matched, and a mismatch
            raises :class:`~storaged.exception.CorruptObject` instead.
            Ranged reads (``offset`` or ``length``) cannot be verified and
            are refused with ``verify=True``.
        :param length: at most this many bytes (to the end when ``None``).
        :returns: ``(chunks, n)``: an iterator of bytes and the number of
            bytes it will yield (``size - offset``, or ``length`` if smaller).
        :raises InvalidRange: ``offset`` beyond the end of the object.
        """
        require(self, Capability.READ)
        # The common case (a whole object) is checked with a few identity
        # tests: this runs for every read.
        if not (offset == 0 and type(offset) is int):
            if type(offset) is not int or offset < 0:
                raise InvalidRange(what=location, reason=f"offset {offset!r}")
        if length is not None and (type(length) is not int or length < 0):
            raise InvalidRange(what=location, reason=f"length {length!r}")
        if chunk_size is not None and (type(chunk_size) is not int or chunk_size <= 0):
            raise ValueError("chunk_size must be a positive number of bytes")
        ranged = offset != 0 or length is not None
        if ranged:
            require(self, Capability.RANGE_READ)
        if verify:
            require(self, Capability.VERIFY_READ)
            if ranged:
                raise exception.StoreCapabilityError(
                    backend=self.backend_id,
                    operation="verify a ranged read (only whole objects are verified)",
                )
        self.check_location(location)
        labels = self._metric_labels()
        m = _process_metrics()
        try:
            chunks, n = self._get(location, offset, length, chunk_size, verify)
        except exception.StoragedError as err:
            m.incr("store_operations", op="get", outcome="error", **labels)
            if isinstance(err, exception.CorruptObject):
                m.incr("store_verify_failures", check="digest", **labels)
            raise
        m.incr("store_operations", op="get", outcome="ok", **labels)
        m.incr("store_read_bytes", n, **labels)
        if verify:
            return _CountingCorruption(chunks, labels), n
        return chunks, n

    def delete(self, location: str) -> None:
        """Delete an object.

        :raises storaged.exception.ObjectNotFound: nothing at ``location``.
        """
        require(self, Capability.DELETE)
        self.check_location(location)
        labels = self._metric_labels()
        try:
            self._delete(location)
        except exception.StoragedError:
            _process_metrics().incr("store_operations", op="delete",
                                    outcome="error", **labels)
            raise
        _process_metrics().incr("store_operations", op="delete", outcome="ok",
                                **labels)

    def get_size(self, location: str) -> int:
        """Return the size in bytes of the object at ``location``."""
        require(self, Capability.READ)
        self.check_location(location)
        return self._get_size(location)

    def verify_store(self) -> None:
        """Check that the back end is usable (directories, connectivity).

        :raises storaged.exception.BackendUnavailable: with the reason.
        """
        try:
            self._verify_store()
        except exception.StoragedError:
            _process_metrics().incr("store_verify_failures", check="store",
                                    **self._metric_labels())
            raise

    def scrub(
        self,
        reclaim: bool = False,
        progress: Callable[[ScrubReport], None] | None = None,
    ) -> ScrubReport:
        """Walk the back end; report corrupt and orphaned data.

        The checked objects and bytes are counted in the metrics as the scrub
        goes (a long scrub shows its progress), the rest when it ends.

        :param reclaim: also remove what is safe to remove (temporary files
            of writers that are gone, and the like); corrupt objects are
            never removed.
        :param progress: called with the report so far after each object.
        """
        require(self, Capability.SCRUB)
        labels = self._metric_labels()
        m = _process_metrics()
        counted = [0, 0]

        def checked(report: ScrubReport) -> None:
            m.incr("store_scrub_checked_objects", report.checked - counted[0], **labels)
            m.incr("store_scrub_checked_bytes", report.bytes_checked - counted[1],
                   **labels)
            counted[:] = [report.checked, report.bytes_checked]
            if progress is not None:
                progress(report)

        report = ScrubReport(self.backend_id, on_checked=checked)
        self._scrub(reclaim, report)
        report.on_checked = None
        # Whatever a driver counted without telling (none should).
        m.incr("store_scrub_checked_objects", report.checked - counted[0], **labels)
        m.incr("store_scrub_checked_bytes", report.bytes_checked - counted[1], **labels)
        m.incr("store_scrub_corrupt_objects", len(report.corrupt), **labels)
        m.incr("store_scrub_orphans", len(report.orphans), **labels)
        m.set("store_scrub_last_timestamp_seconds", time.time(), **labels)
        return report

    def close(self) -> None:
        """Release what the driver holds (files, connections)."""
        return None

    def check_location(self, location: object) -> str:
        """Check the shape of a location common to all drivers.

        :raises storaged.exception.InvalidLocation: not a string, too long,
            a NUL, or a scheme this driver does not serve.
        """
        if not isinstance(location, str) or not location:
            raise exception.InvalidLocation(
                backend=self.backend_id, reason="a location must be a non-empty string"
            )
        if len(location) > MAX_LOCATION_LENGTH:
            raise exception.InvalidLocation(
                backend=self.backend_id,
                reason=f"location is longer than {MAX_LOCATION_LENGTH} characters",
            )
        if "\x00" in location:
            raise exception.InvalidLocation(
                backend=self.backend_id, reason="location contains a NUL character"
            )
        scheme, sep, _ = location.partition("://")
        if not sep:
            scheme = ""
        if scheme.lower() not in self.SCHEMES:
            expected = ", ".join(f"{s}://" for s in self.SCHEMES)
            raise exception.InvalidLocation(
                backend=self.backend_id,
                reason=f"scheme {scheme!r} is not served here (expected {expected})",
            )
        return location

    # -- what drivers implement -------------------------------------------

    def _add(
        self,
        object_id: str,
        stream: Source,
        size: int | None,
        hashing_algo: str,
        checksum_algo: str | None,
    ) -> AddResult:
        raise exception.StoreCapabilityError(
            backend=self.backend_id, operation="add objects"
        )

    @abc.abstractmethod
    def _get(
        self,
        location: str,
        offset: int,
        length: int | None,
        chunk_size: int | None,
        verify: bool,
    ) -> tuple[ChunkIterator, int]:
        """Open ``location``; arguments are already validated."""

    def _delete(self, location: str) -> None:
        raise exception.StoreCapabilityError(
            backend=self.backend_id, operation="delete objects"
        )

    @abc.abstractmethod
    def _get_size(self, location: str) -> int:
        """Return the size of the object at ``location``."""

    def _verify_store(self) -> None:
        return None

    def _scrub(self, reclaim: bool, report: ScrubReport) -> None:
        """Scrub the back end, filling ``report`` in (``count_checked`` per object)."""
        raise exception.StoreCapabilityError(
            backend=self.backend_id, operation="scrub its data"
        )
