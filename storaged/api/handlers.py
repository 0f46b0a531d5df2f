"""Account, container and object requests, answered as Swift answers them.

Each handler gets the :class:`Request`, its :class:`~storaged.api.routes.Route`
and the caller's :class:`~storaged.api.auth.Identity`, calls the object
service (always through :func:`storaged.concurrency.run_blocking`: every
call reads or writes sqlite or disk) and returns a :class:`Response`.
Errors are raised (:class:`HTTPError`, or a storaged exception that
:mod:`storaged.api.errors` maps to a status).

Statuses, for a quick look (details in ``docs/api.rst``):

========================  ===========================================================
account GET / HEAD        200 (204 empty plain listing) / 204
container PUT             201 created, 202 existed
container POST            204; 404 missing
container HEAD / GET      204 / 200 (204 empty plain listing); 404 missing
container DELETE          204; 404 missing; 409 not empty
object PUT                201; 202 older than the stored one (sync); 404 no container;
                          411 no length; 413 too large; 422 ETag mismatch;
                          499 client gone; 408 client too slow
object GET / HEAD         200, 206 range, 304 / 412 conditions, 416 bad range; 404
object POST               202; 404 missing; 409 older than the stored one (sync)
object DELETE             204; 404 missing; 409 older than the stored one (sync)
========================  ===========================================================
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
import dataclasses
import io
import json
import logging
import math
import os
import threading
from typing import Any
from typing import Final
from typing import TypeVar
from xml.sax import saxutils

from storaged import concurrency
from storaged import exception
from storaged.api import body as body_mod
from storaged.api.auth import Identity
from storaged.api.protocol import Headers
from storaged.api.protocol import HTTPError
from storaged.api.protocol import Request
from storaged.api.protocol import Response
from storaged.api.protocol import error
from storaged.api.protocol import last_modified
from storaged.api.protocol import parse_http_date
from storaged.api.routes import Route
from storaged.catalog import MAX_LIMIT
from storaged.catalog import SECRET_KEYS
from storaged.catalog import SYNC_KEY_KEY
from storaged.catalog import SYNC_TO_KEY
from storaged.catalog import ContainerInfo
from storaged.catalog import Subdir
from storaged.catalog import Timestamp
from storaged.objects.repository import ObjectInfo
from storaged.objects.repository import ObjectRepository
from storaged.sync import realms as realms_mod

LOG = logging.getLogger(__name__)

T = TypeVar("T")

#: Object headers kept with the object and sent back with it, besides
#: ``X-Object-Meta-*`` (Swift's default ``allowed_headers``, less expiry).
OBJECT_HEADERS: Final = (
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Cache-Control",
    "Expires",
    "X-Robots-Tag",
)
#: Large-object manifests: stored as plain objects when a sync sender
#: pushes them (so they sync back intact), refused from users.
MANIFEST_HEADERS: Final = ("X-Object-Manifest", "X-Static-Large-Object")
#: The one storage policy, as ``/info`` lists it.
POLICY: Final = "Policy-0"
#: Container headers only an account owner sees and sets.
OWNER_HEADERS: Final = frozenset(SECRET_KEYS | {SYNC_TO_KEY})
#: Objects (and upload bodies) up to this size are read whole in one go:
#: one trip to the thread pool instead of one per chunk.
SMALL_OBJECT: Final = 64 * 1024
#: A body left unread beyond this makes the server close the connection
#: rather than read (and drop) the rest.
DRAIN_LIMIT: Final = 64 * 1024

_TRUE: Final = frozenset({"true", "1", "yes", "on", "t", "y"})


@dataclasses.dataclass(frozen=True)
class Settings:
    """What the handlers need from ``[api]``.

    :ivar max_object_size: largest PUT, in bytes.
    :ivar chunk_size: bytes read from an upload at a time.
    :ivar client_timeout: seconds a client may stay silent.
    :ivar verify_reads: verify whole objects while sending them.
    :ivar public_url: base of ``X-Storage-Url`` (built from the request if empty).
    :ivar allowed_sync_hosts: hosts allowed in a full-URL ``X-Container-Sync-To``.
    """

    max_object_size: int = 5 * 1024 * 1024 * 1024 + 2
    chunk_size: int = 256 * 1024
    client_timeout: float = 60.0
    verify_reads: bool = True
    public_url: str = ""
    allowed_sync_hosts: tuple[str, ...] = ("127.0.0.1",)


def upload_slots() -> int:
    """Streamed uploads stored at once: the thread pool's size less four."""
    try:
        size = int(os.environ.get("EVENTLET_THREADPOOL_SIZE", "20"))
    except ValueError:
        size = 20
    return max(1, size - 4)


