"""Requests and responses of the object API, over plain WSGI.

A small layer, not a framework: :class:`Request` reads what a handler
needs from the WSGI environ (headers, query, the decoded path), and a
handler returns a :class:`Response` or raises :class:`HTTPError`.

Error responses look like Swift's: the status line's reason and, unless a
handler gave a body of its own, Swift's HTML body for the status
(``<html><h1>Not Found</h1><p>The resource could not be found.</p></html>``).
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Iterator
import email.utils
import math
import time
from typing import Any
from typing import Final
from urllib import parse as urlparse
import uuid

from storaged import exception
from storaged.catalog import Timestamp
from storaged.common import headerbytes

#: Reason phrase and explanation of each status, as Swift's ``swob`` has them.
STATUSES: Final[dict[int, tuple[str, str]]] = {
    200: ("OK", ""),
    201: ("Created", ""),
    202: ("Accepted", "The request is accepted for processing."),
    204: ("No Content", ""),
    206: ("Partial Content", ""),
    304: ("Not Modified", ""),
    400: ("Bad Request", "The server could not comply with the request since "
          "it is either malformed or otherwise incorrect."),
    401: ("Unauthorized", "This server could not verify that you are "
          "authorized to access the document you requested."),
    403: ("Forbidden", "Access was denied to this resource."),
    404: ("Not Found", "The resource could not be found."),
    405: ("Method Not Allowed", "The method is not allowed for this resource."),
    406: ("Not Acceptable", "The resource is not available in a format "
          "acceptable to your browser."),
    408: ("Request Timeout", "The server has waited too long for the request "
          "to be sent by the client."),
    409: ("Conflict", "There was a conflict when trying to complete your "
          "request."),
    411: ("Length Required", "Content-Length header required."),
    412: ("Precondition Failed", "A precondition for this request was not met."),
    413: ("Request Entity Too Large", "The body of your request was too large "
          "for this server."),
    414: ("Request URI Too Long", "The request URI was too long for this server."),
    416: ("Requested Range Not Satisfiable", "The Range requested is not "
          "available."),
    422: ("Unprocessable Entity", "Unable to process the contained instructions"),
    499: ("Client Disconnect", "The client was disconnected during request."),
    500: ("Internal Error", "The server has either erred or is incapable of "
          "performing the requested operation."),
    501: ("Not Implemented", "The requested method is not implemented by this "
          "server."),
    503: ("Service Unavailable", "The server is currently unavailable. Please "
          "try again at a later time."),
    507: ("Insufficient Storage", "There was not enough space to save the "
          "resource."),
}


#: swob's default ``Content-Type``: Swift's answers that set none (most
#: error texts, ``Bad URL``, ``Maximum limit is 10000`` ...) carry it.
HTML: Final = "text/html; charset=UTF-8"
#: What Swift sends for the error texts it marks ``content_type='text/plain'``
#: (its metadata checks, a bad storage policy, a bad parameter ...): no charset.
PLAIN: Final = "text/plain"


def new_request_id(extra: str | None = None) -> str:
    """Return a request id in Swift's form, with a client's extra part."""
    rid = "tx%s-%010x" % (uuid.uuid4().hex[:21], int(time.time()))
    if extra:
        rid += "-" + urlparse.quote(extra[:32], safe="")
    return rid


def quote_path(environ: dict[str, Any]) -> str:
    """Return a request's path for a log line: percent-encoded, no query."""
    raw = environ.get("PATH_INFO", "").encode("latin-1", "replace")
    return urlparse.quote(raw[:2048], safe="/")


def status_line(status: int) -> str:
    """Return ``"404 Not Found"`` for 404."""
    return "%d %s" % (status, STATUSES.get(status, ("Unknown", ""))[0])


def http_date(timestamp: float) -> str:
    """Return an HTTP date (``Tue, 14 Nov 2023 22:13:21 GMT``)."""
    return email.utils.formatdate(timestamp, usegmt=True)


def last_modified(ts: Timestamp) -> str:
    """Return ``Last-Modified`` for a timestamp: its second rounded up, as Swift."""
    return http_date(math.ceil(ts.timestamp))


