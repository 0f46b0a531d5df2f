"""The ``file`` driver: objects as files in one or more local directories.

Layout of a data directory::

    DATA_DIR/.layout              format marker, written once
    DATA_DIR/.tmp/                objects being written, and writer locks
    DATA_DIR/.tmp/TOKEN.lock      held (flock) by the live process TOKEN
    DATA_DIR/.tmp/TOKEN.SEQ-ID    an object being written by TOKEN
    DATA_DIR/ab/ID                an object; ab = first 2 hex digits of
                                  sha256(ID), so 256 subdirectories share
                                  the objects (a million: ~4,000 each)
    DATA_DIR/ab/.meta-ID          metadata sidecar (only where the
                                  filesystem has no user xattrs)

**Adding** an object (the steps a crash can interrupt)::

    open .tmp/TOKEN.SEQ-ID  O_CREAT|O_EXCL|O_NOFOLLOW      (invisible name)
    write chunks, hashing each chunk once as it is written
    fsetxattr user.storaged.meta = {"size", "algo", "digest", "xxh3_64", ...}
    fsync(file)                                             (data durable)
    renameat2(.tmp/..., ab/ID, RENAME_NOREPLACE)            (atomic publish,
                                                             never overwrites)
    fsync(ab/)                                              (name durable)

A reader therefore sees either no ``ab/ID`` or the complete, fsynced object
with its digest.  A failed add removes its temporary file; a killed one
leaves it in ``.tmp/``, where it is recognised as dead (its writer's lock is
free) and removed when a process starts or a scrub reclaims.  With sidecar
metadata the sidecar is published just after the object; an object without
metadata there is an add that never returned, and scrub reclaims it.

**Reading** opens the subdirectory and the file with ``O_NOFOLLOW``, below
a data directory of this back end only: a location that names anything else
is refused before it is opened.  A verified read checks the data against
the XXH3-64 recorded with it (computed in the same pass as the digest, at
tens of GB/s: random corruption goes unnoticed with a 2**-64 chance) at the
end; the last chunk is held back until it matched.  Objects written with a
CRC-32 instead are checked against it, and objects written with neither
against their digest.  Scrub always re-computes the full digest
(sha256 by default).  Neither guards against someone who can rewrite the
data directory: they could rewrite the recorded digest too.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import dataclasses
import errno
import fcntl
import functools
import hashlib
import itertools
import json
import logging
import mmap
import os
import re
import secrets
import stat
import time
from typing import Any
from urllib import parse as urlparse
import zlib

from oslo_config import cfg
import xxhash

from storaged import concurrency
from storaged import exception
from storaged.common import freespace
from storaged.objectstore import hashing
from storaged.objectstore import names
from storaged.objectstore.capabilities import Capability
from storaged.objectstore.driver import AddResult
from storaged.objectstore.driver import ChunkIterator
from storaged.objectstore.driver import Driver
from storaged.objectstore.driver import InvalidRange
from storaged.objectstore.driver import ScrubFinding
from storaged.objectstore.driver import ScrubReport
from storaged.objectstore.driver import SizeMismatch
from storaged.objectstore.driver import Source
from storaged.objectstore.driver import iter_source
from storaged.objectstore.drivers import fsutil

LOG = logging.getLogger(__name__)

MiB = 1024 * 1024

XATTR_NAME = "user.storaged.meta"
SIDECAR_PREFIX = ".meta-"
TMP_DIR = ".tmp"
LAYOUT_FILE = ".layout"
#: what mkfs leaves at the root of a filesystem: a data directory may be one
_LOST_FOUND = "lost+found"
LAYOUT = {"format": 1, "fanout": 2}
FANOUT_DIGITS = 2
_FANOUT_RE = re.compile(r"[0-9a-f]{" + str(FANOUT_DIGITS) + r"}\Z")
_CRC_RE = re.compile(r"[0-9a-f]{8}\Z")
_XXH3_RE = re.compile(r"[0-9a-f]{16}\Z")
_TOKEN_RE = re.compile(r"[0-9]+-[0-9a-f]+\Z")
_PRIORITY_RE = re.compile(r"[+-]?[0-9]+\Z")

#: free space assumed where the filesystem does not report any.
_UNKNOWN_FREE = 1 << 62

#: a writer lock file that was never filled in is left alone this long.
LOCK_GRACE = 60.0

#: objects larger than this are written with O_DIRECT, by aligned blocks of
#: this size (the page cache is not worth filling with them, and the final
#: fsync has nothing left to write); smaller ones, and the tail, are buffered.
DIRECT_BLOCK = 4 * MiB

_IOV_MAX = 512

#: chunks at least this large are hashed in another thread while written.
_PIPELINE_MIN = MiB

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: a directory opened only to open files below it (cheaper, no fsync)
_PATH_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_RESOLVED_MAX = 8192
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

OPTIONS = [
    cfg.ListOpt(
        "data_dirs",
        default=["$state_path/objects"],
        help="""
Directories that hold the objects of this back end, with priorities.

New objects go to the directory of highest priority; among directories of
equal priority, to the one with the most free space (measured at most every
``free_space_ttl`` seconds). A directory that cannot hold an object of the
declared size is passed over. Locations name the directory, so a directory
must not be removed from the list while it holds objects.

Possible values:
    * A comma-separated list of ``PATH`` or ``PATH:PRIORITY`` entries.
      PATH is absolute; PRIORITY is an integer (default 0, higher first).
      A PATH that contains ``:`` must be given a priority
      (``/mnt/a:b:0``). Directories must not repeat or contain each other.

Related options:
    * ``create_data_dirs``, ``free_space_ttl``
""",
    ),
    cfg.BoolOpt(
        "create_data_dirs",
        default=True,
        help="""
Create missing data directories at start-up.

Turn it off when data directories are mount points (or below them): a
missing directory then stops start-up instead of filling the root
filesystem while a disk is not mounted.
""",
    ),
    cfg.IntOpt(
        "chunk_size",
        default=4 * MiB,
        min=4096,
        max=64 * MiB,
        help="""
Bytes read from a client's stream or from disk at a time, and the size of
the chunks ``get`` yields. An object of at most this size is read (and
verified) in one go.

Possible values:
    * 4096 to 67108864; the default is 4 MiB
""",
    ),
    cfg.StrOpt(
        "file_mode",
        default="0640",
        help="""
