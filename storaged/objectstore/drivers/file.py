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
metadata the sidecar is published (and its name made durable) just before
the object, and removed just after it: the object's name never exists
without its metadata, and a sidecar of no object is what a killed add or
delete leaves, which scrub reclaims once ``reclaim_age`` old.

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

This module holds the driver's options and the :class:`FileStore` class,
which translates OS errors and ties the parts together; the parts are
:mod:`~storaged.objectstore.drivers.file_datadirs` (layout, start-up checks,
free space and placement, locations),
:mod:`~storaged.objectstore.drivers.file_write` (writer locks, temporary
files, the durable write and publish),
:mod:`~storaged.objectstore.drivers.file_read` (opening, metadata, verified
reads) and :mod:`~storaged.objectstore.drivers.file_scrub`.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import errno
import json
import logging
import os
import re
import stat
import time
from typing import Any

from oslo_config import cfg
import xxhash

from storaged import concurrency
from storaged import exception
from storaged.common import freespace
from storaged.objectstore import hashing
from storaged.objectstore.capabilities import Capability
from storaged.objectstore.driver import AddResult
from storaged.objectstore.driver import ChunkIterator
from storaged.objectstore.driver import Driver
from storaged.objectstore.driver import ScrubReport
from storaged.objectstore.driver import SizeMismatch
from storaged.objectstore.driver import Source
from storaged.objectstore.driver import iter_source
from storaged.objectstore.drivers import file_read
from storaged.objectstore.drivers import file_write
from storaged.objectstore.drivers.file_datadirs import CREATE_FLAGS
from storaged.objectstore.drivers.file_datadirs import DIR_FLAGS
from storaged.objectstore.drivers.file_datadirs import FANOUT_DIGITS
from storaged.objectstore.drivers.file_datadirs import LAYOUT
from storaged.objectstore.drivers.file_datadirs import LAYOUT_FILE
from storaged.objectstore.drivers.file_datadirs import SIDECAR_PREFIX
from storaged.objectstore.drivers.file_datadirs import TMP_DIR
from storaged.objectstore.drivers.file_datadirs import XATTR_NAME
from storaged.objectstore.drivers.file_datadirs import DataDir
from storaged.objectstore.drivers.file_datadirs import DataDirs
from storaged.objectstore.drivers.file_datadirs import fanout
from storaged.objectstore.drivers.file_datadirs import parse_data_dirs
from storaged.objectstore.drivers.file_datadirs import short
from storaged.objectstore.drivers.file_scrub import Scrubber
from storaged.objectstore.drivers.file_write import DIRECT_BLOCK
from storaged.objectstore.drivers.file_write import LOCK_GRACE

__all__ = [
    "DIRECT_BLOCK",
    "FANOUT_DIGITS",
    "LAYOUT",
    "LAYOUT_FILE",
    "LOCK_GRACE",
    "OPTIONS",
    "SIDECAR_PREFIX",
    "TMP_DIR",
    "XATTR_NAME",
    "DataDir",
    "FileStore",
    "fanout",
    "parse_data_dirs",
]

LOG = logging.getLogger(__name__)

