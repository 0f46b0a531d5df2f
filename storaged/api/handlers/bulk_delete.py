"""``?bulk-delete``: many objects and containers deleted by one request.

As Swift's ``bulk`` middleware: a ``POST`` or ``DELETE`` with
``?bulk-delete`` sends, as ``text/plain``, one URL-encoded
``/container/object`` or ``/container`` a line.  Each is deleted as a
``DELETE`` of its own by the same caller would be (the objects first, then
the containers, so that a container emptied by the request can go too).
The answer is ``200 OK`` at once; while the work goes on a space is sent
every :data:`YIELD_FREQUENCY` seconds (the XML declaration first, for
XML) to keep the connection alive, and the outcome comes last, in the
format ``Accept`` asks for (the rendering shared with
``multipart-manifest=delete``)::

    Number Deleted: 2
    Number Not Found: 1
    Response Body:
    Response Status: 400 Bad Request
    Errors:
    /photos, 409 Conflict

A worked example: the body ``/photos/a.jpg\\n/photos\\n/photos/gone.jpg``
deletes ``a.jpg`` (deleted), finds no ``gone.jpg`` (not found), then
deletes ``photos`` if it is now empty (or lists it under ``Errors`` with
``409 Conflict``).  Any failure makes the ``Response Status`` a ``400 Bad
Request`` (``502 Bad Gateway`` if one was a server error).  More than
:data:`MAX_DELETES_PER_REQUEST` names answer ``413`` in the body, a line
longer than twice the longest path ``400 Invalid File Name``, a body
that is not ``text/plain`` ``406``; after :data:`MAX_FAILED_DELETES`
failures the request stops with ``400 Max delete failures exceeded``.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
import io
import logging
import time
from typing import Any
from typing import Final
from urllib import parse as urlparse

from storaged import exception
from storaged.api import body as body_mod
from storaged.api import errors
from storaged.api import routes
from storaged.api.auth import Identity
from storaged.api.handlers import slo_manifest as sm
from storaged.api.protocol import HTTPError
from storaged.api.protocol import Request
from storaged.api.protocol import Response
from storaged.api.protocol import status_line
from storaged.api.protocol import text_to_wsgi
from storaged.catalog import Limits
from storaged.objects.repository import ObjectRepository

LOG = logging.getLogger(__name__)

#: Most names one request may list (Swift's ``max_deletes_per_request``).
MAX_DELETES_PER_REQUEST: Final = 10000
#: Failures after which the request stops (Swift's ``max_failed_deletes``).
MAX_FAILED_DELETES: Final = 1000
#: Seconds between the spaces sent while working (Swift's ``yield_frequency``).
YIELD_FREQUENCY: Final = 10.0

Dispatch = Callable[[Request, routes.Route, Identity], Response]


class Refused(exception.StoragedError):
    """The request as a whole is refused: its status goes in the body."""

    msg_fmt = "%(reason)s"

    @property
    def status(self) -> int:
        return int(self.kwargs.get("status", 400))


def is_bulk_delete(req: Request) -> bool:
    """Tell whether ``req`` asks for a bulk delete (at any path, as Swift)."""
    return "bulk-delete" in req.query and req.method in ("POST", "DELETE")


def max_path_length(limits: Limits) -> int:
    """Return the longest ``/container/object`` a line may name."""
    return limits.max_object_name_length + limits.max_container_name_length + 2


class BulkDelete:
    """Deletes the objects and containers a request lists.

    :param dispatch: answers a request for a container or an object (the
        same handlers a direct request reaches).
    :param service: the object service (for its catalog's name limits).
    :param client_timeout: seconds a client may stay silent.
    :param yield_frequency: seconds between keep-alive spaces.
    """

    def __init__(
        self,
        dispatch: Dispatch,
        service: ObjectRepository,
        client_timeout: float,
        yield_frequency: float = YIELD_FREQUENCY,
    ) -> None:
        self.dispatch = dispatch
        self.service = service
        self.client_timeout = client_timeout
        self.yield_frequency = yield_frequency

    @property
    def limits(self) -> Limits:
        """The catalog's name limits."""
        return self.service.catalog.limits

    def delete(self, req: Request, route: routes.Route, ident: Identity) -> Response:
        """Answer ``?bulk-delete``: 200 now, the outcome in the body."""
        fmt = sm.best_format(req.header("Accept"))
        names: list[str] = []
        refused: Refused | None = None
        try:
            if fmt is None:
                raise Refused(status=406, reason=default_body(406))
            ctype = req.header("Content-Type")
            if ctype and not ctype.startswith("text/plain"):
                raise Refused(status=406, reason=default_body(406))
            names = self._read_names(req)
        except Refused as err:
            refused = err
        response = Response(200, b"", content_type=fmt or "text/plain")
        response.body = self._chunks(req, route.account, ident, fmt, names, refused)
        response.length = 0
        del response.headers["Content-Length"]
        return response

    def _read_names(self, req: Request) -> list[str]:
        """Return the names the body lists (URL-decoded, stripped)."""
        length = req.content_length
        if length is None and not req.chunked:
            raise Refused(status=411, reason=default_body(411))
        longest = max_path_length(self.limits)
        limit = (MAX_DELETES_PER_REQUEST + 1) * (longest * 2 + 2)
        reader = body_mod.BodyReader(req.environ["wsgi.input"], length, limit,
                                     self.client_timeout)
        req.environ["storaged.body"] = reader
        names: list[str] = []
        line = b""
        while True:
            data = reader.read(longest)
            line += data
            *complete, line = line.split(b"\n")
            names.extend(n for n in (_unquote(c) for c in complete) if n)
            if not data and line.strip():
                names.append(_unquote(line))
            if len(names) > MAX_DELETES_PER_REQUEST:
                raise Refused(status=413, reason="Maximum Bulk Deletes: %d per "
                               "request" % MAX_DELETES_PER_REQUEST)
            if len(line) > longest * 2:
                raise Refused(status=400, reason="Invalid File Name")
            if not data:
                return names

    def _chunks(
        self, req: Request, account: str, ident: Identity, fmt: str | None,
        names: list[str], refused: Refused | None,
    ) -> Iterator[bytes]:
        to_yield = b" "
        if fmt and fmt.endswith("/xml"):
            to_yield = b'<?xml version="1.0" encoding="UTF-8"?>\n'
        separator = b""
        last_yield = time.monotonic()
        tally = sm.DeleteTally()
        try:
            if refused is not None:
                raise refused
            for name in _objects_then_containers(names):
                status = self._delete_one(req, account, ident, name)
                if time.monotonic() - last_yield > self.yield_frequency:
                    last_yield = time.monotonic()
                    yield to_yield
                    to_yield, separator = b" ", b"\r\n\r\n"
                tally.count(name, status)
                if len(tally.failed) >= MAX_FAILED_DELETES:
                    raise Refused(status=400,
                                   reason="Max delete failures exceeded")
            tally.finish()
        except Refused as err:
            tally.refuse(err.status, err.message)
        except Exception:
            LOG.exception("Error in bulk delete (request %s)", req.request_id)
            tally.data["Response Status"] = status_line(500)
        yield separator + tally.body(fmt)

    def _delete_one(
        self, req: Request, account: str, ident: Identity, name: str
    ) -> int:
        """Delete one ``/container[/object]`` as a direct DELETE; its status."""
        if "\x00" in name:
            return 412
        stripped = name.strip("/")
        rest = name.lstrip("/") if "/" in stripped else stripped
        return self.subrequest(req, account, ident, "DELETE", rest)

    def subrequest(
        self, req: Request, account: str, ident: Identity, method: str, rest: str,
        body: Any = None, length: int = 0,
    ) -> int:
        """Answer ``method`` of ``/v1/<account>/<rest>`` as a direct request.

        :param body: the request body (a file-like object), ``length`` bytes.
        :returns: the status it was answered with.
        """
        path = "/v1/%s/%s" % (account, rest)
        environ = {
            key: value for key, value in req.environ.items()
            if not key.startswith("HTTP_") and key not in (
                "CONTENT_TYPE", "CONTENT_LENGTH", "storaged.body", "wsgi.input",
                "QUERY_STRING", "PATH_INFO", "REQUEST_METHOD",
            )
        }
        environ.update({
            "REQUEST_METHOD": method, "PATH_INFO": text_to_wsgi(path),
            "QUERY_STRING": "", "CONTENT_LENGTH": str(length),
            "wsgi.input": io.BytesIO() if body is None else body,
        })
        sub = Request(environ, path, req.request_id)
        try:
            route = routes.route(path, self.limits)
            if route.kind not in (routes.CONTAINER, routes.OBJECT):
                return 400
            return self.dispatch(sub, route, ident).status
        except HTTPError as err:
            return err.response.status
        except exception.StoragedError as err:
            return errors.to_http(err).response.status
        except Exception:
            LOG.exception("Bulk %s of %s failed (request %s)", method, path,
                          req.request_id)
            return 500


def _objects_then_containers(names: list[str]) -> Iterator[str]:
    """Yield the objects' names, then the containers' (Swift's order)."""
    for want_object in (True, False):
        for name in names:
            if ("/" in name.strip("/")) == want_object:
                yield name


def _unquote(raw: bytes) -> str:
    """Return a line's name: stripped, URL-decoded (bad UTF-8 kept as NUL)."""
    text = raw.strip()
    if not text:
        return ""
    decoded = urlparse.unquote_to_bytes(text)
    try:
        return decoded.decode("utf-8")
    except UnicodeError:
        # Swift answers 412 for such a name; NUL marks it (never valid).
        return decoded.decode("utf-8", "replace") + "\x00"


def default_body(status: int) -> str:
    """Return swob's default body for ``status``, as text."""
    body = Response(status, None).body
    return body.decode("utf-8") if isinstance(body, bytes) else ""