def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a service call off the hub (:func:`storaged.concurrency.run_blocking`)."""
    return concurrency.run_blocking(fn, *args, **kwargs)


def _quote_etag(etag: str) -> str:
    return '"%s"' % etag


def _normalize_etag(value: str) -> str:
    return value.strip().strip('"').lower()


class Handlers:
    """The resource handlers.

    :param service: the object service.
    :param realms: container-sync realms (to validate ``X-Container-Sync-To``).
    :param settings: the ``[api]`` settings.
    """

    def __init__(
        self,
        service: ObjectRepository,
        realms: realms_mod.Realms,
        settings: Settings,
    ) -> None:
        self.service = service
        self.realms = realms
        self.settings = settings
        # Under eventlet a streamed upload holds a thread of eventlet's pool
        # for as long as its client sends: keep a few threads free for every
        # other request, whatever the number of slow uploads.
        self._upload_slots = threading.BoundedSemaphore(upload_slots())

    # -- helpers ----------------------------------------------------------------

    def _timestamp(self, req: Request, ident: Identity) -> Timestamp | None:
        """Return ``X-Timestamp`` when honoured (container-sync senders only).

        A user's ``X-Timestamp`` is ignored, as Swift's gatekeeper does.
        """
        if not ident.is_sync:
            return None
        value = req.header("X-Timestamp")
        if value is None:
            return None
        try:
            return Timestamp(value)
        except ValueError as err:
            raise error(
                400, "X-Timestamp should be a UNIX timestamp float value; was %r"
                % value
            ) from err

    def container_info(self, account: str, container: str) -> ContainerInfo:
        """Return a container's info (404 when missing)."""
        return run(self.service.container_info, account, container)

    # -- account ----------------------------------------------------------------

    def account(self, req: Request, route: Route, ident: Identity) -> Response:
        """Account HEAD and GET (listing of containers)."""
        if req.method not in ("GET", "HEAD"):
            raise error(405, headers=[("Allow", "GET, HEAD")])
        params = listing_params(req)
        fmt = listing_format(req)
        totals = run(self._account_totals, route.account)
        headers = Headers([
            ("X-Account-Container-Count", str(totals[0])),
            ("X-Account-Object-Count", str(totals[1])),
            ("X-Account-Bytes-Used", str(totals[2])),
        ])
        if req.method == "HEAD":
            return Response(204, b"", headers, content_type=_CONTENT_TYPES[fmt])
        entries = run(self.service.list_containers, route.account, **params)
        return render_listing(fmt, "account", route.account, entries, headers)

    def _account_totals(self, account: str) -> tuple[int, int, int]:
        try:
            info = self.service.catalog.account_info(account)
        except exception.AccountNotFound:
            # Accounts exist implicitly (Swift's account_autocreate).
            return 0, 0, 0
        return info.container_count, info.object_count, info.bytes_used

    # -- container --------------------------------------------------------------

    def container(self, req: Request, route: Route, ident: Identity) -> Response:
        """Container PUT, POST, HEAD, GET and DELETE."""
        method = req.method
        a, c = route.account, route.container
        if method in ("GET", "HEAD"):
            info = self.container_info(a, c)
            headers = container_headers(info, ident.owns(a))
            if method == "HEAD":
                fmt = listing_format(req)
                return Response(204, b"", headers, content_type=_CONTENT_TYPES[fmt])
            params = listing_params(req)
            fmt = listing_format(req)
            entries = run(self.service.list_objects, a, c, **params)
            return render_listing(fmt, "container", c, entries, headers)
        if method == "PUT":
            policy = req.header_text("X-Storage-Policy")
            if policy and policy.strip().lower() != POLICY.lower():
                raise error(400, "Invalid X-Storage-Policy '%s'" % policy)
            updates = self._container_updates(req, ident, a)
            created = run(self.service.create_container, a, c, updates)
            return Response(201 if created else 202, b"")
        if method == "POST":
            updates = self._container_updates(req, ident, a)
            run(self.service.update_container_metadata, a, c, updates)
            return Response(204, b"")
        if method == "DELETE":
            run(self.service.delete_container, a, c)
            return Response(204, b"")
        raise error(405, headers=[("Allow", "DELETE, GET, HEAD, POST, PUT")])

    def _container_updates(
        self, req: Request, ident: Identity, account: str
    ) -> dict[str, str]:
        """Metadata changes a container PUT or POST asks for.

        ``X-Container-Meta-*`` set, ``X-Remove-Container-Meta-*`` remove;
        the sync headers (and temp URL keys) only from an owner, silently
        dropped from others as Swift does.
        """
        updates: dict[str, str] = {}
        for name, value in req.headers_with_prefix("X-Container-Meta-"):
            updates[name] = value
        for name, _value in req.headers_with_prefix("X-Remove-Container-Meta-"):
            updates["X-Container-Meta-" + name[len("X-Remove-Container-Meta-"):]] = ""
        if ident.owns(account):
            for key in (SYNC_TO_KEY, SYNC_KEY_KEY):
                text = req.header_text(key)
                if text is not None:
                    updates[key] = text.strip()
                if req.header("X-Remove-" + key[2:]) is not None:
                    updates[key] = ""
            sync_to = updates.get(SYNC_TO_KEY)
            if sync_to:
                realms_mod.parse_sync_to(
                    sync_to, self.realms, self.settings.allowed_sync_hosts
                )
                updates[SYNC_TO_KEY] = sync_to.rstrip("/")
        else:
            for key in OWNER_HEADERS:
                updates.pop(key, None)
        return updates

    # -- object -----------------------------------------------------------------

    def obj(self, req: Request, route: Route, ident: Identity) -> Response:
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
        raise error(405, headers=[("Allow", "DELETE, GET, HEAD, POST, PUT")])

    def _get_object(self, req: Request, route: Route) -> Response:
        a, c, o = route.account, route.container, route.obj
        if req.method == "HEAD":
            info = run(self.service.head_object, a, c, o)
            check_conditions(req, info)
            return _head_response(object_headers(info), info)
        range_header = req.header("Range")
        if range_header:
            return self._get_range(req, route, range_header)
        # One trip to the thread pool: open, and read a small object whole.
        info, chunks, n = run(self._open, a, c, o, SMALL_OBJECT)
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
            check_conditions(req, info)
            wanted = parse_range(value, info.size)
            if wanted is None:
                # Unparsable, several ranges, or the whole object: a 200.
                info2, chunks, n = run(self._open, a, c, o)
                if info2.timestamp != info.timestamp:
                    _close_quietly(chunks)
                    continue
                return Response(
                    200, body_mod.ObjectBody(chunks, _stream_failed(req, info2)),
                    object_headers(info2), length=n,
                    content_type=info2.content_type,
                )
            if wanted is UNSATISFIABLE:
                raise error(416, headers=[("Content-Range", "bytes */%d" % info.size)])
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

    def _object_metadata(self, req: Request, ident: Identity) -> dict[str, str]:
        # Swift keeps an object's headers whatever their bytes.
        meta = dict(req.headers_with_prefix("X-Object-Meta-", strict=False))
        for name in OBJECT_HEADERS:
            value = req.header_text(name, strict=False)
            if value is not None:
                meta[name] = value
        for name in MANIFEST_HEADERS:
            value = req.header_text(name)
            if value is None:
                continue
            if not ident.is_sync:
                raise error(
                    400, "Large object manifests (%s) are not supported" % name
                )
            meta[name] = value
        return meta

    @staticmethod
    def _content_type(req: Request) -> str | None:
        raw = req.environ.get("headers_raw")
        if raw is not None and not any(k.lower() == "content-type" for k, _v in raw):
            # eventlet's server fills in text/plain when the client sent no
            # Content-Type; the object's name should tell instead.
            return None
        value = req.header_text("Content-Type", invalid="Invalid Content-Type")
        detect = (req.header("X-Detect-Content-Type") or "").lower() in _TRUE
        if value is None or detect or not value.strip():
            return None
        # Swift's internal size hint never belongs to the stored type.
        parts = [
            p for p in value.split(";") if not p.strip().startswith("swift_bytes=")
        ]
        return ";".join(parts).strip()

    def _put_object(self, req: Request, route: Route, ident: Identity) -> Response:
        a, c, o = route.account, route.container, route.obj
        if req.query.get("multipart-manifest") == "put":
            raise error(400, "Large object manifests are not supported")
        length = req.content_length
        chunked = req.chunked
        if length is None and not chunked:
            raise error(411)
        if length is not None and length > self.settings.max_object_size:
            raise error(413)
        ts = self._timestamp(req, ident)
        meta = self._object_metadata(req, ident)
        content_type = self._content_type(req)
        etag = req.header("Etag")
        if_none_match = req.header("If-None-Match")
        if if_none_match is not None and if_none_match.strip() != "*":
            raise error(400, "If-None-Match only supports *")
        small = length is not None and length <= SMALL_OBJECT
        if not small:
            self.container_info(a, c)  # 404 before reading any data
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
            ("Etag", _quote_etag(info.etag)),
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
        ts = self._timestamp(req, ident) or Timestamp.now()
        meta = self._object_metadata(req, ident)
        content_type = self._content_type(req)
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
        ts = self._timestamp(req, ident)
        if ts is None:
            if not run(self.service.delete_object, a, c, o):
                # A newer row (a sync peer's future timestamp) stays: the
                # delete changed nothing, and Swift's object server says 409.
                raise error(409)
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


