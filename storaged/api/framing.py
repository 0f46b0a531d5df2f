"""The request head as Swift's server reads it, with a deadline, on both backends.

Both servers (``eventlet.wsgi`` and the :mod:`wsgiref`-based one) build on
``http.server``'s request handler, whose parser is laxer than Swift's and
than what a proxy in front may assume.  :class:`StrictRequestMixin` replaces
it with the parser of Swift's ``SwiftHttpProtocol``, re-implemented:

* the request line is split on spaces only, and its path kept as sent: no
  folding of ``//v1/AUTH_a`` into ``/v1/AUTH_a`` (cpython does it since
  3.11; Swift's router answers 404 to such a path); an absolute URL
  (``http://host/v1/...``) is served by its path;
* at most ``MAX_HEADER_COUNT * 1.6`` header lines, the terminating empty
  line included (Swift raises ``http.client._MAXHEADERS`` so): **431** ``Too
  many headers`` beyond, in Swift's HTML error form; a header line of
  ``[api] max_url_length`` bytes or more is **400** ``Header Line Too
  Long``, more than 64 KiB of header lines **400** ``Headers Too Large``
  (eventlet's answers, which Swift's clients get);
* the body's framing is unambiguous (:func:`check_framing`):
  ``Content-Length`` is digits only and, if repeated, the same each time
  (**400** ``Invalid Content-Length``); ``Transfer-Encoding`` is
  ``chunked`` or nothing: a single other coding is **400** ``Invalid
  Transfer-Encoding header value``, a list **501** ``Unsupported
  Transfer-Coding header value specified in Transfer-Encoding header``
  (Swift's ``swob.is_chunked`` and ``check_object_creation``); both
  headers at once is **400**.  Every refusal closes the connection.

And the head must arrive in time.  A per-read socket timeout alone lets a
client that sends one header line every few seconds hold a connection (and,
with ``max_clients`` of them, the whole server) forever.  So:

* a connection may stay idle, waiting for a request, ``client_timeout``
  seconds (the socket timeout);
* from the first byte of a request, its whole head (request line and
  headers) must arrive within ``client_timeout`` seconds
  (:class:`DeadlineReader`); then the body is read with the per-read
  timeout again.

A connection is therefore held at most ``2 * client_timeout`` before its
request reaches the application.

:class:`ChunkedReader` decodes ``Transfer-Encoding: chunked`` strictly: a
size line of hex digits, exactly that many bytes, then CRLF; anything else
(``3\\r\\nabcdef\\r\\n``: more data than declared) breaks the connection
instead of being skipped.
"""

from __future__ import annotations

import email.parser
import html
import http.client
import http.server
import io
import logging
import re
import socket
import time
from typing import Any

from storaged import exception
from storaged.api.protocol import new_request_id

LOG = logging.getLogger(__name__)

#: Longest header line ``http.client`` reads.
MAX_LINE = 65536
#: Most bytes of header lines in one request (eventlet's
#: ``MAX_TOTAL_HEADER_SIZE``, which Swift keeps).
MAX_HEAD = 65536
#: Headers Swift's proxy counts beyond its metadata items (``MAX_HEADER_COUNT
#: = MAX_META_COUNT + 36 + extra_header_count``).
BASE_HEADER_COUNT = 36
#: Swift raises ``_MAXHEADERS`` to ``MAX_HEADER_COUNT`` times this.
HEADER_COUNT_FACTOR = 1.6

_RESPONSES = http.server.BaseHTTPRequestHandler.responses
_DIGITS = re.compile(r"[0-9]+\Z")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}\Z")

TE_INVALID = "Invalid Transfer-Encoding header value"
TE_UNSUPPORTED = ("Unsupported Transfer-Coding header value specified in "
                  "Transfer-Encoding header")
CL_INVALID = "Invalid Content-Length"
CL_AND_TE = "Content-Length and Transfer-Encoding are not allowed together"


def header_limit(max_meta_count: int) -> float:
    """Return Swift's header limit for ``max_meta_count`` metadata items."""
    return (max_meta_count + BASE_HEADER_COUNT) * HEADER_COUNT_FACTOR


