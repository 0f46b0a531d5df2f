"""Conditional and ranged object reads: ETags, ``If-*`` headers, ``Range``.

Swift's rules for ``If-Match``, ``If-None-Match``, ``If-Modified-Since``
and ``If-Unmodified-Since`` (:func:`check_conditions`) and for one byte
range (:func:`parse_range`), with the ETag quoting both use.
"""

from __future__ import annotations

import math
from typing import Final

from storaged.api.protocol import HTTPError
from storaged.api.protocol import Request
from storaged.api.protocol import Response
from storaged.api.protocol import error
from storaged.api.protocol import last_modified
from storaged.api.protocol import parse_http_date
from storaged.objects.repository import ObjectInfo

#: :func:`parse_range`'s answer for a range that cannot be served (416).
UNSATISFIABLE: Final = "unsatisfiable"


def quote_etag(etag: str) -> str:
    """Return an ETag in quotes: ``"<hex>"``.

    Swift sends a plain object's ETag bare (its proxy strips the object
    server's quotes) and a large object's in quotes, as its ``slo`` and
    ``dlo`` middlewares set it.
    """
    return '"%s"' % etag


def normalize_etag(value: str) -> str:
    """Return a client's ETag unquoted and in lower case, to compare."""
    return value.strip().strip('"').lower()


def _etag_list(value: str) -> list[str]:
    return [normalize_etag(v) for v in value.split(",") if v.strip()]


def check_conditions(
    req: Request, info: ObjectInfo, wire_etag: str | None = None
) -> None:
    """Apply ``If-Match``, ``If-None-Match``, ``If-(Un)Modified-Since``.

    :param wire_etag: the ``Etag`` header of a 304 or 412 (the bare
        ``info.etag`` when None).
    :raises HTTPError: 412 (a precondition failed) or 304 (not modified).
    """
    etag = info.etag.lower()
    sent = info.etag if wire_etag is None else wire_etag
    modified = float(math.ceil(info.timestamp.timestamp))
    if_match = req.header("If-Match")
    if if_match is not None:
        tags = _etag_list(if_match)
        if "*" not in tags and etag not in tags:
            raise error(412, headers=[("Etag", sent)])
    if_none_match = req.header("If-None-Match")
    if if_none_match is not None:
        tags = _etag_list(if_none_match)
        if "*" in tags or etag in tags:
            raise _not_modified(info, sent)
    if if_match is None:
        since = req.header("If-Unmodified-Since")
        moment = parse_http_date(since) if since else None
        if moment is not None and modified > moment:
            raise error(412, headers=[("Etag", sent)])
    if if_none_match is None:
        since = req.header("If-Modified-Since")
        moment = parse_http_date(since) if since else None
        if moment is not None and modified <= moment:
            raise _not_modified(info, sent)


def _not_modified(info: ObjectInfo, sent: str) -> HTTPError:
    return HTTPError(Response(304, b"", [
        ("Etag", sent),
        ("Last-Modified", last_modified(info.timestamp)),
        ("X-Timestamp", info.timestamp.normal),
        ("Accept-Ranges", "bytes"),
    ]))


def parse_range(value: str, size: int) -> tuple[int, int] | str | None:
    """Interpret a ``Range`` header for an object of ``size`` bytes.

    Swift's rules, for one range: ``bytes=a-b`` (``b`` clipped to the end),
    ``bytes=a-``, ``bytes=-n`` (the last ``n`` bytes, all of them when
    ``n`` is larger than the object); a start at or beyond the end, or
    ``bytes=-0``, cannot be satisfied.

    :returns: ``(start, end)`` with ``end`` exclusive; :data:`UNSATISFIABLE`;
        or None to send the whole object (a malformed header, which is
        ignored, several ranges, or a range that is the whole object of an
        empty one).
    """
    text = value.replace(" ", "")
    if not text.lower().startswith("bytes="):
        return None
    specs = text[6:].split(",")
    ranges: list[tuple[int | None, int | None]] = []
    for spec in specs:
        first, sep, last = spec.partition("-")
        if not sep:
            return None
        try:
            start = int(first) if first else None
            end = int(last) if last else None
        except ValueError:
            return None
        if (start is not None and start < 0) or (end is not None and end < 0):
            return None
        if start is None and end is None:
            return None
        if start is not None and end is not None and end < start:
            return None
        ranges.append((start, end))
    if len(ranges) != 1:
        return None
    start, end = ranges[0]
    if start is None:
        assert end is not None
        if end == 0:
            return UNSATISFIABLE
        if size == 0:
            return None
        return (max(0, size - end), size)
    if start >= size:
        return UNSATISFIABLE
    stop = size if end is None else min(end + 1, size)
    return (start, stop)