# -- object headers, conditions, ranges ----------------------------------------


def object_headers(info: ObjectInfo) -> Headers:
    """Return the headers of an object's GET and HEAD."""
    headers = Headers([
        ("Etag", _quote_etag(info.etag)),
        ("Last-Modified", last_modified(info.timestamp)),
        ("X-Timestamp", info.timestamp.normal),
        ("X-Backend-Timestamp", info.timestamp.internal),
        ("Accept-Ranges", "bytes"),
    ])
    for name, value in info.metadata.items():
        headers[name] = value
    return headers


def _etag_list(value: str) -> list[str]:
    return [_normalize_etag(v) for v in value.split(",") if v.strip()]


def check_conditions(req: Request, info: ObjectInfo) -> None:
    """Apply ``If-Match``, ``If-None-Match``, ``If-(Un)Modified-Since``.

    :raises HTTPError: 412 (a precondition failed) or 304 (not modified).
    """
    etag = info.etag.lower()
    modified = float(math.ceil(info.timestamp.timestamp))
    if_match = req.header("If-Match")
    if if_match is not None:
        tags = _etag_list(if_match)
        if "*" not in tags and etag not in tags:
            raise error(412, headers=[("Etag", _quote_etag(info.etag))])
    if_none_match = req.header("If-None-Match")
    if if_none_match is not None:
        tags = _etag_list(if_none_match)
        if "*" in tags or etag in tags:
            raise _not_modified(info)
    if if_match is None:
        since = req.header("If-Unmodified-Since")
        moment = parse_http_date(since) if since else None
        if moment is not None and modified > moment:
            raise error(412, headers=[("Etag", _quote_etag(info.etag))])
    if if_none_match is None:
        since = req.header("If-Modified-Since")
        moment = parse_http_date(since) if since else None
        if moment is not None and modified <= moment:
            raise _not_modified(info)