Permissions of object files, as an octal number (``0640``, ``0644``).

Set when the object is published; a partly written object is only readable
by its owner.
""",
    ),
    cfg.StrOpt(
        "metadata_store",
        default="auto",
        choices=[
            (
                "auto",
                "extended attributes where the filesystem supports "
                "them, else sidecar files (probed at start-up)",
            ),
            (
                "xattr",
                "extended attributes only; start-up fails on a "
                "filesystem without user xattrs",
            ),
            ("sidecar", "a small file beside each object"),
        ],
        help="""
Where each object's size, digest and algorithm are recorded.

Extended attributes (``user.storaged.meta``) are published atomically with
the object. Sidecar files are published just after it; an object whose
sidecar is missing is an add that never completed, which ``scrub`` reports
and reclaims.
""",
    ),
    cfg.FloatOpt(
        "free_space_ttl",
        default=5.0,
        min=0.0,
        max=3600.0,
        help="""
Seconds a data directory's measured free space is trusted for placement.

Between measurements the size of each object added is subtracted. 0
measures on every add. With a ``fallocate_reserve``, the directory chosen is
measured again on every add whatever this says (one ``statvfs``).
""",
    ),
    cfg.StrOpt(
        "fallocate_reserve",
        default="1%",
        regex=freespace.PATTERN,
        help="""
Free space kept in each data directory's filesystem, as Swift's
``fallocate_reserve``.

A new object whose declared size would leave less free is not placed there;
when no data directory can take it the write fails with 507 Insufficient
Storage. An object of unknown size (chunked upload) is accepted while the
reserve is free, and fails with 507 if the disk fills while it is written.
Deletes never need space: clients who filled the disk can free it again.

Possible values:
    * A number of bytes (``10485760``) or a percentage of the filesystem's
      size (``1%``, ``0.5%``); ``0`` turns the reserve off

Related options:
    * ``data_dirs``, ``free_space_ttl``
    * ``[catalog] fallocate_reserve``, for the container databases
""",
    ),
    cfg.IntOpt(
        "reclaim_age",
        default=3600,
        min=0,
        help="""
