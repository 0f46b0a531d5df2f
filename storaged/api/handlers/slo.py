"""Static large objects: reading them (GET, HEAD) through their manifests.

As Swift's ``slo`` middleware, an object stored with
``X-Static-Large-Object: True`` (by :mod:`.slo_put`) is a manifest: a JSON
list of segments (objects, byte ranges of objects, nested manifests,
inline data).  A GET answers the segments' bytes one after another
(:mod:`.segments`; a nested manifest is read when one of its bytes is
reached, ten levels at most) with one range across segments; ``Etag`` is
the large object's, in quotes, and ``X-Manifest-Etag`` the manifest's md5.
``?multipart-manifest=get`` answers the stored manifest
(``&format=raw``: the form it was PUT in).  A POST keeps the manifest a
manifest (:meth:`StaticLargeObjects.keep_on_post`).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
import dataclasses
import hashlib
import json
import logging
from typing import Any

from storaged import exception
from storaged.api.access import read_check
from storaged.api.handlers import slo_manifest as sm
from storaged.api.handlers import symlink_meta
from storaged.api.handlers.common import TRUE_VALUES
from storaged.api.handlers.common import run
from storaged.api.handlers.conditions import UNSATISFIABLE
from storaged.api.handlers.conditions import Byteranges
from storaged.api.handlers.conditions import byte_ranges
from storaged.api.handlers.conditions import check_conditions
from storaged.api.handlers.conditions import parse_range
from storaged.api.handlers.conditions import quote_etag
from storaged.api.handlers.objectmeta import SYSMETA_PREFIX
from storaged.api.handlers.objectmeta import clean_content_type
from storaged.api.handlers.objectmeta import object_headers
from storaged.api.handlers.segments import Segment
from storaged.api.handlers.segments import SegmentedBody
from storaged.api.handlers.segments import SegmentError
from storaged.api.protocol import Headers
from storaged.api.protocol import HTTPError
from storaged.api.protocol import Request
from storaged.api.protocol import Response
from storaged.api.protocol import error
from storaged.objects.repository import ObjectInfo
from storaged.objects.repository import ObjectRepository

LOG = logging.getLogger(__name__)

is_manifest = sm.is_slo


class StaticLargeObjects:
    """Reads manifests: GET/HEAD of large objects and of their manifests.

    :param service: the object repository.
    """

    def __init__(self, service: ObjectRepository) -> None:
        self.service = service

    # -- reading manifests -----------------------------------------------------

    def _read_manifest(self, a: str, c: str, o: str) -> tuple[ObjectInfo, bytes]:
        """Read a manifest, through the symlinks that lead to it (a nested one)."""
        def read(where: tuple[str, str, str]) -> tuple[ObjectInfo, bytes]:
            info, chunks, _n = self.service.get_object(*where)
            try:
                return info, b"".join(chunks)
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()

        where = (a, c, o)
        for _hop in range(symlink_meta.SYMLOOP_MAX + 1):
            info, data = run(read, where)
            if not symlink_meta.is_link(info.metadata):
                return info, data
            where = symlink_meta.target_of(info.metadata, where[0])
        raise error(409, "Too many levels of symbolic links")

    def entries(self, a: str, c: str, o: str) -> tuple[ObjectInfo, list[Any]]:
        info, data = self._read_manifest(a, c, o)
        try:
            entries = json.loads(data)
        except ValueError as err:
            LOG.error("Unable to load SLO manifest %s/%s/%s: %s", a, c, o, err)
            raise error(500, "Unable to load SLO manifest") from err
        return info, entries

    def size_and_etag(self, info: ObjectInfo) -> tuple[int, str, list[Any] | None]:
        meta = info.metadata
        if sm.SYSMETA_ETAG in meta and sm.SYSMETA_SIZE in meta:
            try:
                return int(meta[sm.SYSMETA_SIZE]), meta[sm.SYSMETA_ETAG], None
            except ValueError:
                pass
        # A manifest without the system metadata (synced from an older
        # peer): work both out from its entries.
        _info, entries = self.entries(info.account, info.container, info.name)
        return sum(sm.segment_length(e) for e in entries), sm.slo_etag(entries), entries

    # -- GET and HEAD ----------------------------------------------------------

    def respond(self, req: Request, info: ObjectInfo) -> Response:
        """Answer a GET or HEAD of the manifest ``info``.

        ``?part-number=<n>`` answers the ``n``-th segment of the manifest
        (206, with ``X-Parts-Count``), as Swift 2.36 does.
        """
        if req.query.get("multipart-manifest") == "get":
            return self._manifest(req, info)
        part = _part_number(req)
        size, etag, entries = self.size_and_etag(info)
        check_conditions(req, dataclasses.replace(info, etag=etag),
                         wire_etag=quote_etag(etag))
        headers = object_headers(info)
        headers["Etag"] = quote_etag(etag)
        headers["X-Manifest-Etag"] = info.etag
        ctype = clean_content_type(info.content_type)
        if entries is None and (part or req.method == "GET"):
            info2, entries = self.entries(info.account, info.container, info.name)
            if info2.timestamp != info.timestamp:
                raise error(503)
        status, first, last = 200, 0, size - 1
        value = req.header("Range") if req.method == "GET" else None
        wanted = parse_range(value, size) if value else None
        if value and wanted is None and size:
            ranges = byte_ranges(value, size)
            if ranges and len(ranges) > 1:
                assert entries is not None
                return self._ranges(req, info, entries, ranges, size, headers,
                                    ctype)
        if wanted is UNSATISFIABLE:
            raise error(416, headers=[("Content-Range", "bytes */%d" % size)])
        if isinstance(wanted, tuple):
            status, first, last = 206, wanted[0], wanted[1] - 1
        elif part:
            assert entries is not None
            headers["X-Parts-Count"] = str(len(entries))
            if part > len(entries):
                headers["Content-Range"] = "bytes */%d" % size
                text = b"The requested part number is not satisfiable"
                if req.method == "HEAD":
                    headers["Content-Length"] = "0"
                    text = b""
                raise HTTPError(Response(416, text, headers, content_type=ctype))
            first = sum(sm.segment_length(e) for e in entries[:part - 1])
            status, last = 206, first + sm.segment_length(entries[part - 1]) - 1
        if status == 206:
            headers["Content-Range"] = "bytes %d-%d/%d" % (first, last, size)
        length = last - first + 1
        if req.method == "HEAD":
            headers["Content-Length"] = str(length)
            return Response(status, b"", headers, content_type=ctype)
        assert entries is not None
        segments = self._walk(info.account, entries, first, last, 1)
        body = SegmentedBody(
            self.service, segments, length,
            "/%s/%s/%s" % (info.account, info.container, info.name),
            req.request_id, may_read=read_check(req),
        )
        try:
            body.prime()
        except SegmentError as err:
            body.close()
            LOG.error("Large object %s/%s/%s: %s (request %s)", info.account,
                      info.container, info.name, err, req.request_id)
            raise error(409) from err
        return Response(status, body, headers, length=length, content_type=ctype)

    def _ranges(
        self, req: Request, info: ObjectInfo, entries: list[Any],
        ranges: list[tuple[int, int]], size: int, headers: Headers, ctype: str,
    ) -> Response:
        """Several ranges: a 206 ``multipart/byteranges``, as Swift's slo."""
        parts = Byteranges(ranges, ctype, size)
        name = "/%s/%s/%s" % (info.account, info.container, info.name)

        def read(start: int, end: int) -> Iterator[bytes]:
            body = SegmentedBody(
                self.service, self._walk(info.account, entries, start, end - 1, 1),
                end - start, name, req.request_id, may_read=read_check(req),
            )
            try:
                yield from body
            finally:
                body.close()

        return Response(206, parts.body(read), headers, length=parts.length,
                        content_type=parts.content_type)

    def _walk(
        self, account: str, entries: list[Any], first: int, last: int, depth: int
    ) -> Iterator[Segment]:
        """Yield the segments holding bytes ``first..last`` of ``entries``.

        A nested manifest is read only when one of its bytes is wanted.
        """
        for entry in entries:
            length = sm.segment_length(entry)
            if first >= length:
                first -= length
                last -= length
                continue
            if last < 0:
                return
            lo, hi = max(0, first), min(length - 1, last)
            if "data" in entry:
                yield Segment("", "", "", lo, hi, data=base64.b64decode(entry["data"]))
            else:
                start = 0
                if entry.get("range"):
                    start = int(entry["range"].split("-")[0])
                container, _sep, name = entry["name"].lstrip("/").partition("/")
                if str(entry.get("sub_slo", "")).lower() in TRUE_VALUES:
                    if depth >= sm.MAX_RECURSION:
                        raise SegmentError(reason="max recursion depth exceeded")
                    try:
                        sub_info, sub = self.entries(account, container, name)
                    except (exception.StoragedError, HTTPError) as err:
                        raise SegmentError(
                            reason="sub-manifest %s: %s" % (entry["name"], err)
                        ) from err
                    # Its segments are in its own account (it may be reached
                    # through a link to another one).
                    yield from self._walk(sub_info.account, sub, start + lo,
                                          start + hi, depth + 1)
                else:
                    yield Segment(account, container, name, start + lo, start + hi,
                                  etag=entry["hash"], size=int(entry["bytes"]))
            first -= length
            last -= length

    def _manifest(self, req: Request, info: ObjectInfo) -> Response:
        """``?multipart-manifest=get``: the stored manifest, or its PUT form."""
        check_conditions(req, info)
        info2, data = self._read_manifest(info.account, info.container, info.name)
        headers = object_headers(info2)
        if req.query.get("format") == "raw":
            try:
                data = sm.raw_form(json.loads(data))
            except ValueError as err:
                raise error(500, "Unable to load SLO manifest") from err
            headers["Etag"] = hashlib.md5(data, usedforsecurity=False).hexdigest()
            ctype = clean_content_type(info2.content_type)
        else:
            ctype = "application/json; charset=utf-8"
        if req.method == "HEAD":
            headers["Content-Length"] = str(len(data))
            return Response(200, b"", headers, content_type=ctype)
        return Response(200, data, headers, content_type=ctype)

    # -- POST ------------------------------------------------------------------

    @staticmethod
    def keep_on_post(
        current: ObjectInfo | None, meta: dict[str, str], ctype: str | None
    ) -> tuple[dict[str, str], str | None]:
        """Return a POST's metadata and type with a manifest's kept (as Swift)."""
        if current is None or not is_manifest(current.metadata):
            return meta, ctype
        meta = dict(meta)
        for key, value in current.metadata.items():
            if key == sm.SLO_HEADER or key.startswith(SYSMETA_PREFIX):
                meta[key] = value
        if ctype is not None and sm.SYSMETA_SIZE in current.metadata:
            ctype = "%s;swift_bytes=%s" % (ctype, current.metadata[sm.SYSMETA_SIZE])
        return meta, ctype


def _part_number(req: Request) -> int | None:
    """Return ``?part-number=`` (Swift's checks), None when not asked.

    :raises HTTPError: 400 for a value that is not a positive integer.
    """
    value = req.query.get("part-number")
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise error(400, "Part number must be an integer greater than 0")
    return number