def parse_http_date(value: str) -> float | None:
    """Return the seconds of an HTTP date, or None when it is not one."""
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    return parsed.timestamp()


#: The WSGI boundary of header values (see :mod:`storaged.common.headerbytes`):
#: handlers read text with :func:`wsgi_to_text`, the application writes the
#: wire's bytes with :func:`text_to_wsgi`.
wsgi_to_text = headerbytes.native_to_text
text_to_wsgi = headerbytes.text_to_native


class Headers:
    """Response headers: an ordered list, one value per name (case-insensitive)."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in items:
            self[name] = value

    def __setitem__(self, name: str, value: str) -> None:
        self._items[name.lower()] = (name, value)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __delitem__(self, name: str) -> None:
        del self._items[name.lower()]

    def get(self, name: str, default: str | None = None) -> str | None:
        """Return a header's value, or ``default``."""
        item = self._items.get(name.lower())
        return item[1] if item is not None else default

    def pop(self, name: str, default: str | None = None) -> str | None:
        """Remove a header and return its value, or ``default``."""
        item = self._items.pop(name.lower(), None)
        return item[1] if item is not None else default

    def items(self) -> list[tuple[str, str]]:
        """Return ``(name, value)`` pairs in the order they were first set."""
        return list(self._items.values())

    def update(self, other: Iterable[tuple[str, str]]) -> None:
        """Set every pair of ``other``."""
        for name, value in other:
            self[name] = value


class Response:
    """What a handler answers.

    :param status: the HTTP status.
    :param body: bytes, or an iterable of bytes with ``length`` given.
    :param headers: response headers; ``Content-Length`` is set from the
        body (or ``length``) unless given.
    :param length: the number of bytes ``body`` yields when it is an
        iterable (must be exact).
    :param content_type: ``Content-Type`` for a bytes body.
    """

    def __init__(
        self,
        status: int,
        body: bytes | Iterable[bytes] | None = None,
        headers: Iterable[tuple[str, str]] | Headers = (),
        *,
        length: int | None = None,
        content_type: str | None = None,
    ) -> None:
        self.status = status
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.explicit_body = body is not None
        if body is None:
            _title, explanation = STATUSES.get(status, ("", ""))
            body = (
                ("<html><h1>%s</h1><p>%s</p></html>"
                 % (STATUSES[status][0], explanation)).encode("utf-8")
                if explanation
                else b""
            )
            if explanation and content_type is None:
                content_type = HTML
        self.body = body
        if isinstance(body, bytes):
            length = len(body)
        elif length is None:
            raise ValueError("a streamed body needs its length")
        self.length = length
        if content_type is not None:
            self.headers["Content-Type"] = content_type
        elif "Content-Type" not in self.headers:
            self.headers["Content-Type"] = HTML  # swob's default
        if "Content-Length" not in self.headers:
            self.headers["Content-Length"] = str(length)

    def chunks(self) -> Iterable[bytes]:
        """Return the body as an iterable of bytes."""
        if isinstance(self.body, bytes):
            return [self.body] if self.body else []
        return self.body


class HTTPError(exception.StoragedError):
    """Raised by a handler: answer ``response`` (an error, or a 2xx/3xx shortcut).

    A :class:`~storaged.exception.StoragedError` like every storaged error,
    but already an answer: whoever maps storaged errors to statuses
    (:func:`storaged.api.errors.to_http`) catches it first and sends it as
    it is.
    """

    msg_fmt = "%(status)s"

    def __init__(self, response: Response, log_info: str = "") -> None:
        super().__init__(status=status_line(response.status))
        self.response = response
        #: a short tag for the access log (``cs:invalid-sig``)
        self.log_info = log_info


def error(
    status: int,
    body: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    log_info: str = "",
    content_type: str = PLAIN,
) -> HTTPError:
    """Build an :class:`HTTPError`.

    A text ``body`` is sent with ``content_type``: :data:`PLAIN` where
    Swift gives ``content_type='text/plain'``, :data:`HTML` where it keeps
    swob's default.  Without a body, Swift's HTML body for the status.
    """
    if body is None:
        return HTTPError(Response(status, None, headers), log_info)
    return HTTPError(
        Response(status, body.encode("utf-8"), headers, content_type=content_type),
        log_info,
    )