Seconds after which ``scrub --reclaim`` removes an object left without its
sidecar metadata (an add that never completed). Only applies to sidecar
metadata; temporary files of dead writers are reclaimed at once.
""",
    ),
]


def fanout(object_id: str) -> str:
    """Return the subdirectory of an object id."""
    return hashlib.sha256(object_id.encode("utf-8")).hexdigest()[:FANOUT_DIGITS]


def parse_data_dirs(entries: list[str], backend_id: str) -> list[tuple[str, int]]:
    """Parse ``data_dirs`` into ``(normalised path, priority)`` pairs.

    :raises storaged.exception.ConfigError: ``[backend_id] data_dirs``.
    """

    def error(problem: str) -> exception.ConfigError:
        return exception.ConfigError(problem, group=backend_id, option="data_dirs")

    result: list[tuple[str, int]] = []
    for raw in entries:
        entry = raw.strip()
        if not entry:
            raise error("empty entry (use PATH or PATH:PRIORITY)")
        path, priority = entry, 0
        if ":" in entry:
            path, _, text = entry.rpartition(":")
            if not _PRIORITY_RE.match(text.strip()):
                raise error(
                    f"bad priority {text!r} in {entry!r}: use PATH or "
                    "PATH:PRIORITY with an integer PRIORITY"
                )
            priority = int(text)
            path = path.strip()
        if "\x00" in path:
            raise error(f"path {path!r} contains a NUL character")
        if not os.path.isabs(path):
            raise error(f"{path!r} is not an absolute path")
        path = os.path.normpath(path)
        if path.startswith("//"):
            path = "/" + path.lstrip("/")
        if path == "/":
            raise error("the root directory cannot be a data directory")
        for other, _ in result:
            if other == path:
                raise error(f"{path!r} is listed twice")
            if path.startswith(other + "/") or other.startswith(path + "/"):
                raise error(f"{other!r} and {path!r} contain each other")
        result.append((path, priority))
    if not result:
        raise error("no data directory (e.g. $state_path/objects)")
    return result


def _parse_mode(text: str, backend_id: str) -> int:
    if not re.fullmatch(r"0?[0-7]{3}", text.strip()):
        raise exception.ConfigError(
            f"{text!r} is not an octal file mode such as 0640",
            group=backend_id,
            option="file_mode",
        )
    mode = int(text, 8)
    if mode & 0o400 == 0:
        raise exception.ConfigError(
            f"{text!r} does not let the owner read the objects",
            group=backend_id,
            option="file_mode",
        )
    return mode


def _parse_reserve(text: str, backend_id: str) -> freespace.Reserve:
    try:
        return freespace.Reserve.parse(text)
    except ValueError as err:
        raise exception.ConfigError(
            str(err), group=backend_id, option="fallocate_reserve"
        ) from err


@dataclasses.dataclass
class DataDir:
    """A data directory and what was learnt about it at start-up."""

    path: str
    priority: int
    #: "xattr" or "sidecar"
    metadata: str = "xattr"
    #: False once renameat2(RENAME_NOREPLACE) was refused here
    renameat2: bool = True
    #: False once O_DIRECT was refused here
    direct: bool = True
    free: int = 0
    #: bytes this directory's filesystem keeps free (its reserve)
    reserved: int = 0
    free_at: float = float("-inf")

    @property
    def tmp(self) -> str:
        return os.path.join(self.path, TMP_DIR)


@dataclasses.dataclass
class _Writer:
    """This process's lock in one data directory's ``.tmp``."""

    token: str
    fd: int
    pid: int


@dataclasses.dataclass(frozen=True)
class _Meta:
    size: int
    algo: str
    digest: str
    #: hex CRC-32 of the data (objects written when it was the fast check)
    crc32: str | None = None
    #: hex XXH3-64 of the data (the fast check of objects written now)
    xxh3_64: str | None = None

    def read_check(self) -> tuple[Any, str, str]:
        """What a verified read computes: (fresh hasher, expected, its name)."""
        if self.xxh3_64 is not None:
            return xxhash.xxh3_64(), self.xxh3_64, "xxh3_64"
        if self.crc32 is not None:
            return _Crc32(), self.crc32, "crc32"
        return hashing.new(self.algo), self.digest, self.algo


class _Crc32:
    """CRC-32 with the ``update`` / ``hexdigest`` interface of hashlib."""

    __slots__ = ("_value",)

    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes) -> None:
        self._value = zlib.crc32(data, self._value)

    def hexdigest(self) -> str:
        return "%08x" % self._value


class FileStore(Driver):
    """Objects in local (or mounted) directories; durable, atomic, verified."""

    OPTIONS = OPTIONS
    CAPABILITIES = (
        Capability.READ
        | Capability.WRITE
        | Capability.DELETE
        | Capability.RANGE_READ
        | Capability.REUSABLE
        | Capability.THREAD_SAFE
        | Capability.VERIFY_READ
        | Capability.SCRUB
        | Capability.DURABLE_WRITE
    )
    SCHEMES = ("file",)

    @classmethod
    def check_conf(cls, conf: cfg.ConfigOpts, backend_id: str) -> None:
        group = conf[backend_id]
        parse_data_dirs(group.data_dirs, backend_id)
        _parse_mode(group.file_mode, backend_id)
        _parse_reserve(group.fallocate_reserve, backend_id)

    def __init__(self, conf: cfg.ConfigOpts, backend_id: str) -> None:
        super().__init__(conf, backend_id)
        group = conf[backend_id]
        self._chunk_size = int(group.chunk_size)
        self._file_mode = _parse_mode(group.file_mode, backend_id)
        self._free_ttl = float(group.free_space_ttl)
        self._reclaim_age = float(group.reclaim_age)
        self._reserve = _parse_reserve(group.fallocate_reserve, backend_id)
        self._dirs = [
            DataDir(path, priority)
            for path, priority in parse_data_dirs(group.data_dirs, backend_id)
        ]
        # Native: held briefly, never across a yield, and taken both by
        # green threads and by the native pool that runs blocking I/O.
        self._lock = concurrency.native_module("threading").Lock()
        self._writers: dict[str, _Writer] = {}
        self._seq = itertools.count(1)
        self._resolved: dict[str, tuple[DataDir, str, str]] = {}
        for dd in self._dirs:
            concurrency.run_blocking(
                self._prepare, dd, group.create_data_dirs, group.metadata_store
            )

    # -- start-up ----------------------------------------------------------

    def _config_error(
        self, problem: str, option: str = "data_dirs"
    ) -> exception.ConfigError:
        return exception.ConfigError(problem, group=self.backend_id, option=option)

    def _prepare(self, dd: DataDir, create: bool, metadata_store: str) -> None:
        """Create or check a data directory; probe it; reclaim leftovers."""
        try:
            if not os.path.isdir(dd.path):
                if not create:
                    raise self._config_error(
                        f"data directory {dd.path} does not exist (create_data_dirs is "
                        "off: is its disk mounted?)"
                    )
                os.makedirs(dd.path, mode=0o750, exist_ok=True)
                fsutil.fsync_dir(os.path.dirname(dd.path))
            entries = set(os.listdir(dd.path))
            if LAYOUT_FILE not in entries:
                if entries - {TMP_DIR, _LOST_FOUND}:
                    raise self._config_error(
                        f"data directory {dd.path} is not empty and was not created by "
                        f"storaged (no {LAYOUT_FILE}); use an empty directory"
                    )
            self._check_layout(dd)
            created = False
            # Several processes may prepare one new directory at once.
            if TMP_DIR not in entries:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(dd.tmp, 0o750)
                created = True
            for n in range(16**FANOUT_DIGITS):
                name = f"{n:0{FANOUT_DIGITS}x}"
                if name not in entries:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(os.path.join(dd.path, name), 0o750)
                    created = True
            if created:
                fsutil.fsync_dir(dd.path)
            dd.metadata = self._probe_xattr(dd, metadata_store)
            self._refresh_free(dd)
        except OSError as err:
            raise self._config_error(
                f"cannot use data directory {dd.path}: {err.strerror or err}"
            ) from err
        report = ScrubReport(self.backend_id)
        self._scan_tmp(dd, report, reclaim=True)
        if report.reclaimed:
            LOG.info(
                "back end %s: removed %d temporary files left by dead writers in %s",
                self.backend_id,
                len(report.reclaimed),
                dd.tmp,
            )

    def _check_layout(self, dd: DataDir) -> None:
        path = os.path.join(dd.path, LAYOUT_FILE)
        try:
            with open(path, "rb") as f:
                raw = f.read(4096)
        except FileNotFoundError:
            raw = b""
        if raw.strip():
            try:
                found = json.loads(raw)
            except ValueError:
                found = None
            if found != LAYOUT:
                raise self._config_error(
                    f"data directory {dd.path} has layout {raw[:100]!r}; this "
                    f"version of storaged understands {json.dumps(LAYOUT)}"
                )
            return
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o640)
        try:
            os.write(fd, json.dumps(LAYOUT).encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        fsutil.fsync_dir(dd.path)

    def _probe_xattr(self, dd: DataDir, metadata_store: str) -> str:
        if metadata_store == "sidecar":
            return "sidecar"
        path = os.path.join(dd.path, LAYOUT_FILE)
        # One probe attribute per process: several may start at once.
        probe = "user.storaged.probe.%d" % os.getpid()
        try:
            os.setxattr(path, probe, b"1", follow_symlinks=False)
            ok = os.getxattr(path, probe, follow_symlinks=False) == b"1"
            os.removexattr(path, probe, follow_symlinks=False)
        except OSError as err:
            if err.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
                raise
            ok = False
        if ok:
            return "xattr"
        if metadata_store == "xattr":
            raise self._config_error(
                f"data directory {dd.path} is on a filesystem without user extended "
                "attributes; set metadata_store = auto or sidecar",
                option="metadata_store",
            )
        LOG.warning(
            "back end %s: %s has no user extended attributes; object metadata "
            "goes to sidecar files",
            self.backend_id,
            dd.path,
        )
        return "sidecar"

    # -- errors --------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Translate OS errors into storaged errors, naming ``what``."""
        try:
            yield
        except OSError as err:
            raise self._translate(err, what) from err

    def _translate(self, err: OSError, what: str) -> exception.StoreError:
        code = err.errno
        reason = f"{what}: {err.strerror or err}"
        if code == errno.ENOENT:
            return exception.ObjectNotFound(what=what)
        if code == errno.EEXIST:
            return exception.ObjectExists(what=what)
        if code in (errno.ENOSPC, errno.EDQUOT):
            return exception.StorageFull(backend=self.backend_id, reason=reason)
        if code in (errno.ELOOP, errno.ENOTDIR):
            return exception.InvalidLocation(
                backend=self.backend_id,
                reason=f"{what}: a symbolic link or something other than a "
                "regular file or directory is in the way",
            )
        if code in (
            errno.EIO,
            errno.ESTALE,
            errno.ETIMEDOUT,
            errno.ENOTCONN,
            errno.EHOSTDOWN,
        ):
            return exception.BackendUnavailable(backend=self.backend_id, reason=reason)
        return exception.StoreError(reason=f"back end {self.backend_id}: {reason}")

    def _io(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return concurrency.run_blocking(fn, *args)
        except OSError as err:
            raise self._translate(err, what) from err

    # -- locations -----------------------------------------------------------

    @property
    def data_dirs(self) -> list[str]:
        """The data directories, in configuration order."""
        return [dd.path for dd in self._dirs]

    def _location(self, dd: DataDir, object_id: str) -> str:
        path = f"{dd.path}/{fanout(object_id)}/{object_id}"
        return "file://" + urlparse.quote(path, safe="/")

    def _resolve(self, location: str) -> tuple[DataDir, str, str]:
        """Map a location to (data dir, fan-out dir, object id), or refuse it.

        Answers are kept (a bounded dictionary): the mapping only depends on
        the configured data directories, and reads resolve the same
        locations again and again.
        """
        hit = self._resolved.get(location)
        if hit is None:
            hit = self._resolve_uncached(location)
            if len(self._resolved) >= _RESOLVED_MAX:
                self._resolved.clear()
            self._resolved[location] = hit
        return hit

    def _resolve_uncached(self, location: str) -> tuple[DataDir, str, str]:

        def refuse(reason: str) -> exception.InvalidLocation:
            return exception.InvalidLocation(
                backend=self.backend_id, reason=f"{_short(location)}: {reason}"
            )

        rest = location[len("file://") :]
        if not rest.startswith("/"):
            raise refuse("expected file:///ABSOLUTE/PATH (no host name)")
        if "?" in rest or "#" in rest:
            raise refuse("a query or fragment is not allowed")
        try:
            path = urlparse.unquote(rest, errors="strict")
        except UnicodeDecodeError:
            raise refuse("the path is not valid UTF-8") from None
        if "\x00" in path:
            raise refuse("the path contains a NUL character")
        for dd in self._dirs:
            prefix = dd.path + "/"
            if path.startswith(prefix):
                tail = path[len(prefix) :]
                break
        else:
            raise refuse(f"not inside a data directory of back end {self.backend_id}")
        parts = tail.split("/")
        if len(parts) != 2:
            raise refuse("expected DATA_DIR/%s/OBJECT_ID" % ("X" * FANOUT_DIGITS))
        fan, object_id = parts
        if not _FANOUT_RE.match(fan):
            raise refuse(f"{fan!r} is not a subdirectory of the data directory layout")
        problem = names.object_id_problem(object_id)
        if problem is not None:
            raise refuse(f"object id {problem}")
        if fan != fanout(object_id):
            raise refuse(f"object {object_id} is not stored under {fan}/")
        return dd, fan, object_id

    def find(self, object_id: str) -> str | None:
        """Return the location of ``object_id`` if a data directory has it."""
        names.validate_object_id(object_id)
        fan = fanout(object_id)
        for dd in self._dirs:
            path = os.path.join(dd.path, fan, object_id)
            try:
                st = concurrency.run_blocking(os.lstat, path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                return self._location(dd, object_id)
        return None

    # -- placement -----------------------------------------------------------

    def _refresh_free(self, dd: DataDir) -> None:
        st = os.statvfs(dd.path)
        # Some filesystems (ramfs, some FUSE ones) report no size at all:
        # their free space is unknown, not zero.
        dd.free = st.f_bavail * st.f_frsize if st.f_blocks else _UNKNOWN_FREE
        dd.reserved = self._reserve.bytes_of(st.f_blocks * st.f_frsize)
        dd.free_at = time.monotonic()

    def _choose(self, size: int | None) -> DataDir:
        """Pick the data directory for a new object.

        Highest priority first, then most free space; a directory known not
        to have room for a declared size above its reserve is passed over.
        Free space is an estimate between measurements (the size of each
        object added is subtracted); with a reserve, the chosen directory is
        measured again before it is trusted: others write to the same
        filesystem (the catalog, other processes), and a stale estimate
        would let writes run through the reserve.
        """
        now = time.monotonic()
        for dd in self._dirs:
            if now - dd.free_at >= self._free_ttl:
                self._io(dd.path, self._refresh_free, dd)
        need = size or 0
        for attempt in range(2):
            ordered = sorted(self._dirs, key=lambda d: (-d.priority, -d.free))
            for dd in ordered:
                if dd.free - need <= dd.reserved:
                    continue
                if self._reserve.value and dd.free_at < now:
                    self._io(dd.path, self._refresh_free, dd)
                    if dd.free - need <= dd.reserved:
                        continue
                return dd
            if attempt == 0:
                for dd in self._dirs:
                    self._io(dd.path, self._refresh_free, dd)
        raise exception.StorageFull(
            backend=self.backend_id,
            reason=f"no data directory has {need} bytes free above its "
            f"reserve (fallocate_reserve = {self._reserve})",
        )

    # -- writer locks and temporary files ------------------------------------

    def _writer(self, dd: DataDir) -> str:
        """Return this process's token in ``dd``, taking its lock if needed."""
        pid = os.getpid()
        with self._lock:
            writer = self._writers.get(dd.path)
            if writer is not None and writer.pid == pid:
                return writer.token
            if writer is not None:
                # Inherited through fork: the parent's lock is not ours.
                with contextlib.suppress(OSError):
                    os.close(writer.fd)
            token = f"{pid}-{secrets.token_hex(6)}"
            path = os.path.join(dd.tmp, token + ".lock")
            fd = os.open(path, (_CREATE_FLAGS & ~os.O_WRONLY) | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                # Written only once the lock is held: a scrubber that can
                # lock a non-empty lock file knows its writer is gone.
                os.write(fd, b"%d\n" % pid)
            except BaseException:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(path)
                raise
            self._writers[dd.path] = _Writer(token, fd, pid)
            return token

    def _temp_path(self, dd: DataDir, label: str) -> str:
        token = concurrency.run_blocking(self._writer, dd)
        return os.path.join(dd.tmp, f"{token}.{next(self._seq):x}-{label}")

    def _token_state(self, dd: DataDir, token: str, has_lock: bool) -> tuple[str, int]:
        """Say whether the writer ``token`` is alive; return a held fd if dead.

        :returns: ``("alive" | "dead", fd)``; ``fd`` is the dead writer's
            lock file, locked by us, or -1.
        """
        writer = self._writers.get(dd.path)
        if writer is not None and writer.token == token and writer.pid == os.getpid():
            return "alive", -1
        if not has_lock:
            return "dead", -1
        path = os.path.join(dd.tmp, token + ".lock")
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return "dead", -1
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return "alive", -1
        st = os.fstat(fd)
        if st.st_size == 0 and time.time() - st.st_ctime < LOCK_GRACE:
            # Created but not yet locked by its writer, perhaps: wait.
            os.close(fd)
            return "alive", -1
        return "dead", fd

    def _scan_tmp(self, dd: DataDir, report: ScrubReport, reclaim: bool) -> None:
        """Report (and reclaim) temporary files of writers that are gone."""
        try:
            entries = concurrency.run_blocking(os.listdir, dd.tmp)
        except OSError as err:
            report.errors.append(ScrubFinding(dd.tmp, err.strerror or str(err)))
            return
        by_token: dict[str, list[str]] = {}
        locks: set[str] = set()
        for name in entries:
            if name.endswith(".lock") and _TOKEN_RE.match(name[:-5]):
                locks.add(name[:-5])
                by_token.setdefault(name[:-5], [])
                continue
            token = name.split(".", 1)[0]
            by_token.setdefault(token if _TOKEN_RE.match(token) else "", []).append(
                name
            )
        for token, files in sorted(by_token.items()):
            state, fd = concurrency.run_blocking(
                self._token_state, dd, token, token in locks
            )
            if state == "alive":
                report.in_progress += len(files)
                continue
            try:
                for name in files:
                    path = os.path.join(dd.tmp, name)
                    report.orphans.append(
                        ScrubFinding(path, "temporary file of a writer that is gone")
                    )
                    if reclaim:
                        with contextlib.suppress(FileNotFoundError):
                            concurrency.run_blocking(os.unlink, path)
                        report.reclaimed.append(path)
                if reclaim and token in locks:
                    with contextlib.suppress(FileNotFoundError):
                        concurrency.run_blocking(
                            os.unlink, os.path.join(dd.tmp, token + ".lock")
                        )
            except OSError as err:
                report.errors.append(ScrubFinding(dd.tmp, err.strerror or str(err)))
            finally:
                if fd >= 0:
                    os.close(fd)

    # -- add -----------------------------------------------------------------

    def _add(
        self,
        object_id: str,
        stream: Source,
        size: int | None,
        hashing_algo: str,
        checksum_algo: str | None,
    ) -> AddResult:
        dd = self._choose(size)
        hashers = [hashing.new(hashing_algo)]
        if checksum_algo is not None and checksum_algo != hashing_algo:
            hashers.append(hashing.new(checksum_algo))
        check = xxhash.xxh3_64()
        updates = [*hashers, check]
        with self._errors(dd.tmp):
            tmp = self._temp_path(dd, object_id)
        fd = self._io(object_id, os.open, tmp, _CREATE_FLAGS, 0o600)
        sink = _Sink(fd, dd)
        published = False
        try:
            written = 0
            for chunk in iter_source(stream, self._chunk_size, size):
                if size is not None and written + len(chunk) > size:
                    raise SizeMismatch(
                        what=object_id,
                        reason=f"declared {size} bytes, got more",
                    )
                if len(chunk) >= _PIPELINE_MIN:
                    # Hash this chunk in another thread while it is written:
                    # the two take about as long, and both release the GIL.
                    task = concurrency.spawn(
                        concurrency.run_blocking, _update, updates, chunk
                    )
                    try:
                        self._io(object_id, sink.write, chunk)
                    finally:
                        task.wait()
                else:
                    self._io(object_id, _write_hashed, sink, updates, chunk)
                written += len(chunk)
            if size is not None and written != size:
                raise SizeMismatch(
                    what=object_id,
                    reason=f"declared {size} bytes, got {written}",
                )
            digest = hashers[0].hexdigest()
            checksum = None
            if checksum_algo is not None:
                checksum = (hashers[-1] if len(hashers) > 1 else hashers[0]).hexdigest()
            meta: dict[str, Any] = {
                "format": 1,
                "id": object_id,
                "size": written,
                "algo": hashing_algo,
                "digest": digest,
                "xxh3_64": check.hexdigest(),
                "created": round(time.time(), 6),
            }
            if checksum_algo is not None:
                meta["checksum"] = f"{checksum_algo}:{checksum}"
            raw = json.dumps(meta, separators=(",", ":")).encode()
            fd = -1  # _seal closes it, whatever happens
            self._io(object_id, self._seal, sink, dd, raw)
            self._io(object_id, self._publish, dd, tmp, object_id, raw)
            published = True
        finally:
            sink.release()
            if not published:
                concurrency.run_blocking(_discard, fd, tmp)
        with self._lock:
            dd.free -= written
        return AddResult(
            location=self._location(dd, object_id),
            size=written,
            checksum=checksum,
            multihash=digest,
            metadata={"backend": self.backend_id},
            hashing_algo=hashing_algo,
            backend=self.backend_id,
        )

    def _seal(self, sink: _Sink, dd: DataDir, raw: bytes) -> None:
        """Write what is left, record the metadata, make it all durable."""
        fd = sink.fd
        try:
            sink.finish()
            if dd.metadata == "xattr":
                os.setxattr(fd, XATTR_NAME, raw)
            os.fchmod(fd, self._file_mode)
            os.fsync(fd)
        finally:
            os.close(fd)

    def _publish(self, dd: DataDir, tmp: str, object_id: str, raw: bytes) -> None:
        """Give the temporary file its final name, never replacing one."""
        fan_dir = os.path.join(dd.path, fanout(object_id))
        final = os.path.join(fan_dir, object_id)
        try:
            try:
                dd.renameat2 = fsutil.rename_noreplace(tmp, final, dd.renameat2)
            except FileNotFoundError:
                if os.path.isdir(fan_dir) or not os.path.exists(tmp):
                    raise
                # Someone removed the subdirectory: make it again.
                os.makedirs(fan_dir, 0o750, exist_ok=True)
                fsutil.fsync_dir(dd.path)
                dd.renameat2 = fsutil.rename_noreplace(tmp, final, dd.renameat2)
        except FileExistsError:
            raise exception.ObjectExists(
                what=f"{object_id} in back end {self.backend_id}"
            ) from None
        if dd.metadata == "sidecar":
            try:
                self._write_sidecar(dd, fan_dir, object_id, raw)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(final)
                raise
        fsutil.fsync_dir(fan_dir)

    def _write_sidecar(
        self, dd: DataDir, fan_dir: str, object_id: str, raw: bytes
    ) -> None:
        tmp = self._temp_path(dd, "meta")
        fd = os.open(tmp, _CREATE_FLAGS, 0o600)
        try:
            os.write(fd, raw)
            os.fchmod(fd, self._file_mode)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        os.close(fd)
        os.rename(tmp, os.path.join(fan_dir, SIDECAR_PREFIX + object_id))

    # -- read ----------------------------------------------------------------

    def _read_meta(
        self, dd: DataDir, dir_fd: int, fd: int, object_id: str
    ) -> bytes | None:
        if dd.metadata == "xattr":
            try:
                return os.getxattr(fd, XATTR_NAME)
            except OSError as err:
                if err.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
                    raise
        try:
            mfd = os.open(SIDECAR_PREFIX + object_id, _READ_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        try:
            return os.read(mfd, 65536)
        finally:
            os.close(mfd)

    def _open(
        self, dd: DataDir, fan: str, object_id: str, want_meta: bool
    ) -> tuple[int, int, bytes | None]:
        """Open an object below ``dd`` without following any symbolic link."""
        dir_fd = os.open(os.path.join(dd.path, fan), _PATH_FLAGS)
        try:
            fd = os.open(object_id, _READ_FLAGS, dir_fd=dir_fd)
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise OSError(errno.ELOOP, "not a regular file")
                raw = self._read_meta(dd, dir_fd, fd, object_id) if want_meta else None
            except BaseException:
                os.close(fd)
                raise
        finally:
            os.close(dir_fd)
        return fd, st.st_size, raw

    def _meta(self, location: str, raw: bytes | None) -> _Meta:
        if raw is None:
            raise exception.CorruptObject(
                what=_short(location), reason="no recorded digest (metadata missing)"
            )
        try:
            return _parse_meta(raw)
        except (ValueError, KeyError, TypeError, exception.StoreError) as err:
            raise exception.CorruptObject(
                what=_short(location), reason=f"metadata unreadable: {err}"
            ) from err

    def _get(
        self,
        location: str,
        offset: int,
        length: int | None,
        chunk_size: int | None,
        verify: bool,
    ) -> tuple[ChunkIterator, int]:
        dd, fan, object_id = self._resolve(location)
        try:
            result: tuple[ChunkIterator, int] = concurrency.run_blocking(
                self._open_for_read,
                dd,
                fan,
                object_id,
                location,
                offset,
                length,
                chunk_size or self._chunk_size,
                verify,
            )
        except OSError as err:
            raise self._translate(err, _short(location)) from err
        return result

    def _open_for_read(
        self,
        dd: DataDir,
        fan: str,
        object_id: str,
        location: str,
        offset: int,
        length: int | None,
        chunk_size: int,
        verify: bool,
    ) -> tuple[ChunkIterator, int]:
        """Open an object; read it at once when it fits in one chunk.

        A small object is read, and verified, before ``get`` returns: a
        corrupt one fails the ``get`` itself, and the file is closed at once.
        """
        fd, size, raw = self._open(dd, fan, object_id, verify)
        try:
            meta = None
            if verify:
                meta = self._meta(location, raw)
                if meta.size != size:
                    raise exception.CorruptObject(
                        what=_short(location),
                        reason=f"{size} bytes on disk, {meta.size} recorded",
                    )
            if offset > size:
                raise InvalidRange(
                    what=_short(location),
                    reason=f"offset {offset} is beyond its {size} bytes",
                )
            n = size - offset if length is None else min(length, size - offset)
            if n > chunk_size:
                hasher = meta.read_check()[0] if meta is not None else None
                chunks = _FileChunks(
                    self, location, fd, offset, n, chunk_size, hasher, meta
                )
                fd = -1  # the iterator owns it now
                return chunks, n
            data = os.pread(fd, n, offset) if n else b""
        finally:
            if fd >= 0:
                os.close(fd)
        if len(data) != n:
            raise exception.CorruptObject(
                what=_short(location), reason="it shrank while being read"
            )
        if meta is not None:
            h, expected, _name = meta.read_check()
            h.update(data)
            if h.hexdigest() != expected:
                raise _digest_mismatch(self.backend_id, location, meta)
        return _Buffered(data), n

    def _get_size(self, location: str) -> int:
        dd, fan, object_id = self._resolve(location)
        return int(self._io(location, self._stat_object, dd, fan, object_id).st_size)

    @staticmethod
    def _stat_object(dd: DataDir, fan: str, object_id: str) -> os.stat_result:
        dir_fd = os.open(os.path.join(dd.path, fan), _PATH_FLAGS)
        try:
            st = os.stat(object_id, dir_fd=dir_fd, follow_symlinks=False)
        finally:
            os.close(dir_fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.ELOOP, "not a regular file")
        return st

    # -- delete ----------------------------------------------------------------

    def _delete(self, location: str) -> None:
        dd, fan, object_id = self._resolve(location)
        self._io(location, self._remove, dd, fan, object_id)

    @staticmethod
    def _remove(dd: DataDir, fan: str, object_id: str) -> None:
        dir_fd = os.open(os.path.join(dd.path, fan), _DIR_FLAGS)
        try:
            st = os.stat(object_id, dir_fd=dir_fd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(errno.ELOOP, "not a regular file")
            # The sidecar goes first: an object without metadata is one
            # that scrub reclaims, metadata without an object is noise.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(SIDECAR_PREFIX + object_id, dir_fd=dir_fd)
            os.unlink(object_id, dir_fd=dir_fd)
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    # -- checks ----------------------------------------------------------------

    def _verify_store(self) -> None:
        for dd in self._dirs:
            try:
                concurrency.run_blocking(self._probe_dir, dd)
            except OSError as err:
                raise exception.BackendUnavailable(
                    backend=self.backend_id,
                    reason=f"data directory {dd.path}: {err.strerror or err}",
                ) from err

    def _probe_dir(self, dd: DataDir) -> None:
        for path in (dd.path, dd.tmp):
            if not stat.S_ISDIR(os.stat(path).st_mode):
                raise OSError(errno.ENOTDIR, "not a directory", path)
        tmp = self._temp_path(dd, "probe")
        fd = os.open(tmp, _CREATE_FLAGS, 0o600)
        os.close(fd)
        os.unlink(tmp)
        self._refresh_free(dd)

    def _scrub(self, reclaim: bool) -> ScrubReport:
        report = ScrubReport(self.backend_id)
        for dd in self._dirs:
            self._scan_tmp(dd, report, reclaim)
            try:
                top = sorted(concurrency.run_blocking(os.listdir, dd.path))
            except OSError as err:
                report.errors.append(ScrubFinding(dd.path, err.strerror or str(err)))
                continue
            for name in top:
                if name in (TMP_DIR, LAYOUT_FILE, _LOST_FOUND):
                    continue
                path = os.path.join(dd.path, name)
                if not _FANOUT_RE.match(name):
                    report.orphans.append(
                        ScrubFinding(path, "unexpected entry in the data directory")
                    )
                    continue
                self._scrub_fan(dd, name, report, reclaim)
        LOG.info("scrub: %s", report.summary())
        return report

    def _scrub_fan(
        self, dd: DataDir, fan: str, report: ScrubReport, reclaim: bool
    ) -> None:
        fan_dir = os.path.join(dd.path, fan)
        try:
            entries = set(concurrency.run_blocking(os.listdir, fan_dir))
        except OSError as err:
            report.errors.append(ScrubFinding(fan_dir, err.strerror or str(err)))
            return
        for name in sorted(entries):
            path = os.path.join(fan_dir, name)
            if name.startswith(SIDECAR_PREFIX):
                if name[len(SIDECAR_PREFIX) :] not in entries:
                    report.orphans.append(ScrubFinding(path, "metadata of no object"))
                    if reclaim:
                        with contextlib.suppress(FileNotFoundError):
                            concurrency.run_blocking(os.unlink, path)
                        report.reclaimed.append(path)
                continue
            if names.object_id_problem(name) is not None or fanout(name) != fan:
                report.orphans.append(ScrubFinding(path, "unexpected entry"))
                continue
            try:
                concurrency.run_blocking(
                    self._scrub_object, dd, fan, name, report, reclaim
                )
            except OSError as err:
                if err.errno == errno.ELOOP:
                    report.orphans.append(
                        ScrubFinding(path, "not a regular file (symbolic link?)")
                    )
                elif err.errno != errno.ENOENT:  # deleted meanwhile: fine
                    report.errors.append(ScrubFinding(path, err.strerror or str(err)))

    def _scrub_object(
        self, dd: DataDir, fan: str, object_id: str, report: ScrubReport, reclaim: bool
    ) -> None:
        location = self._location(dd, object_id)
        fd, size, raw = self._open(dd, fan, object_id, True)
        try:
            if raw is None:
                path = os.path.join(dd.path, fan, object_id)
                report.orphans.append(ScrubFinding(location, "object without metadata"))
                age = time.time() - os.fstat(fd).st_ctime
                # With xattrs, metadata is published with the object, so a
                # bare file was put there by someone else: only reported.
                if reclaim and dd.metadata == "sidecar" and age >= self._reclaim_age:
                    os.unlink(path)
                    report.reclaimed.append(location)
                return
            try:
                meta = self._meta(location, raw)
            except exception.CorruptObject as err:
                report.corrupt.append(ScrubFinding(location, err.kwargs["reason"]))
                return
            if meta.size != size:
                report.corrupt.append(
                    ScrubFinding(
                        location, f"{size} bytes on disk, {meta.size} recorded"
                    )
                )
                return
            h = hashing.new(meta.algo)
            pos = 0
            while True:
                data = os.pread(fd, self._chunk_size, pos)
                if not data:
                    break
                h.update(data)
                pos += len(data)
            report.checked += 1
            report.bytes_checked += pos
            if pos != meta.size or h.hexdigest() != meta.digest:
                report.corrupt.append(
                    ScrubFinding(location, f"{meta.algo} digest does not match")
                )
        finally:
            os.close(fd)

    def close(self) -> None:
        """Drop this process's writer locks (their files are removed)."""
        with self._lock:
            writers, self._writers = self._writers, {}
        for dd_path, writer in writers.items():
            if writer.pid != os.getpid():
                continue
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(dd_path, TMP_DIR, writer.token + ".lock"))
            with contextlib.suppress(OSError):
                os.close(writer.fd)


def _discard(fd: int, tmp: str) -> None:
    """Forget a failed add: close and remove its temporary file."""
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def _short(location: str, limit: int = 200) -> str:
    return location if len(location) <= limit else location[:limit] + "..."


class _FileChunks:
    """Chunks of an open object file; verified when a hasher is given.

    When verifying, each chunk is handed out only after the next one was read,
    so the last chunk leaves only once the digest of the whole object matched:
    a consumer never receives a complete corrupt object.
    """

    def __init__(
        self,
        store: FileStore,
        location: str,
        fd: int,
        offset: int,
        length: int,
        chunk_size: int,
        hasher: Any,
        meta: _Meta | None,
    ) -> None:
        self._store = store
        self._location = location
        self._fd = fd
        self._pos = offset
        self._remaining = length
        self._chunk_size = chunk_size
        self._hasher = hasher
        self._meta = meta
        self._pending: bytes | None = None

    def __iter__(self) -> _FileChunks:
        return self

    def __enter__(self) -> _FileChunks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self) -> bytes:
        want = min(self._chunk_size, self._remaining)
        try:
            data: bytes = concurrency.run_blocking(
                _pread_hash, self._fd, want, self._pos, self._hasher
            )
        except OSError as err:
            raise self._store._translate(err, _short(self._location)) from err
        if len(data) == 0 and want:
            self.close()
            raise exception.CorruptObject(
                what=_short(self._location), reason="it shrank while being read"
            )
        self._pos += len(data)
        self._remaining -= len(data)
        return data

    def __next__(self) -> bytes:
        if self._fd < 0:
            raise StopIteration
        try:
            if self._hasher is None:
                if self._remaining == 0:
                    raise StopIteration
                return self._read()
            if self._pending is None:
                self._pending = self._read() if self._remaining else b""
            if self._remaining:
                out, self._pending = self._pending, self._read()
                return out
            out = self._pending
            self._check()
            self.close()
            if not out:
                raise StopIteration
            return out
        except BaseException:
            self.close()
            raise

    def _check(self) -> None:
        assert self._meta is not None
        if self._hasher.hexdigest() != self._meta.read_check()[1]:
            raise _digest_mismatch(self._store.backend_id, self._location, self._meta)

    def close(self) -> None:
        """Release the file (safe to call more than once)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        self.close()


def _pread_hash(fd: int, n: int, pos: int, hasher: Any) -> bytes:
    data = os.pread(fd, n, pos)
    if hasher is not None:
        hasher.update(data)
    return data


def _digest_mismatch(
    backend_id: str, location: str, meta: _Meta
) -> exception.CorruptObject:
    name = meta.read_check()[2]
    LOG.error(
        "back end %s: %s does not match its recorded %s",
        backend_id,
        _short(location),
        name,
    )
    return exception.CorruptObject(
        what=_short(location),
        reason=f"{name} does not match the recorded one",
    )


@functools.lru_cache(maxsize=4096)
def _parse_meta(raw: bytes) -> _Meta:
    """Parse recorded metadata (kept: objects are read again and again)."""
    data = json.loads(raw)
    crc = data.get("crc32")
    if crc is not None and not (isinstance(crc, str) and _CRC_RE.match(crc)):
        raise ValueError("crc32 is not 8 hex digits: %r" % (crc,))
    xxh = data.get("xxh3_64")
    if xxh is not None and not (isinstance(xxh, str) and _XXH3_RE.match(xxh)):
        raise ValueError("xxh3_64 is not 16 hex digits: %r" % (xxh,))
    meta = _Meta(int(data["size"]), str(data["algo"]), str(data["digest"]), crc, xxh)
    hashing.check(meta.algo)
    return meta


class _Buffered:
    """The chunk iterator of an object already read (at most one chunk)."""

    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data if data else None

    def __iter__(self) -> _Buffered:
        return self

    def __next__(self) -> bytes:
        data, self._data = self._data, None
        if data is None:
            raise StopIteration
        return data

    def close(self) -> None:
        """Drop the data (nothing else is held)."""
        self._data = None


def _update(hashers: list[Any], chunk: bytes) -> None:
    for h in hashers:
        h.update(chunk)


def _write_hashed(sink: _Sink, hashers: list[Any], chunk: bytes) -> None:
    for h in hashers:
        h.update(chunk)
    sink.write(chunk)


class _Sink:
    """Writes an object's bytes to its temporary file.

    Up to :data:`DIRECT_BLOCK` bytes are kept in memory and written at the
    end with one buffered write. Beyond that, the bytes are gathered in an
    aligned buffer and written a block at a time with ``O_DIRECT``: they go
    to the disk while the next block is hashed, and the final fsync only has
    the tail and the file's metadata left. Where a filesystem refuses
    ``O_DIRECT``, blocks are written buffered and handed to the disk at once
    (``sync_file_range``), and the data directory is marked so.
    """

    def __init__(self, fd: int, dd: DataDir) -> None:
        self.fd = fd
        self._dd = dd
        self._pending: list[memoryview] = []
        self._pending_len = 0
        self._buf: mmap.mmap | None = None
        self._view: memoryview | None = None
        self._fill = 0
        self._offset = 0
        self._direct = False

    def write(self, chunk: bytes) -> None:
        data = memoryview(chunk)
        if self._buf is None:
            if self._pending_len + len(data) < DIRECT_BLOCK:
                self._pending.append(data)
                self._pending_len += len(data)
                return
            self._buf = mmap.mmap(-1, DIRECT_BLOCK)
            self._view = memoryview(self._buf)
            pending, self._pending, self._pending_len = self._pending, [], 0
            for piece in pending:
                self._stage(piece)
        self._stage(data)

    def _stage(self, data: memoryview) -> None:
        assert self._view is not None
        while data:
            n = min(DIRECT_BLOCK - self._fill, len(data))
            self._view[self._fill : self._fill + n] = data[:n]
            self._fill += n
            data = data[n:]
            if self._fill == DIRECT_BLOCK:
                self._write_block()

    def _set_direct(self, on: bool) -> None:
        flags = fcntl.fcntl(self.fd, fcntl.F_GETFL)
        flags = flags | os.O_DIRECT if on else flags & ~os.O_DIRECT
        fcntl.fcntl(self.fd, fcntl.F_SETFL, flags)
        self._direct = on

    def _write_block(self) -> None:
        assert self._view is not None
        block = self._view[: self._fill]
        if self._dd.direct and not self._direct:
            try:
                self._set_direct(True)
            except OSError:
                self._dd.direct = False
        try:
            _write_all(self.fd, block)
        except OSError as err:
            if not (self._direct and err.errno == errno.EINVAL):
                raise
            # The filesystem does not do O_DIRECT after all: go buffered.
            self._dd.direct = False
            self._set_direct(False)
            _write_all(self.fd, block)
        if not self._direct:
            fsutil.start_writeback(self.fd, self._offset, len(block))
        self._offset += len(block)
        self._fill = 0

    def finish(self) -> None:
        """Write what is left (buffered: it need not be aligned)."""
        if self._direct:
            self._set_direct(False)
        if self._buf is None:
            pieces = self._pending
            while pieces:
                n = os.writev(self.fd, pieces[:_IOV_MAX])
                while pieces and n >= len(pieces[0]):
                    n -= len(pieces[0])
                    pieces = pieces[1:]
                if pieces and n:
                    pieces = [pieces[0][n:], *pieces[1:]]
        elif self._fill:
            assert self._view is not None
            _write_all(self.fd, self._view[: self._fill])
            self._fill = 0
        self._pending = []
        self.release()

    def release(self) -> None:
        """Free the buffer (safe to call more than once)."""
        view, self._view = self._view, None
        buf, self._buf = self._buf, None
        if view is not None:
            view.release()
        if buf is not None:
            buf.close()


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        n = os.write(fd, data)
        data = data[n:]
