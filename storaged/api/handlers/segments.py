"""A large object's body: its segments read one after another.

Both kinds of large object (:mod:`.dlo`, :mod:`.slo`) describe their data
as a sequence of :class:`Segment`: a byte range of an object (or, for a
static large object, some inline data).  :class:`SegmentedBody` is the WSGI
body that reads them in order, as Swift's ``SegmentedIterable`` does:

* one segment is open at a time, read through the object repository with
  an offset and a length, and closed before the next is opened, so memory
  stays bounded by a chunk whatever the size of the whole;
* a segment whose ETag or size is no longer what the manifest says (or
  that is gone) ends the body early: the server cuts the connection, the
  client sees a short body (never a wrong one), and the reason is logged;
* the first segment is opened before the response starts
  (:meth:`SegmentedBody.prime`), so a manifest whose first segment is
  already broken is answered with Swift's 409 instead of a cut body;
* a body that would run longer than ``max_get_time`` seconds is cut too.

For example, a manifest of ``seg/1`` (10 bytes) and ``seg/2`` (10 bytes)
read with ``Range: bytes=5-14`` is the segments ``seg/1`` bytes 5-9 and
``seg/2`` bytes 0-4: two reads of five bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Iterator
import dataclasses
import logging
import sys
import time
from typing import Any
from typing import Final

from storaged import concurrency
from storaged import exception
from storaged.api.access import ReadCheck
from storaged.api.handlers import symlink_meta
from storaged.api.protocol import HTTPError
from storaged.objects.repository import ObjectRepository

LOG = logging.getLogger(__name__)

#: Seconds a large object's GET may last (Swift's ``max_get_time``).
MAX_GET_TIME: Final = 86400
_EOF: Final = b""


class SegmentError(exception.StoragedError):
    """A segment cannot be read as its manifest describes it."""

    msg_fmt = "%(reason)s"


@dataclasses.dataclass(frozen=True)
class Segment:
    """A piece of a large object.

    :ivar account: the segment object's account.
    :ivar container: its container.
    :ivar name: its name (``""`` for an inline data segment).
    :ivar first: the first byte used, in the segment object.
    :ivar last: the last byte used (inclusive).
    :ivar etag: the ETag the object must have, or None not to check.
    :ivar size: the size the object must have, or None not to check.
    :ivar data: an inline data segment's bytes (whole, before slicing).
    """

    account: str
    container: str
    name: str
    first: int
    last: int
    etag: str | None = None
    size: int | None = None
    data: bytes | None = None

    @property
    def length(self) -> int:
        """The bytes this segment contributes."""
        return self.last - self.first + 1

    @property
    def path(self) -> str:
        """``/container/object`` for messages."""
        return "/%s/%s" % (self.container, self.name)


class SegmentedBody:
    """The WSGI body of a large object: its segments' bytes in order.

    :param service: the object repository segments are read through.
    :param segments: the segments, produced lazily (a listing or manifest
        walk may raise :class:`SegmentError` too).
    :param length: the bytes the response announced; a body that would
        differ is cut.
    :param name: the large object's path, for the log.
    :param request_id: the request's id, for the log.
    :param max_get_time: seconds after which the body is cut.
    :param may_read: the caller's read check
        (:func:`storaged.api.access.read_check`): a segment in a container
        the caller may not read ends the body as a broken one does.
    """

    def __init__(
        self,
        service: ObjectRepository,
        segments: Iterable[Segment],
        length: int,
        name: str,
        request_id: str,
        max_get_time: float = MAX_GET_TIME,
        may_read: ReadCheck | None = None,
    ) -> None:
        self.service = service
        self.may_read = may_read
        self._readable: set[tuple[str, str]] = set()
        self._segments = (s for s in segments if s.length > 0)
        self.length = length
        self.name = name
        self.request_id = request_id
        self.max_get_time = max_get_time
        self._started = time.monotonic()
        self._first: tuple[Segment, Any] | None = None
        self._current: Any = None
        self._closed = False

    def prime(self) -> None:
        """Open the first segment now (before the response's headers).

        :raises SegmentError: it is missing or no longer matches.
        """
        if self.length == 0:
            return
        try:
            segment = next(self._segments)
        except StopIteration:
            return
        self._first = (segment, self._open(segment))

    def _open(self, segment: Segment) -> Any:
        """Open one segment; return its chunks (bytes for inline data).

        A segment that is a symlink is read through it (at most
        :data:`~.symlink_meta.SYMLOOP_MAX` links in a row, each target read as
        the caller), as Swift's segment requests pass its symlink
        middleware.
        """
        if segment.data is not None:
            return [segment.data[segment.first:segment.last + 1]]
        where = (segment.account, segment.container, segment.name)
        for _hop in range(symlink_meta.SYMLOOP_MAX + 1):
            self._check_access(where[0], where[1], segment.path)
            try:
                info, chunks, _n = concurrency.run_blocking(
                    self.service.get_object, *where,
                    offset=segment.first, length=segment.length,
                )
            except exception.StoragedError as err:
                # A link is empty: a range of it may not be readable.
                target = concurrency.run_blocking(self._link_target, where)
                if target is None:
                    raise SegmentError(
                        reason="Could not read segment %s: %s" % (segment.path, err)
                    ) from err
                where = target
                continue
            if not symlink_meta.is_link(info.metadata):
                break
            _close(chunks)
            where = symlink_meta.target_of(info.metadata, where[0])
        else:
            raise SegmentError(
                reason="Could not read segment %s: too many levels of symbolic "
                "links" % segment.path)
        if (
            (segment.etag is not None and info.etag != segment.etag)
            or (segment.size is not None and info.size != segment.size)
            or info.size < segment.last + 1
        ):
            _close(chunks)
            raise SegmentError(
                reason="Object segment no longer valid: %s etag: %s != %s or "
                "%s != %s" % (segment.path, info.etag, segment.etag, info.size,
                              segment.size)
            )
        return chunks

    def _link_target(self, where: tuple[str, str, str]) -> tuple[str, str, str] | None:
        """The target of the link at ``where``, None if it is no link (or gone)."""
        try:
            info = self.service.head_object(*where)
        except exception.StoragedError:
            return None
        if not symlink_meta.is_link(info.metadata):
            return None
        return symlink_meta.target_of(info.metadata, where[0])

    def _check_access(self, account: str, container: str, path: str) -> None:
        where = (account, container)
        if self.may_read is None or where in self._readable:
            return
        try:
            self.may_read(account, container, False)
        except HTTPError as err:
            raise SegmentError(
                reason="Could not read segment %s: %d" % (path, err.response.status)
            ) from err
        self._readable.add(where)

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._stream()
        except Exception as err:
            LOG.error("Large object %s cut after the response started "
                      "(request %s): %s", self.name, self.request_id, err)
            raise

    def _stream(self) -> Iterator[bytes]:
        left = self.length
        pending = self._first
        self._first = None
        while left > 0:
            if pending is None:
                try:
                    segment = next(self._segments)
                except StopIteration:
                    raise SegmentError(
                        reason="segments ended %d bytes short" % left
                    ) from None
                if time.monotonic() - self._started > self.max_get_time:
                    raise SegmentError(reason="max_get_time exceeded")
                pending = (segment, self._open(segment))
            segment, chunks = pending
            pending = None
            self._current = chunks
            try:
                want = segment.length
                it = iter(chunks)
                while want > 0:
                    chunk = concurrency.run_blocking(next, it, _EOF)
                    if not chunk:
                        raise SegmentError(
                            reason="segment %s ended %d bytes short"
                            % (segment.path, want)
                        )
                    chunk = chunk[:want]
                    want -= len(chunk)
                    if len(chunk) > left:
                        raise SegmentError(reason="segments longer than announced")
                    left -= len(chunk)
                    yield chunk
            finally:
                self._current = None
                _close(chunks)

    def close(self) -> None:
        """Close whatever segment is still open."""
        if self._closed:
            return
        self._closed = True
        if self._first is not None:
            _close(self._first[1])
            self._first = None
        if self._current is not None:
            _close(self._current)
            self._current = None
        close = getattr(self._segments, "close", None)
        if close is not None:
            close()


def _close(chunks: Any) -> None:
    close = getattr(chunks, "close", None)
    if close is None:
        return
    try:
        if sys.is_finalizing():
            # A body finalized as the interpreter exits: no thread may start
            # now, so eventlet's pool cannot take the call.
            close()
        else:
            concurrency.run_blocking(close)
    except Exception:
        LOG.exception("Could not close a segment's stream")


def ranged(
    segments: Iterable[Segment], first: int, last: int
) -> Iterator[Segment]:
    """Yield the parts of ``segments`` that hold bytes ``first..last``.

    ``first`` and ``last`` (inclusive) count from the start of the whole
    large object; each segment yielded is narrowed to the bytes needed.
    """
    offset = 0
    for segment in segments:
        if offset > last:
            return
        end = offset + segment.length - 1
        if end >= first:
            lo = max(first, offset) - offset
            hi = min(last, end) - offset
            yield dataclasses.replace(
                segment, first=segment.first + lo, last=segment.first + hi
            )
        offset = end + 1