def _not_modified(info: ObjectInfo) -> HTTPError:
    return HTTPError(Response(304, b"", [
        ("Etag", _quote_etag(info.etag)),
        ("Last-Modified", last_modified(info.timestamp)),
        ("X-Timestamp", info.timestamp.normal),
    ]))


#: :func:`parse_range`'s answer for a range that cannot be served (416).
UNSATISFIABLE: Final = "unsatisfiable"


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


# -- container headers ---------------------------------------------------------


def container_headers(info: ContainerInfo, owner: bool) -> Headers:
    """Return a container's HEAD/GET headers; owner-only ones for owners only."""
    headers = Headers([
        ("X-Container-Object-Count", str(info.object_count)),
        ("X-Container-Bytes-Used", str(info.bytes_used)),
        ("X-Timestamp", info.created_at.normal),
        ("X-Put-Timestamp", info.put_timestamp.normal),
        ("Last-Modified", last_modified(info.put_timestamp)),
    ])
    for key, value in sorted(info.metadata.items()):
        if key in OWNER_HEADERS and not owner:
            continue
        headers[key] = value
    return headers


# -- listings ------------------------------------------------------------------

_CONTENT_TYPES: Final = {
    "json": "application/json; charset=utf-8",
    "xml": "application/xml; charset=utf-8",
    "plain": "text/plain; charset=utf-8",
}


