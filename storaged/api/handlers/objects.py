"""Object requests: GET and HEAD (whole or one range), PUT, POST, DELETE.

A small object travels in one trip to the thread pool (read whole, or
stored whole); a larger one streams, a PUT holding one of a few upload
slots (:func:`upload_slots`) while its client sends.  A container-sync
sender's ``X-Timestamp`` is honoured, last writer wins: 202 for an older
PUT, 409 for an older POST or DELETE, as Swift answers.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
import io
import logging
import os
import threading
from typing import Any
from typing import Final

from storaged import concurrency
from storaged import exception
from storaged.api import body as body_mod
from storaged.api.auth import Identity
from storaged.api.handlers import expiry
from storaged.api.handlers import quotas
from storaged.api.handlers import slo_manifest
from storaged.api.handlers.common import Settings
from storaged.api.handlers.common import run
from storaged.api.handlers.common import sync_timestamp
from storaged.api.handlers.conditions import UNSATISFIABLE
from storaged.api.handlers.conditions import Byteranges
from storaged.api.handlers.conditions import byte_ranges
from storaged.api.handlers.conditions import check_conditions
from storaged.api.handlers.conditions import parse_range
from storaged.api.handlers.dlo import DynamicLargeObjects
from storaged.api.handlers.dlo import manifest_of
from storaged.api.handlers.objectmeta import object_headers
from storaged.api.handlers.objectmeta import request_content_type
from storaged.api.handlers.objectmeta import request_metadata
from storaged.api.handlers.slo import StaticLargeObjects
from storaged.api.handlers.slo_delete import ManifestDelete
from storaged.api.handlers.slo_put import ManifestPut
from storaged.api.protocol import Headers
from storaged.api.protocol import HTTPError
from storaged.api.protocol import Request
from storaged.api.protocol import Response
from storaged.api.protocol import error
from storaged.api.protocol import last_modified
from storaged.api.routes import Route
from storaged.catalog import Timestamp
from storaged.objects.repository import ObjectInfo
from storaged.objects.repository import ObjectRepository

LOG = logging.getLogger(__name__)

#: Objects (and upload bodies) up to this size are read whole in one go:
#: one trip to the thread pool instead of one per chunk.
SMALL_OBJECT: Final = 64 * 1024


def upload_slots() -> int:
    """Streamed uploads stored at once: the thread pool's size less four."""
    try:
        size = int(os.environ.get("EVENTLET_THREADPOOL_SIZE", "20"))
    except ValueError:
        size = 20
    return max(1, size - 4)


