"""Data directories of the ``file`` driver: layout, start-up, free space.

What a data directory looks like on disk (the names and open flags the
other modules of the driver share), how ``data_dirs`` is parsed, how a
directory is created or checked at start-up, how its free space is measured
against the ``fallocate_reserve`` and which directory a new object goes to,
and how locations map to objects and back.  The layout itself is described
in :mod:`storaged.objectstore.drivers.file`.
"""

from __future__ import annotations

from collections.abc import Callable
import contextlib
import dataclasses
import errno
import hashlib
import json
import logging
import os
import re
import stat
import time
from urllib import parse as urlparse

from storaged import concurrency
from storaged import exception
from storaged.common import freespace
from storaged.objectstore import names
from storaged.objectstore.drivers import fsutil

LOG = logging.getLogger(__name__)

XATTR_NAME = "user.storaged.meta"
SIDECAR_PREFIX = ".meta-"
TMP_DIR = ".tmp"
LAYOUT_FILE = ".layout"
#: what mkfs leaves at the root of a filesystem: a data directory may be one
LOST_FOUND = "lost+found"
LAYOUT = {"format": 1, "fanout": 2}
FANOUT_DIGITS = 2
FANOUT_RE = re.compile(r"[0-9a-f]{" + str(FANOUT_DIGITS) + r"}\Z")
_PRIORITY_RE = re.compile(r"[+-]?[0-9]+\Z")

#: free space assumed where the filesystem does not report any.
_UNKNOWN_FREE = 1 << 62

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: a directory opened only to open files below it (cheaper, no fsync)
PATH_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_RESOLVED_MAX = 8192
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def fanout(object_id: str) -> str:
    """Return the subdirectory of an object id."""
    return hashlib.sha256(object_id.encode("utf-8")).hexdigest()[:FANOUT_DIGITS]


def short(location: str, limit: int = 200) -> str:
    """Return ``location`` cut to ``limit`` characters, for messages."""
    return location if len(location) <= limit else location[:limit] + "..."


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


class DataDirs:
    """The data directories of one back end, and the locations below them.

    :param backend_id: the back end, for messages and errors.
    :param entries: the ``data_dirs`` option.
    :param reserve: the parsed ``fallocate_reserve``.
    :param free_ttl: the ``free_space_ttl`` option.
    :raises storaged.exception.ConfigError: if ``entries`` is unusable.
    """

    def __init__(
        self,
        backend_id: str,
        entries: list[str],
        reserve: freespace.Reserve,
        free_ttl: float,
    ) -> None:
        self.backend_id = backend_id
        self._reserve = reserve
        self._free_ttl = free_ttl
        self.dirs = [
            DataDir(path, priority)
            for path, priority in parse_data_dirs(entries, backend_id)
        ]
        self._resolved: dict[str, tuple[DataDir, str, str]] = {}

    # -- start-up ----------------------------------------------------------

    def config_error(
        self, problem: str, option: str = "data_dirs"
    ) -> exception.ConfigError:
        """Return the error that stops start-up, naming ``option``."""
        return exception.ConfigError(problem, group=self.backend_id, option=option)

    def prepare(self, dd: DataDir, create: bool, metadata_store: str) -> None:
        """Create or check a data directory; probe it.

        :raises storaged.exception.ConfigError: if it cannot be used.
        """
        try:
            if not os.path.isdir(dd.path):
                if not create:
                    raise self.config_error(
                        f"data directory {dd.path} does not exist (create_data_dirs is "
                        "off: is its disk mounted?)"
                    )
                os.makedirs(dd.path, mode=0o750, exist_ok=True)
                fsutil.fsync_dir(os.path.dirname(dd.path))
            entries = set(os.listdir(dd.path))
            if LAYOUT_FILE not in entries:
                if entries - {TMP_DIR, LOST_FOUND}:
                    raise self.config_error(
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
            self.refresh_free(dd)
        except OSError as err:
            raise self.config_error(
                f"cannot use data directory {dd.path}: {err.strerror or err}"
            ) from err

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
                raise self.config_error(
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
            raise self.config_error(
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

    # -- placement -----------------------------------------------------------

    def refresh_free(self, dd: DataDir) -> None:
        """Measure the free space and the reserve of ``dd`` (blocks)."""
        st = os.statvfs(dd.path)
        # Some filesystems (ramfs, some FUSE ones) report no size at all:
        # their free space is unknown, not zero.
        dd.free = st.f_bavail * st.f_frsize if st.f_blocks else _UNKNOWN_FREE
        dd.reserved = self._reserve.bytes_of(st.f_blocks * st.f_frsize)
        dd.free_at = time.monotonic()

    def choose(self, size: int | None, measure: Callable[[DataDir], None]) -> DataDir:
        """Pick the data directory for a new object.

        Highest priority first, then most free space; a directory known not
        to have room for a declared size above its reserve is passed over.
        Free space is an estimate between measurements (the size of each
        object added is subtracted); with a reserve, the chosen directory is
        measured again before it is trusted: others write to the same
        filesystem (the catalog, other processes), and a stale estimate
        would let writes run through the reserve.

        :param measure: runs :meth:`refresh_free` on a directory, off the
            event loop, with its errors translated.
        :raises storaged.exception.StorageFull: if no directory has room.
        """
        now = time.monotonic()
        for dd in self.dirs:
            if now - dd.free_at >= self._free_ttl:
                measure(dd)
        need = size or 0
        for attempt in range(2):
            ordered = sorted(self.dirs, key=lambda d: (-d.priority, -d.free))
            for dd in ordered:
                if dd.free - need <= dd.reserved:
                    continue
                if self._reserve.value and dd.free_at < now:
                    measure(dd)
                    if dd.free - need <= dd.reserved:
                        continue
                return dd
            if attempt == 0:
                for dd in self.dirs:
                    measure(dd)
        raise exception.StorageFull(
            backend=self.backend_id,
            reason=f"no data directory has {need} bytes free above its "
            f"reserve (fallocate_reserve = {self._reserve})",
        )

    # -- locations -----------------------------------------------------------

    def location(self, dd: DataDir, object_id: str) -> str:
        """Return the location of ``object_id`` in ``dd``."""
        path = f"{dd.path}/{fanout(object_id)}/{object_id}"
        return "file://" + urlparse.quote(path, safe="/")

    def resolve(self, location: str) -> tuple[DataDir, str, str]:
        """Map a location to (data dir, fan-out dir, object id), or refuse it.

        Answers are kept (a bounded dictionary): the mapping only depends on
        the configured data directories, and reads resolve the same
        locations again and again.

        :raises storaged.exception.InvalidLocation: if it names anything
            but an object below a data directory of this back end.
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
                backend=self.backend_id, reason=f"{short(location)}: {reason}"
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
        for dd in self.dirs:
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
        if not FANOUT_RE.match(fan):
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
        for dd in self.dirs:
            path = os.path.join(dd.path, fan, object_id)
            try:
                st = concurrency.run_blocking(os.lstat, path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                return self.location(dd, object_id)
        return None