class Request:
    """A request's view for the handlers.

    :ivar method: ``GET``, ``PUT`` ...
    :ivar path: the decoded path (text; the app checked it is UTF-8).
    :ivar raw_path: the decoded path as bytes (for the canonical encoding).
    :ivar request_id: ``tx...`` (``X-Trans-Id``).
    """

    def __init__(self, environ: dict[str, Any], path: str, request_id: str) -> None:
        self.environ = environ
        self.method: str = environ["REQUEST_METHOD"].upper()
        self.path = path
        self.raw_path = path.encode("utf-8")
        self.request_id = request_id
        self._query: dict[str, str] | None = None

    def header(self, name: str, default: str | None = None) -> str | None:
        """Return a request header (WSGI text), or ``default``."""
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        value = self.environ.get(key)
        return default if value is None else value

    def header_text(
        self, name: str, strict: bool = True, invalid: str | None = None
    ) -> str | None:
        """Return a request header decoded as UTF-8 (as Swift does), or None.

        :param strict: refuse a value that is not UTF-8; else keep its
            bytes (see :func:`wsgi_to_text`).
        :param invalid: the 400's body for a value that is not UTF-8.
        :raises HTTPError: 400 when ``strict`` and the bytes are not UTF-8.
        """
        value = self.header(name)
        if value is None:
            return None
        try:
            return wsgi_to_text(value, strict=strict)
        except UnicodeError as err:
            raise error(
                400, invalid or "Invalid UTF-8 in header %s" % name
            ) from err

    def headers_with_prefix(
        self, prefix: str, strict: bool = True
    ) -> Iterator[tuple[str, str]]:
        """Yield ``(Header-Name, value)`` of the headers starting with ``prefix``.

        Names are given in canonical case (``X-Object-Meta-Color``); values
        are decoded as UTF-8.  Swift keeps an object's metadata whatever its
        bytes, and refuses account and container metadata that is not
        UTF-8: ``strict`` chooses.

        :raises HTTPError: 400 ``Metadata must be valid UTF-8`` for a name
            (always) or a value (when ``strict``) that is not UTF-8.
        """
        key_prefix = "HTTP_" + prefix.upper().replace("-", "_")
        for key, value in self.environ.items():
            if key.startswith(key_prefix):
                try:
                    name = wsgi_to_text(key[5:].replace("_", "-")).title()
                    text = wsgi_to_text(value, strict=strict)
                except UnicodeError as err:
                    raise error(400, "Metadata must be valid UTF-8") from err
                yield name, text

    @property
    def query(self) -> dict[str, str]:
        """The query parameters, decoded as UTF-8.

        A parameter given twice has its last value, as in swob's
        ``Request.params`` (a dict made of every pair).

        :raises HTTPError: 400 when a parameter is not valid UTF-8.
        """
        if self._query is None:
            result: dict[str, str] = {}
            raw = self.environ.get("QUERY_STRING", "")
            for name, value in urlparse.parse_qsl(
                raw, keep_blank_values=True, encoding="latin-1"
            ):
                try:
                    result[name] = value.encode("latin-1").decode("utf-8")
                except UnicodeError as err:
                    raise error(
                        400, '"%s" parameter not valid UTF-8' % name
                    ) from err
            self._query = result
        return self._query

    @property
    def content_length(self) -> int | None:
        """The declared body size; None when absent.

        :raises HTTPError: 400 for a malformed or negative value.
        """
        value = self.environ.get("CONTENT_LENGTH")
        if value in (None, ""):
            return None
        try:
            length = int(value)
        except ValueError as err:
            raise error(400, "Invalid Content-Length", content_type=HTML) from err
        if length < 0:
            raise error(400, "Invalid Content-Length", content_type=HTML)
        return length

    @property
    def chunked(self) -> bool:
        """True when the body comes with ``Transfer-Encoding: chunked``."""
        return "chunked" in (self.header("Transfer-Encoding") or "").lower()

    @property
    def remote_addr(self) -> str:
        """The client's address."""
        return str(self.environ.get("REMOTE_ADDR", "-"))
