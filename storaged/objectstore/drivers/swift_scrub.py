"""Scrub of a ``swift`` back end: re-read every object, find unfinished adds.

A pass walks the back end's containers (``container``, or with
``container_seed = N`` every ``<container>_XX..`` of the account):

* each object is read whole and its data checked against the size and
  digest recorded with it (``X-Object-Meta-Storaged-*``): a mismatch, or a
  large object whose segments are gone, is *corrupt* (reported, never
  removed);
* an object without a recorded digest is what an add killed between its
  ``PUT`` and its ``POST`` leaves: an *orphan* once older than
  ``orphan_grace`` (a write in progress before), removed with ``reclaim``;
* in ``<container>_segments``, the segments are grouped by upload
  (``OBJECT_ID/TIMESTAMP-UPLOAD/``); an upload that no manifest names is
  what a large add killed before its manifest leaves: an *orphan* once its
  timestamp is older than ``orphan_grace``, whose segments ``reclaim``
  deletes.  Before deleting, the object's manifest is looked up once more,
  so an add that finished while the pass ran keeps its segments.

For example, with ``orphan_grace = 86400``, a process killed at 10:00 while
writing segment 7 of ``img-1`` leaves ``img-1/1700000000.0-ab12../00000000``
to ``..06`` in ``storaged_segments`` and no ``img-1`` in ``storaged``: a
scrub at 11:00 counts one write in progress; a scrub the next day at 10:01
reports one orphan, and deletes the seven segments with ``reclaim``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
import datetime
import http.client
import logging
import re
import time
from typing import Any
from typing import Protocol

from storaged import exception
from storaged.objectstore import hashing
from storaged.objectstore.driver import ScrubFinding
from storaged.objectstore.driver import ScrubReport
from storaged.objectstore.drivers import swift_client
from storaged.objectstore.drivers.swift_client import META
from storaged.objectstore.drivers.swift_client import hash_update
from storaged.objectstore.drivers.swift_client import quote


class ScrubbedStore(Protocol):
    """What a scrub needs of the :class:`~.swift.SwiftStore` it walks.

    (A protocol, not the class: the driver module imports this one.)
    """

    client: swift_client.SwiftClient
    orphan_grace: float

    @property
    def backend_id(self) -> str: ...

    @property
    def container_name(self) -> str: ...

    @property
    def seed(self) -> int: ...

    @property
    def chunk_size(self) -> int: ...

    def errors(self, what: str) -> AbstractContextManager[None]: ...

    def location(self, container: str, object_id: str) -> str: ...

    def recorded(self, what: str, headers: dict[str, str]) -> tuple[str, str, int]: ...

    def listing(
        self, container: str = "", prefix: str = "", limit: int = 1000
    ) -> Iterator[dict[str, Any]]: ...

    def delete_segments(self, segments: str, prefix: str) -> list[str]: ...

    def _remove(self, path: str, what: str) -> None: ...

LOG = logging.getLogger(__name__)


def _age(now: float, timestamp: str | None) -> float | None:
    try:
        return now - float(timestamp or "")
    except ValueError:
        return None


def _listing_age(now: float, last_modified: object) -> float:
    try:
        when = datetime.datetime.fromisoformat(str(last_modified))
    except ValueError:
        return 0.0
    return now - when.replace(tzinfo=datetime.UTC).timestamp()


class Scrubber:
    """One scrub pass over a :class:`~.swift.SwiftStore` (see the module docstring)."""

    def __init__(self, store: ScrubbedStore) -> None:
        self.store = store
        self.client = store.client

    def containers(self) -> list[str]:
        """The data containers of the back end (those that exist)."""
        base = self.store.container_name
        if not self.store.seed:
            return [base]
        pattern = re.compile(re.escape(base) + "_[0-9a-f]{%d}\\Z" % self.store.seed)
        return [
            entry["name"]
            for entry in self.store.listing("", prefix=base + "_")
            if pattern.match(entry.get("name", ""))
        ]

    def scrub(self, reclaim: bool, report: ScrubReport) -> None:
        """Check every object into ``report``; find what dead writers left."""
        store = self.store
        now = time.time()
        try:
            containers = self.containers()
        except exception.StoreError as err:
            report.errors.append(ScrubFinding("the account's containers", str(err)))
            containers = []
        for container in containers:
            live: set[str] = set()
            try:
                for entry in store.listing(container):
                    self._check(container, entry["name"], report, live, reclaim, now)
            except exception.StoreError as err:
                # Without the whole listing, the manifests that name segments
                # are not all known: leave the segments alone this time.
                report.errors.append(ScrubFinding(f"swift://{container}/", str(err)))
                continue
            self._segments(container, live, report, reclaim, now)
        LOG.info("scrub: %s", report.summary())

    # -- objects ---------------------------------------------------------------

    def _check(
        self,
        container: str,
        name: str,
        report: ScrubReport,
        live: set[str],
        reclaim: bool,
        now: float,
    ) -> None:
        store = self.store
        where = store.location(container, name)
        path = f"{quote(container)}/{quote(name)}"
        try:
            with store.errors(where):
                resp = self.client.request("GET", path, stream=True)
        except exception.ObjectNotFound:
            return  # deleted since the listing
        except exception.StoreError as err:
            report.errors.append(ScrubFinding(where, str(err)))
            return
        try:
            upload = resp.headers.get(META + "upload")
            if upload:
                live.add(upload)
            try:
                algo, digest, size = store.recorded(where, resp.headers)
            except exception.CorruptObject:
                if not resp.headers.get(META + "digest"):
                    self._unfinished(path, where, resp.headers, report, reclaim, now)
                    return
                raise
            h = hashing.new(algo)
            got = 0
            while True:
                with store.errors(where):
                    try:
                        data = resp.read(store.chunk_size)
                    except (OSError, http.client.HTTPException) as err:
                        raise swift_client.SwiftTransportError(
                            where, str(err) or type(err).__name__
                        ) from err
                if not data:
                    break
                hash_update([h], data)
                got += len(data)
            report.count_checked(got)
            if got != size:
                report.corrupt.append(
                    ScrubFinding(where, f"{got} bytes read, {size} recorded")
                )
            elif h.hexdigest() != digest:
                report.corrupt.append(
                    ScrubFinding(where, f"{algo} digest does not match the record")
                )
        except exception.CorruptObject as err:
            report.corrupt.append(ScrubFinding(where, str(err)))
        except exception.StoreError as err:
            report.errors.append(ScrubFinding(where, str(err)))
        finally:
            resp.release()

    def _unfinished(
        self,
        path: str,
        where: str,
        headers: dict[str, str],
        report: ScrubReport,
        reclaim: bool,
        now: float,
    ) -> None:
        """An object without its digest: an add killed before its POST."""
        age = _age(now, headers.get("x-timestamp"))
        if age is not None and age < self.store.orphan_grace:
            report.in_progress += 1
            return
        report.orphans.append(
            ScrubFinding(where, "no recorded digest: an add that did not finish")
        )
        if reclaim:
            try:
                self.store._remove(path, where)
            except exception.ObjectNotFound:
                pass
            except exception.StoreError as err:
                report.errors.append(ScrubFinding(where, f"cannot remove: {err}"))
                return
            report.reclaimed.append(where)

    # -- segments --------------------------------------------------------------

    def _segments(
        self,
        container: str,
        live: set[str],
        report: ScrubReport,
        reclaim: bool,
        now: float,
    ) -> None:
        """Report (and reclaim) segment sets no manifest names."""
        segments = container + "_segments"
        uploads: dict[str, list[float]] = {}
        try:
            for entry in self.store.listing(segments):
                prefix = entry["name"].rsplit("/", 1)[0]
                uploads.setdefault(prefix, []).append(
                    _listing_age(now, entry.get("last_modified"))
                )
        except exception.StoreError as err:
            report.errors.append(ScrubFinding(f"swift://{segments}/", str(err)))
            return
        for prefix, ages in sorted(uploads.items()):
            object_id, _, upload = prefix.rpartition("/")
            if upload in live:
                continue
            age = _age(now, upload.split("-", 1)[0])
            if age is None:
                age = min(ages)
            if age < self.store.orphan_grace:
                report.in_progress += 1
                continue
            where = f"swift://{segments}/{prefix}/"
            if object_id:
                try:
                    if self._named_by_manifest(container, object_id, upload):
                        continue
                except swift_client.SwiftClientError as err:
                    # In doubt the segments stay, and the report says why.
                    report.errors.append(ScrubFinding(
                        where, f"cannot tell whether a manifest names them: {err}"
                    ))
                    continue
            report.orphans.append(
                ScrubFinding(
                    where, f"{len(ages)} segments of a large add that never finished"
                )
            )
            if reclaim:
                removed = self.store.delete_segments(segments, prefix + "/")
                if len(removed) == len(ages):
                    report.reclaimed.append(where)
                else:
                    report.errors.append(
                        ScrubFinding(where, "some segments could not be deleted")
                    )

    def _named_by_manifest(self, container: str, object_id: str, upload: str) -> bool:
        resp = self.client.request(
            "HEAD", f"{quote(container)}/{quote(object_id)}", ok=(404,)
        )
        return resp.status // 100 == 2 and resp.headers.get(META + "upload") == upload
