"""Dynamic large objects: an object whose ``X-Object-Manifest`` names segments.

As Swift's ``dlo`` middleware: an object PUT (or POSTed) with
``X-Object-Manifest: <container>/<prefix>`` is a manifest; a GET or HEAD of
it answers the concatenation of the objects of ``<container>`` whose names
start with ``<prefix>``, in listing order, read when the request comes
(segments added later are part of the object).  ``?multipart-manifest=get``
reads the manifest object itself.

The answer's headers are the manifest's, except:

* ``Content-Length``: the sum of the segments' sizes;
* ``Etag``: the md5 of the segments' ETags, concatenated, in quotes
  (``"<md5>"``), as Swift sends it; conditional requests compare against it.

One ``Range`` is honoured across segments (``206``); several ranges are
answered with the whole object (``200``), as Swift does.  Unlike Swift,
which stops at the first listing page (10,000 segments) for the length and
ETag, the whole listing is walked: the length is always known.
"""

from __future__ import annotations

from collections.abc import Iterator
import dataclasses
import hashlib
from urllib import parse as urlparse

from storaged import exception
from storaged.api.access import read_check
from storaged.api.handlers.common import run
from storaged.api.handlers.conditions import UNSATISFIABLE
from storaged.api.handlers.conditions import check_conditions
from storaged.api.handlers.conditions import parse_range
from storaged.api.handlers.conditions import quote_etag
from storaged.api.handlers.objectmeta import object_headers
from storaged.api.handlers.segments import Segment
from storaged.api.handlers.segments import SegmentedBody
from storaged.api.handlers.segments import SegmentError
from storaged.api.handlers.segments import ranged
from storaged.api.protocol import Request
from storaged.api.protocol import Response
from storaged.api.protocol import error
from storaged.catalog import MAX_LIMIT
from storaged.catalog import ObjectRow
from storaged.objects.repository import ObjectInfo
from storaged.objects.repository import ObjectRepository

#: The header that makes an object a dynamic large object's manifest.
MANIFEST_HEADER = "X-Object-Manifest"


def manifest_of(info: ObjectInfo) -> str | None:
    """Return a manifest's ``X-Object-Manifest`` (None for other objects)."""
    return info.metadata.get(MANIFEST_HEADER)


def _split(value: str) -> tuple[str, str]:
    container, _sep, prefix = urlparse.unquote(value).partition("/")
    return container, prefix


class DynamicLargeObjects:
    """Answers GET and HEAD of dynamic large object manifests.

    :param service: the object repository.
    """

    def __init__(self, service: ObjectRepository) -> None:
        self.service = service

    def _pages(self, account: str, container: str, prefix: str) -> Iterator[ObjectRow]:
        """Yield the segments' rows, one listing page at a time."""
        marker = ""
        while True:
            rows = run(self.service.list_objects, account, container,
                       prefix=prefix, marker=marker, limit=MAX_LIMIT)
            for row in rows:
                if isinstance(row, ObjectRow):
                    yield row
            if len(rows) < MAX_LIMIT:
                return
            marker = rows[-1].name

    def _segments(self, account: str, container: str, prefix: str) -> Iterator[Segment]:
        for row in self._pages(account, container, prefix):
            yield Segment(account, container, row.name, 0, row.size - 1)

    def respond(self, req: Request, info: ObjectInfo) -> Response:
        """Answer a GET or HEAD of the manifest ``info``.

        :raises HTTPError: 404 when the segments' container is missing; 304
            or 412 for conditions; 416 for a range beyond the end; 409 when
            the first segment cannot be read.
        """
        account = info.account
        container, prefix = _split(manifest_of(info) or "")
        check = read_check(req)
        if check is not None:
            # Swift lists the segments with a sub-request of the caller's:
            # refused (401, 403) as that listing would be.
            check(account, container, True)
        total = 0
        digest = hashlib.md5(usedforsecurity=False)
        try:
            for row in self._pages(account, container, prefix):
                total += row.size
                digest.update(row.etag.strip('"').encode("utf-8"))
        except (exception.ContainerNotFound, exception.InvalidName) as err:
            raise error(404) from err
        etag = digest.hexdigest()
        check_conditions(req, dataclasses.replace(info, etag=etag),
                         wire_etag=quote_etag(etag))
        headers = object_headers(info)
        headers["Etag"] = quote_etag(etag)
        if req.method == "HEAD":
            headers["Content-Length"] = str(total)
            return Response(200, b"", headers, content_type=info.content_type)
        status, first, last = 200, 0, total - 1
        range_header = req.header("Range")
        if range_header:
            wanted = parse_range(range_header, total)
            if wanted is UNSATISFIABLE:
                raise error(416, headers=[("Content-Range", "bytes */%d" % total),
                                          ("Accept-Ranges", "bytes")])
            if isinstance(wanted, tuple):
                status, first, last = 206, wanted[0], wanted[1] - 1
                headers["Content-Range"] = "bytes %d-%d/%d" % (first, last, total)
        length = last - first + 1
        body = SegmentedBody(
            self.service,
            ranged(self._segments(account, container, prefix), first, last),
            length, "/%s/%s/%s" % (account, info.container, info.name),
            req.request_id, may_read=check,
        )
        try:
            body.prime()
        except SegmentError as err:
            body.close()
            raise error(409) from err
        return Response(status, body, headers, length=length,
                        content_type=info.content_type)