def listing_format(req: Request) -> str:
    """Return ``json``, ``xml`` or ``plain``: ``?format=``, else ``Accept``."""
    fmt = req.query.get("format", "").lower()
    if fmt in ("json", "application/json"):
        return "json"
    if fmt in ("xml", "application/xml", "text/xml"):
        return "xml"
    if fmt in ("plain", "text/plain"):
        return "plain"
    accept = (req.header("Accept") or "").lower()
    if "application/json" in accept:
        return "json"
    if "application/xml" in accept or "text/xml" in accept:
        return "xml"
    return "plain"


def listing_params(req: Request) -> dict[str, Any]:
    """Return the listing parameters of the query (Swift's names).

    :raises HTTPError: 412 for a limit over 10,000.
    """
    query = req.query
    params: dict[str, Any] = {}
    limit = query.get("limit", "")
    if limit.isdigit():
        number = int(limit)
        if number > MAX_LIMIT:
            raise error(412, "Maximum limit is %d" % MAX_LIMIT)
        params["limit"] = number
    for name in ("marker", "end_marker", "prefix", "delimiter"):
        value = query.get(name)
        if value:
            params[name] = value
    if query.get("reverse", "").lower() in _TRUE:
        params["reverse"] = True
    return params


def _entry_json(kind: str, entry: Any) -> dict[str, Any]:
    if isinstance(entry, Subdir):
        return {"subdir": entry.name}
    if kind == "container":
        return {
            "name": entry.name,
            "hash": entry.etag,
            "bytes": entry.size,
            "content_type": entry.content_type,
            "last_modified": entry.created_at.isoformat,
        }
    return {
        "name": entry.name,
        "count": entry.object_count,
        "bytes": entry.bytes_used,
        "last_modified": entry.last_modified,
    }


def render_listing(
    fmt: str,
    kind: str,
    name: str,
    entries: Iterable[Any],
    headers: Headers,
) -> Response:
    """Return a listing as Swift renders it (an empty plain listing is a 204)."""
    items = [_entry_json(kind, e) for e in entries]
    if fmt == "json":
        body = json.dumps(items, ensure_ascii=False).encode("utf-8")
    elif fmt == "xml":
        body = _listing_xml(kind, name, items)
    else:
        if not items:
            return Response(204, b"", headers, content_type=_CONTENT_TYPES["plain"])
        body = "".join(
            "%s\n" % item.get("name", item.get("subdir")) for item in items
        ).encode("utf-8")
    return Response(200, body, headers, content_type=_CONTENT_TYPES[fmt])


def _listing_xml(kind: str, name: str, items: list[dict[str, Any]]) -> bytes:
    child = "object" if kind == "container" else "container"
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n<%s name=%s>' % (
        kind, saxutils.quoteattr(name))]
    for item in items:
        if "subdir" in item:
            out.append("<subdir name=%s><name>%s</name></subdir>" % (
                saxutils.quoteattr(item["subdir"]), saxutils.escape(item["subdir"])))
            continue
        fields = "".join(
            "<%s>%s</%s>" % (k, saxutils.escape(str(v)), k) for k, v in item.items()
        )
        out.append("<%s>%s</%s>" % (child, fields, child))
    out.append("</%s>" % kind)
    return "".join(out).encode("utf-8")
