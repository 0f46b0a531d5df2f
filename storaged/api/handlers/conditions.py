"""Conditional and ranged object reads: ETags, ``If-*`` headers, ``Range``.

Swift's rules for ``If-Match``, ``If-None-Match``, ``If-Modified-Since``
and ``If-Unmodified-Since`` (:func:`check_conditions`) and for byte ranges
(swob's: :func:`byte_ranges` for all of them, :func:`parse_range` for a
reader that serves one), with the ETag quoting both use; the
``multipart/byteranges`` body of several ranges (:class:`Byteranges`).
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
import itertools
import math
import secrets
from typing import Final

from storaged.api.protocol import HTTPError
from storaged.api.protocol import Request
from storaged.api.protocol import Response
from storaged.api.protocol import error
from storaged.api.protocol import last_modified
from storaged.api.protocol import parse_http_date
from storaged.common.headerbytes import text_to_bytes
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
    # Swift's swob applies If-Unmodified-Since even beside If-Match (RFC
    # 7232 would ignore it there): storaged answers as Swift does.
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


#: swob's limits on the ranges of one request: more than this many, or
#: more than :data:`MAX_RANGE_OVERLAPS` overlapping pairs, or
#: :data:`MAX_NONASCENDING_RANGES` or more ranges out of order, and the
#: request cannot be satisfied (416), as RFC 7233 section 6.1 suggests.
MAX_RANGES: Final = 50
MAX_RANGE_OVERLAPS: Final = 2
MAX_NONASCENDING_RANGES: Final = 8


def _range_specs(value: str) -> list[tuple[int | None, int | None]] | None:
    """Return the ranges of a ``Range`` header, None when it is not valid.

    swob's syntax: ``bytes=`` (any case, spaces ignored), then ``a-b``,
    ``a-`` or ``-n`` separated by commas; one bad spec (no hyphen, not a
    number, ``b < a``, ``-`` alone) makes the whole header ignored.
    """
    text = value.replace(" ", "")
    if not text or not text.lower().startswith("bytes="):
        return None
    specs: list[tuple[int | None, int | None]] = []
    for spec in text[6:].split(","):
        first, sep, last = spec.partition("-")
        if not sep:
            return None
        try:
            start = int(first) if first else None
        except ValueError:
            return None
        end: int | None = None
        if last:
            if not last.isdigit():
                return None
            end = int(last)
            if start is not None and end < start:
                return None
        elif start is None:
            return None
        specs.append((start, end))
    return specs


def byte_ranges(value: str, size: int) -> list[tuple[int, int]] | None:
    """Return the byte ranges a ``Range`` header asks of ``size`` bytes, as swob.

    Each ``(start, end)`` has ``end`` exclusive, in the order asked.
    ``bytes=a-b`` is clipped to the end, ``bytes=-n`` is the last ``n``
    bytes (all of them when ``n`` is larger); a range starting at or beyond
    the end, and ``bytes=-0``, are dropped.  The request is refused (an
    empty list) when nothing is left, and when it is egregious: over
    :data:`MAX_RANGES` ranges, over :data:`MAX_RANGE_OVERLAPS` overlapping
    pairs, or :data:`MAX_NONASCENDING_RANGES` ranges or more not in
    ascending order.

    :returns: None to ignore the header (it is not valid: send the whole
        object, 200); ``[]`` for a 416; else the ranges (206, one part or
        ``multipart/byteranges``).  An empty object with ranges left (a
        suffix range) is sent whole too: see :func:`parse_range`.
    """
    specs = _range_specs(value)
    if not specs:
        return None
    ranges: list[tuple[int, int]] = []
    for start, end in specs:
        if start is None:
            assert end is not None
            if end == 0:
                continue
            ranges.append((0, size) if end > size else (size - end, size))
        elif start < size:
            ranges.append((start, size if end is None else min(end + 1, size)))
    if len(ranges) > MAX_RANGES:
        return []
    overlaps = 0
    for (start1, end1), (start2, end2) in itertools.combinations(ranges, 2):
        if (start1 < start2 < end1 or start1 < end2 < end1
                or start2 < start1 < end2 or start2 < end1 < end2):
            overlaps += 1
            if overlaps > MAX_RANGE_OVERLAPS:
                return []
    ascending = all(a <= b for a, b in itertools.pairwise(ranges))
    if not ascending and len(ranges) >= MAX_NONASCENDING_RANGES:
        return []
    return ranges


def parse_range(value: str, size: int) -> tuple[int, int] | str | None:
    """Interpret a ``Range`` header for a reader that serves one range.

    :func:`byte_ranges` decides; this says what a one-range reader does.

    :returns: ``(start, end)`` with ``end`` exclusive, when there is
        exactly one range; :data:`UNSATISFIABLE` for a 416; or None to send
        the whole object (an ignored header, an empty object, or several
        ranges: see :class:`Byteranges` for those).
    """
    ranges = byte_ranges(value, size)
    if ranges is None:
        return None
    if not ranges:
        return UNSATISFIABLE
    if size == 0 or len(ranges) != 1:
        return None
    return ranges[0]


class Byteranges:
    """A ``multipart/byteranges`` body of several ranges, as Swift sends it.

    Each part: ``--<boundary>``, its ``Content-Type`` (the object's) and
    ``Content-Range`` lines, a blank line, the bytes, CRLF; then
    ``--<boundary>--``.  The boundary is 32 random hex digits.

    :param ranges: ``(start, end)`` pairs, ``end`` exclusive.
    :param content_type: the object's ``Content-Type``.
    :param size: the object's size.
    """

    def __init__(
        self, ranges: list[tuple[int, int]], content_type: str, size: int
    ) -> None:
        self.ranges = ranges
        self.size = size
        self.boundary = secrets.token_hex(16)
        #: the response's ``Content-Type``
        self.content_type = "multipart/byteranges;boundary=" + self.boundary
        self._part_type = text_to_bytes(content_type)
        self.length = sum(
            len(self._head(start, end)) + (end - start) + 2
            for start, end in ranges
        ) + len(self._tail())

    def _head(self, start: int, end: int) -> bytes:
        return b"".join((
            b"--", self.boundary.encode("ascii"), b"\r\n",
            b"Content-Type: ", self._part_type, b"\r\n",
            b"Content-Range: bytes %d-%d/%d\r\n\r\n" % (start, end - 1, self.size),
        ))

    def _tail(self) -> bytes:
        return b"--%s--" % self.boundary.encode("ascii")

    def body(
        self, read: Callable[[int, int], Iterable[bytes]]
    ) -> Iterator[bytes]:
        """Yield the body; ``read(start, end)`` gives the bytes of a range."""
        for start, end in self.ranges:
            yield self._head(start, end)
            yield from read(start, end)
            yield b"\r\n"
        yield self._tail()
