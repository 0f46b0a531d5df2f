"""Scrub for the ``file`` driver: every object read again and checked.

A scrub walks each data directory: temporary files of writers that are gone,
entries that have no place in the layout, sidecars of no object, objects
without metadata, and objects whose size or full digest (sha256 by default,
not the fast check of verified reads) does not match what was recorded.
With ``reclaim``, leftovers are removed; corrupt objects never are.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time

from storaged import concurrency
from storaged import exception
from storaged.objectstore import hashing
from storaged.objectstore import names
from storaged.objectstore.driver import ScrubFinding
from storaged.objectstore.driver import ScrubReport
from storaged.objectstore.drivers.file_datadirs import FANOUT_RE
from storaged.objectstore.drivers.file_datadirs import LAYOUT_FILE
from storaged.objectstore.drivers.file_datadirs import LOST_FOUND
from storaged.objectstore.drivers.file_datadirs import SIDECAR_PREFIX
from storaged.objectstore.drivers.file_datadirs import TMP_DIR
from storaged.objectstore.drivers.file_datadirs import DataDir
from storaged.objectstore.drivers.file_datadirs import DataDirs
from storaged.objectstore.drivers.file_datadirs import fanout
from storaged.objectstore.drivers.file_read import check_meta
from storaged.objectstore.drivers.file_read import open_object
from storaged.objectstore.drivers.file_write import WriterLocks

LOG = logging.getLogger(__name__)


class Scrubber:
    """Checks (and with ``reclaim``, tidies) the data directories of a back end.

    :param datadirs: the back end's data directories.
    :param locks: this process's writer locks (its own temporary files are
        writes in progress).
    :param chunk_size: bytes read at a time.
    :param reclaim_age: seconds after which an object without its sidecar
        is reclaimed.
    """

    def __init__(
        self,
        datadirs: DataDirs,
        locks: WriterLocks,
        chunk_size: int,
        reclaim_age: float,
    ) -> None:
        self._datadirs = datadirs
        self._locks = locks
        self._chunk_size = chunk_size
        self._reclaim_age = reclaim_age

    def scrub(self, reclaim: bool, report: ScrubReport) -> None:
        """Scrub every data directory into ``report``; log it."""
        for dd in self._datadirs.dirs:
            self._locks.scan_tmp(dd, report, reclaim)
            try:
                top = sorted(concurrency.run_blocking(os.listdir, dd.path))
            except OSError as err:
                report.errors.append(ScrubFinding(dd.path, err.strerror or str(err)))
                continue
            for name in top:
                if name in (TMP_DIR, LAYOUT_FILE, LOST_FOUND):
                    continue
                path = os.path.join(dd.path, name)
                if not FANOUT_RE.match(name):
                    report.orphans.append(
                        ScrubFinding(path, "unexpected entry in the data directory")
                    )
                    continue
                self._scrub_fan(dd, name, report, reclaim)
        LOG.info("scrub: %s", report.summary())

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
                    # An add in progress publishes its sidecar just before
                    # its object: only an old one is of a dead writer.
                    if reclaim and self._old_enough(path):
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

    def _old_enough(self, path: str) -> bool:
        try:
            age = time.time() - os.stat(path, follow_symlinks=False).st_ctime
        except FileNotFoundError:
            return False
        return age >= self._reclaim_age

    def _scrub_object(
        self, dd: DataDir, fan: str, object_id: str, report: ScrubReport, reclaim: bool
    ) -> None:
        location = self._datadirs.location(dd, object_id)
        fd, size, raw = open_object(dd, fan, object_id, True)
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
                meta = check_meta(location, raw)
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
            report.count_checked(pos)
            if pos != meta.size or h.hexdigest() != meta.digest:
                report.corrupt.append(
                    ScrubFinding(location, f"{meta.algo} digest does not match")
                )
        finally:
            os.close(fd)