def check_framing(headers: Any) -> tuple[int, str] | None:
    """Return ``(status, body)`` refusing an ambiguous body framing, or None.

    :param headers: the request's :class:`http.client.HTTPMessage`.
    """
    lengths = headers.get_all("Content-Length") or []
    values = {value.strip() for value in lengths}
    if values and (len(values) > 1 or not all(_DIGITS.match(v) for v in values)):
        return 400, CL_INVALID
    codings_headers = headers.get_all("Transfer-Encoding") or []
    if codings_headers:
        codings = [c.strip() for value in codings_headers for c in value.split(",")]
        if len(codings) > 1:
            return 501, TE_UNSUPPORTED
        if codings[0].lower() != "chunked":
            return 400, TE_INVALID
        if values:
            return 400, CL_AND_TE
    return None


class HeadersTooLarge(exception.StoragedError, http.client.HTTPException):
    """The request's header lines add up to more than :data:`MAX_HEAD`.

    Still an :class:`http.client.HTTPException`, as the other errors of
    :func:`read_headers` are.
    """

    msg_fmt = "headers of more than %(limit)d bytes"


def read_headers(
    rfile: Any, limit: float, max_line: int = MAX_LINE
) -> http.client.HTTPMessage:
    """Read header lines up to the empty line, as ``http.client`` does.

    Lines of ``max_line`` bytes or more, and heads over :data:`MAX_HEAD`
    bytes, are refused as eventlet's server (and so Swift's) refuses them.

    :param limit: most lines (the empty one included).
    :raises http.client.LineTooLong: a line of ``max_line`` bytes or more.
    :raises HeadersTooLarge: more than :data:`MAX_HEAD` bytes in all.
    :raises http.client.HTTPException: more than ``limit`` lines.
    """
    lines = []
    total = 0
    while True:
        line = rfile.readline(max_line + 1)
        if len(line) >= max_line:
            raise http.client.LineTooLong("header line")
        total += len(line)
        if total > MAX_HEAD:
            raise HeadersTooLarge(limit=MAX_HEAD)
        lines.append(line)
        if len(lines) > limit:
            raise http.client.HTTPException("got more than %d headers" % limit)
        if line in (b"\r\n", b"\n", b""):
            break
    text = b"".join(lines).decode("iso-8859-1")
    message: http.client.HTTPMessage = email.parser.Parser(
        _class=http.client.HTTPMessage
    ).parsestr(text)
    return message


class DeadlineReader(io.RawIOBase):
    """A socket's reading side whose reads end at a deadline once one is set.

    :param raw: the socket's raw reader (``socket.SocketIO``).
    :param sock: the socket (its timeout is shortened to the deadline).
    :param timeout: the per-read timeout (``client_timeout``).
    """

    def __init__(self, raw: Any, sock: Any, timeout: float) -> None:
        super().__init__()
        self._raw = raw
        self._sock = sock
        self.timeout = timeout
        self.deadline: float | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int | None:
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("request head not received within %ss"
                                   % self.timeout)
            self._sock.settimeout(min(left, self.timeout))
        result: int | None = self._raw.readinto(buf)
        return result

    def start(self) -> None:
        """Start the clock: the head must be read within ``timeout``."""
        self.deadline = time.monotonic() + self.timeout

    def stop(self) -> None:
        """The head is read: back to the per-read timeout."""
        if self.deadline is not None:
            self.deadline = None
            self._sock.settimeout(self.timeout)

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