MiB = 1024 * 1024

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
the object. Sidecar files are published just before it and removed just
after it; a sidecar of no object is an add (or delete) that never
completed, which ``scrub`` reports and reclaims once ``reclaim_age`` old.
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
Seconds after which ``scrub --reclaim`` removes a sidecar of no object, or
an object without its sidecar (an add or delete that never completed, or a
file someone put there). Only applies to sidecar metadata; temporary files
of dead writers are reclaimed at once.
""",
    ),
]


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
        self._reserve = _parse_reserve(group.fallocate_reserve, backend_id)
        self._datadirs = DataDirs(
            backend_id, group.data_dirs, self._reserve, float(group.free_space_ttl)
        )
        self._dirs = self._datadirs.dirs
        # Native: held briefly, never across a yield, and taken both by
        # green threads and by the native pool that runs blocking I/O.
        self._lock = concurrency.native_module("threading").Lock()
        self._locks = file_write.WriterLocks()
        self._scrubber = Scrubber(
            self._datadirs, self._locks, self._chunk_size, float(group.reclaim_age)
        )
        for dd in self._dirs:
            concurrency.run_blocking(
                self._prepare, dd, group.create_data_dirs, group.metadata_store
            )

    # -- start-up ----------------------------------------------------------

    def _prepare(self, dd: DataDir, create: bool, metadata_store: str) -> None:
        """Create or check a data directory; probe it; reclaim leftovers."""
        self._datadirs.prepare(dd, create, metadata_store)
        report = ScrubReport(self.backend_id)
        self._locks.scan_tmp(dd, report, reclaim=True)
        if report.reclaimed:
            LOG.info(
                "back end %s: removed %d temporary files left by dead writers in %s",
                self.backend_id,
                len(report.reclaimed),
                dd.tmp,
            )

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

    def find(self, object_id: str) -> str | None:
        """Return the location of ``object_id`` if a data directory has it."""
        return self._datadirs.find(object_id)

    # -- placement -----------------------------------------------------------

    def _measure(self, dd: DataDir) -> None:
        self._io(dd.path, self._datadirs.refresh_free, dd)

    def _choose(self, size: int | None) -> DataDir:
        return self._datadirs.choose(size, self._measure)

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
            tmp = self._locks.temp_path(dd, object_id)
        fd = self._io(object_id, os.open, tmp, CREATE_FLAGS, 0o600)
        sink = file_write.Sink(fd, dd)
        published = False
        try:
            written = 0
            for chunk in iter_source(stream, self._chunk_size, size):
                if size is not None and written + len(chunk) > size:
                    raise SizeMismatch(
                        what=object_id,
                        reason=f"declared {size} bytes, got more",
                    )
                if len(chunk) >= file_write.PIPELINE_MIN:
                    # Hash this chunk in another thread while it is written:
                    # the two take about as long, and both release the GIL.
                    task = concurrency.spawn(
                        concurrency.run_blocking, file_write.update, updates, chunk
                    )
                    try:
                        self._io(object_id, sink.write, chunk)
                    finally:
                        task.wait()
                else:
                    self._io(object_id, file_write.write_hashed, sink, updates, chunk)
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
            fd = -1  # seal closes it, whatever happens
            self._io(object_id, file_write.seal, sink, dd, raw, self._file_mode)
            self._io(object_id, self._publish, dd, tmp, object_id, raw)
            published = True
        finally:
            sink.release()
            if not published:
                concurrency.run_blocking(file_write.discard, fd, tmp)
        with self._lock:
            dd.free -= written
        return AddResult(
            location=self._datadirs.location(dd, object_id),
            size=written,
            checksum=checksum,
            multihash=digest,
            metadata={"backend": self.backend_id},
            hashing_algo=hashing_algo,
            backend=self.backend_id,
        )

    def _publish(self, dd: DataDir, tmp: str, object_id: str, raw: bytes) -> None:
        file_write.publish(
            dd,
            tmp,
            object_id,
            raw,
            locks=self._locks,
            file_mode=self._file_mode,
            backend_id=self.backend_id,
        )

    # -- read ----------------------------------------------------------------

    def _get(
        self,
        location: str,
        offset: int,
        length: int | None,
        chunk_size: int | None,
        verify: bool,
    ) -> tuple[ChunkIterator, int]:
        dd, fan, object_id = self._datadirs.resolve(location)
        try:
            result: tuple[ChunkIterator, int] = concurrency.run_blocking(
                file_read.open_for_read,
                dd,
                fan,
                object_id,
                location,
                offset,
                length,
                chunk_size or self._chunk_size,
                verify,
                backend_id=self.backend_id,
                translate=self._translate,
            )
        except OSError as err:
            raise self._translate(err, short(location)) from err
        return result

    def _get_size(self, location: str) -> int:
        dd, fan, object_id = self._datadirs.resolve(location)
        return int(
            self._io(location, file_read.stat_object, dd, fan, object_id).st_size
        )

    # -- delete ----------------------------------------------------------------

    def _delete(self, location: str) -> None:
        dd, fan, object_id = self._datadirs.resolve(location)
        self._io(location, self._remove, dd, fan, object_id)

    @staticmethod
    def _remove(dd: DataDir, fan: str, object_id: str) -> None:
        dir_fd = os.open(os.path.join(dd.path, fan), DIR_FLAGS)
        try:
            st = os.stat(object_id, dir_fd=dir_fd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(errno.ELOOP, "not a regular file")
            # The object goes first, the reverse of an add: a crash between
            # the two leaves metadata of no object (which scrub reclaims),
            # never an object without its metadata.
            os.unlink(object_id, dir_fd=dir_fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(SIDECAR_PREFIX + object_id, dir_fd=dir_fd)
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
        tmp = self._locks.temp_path(dd, "probe")
        fd = os.open(tmp, CREATE_FLAGS, 0o600)
        os.close(fd)
        os.unlink(tmp)
        self._datadirs.refresh_free(dd)

    def _scrub(self, reclaim: bool, report: ScrubReport) -> None:
        self._scrubber.scrub(reclaim, report)

    def close(self) -> None:
        """Drop this process's writer locks (their files are removed)."""
        self._locks.close()