class ObjectHandler:
    """Answers ``/v1/<account>/<container>/<object>``.

    :param service: the object service.
    :param settings: the ``[api]`` settings.
    """

    def __init__(self, service: ObjectRepository, settings: Settings) -> None:
        self.service = service
        self.settings = settings
        # Under eventlet a streamed upload holds a thread of eventlet's pool
        # for as long as its client sends: keep a few threads free for every
        # other request, whatever the number of slow uploads.
        self._upload_slots = threading.BoundedSemaphore(upload_slots())
        # Large objects (:mod:`.dlo`, :mod:`.slo`): manifests read and written.
        self.dlo = DynamicLargeObjects(service)
        self.slo = StaticLargeObjects(service)
        self.slo_put = ManifestPut(self.slo, settings.client_timeout)
        self.slo_delete = ManifestDelete(self.slo)

    def handle(self, req: Request, route: Route, ident: Identity) -> Response:
        """Object PUT, GET, HEAD, POST and DELETE."""
        method = req.method
        if method in ("GET", "HEAD"):
            return self._get_object(req, route)
        if method == "PUT":
            return self._put_object(req, route, ident)
        if method == "POST":
            return self._post_object(req, route, ident)
        if method == "DELETE":
            return self._delete_object(req, route, ident)
        # COPY is answered by the copier (:mod:`.copy`) before it gets here.
        raise error(405, headers=[("Allow", "COPY, DELETE, GET, HEAD, POST, PUT")])

    # -- GET and HEAD -------------------------------------------------------------

    def _get_object(self, req: Request, route: Route) -> Response:
        a, c, o = route.account, route.container, route.obj
        if req.method == "HEAD":
            info = run(self.service.head_object, a, c, o)
            if self._is_large(req, info):
                return self._large_object(req, info)
            check_conditions(req, info)
            return _head_response(object_headers(info), info)
        range_header = req.header("Range")
        if range_header:
            return self._get_range(req, route, range_header)
        # One trip to the thread pool: open, and read a small object whole.
        info, chunks, n = run(self._open, a, c, o, SMALL_OBJECT)
        if self._is_large(req, info):
            _close_quietly(chunks)
            return self._large_object(req, info)
        try:
            check_conditions(req, info)
        except BaseException:
            _close_quietly(chunks)
            raise
        headers = object_headers(info)
        if isinstance(chunks, bytes):
            return Response(200, chunks, headers, content_type=info.content_type)
        return Response(
            200,
            body_mod.ObjectBody(chunks, _stream_failed(req, info)),
            headers,
            length=n,
            content_type=info.content_type,
        )

    @staticmethod
    def _is_large(req: Request, info: ObjectInfo) -> bool:
        """Tell whether a GET or HEAD of ``info`` is a large object's."""
        if slo_manifest.is_slo(info.metadata):
            return True
        return (manifest_of(info) is not None
                and req.query.get("multipart-manifest") != "get")

    def _large_object(self, req: Request, info: ObjectInfo) -> Response:
        """Answer a GET or HEAD of a large object's manifest (:meth:`_is_large`)."""
        if slo_manifest.is_slo(info.metadata):
            return self.slo.respond(req, info)
        return self.dlo.respond(req, info)

    def _open(
        self, a: str, c: str, o: str, read_up_to: int = 0
    ) -> tuple[ObjectInfo, Any, int]:
        """Open an object (verified when configured and the back end can).

        Runs in the thread pool.  An object of at most ``read_up_to`` bytes
        is read whole: its data comes back as ``bytes`` instead of a stream.
        """
        result = None
        if self.settings.verify_reads:
            try:
                result = self.service.get_object(a, c, o, verify=True)
            except exception.StoreCapabilityError:
                result = None
        if result is None:
            result = self.service.get_object(a, c, o)
        info, chunks, n = result
        if n > read_up_to:
            return result
        try:
            data = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        return info, data, n

    def _get_range(self, req: Request, route: Route, value: str) -> Response:
        a, c, o = route.account, route.container, route.obj
        for _attempt in range(3):
            info = run(self.service.head_object, a, c, o)
            if self._is_large(req, info):
                return self._large_object(req, info)
            check_conditions(req, info)
            ranges = byte_ranges(value, info.size)
            if ranges and len(ranges) > 1 and info.size:
                return self._get_ranges(req, info, ranges)
            wanted = parse_range(value, info.size)
            if wanted is None:
                # Unparsable, several ranges, or the whole object: a 200.
                info2, chunks, n = run(self._open, a, c, o)
                if info2.timestamp != info.timestamp:
                    _close_quietly(chunks)
                    continue
                if isinstance(chunks, bytes):  # empty: read whole already
                    return Response(200, chunks, object_headers(info2),
                                    content_type=info2.content_type)
                return Response(
                    200, body_mod.ObjectBody(chunks, _stream_failed(req, info2)),
                    object_headers(info2), length=n,
                    content_type=info2.content_type,
                )
            if wanted is UNSATISFIABLE:
                # Swift's 416 keeps the object's headers (Etag, type ...).
                headers = object_headers(info)
                headers["Content-Range"] = "bytes */%d" % info.size
                raise HTTPError(Response(416, None, headers,
                                         content_type=info.content_type))
            assert isinstance(wanted, tuple)
            start, end = wanted
            info2, chunks, n = run(
                self.service.get_object, a, c, o, offset=start, length=end - start
            )
            if info2.timestamp != info.timestamp:
                # Replaced meanwhile: its size may differ; look again.
                _close_quietly(chunks)
                continue
            headers = object_headers(info2)
            headers["Content-Range"] = "bytes %d-%d/%d" % (start, end - 1, info2.size)
            return Response(
                206, body_mod.ObjectBody(chunks, _stream_failed(req, info2)),
                headers, length=n, content_type=info2.content_type,
            )
        raise error(503)

    def _get_ranges(
        self, req: Request, info: ObjectInfo, ranges: list[tuple[int, int]]
    ) -> Response:
        """Several ranges: a 206 ``multipart/byteranges``, one read per range."""
        a, c, o = info.account, info.container, info.name
        parts = Byteranges(ranges, info.content_type, info.size)

        def read(start: int, end: int) -> Iterator[bytes]:
            got, chunks, _n = run(
                self.service.get_object, a, c, o, offset=start, length=end - start
            )
            stream = body_mod.ObjectBody(chunks, _stream_failed(req, got))
            try:
                if got.timestamp != info.timestamp:
                    # Replaced while being sent: cut rather than mix two.
                    raise exception.RetryableError(reason="object replaced")
                yield from stream
            finally:
                stream.close()

        return Response(206, parts.body(read), object_headers(info),
                        length=parts.length, content_type=parts.content_type)

    # -- PUT, POST, DELETE --------------------------------------------------------

    def _put_object(self, req: Request, route: Route, ident: Identity) -> Response:
        a, c, o = route.account, route.container, route.obj
        # Swift's quota middlewares see the request before ``slo`` does.
        quotas.check_upload(self.service, a, c, req.content_length or 0)
        if req.query.get("multipart-manifest") == "put":
            return self.slo_put.put(req, route, ident)
        length = req.content_length
        chunked = req.chunked
        if length is None and not chunked:
            raise error(411, "Missing Content-Length header.")  # Swift's text
        if length is not None and length > self.settings.max_object_size:
            raise error(413, "Your request is too large.")
        ts = sync_timestamp(req, ident)
        meta = request_metadata(req, ident)
        content_type = request_content_type(req)
        etag = req.header("Etag")
        if_none_match = req.header("If-None-Match")
        if if_none_match is not None and if_none_match.strip() != "*":
            raise error(400, "If-None-Match only supports *")
        small = length is not None and length <= SMALL_OBJECT
        if not small:
            run(self.service.container_info, a, c)  # 404 before reading any data
        if ts is not None or if_none_match is not None:
            current = run(self._head_or_none, a, c, o)
            if current is not None:
                if if_none_match is not None:
                    raise error(412)
                if ts is not None and current.timestamp >= ts:
                    # A newer write won already: nothing to read (Swift: 202).
                    return Response(202, None, [("X-Backend-Timestamp",
                                                 current.timestamp.internal)])
        reader = body_mod.BodyReader(
            req.environ["wsgi.input"], None if chunked else length,
            self.settings.max_object_size, self.settings.client_timeout,
        )
        req.environ["storaged.body"] = reader
        feed: body_mod.HubFeed | None = None
        source: Any = reader
        if small:
            # Read here (on the hub under eventlet), then store in one trip.
            source = io.BytesIO(_read_exactly(reader, length or 0))
        elif concurrency.is_eventlet():
            feed = body_mod.HubFeed(
                reader, self.settings.chunk_size, self.settings.client_timeout
            )
            source = feed
        slot = self._upload_slots if feed is not None else None
        if slot is not None:
            slot.acquire()
        try:
            result = run(
                self.service.put_object, a, c, o, source,
                None if chunked else length,
                content_type=content_type, metadata=meta, timestamp=ts, etag=etag,
            )
        finally:
            if slot is not None:
                slot.release()
            if feed is not None:
                feed.close()
        info = result.info
        headers = [
            ("Etag", info.etag),  # bare, as Swift's proxy sends it
            ("Last-Modified", last_modified(info.timestamp)),
            ("X-Timestamp", info.timestamp.normal),
        ]
        if not result.applied:
            return Response(202, None, headers)
        return Response(201, b"", headers, content_type="text/html; charset=UTF-8")

    def _head_or_none(self, a: str, c: str, o: str) -> ObjectInfo | None:
        try:
            return self.service.head_object(a, c, o)
        except exception.ObjectNotFound:
            return None

    def _post_object(self, req: Request, route: Route, ident: Identity) -> Response:
        a, c, o = route.account, route.container, route.obj
        ts = sync_timestamp(req, ident) or Timestamp.now()
        meta = request_metadata(req, ident)
        content_type = request_content_type(req)
        if not ident.is_sync:
            # A manifest stays one (Swift's object server keeps it so).
            meta, content_type = self.slo.keep_on_post(
                run(self._head_or_none, a, c, o), meta, content_type)
        applied = run(self.service.update_object_metadata, a, c, o, ts, meta,
                      content_type)
        if applied is None:
            raise error(404)
        if not applied:
            raise error(409)
        return Response(202, None)

    def _delete_object(
        self, req: Request, route: Route, ident: Identity
    ) -> Response:
        a, c, o = route.account, route.container, route.obj
        if (req.query.get("multipart-manifest") == "delete"
                and not ident.is_sync):
            return self.slo_delete.delete(req, route)
        ts = sync_timestamp(req, ident)
        expired = expiry.check_delete(req, self.service, a, c, o)
        if ts is None:
            if not run(self.service.delete_object, a, c, o):
                # A newer row (a sync peer's future timestamp) stays: the
                # delete changed nothing, and Swift's object server says 409.
                raise error(409)
            if expired:
                raise error(404)  # deleted, but it was gone already
            return Response(204, b"")
        existed = run(self._head_or_none, a, c, o) is not None
        applied = run(self.service.delete_object, a, c, o, ts)
        if not applied:
            raise error(409)
        if not existed:
            # The tombstone is recorded (an older PUT arriving later loses),
            # and the answer is Swift's for an object that was not there.
            raise error(404)
        return Response(204, b"")


def _read_exactly(reader: body_mod.BodyReader, length: int) -> bytes:
    parts = []
    left = length
    while left > 0:
        data = reader.read(left)
        if not data:
            break
        parts.append(data)
        left -= len(data)
    return b"".join(parts)


def _head_response(headers: Headers, info: ObjectInfo) -> Response:
    headers["Content-Length"] = str(info.size)
    return Response(200, b"", headers, content_type=info.content_type)


def _close_quietly(chunks: Any) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        try:
            run(close)
        except Exception:
            LOG.exception("Could not close an object's stream")


def _stream_failed(req: Request, info: ObjectInfo) -> Callable[[BaseException], None]:
    def report(err: BaseException) -> None:
        LOG.error(
            "Reading %s/%s/%s failed after the response started, connection "
            "cut (request %s): %s",
            info.account, info.container, info.name, req.request_id, err,
        )

    return report