class StrictRequestMixin:
    """Swift's request parser and the head deadline, for an ``http.server`` handler.

    Mixed into both backends' handlers, before the ``BaseHTTPRequestHandler``
    subclass; the handler calls :meth:`use_deadline` in ``setup`` and
    :meth:`wait_for_request` before reading a request line.
    """

    default_request_version = "HTTP/1.0"
    #: Most header lines (see :func:`header_limit`).
    max_header_count: float = header_limit(90)
    #: longest header line, in bytes (``[api] max_url_length``, as Swift
    #: gives eventlet its ``max_header_size``)
    max_header_line: int = 8192
    head_clock: DeadlineReader | None = None

    # Provided by BaseHTTPRequestHandler.
    rfile: Any
    wfile: Any
    raw_requestline: bytes
    requestline: str
    request_version: str
    protocol_version: str
    path: str
    headers: Any
    close_connection: bool
    client_address: Any

    def use_deadline(self, sock: socket.socket, timeout: float) -> None:
        """Read ``sock`` through a :class:`DeadlineReader` from now on."""
        rfile = self.rfile
        raw = rfile.detach() if isinstance(rfile, io.BufferedReader) else rfile
        self.head_clock = DeadlineReader(raw, sock, timeout)
        self.rfile = io.BufferedReader(self.head_clock)

    def wait_for_request(self) -> bool:
        """Wait (idle) for a request's first byte, then start the head clock.

        :returns: False when the client closed the connection.
        :raises TimeoutError: idle for ``client_timeout``.
        """
        if self.rfile.closed:
            return False
        if not self.rfile.peek(1):
            return False
        if self.head_clock is not None:
            self.head_clock.start()
        return True

    def parse_request(self) -> bool:
        """Parse the request line and headers as Swift does.

        :returns: True to go on; False once an error was answered.
        """
        try:
            return self._parse_request()
        finally:
            if self.head_clock is not None:
                self.head_clock.stop()

    def _parse_request(self) -> bool:
        self.command = ""
        self.request_version = version = self.default_request_version
        self.close_connection = True
        requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        self.requestline = requestline
        # Spaces only: cpython's split() would also cut at other whitespace.
        words = requestline.split(" ")
        if len(words) >= 3:
            version = words[-1]
            try:
                if not version.startswith("HTTP/"):
                    raise ValueError
                numbers = version.split("/", 1)[1].split(".")
                if len(numbers) != 2:
                    raise ValueError
                number = int(numbers[0]), int(numbers[1])
            except (ValueError, IndexError):
                self.send_error(400, "Bad request version (%r)" % version)
                return False
            if number >= (1, 1) and self.protocol_version >= "HTTP/1.1":
                self.close_connection = False
            if number >= (2, 0):
                self.send_error(505, "Invalid HTTP version (%s)"
                                % version.split("/", 1)[1])
                return False
            self.request_version = version
        if not 2 <= len(words) <= 3:
            self.send_error(400, "Bad request syntax (%r)" % requestline)
            return False
        command, path = words[:2]
        if len(words) == 2:
            self.close_connection = True
            if command != "GET":
                self.send_error(400, "Bad HTTP/0.9 request type (%r)" % command)
                return False
        if path.startswith(("http://", "https://")):
            _host, sep, rest = path.partition("//")[2].partition("/")
            if sep:
                path = "/" + rest
        # The path as sent: "//v1/a" stays what it is.
        self.command, self.path = command, path
        try:
            self.headers = read_headers(self.rfile, self.max_header_count,
                                        self.max_header_line)
        except http.client.LineTooLong:
            # eventlet's answers, which Swift's clients get.
            self.send_error(400, "Header Line Too Long")
            return False
        except HeadersTooLarge:
            self.send_error(400, "Headers Too Large")
            return False
        except http.client.HTTPException as err:
            self.send_error(431, "Too many headers", str(err))
            return False
        refusal = check_framing(self.headers)
        if refusal is not None:
            self.close_connection = True
            self.send_plain(*refusal)
            return False
        connection = (self.headers.get("Connection") or "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive" and self.protocol_version >= "HTTP/1.1":
            self.close_connection = False
        expect = (self.headers.get("Expect") or "").lower()
        if (
            expect == "100-continue"
            and self.protocol_version >= "HTTP/1.1"
            and self.request_version >= "HTTP/1.1"
        ):
            if not self.handle_expect_100():  # type: ignore[attr-defined]
                return False
        return True

    def _send_head(self, status: int, reason: str, headers: list[tuple[str, str]],
                   body: bytes) -> None:
        rid = new_request_id()
        lines = ["HTTP/1.1 %d %s" % (status, reason)]
        lines += ["%s: %s" % h for h in headers]
        lines += [
            "Content-Length: %d" % len(body),
            "X-Trans-Id: %s" % rid,
            "X-Openstack-Request-Id: %s" % rid,
            "Date: %s" % self.date_time_string(),  # type: ignore[attr-defined]
            "Connection: close",
        ]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        # The request line without its query string, which may carry a
        # signature (temp URLs), as the access log leaves it out.
        line = self.requestline[:200]
        LOG.info("%s: %d %s (%s, request %s)", self.client_address[0], status,
                 body[:200].decode("utf-8", "replace") if body else reason,
                 line.split("?", 1)[0] if "?" in line else line, rid)
        self.close_connection = True
        self.wfile.write(head if self.command == "HEAD" else head + body)
        self.wfile.flush()

    def send_plain(self, status: int, text: str) -> None:
        """Refuse with a plain-text body, as a Swift middleware or swob would."""
        reason = _RESPONSES.get(status, ("Error", ""))[0]
        self._send_head(status, reason,
                        [("Content-Type", "text/plain; charset=utf-8")],
                        text.encode("utf-8"))

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """Answer an error found by the parser, in Swift's (and cpython's) form."""
        short, long = _RESPONSES.get(code, ("???", "???"))
        message = short if message is None else message
        explain = long if explain is None else explain
        body = b""
        if code >= 200 and code not in (204, 205, 304):
            body = (DEFAULT_ERROR_MESSAGE % {
                "code": code,
                "message": html.escape(message, quote=False),
                "explain": html.escape(explain, quote=False),
            }).encode("utf-8", "replace")
        self._send_head(code, message,
                        [("Content-Type", "text/html;charset=utf-8")], body)


#: cpython's ``http.server.DEFAULT_ERROR_MESSAGE``, which Swift sends.
DEFAULT_ERROR_MESSAGE = """\
<!DOCTYPE HTML>
<html lang="en">
    <head>
        <meta charset="utf-8">
        <title>Error response</title>
    </head>
    <body>
        <h1>Error response</h1>
        <p>Error code: %(code)d</p>
        <p>Message: %(message)s.</p>
        <p>Error code explanation: %(code)s - %(explain)s.</p>
    </body>
</html>
"""


class ChunkedReader:
    """A ``Transfer-Encoding: chunked`` request body, decoded strictly.

    :param rfile: the connection's buffered reader.
    :param max_line: longest chunk size or trailer line.
    :raises ConnectionError: on any framing error, and on every read after
        one (the connection cannot go on).
    """

    def __init__(self, rfile: Any, max_line: int) -> None:
        self._rfile = rfile
        self._max_line = max_line
        self._left = 0
        self._broken = ""
        self.done = False

    def _fail(self, why: str) -> ConnectionError:
        self._broken = why
        return ConnectionError("chunked body: " + why)

    def _next_chunk(self) -> None:
        line = self._rfile.readline(self._max_line + 1)
        if not line.endswith(b"\n"):
            raise self._fail("truncated chunk size line")
        size_text = line.split(b";", 1)[0].strip(b" \t\r\n")
        if not _HEX.match(size_text):
            raise self._fail("bad chunk size %r" % size_text[:20])
        self._left = int(size_text, 16)
        if self._left == 0:
            # Trailers up to the empty line.
            while True:
                trailer = self._rfile.readline(self._max_line + 1)
                if not trailer.endswith(b"\n"):
                    raise self._fail("truncated trailers")
                if trailer in (b"\r\n", b"\n"):
                    break
            self.done = True

    def read(self, size: int | None = -1) -> bytes:
        """Return up to ``size`` bytes of the current chunk; ``b""`` at the end."""
        if self._broken:
            raise ConnectionError("chunked body: " + self._broken)
        if self.done:
            return b""
        if self._left == 0:
            self._next_chunk()
            if self.done:
                return b""
        want = self._left if size is None or size < 0 else min(size, self._left)
        data = self._rfile.read(want)
        if len(data) < want:
            raise self._fail("connection closed in a chunk")
        self._left -= len(data)
        if self._left == 0 and self._rfile.readline(3) not in (b"\r\n", b"\n"):
            # More data than the size line said (or a broken CRLF): the
            # rest cannot be framed the way the sender meant.
            raise self._fail("chunk longer than its size line")
        return bytes(data)
