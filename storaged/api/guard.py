"""What went on the wire, and failures that would otherwise go unseen.

A WSGI server that meets an exception while it sends a response does what
it can (a bare 500 if no header was sent yet, else it cuts the connection)
and, in ``eventlet.wsgi`` without ``log_output``, says nothing.  The
application, meanwhile, would log the status it *meant* to send.  Both
servers of ``storaged-api`` therefore:

* wrap the application in a :class:`ResponseGuard`: an exception from the
  application or its body is logged with its traceback and the request id,
  and counted (``ResponseGuard.failures``, repeated in each such log line);
  response headers that cannot be encoded (PEP 3333: latin-1, no CR/LF)
  become a 500 with Swift's body instead of an empty reply;
* record what was written to the socket in a :class:`SentResponse` found in
  ``environ["storaged.sent"]``: the status line that really went out (the
  server's own 500 included), the body bytes, whether a write failed.  The
  access log line waits for the server to be done
  (:meth:`SentResponse.when_finished`) and reports that.

For example, a body iterator that raises after 200,000 of 400,000 bytes
under eventlet (which writes in 64 KiB pieces) gives::

    ERROR storaged.api.guard GET /v1/a/c/o: failed response (request tx...,
          the body raised) (1 failed response(s) in this process)
    Traceback (most recent call last): ...
    INFO storaged.api.access 127.0.0.1 GET /v1/a/c/o 200 196608 0 ... error,incomplete
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
import logging
import sys
import threading
from typing import Any

from storaged.api.protocol import Response
from storaged.api.protocol import quote_path
from storaged.api.protocol import status_line

LOG = logging.getLogger(__name__)

#: The environ key of the :class:`SentResponse` of a request.
SENT_KEY = "storaged.sent"
#: The environ key of the server's "close this connection after the
#: response" callable.  ``Connection`` is a hop-by-hop header, which a WSGI
#: application may not send (PEP 3333; wsgiref asserts on it, eventlet sends
#: it and then reads the rest of the body all the same): the application's
#: ``Connection: close`` is taken out here and handed to the server this way.
CLOSE_KEY = "storaged.close_connection"


class SentResponse:
    """What the server wrote for one response (interim ``1xx`` ones aside)."""

    def __init__(self) -> None:
        #: the status of the response line written, None if none was
        self.status: int | None = None
        #: body bytes handed to the socket
        self.body_bytes = 0
        #: a write to the client failed
        self.write_failed = False
        #: a server-side failure happened (logged and counted)
        self.error = False
        self._head = b""
        self._in_body = False
        self._callbacks: list[Callable[[], None]] = []
        self.finished = False

    def wrote(self, data: bytes) -> None:
        """Account for ``data`` written to the client."""
        if self._in_body:
            self.body_bytes += len(data)
            return
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            return
        head, rest = self._head[:end], self._head[end + 4:]
        self._head = b""
        try:
            code = int(head[9:12])
        except ValueError:
            code = 0
        if 100 <= code < 200:
            # An interim response (100 Continue): the real one follows.
            if rest:
                self.wrote(rest)
            return
        self.status = code
        self._in_body = True
        self.body_bytes += len(rest)

    def when_finished(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the server is done with the response."""
        if self.finished:
            callback()
        else:
            self._callbacks.append(callback)

    def finish(self) -> None:
        """The server is done: run the callbacks (once)."""
        if self.finished:
            return
        self.finished = True
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                LOG.exception("Error after a response")


class WireTap:
    """A connection's writing side that tells the current :class:`SentResponse`."""

    def __init__(self, wfile: Any) -> None:
        self._wfile = wfile
        self.record: SentResponse | None = None

    def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        try:
            return method(*args)
        except OSError:
            if self.record is not None:
                self.record.write_failed = True
            raise

    def write(self, data: bytes) -> Any:
        result = self._call(self._wfile.write, data)
        if self.record is not None:
            self.record.wrote(bytes(data))
        return result

    def writelines(self, lines: Iterable[bytes]) -> None:
        lines = list(lines)
        self._call(self._wfile.writelines, lines)
        if self.record is not None:
            for line in lines:
                self.record.wrote(bytes(line))

    def flush(self) -> None:
        self._call(self._wfile.flush)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wfile, name)


def check_headers(status: str, headers: list[tuple[str, str]]) -> None:
    """Raise unless ``status`` and ``headers`` can go on the wire (PEP 3333).

    :raises UnicodeEncodeError: a character outside latin-1.
    :raises ValueError: a CR, LF or NUL (it would split or end the head).
    :raises TypeError: a name or value that is not a string.
    """
    for text in [status] + [part for header in headers for part in header]:
        if not isinstance(text, str):
            raise TypeError("response header %r is not a string" % (text,))
        text.encode("latin-1")
        if "\r" in text or "\n" in text or "\0" in text:
            raise ValueError("response header %r has a line break" % text[:200])


class _Progress:
    """Per request: the request id, and whether the response was replaced."""

    def __init__(self) -> None:
        self.request_id = "-"
        self.replaced: Response | None = None


class ResponseGuard:
    """Wrap a WSGI application: log and count its failures; keep headers sendable.

    :param app: the application.
    """

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        #: failed responses since the process started
        self.failures = 0
        self._lock = threading.Lock()

    def failed(self, environ: dict[str, Any], progress: _Progress, what: str) -> None:
        """Log the exception being handled, with its traceback, and count it."""
        with self._lock:
            self.failures += 1
            count = self.failures
        sent = environ.get(SENT_KEY)
        if sent is not None:
            sent.error = True
        LOG.error("%s %s: failed response (request %s, %s) (%d failed "
                  "response(s) in this process)",
                  environ.get("REQUEST_METHOD", "-"), quote_path(environ),
                  progress.request_id, what, count, exc_info=sys.exc_info())

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        progress = _Progress()

        def start(status: str, headers: Any, exc_info: Any = None) -> Any:
            headers = list(headers)
            for name, value in headers:
                if isinstance(name, str) and name.lower() == "x-trans-id":
                    progress.request_id = str(value)
            if any(isinstance(name, str) and name.lower() == "connection"
                   for name, _value in headers):
                headers = [(n, v) for n, v in headers if n.lower() != "connection"]
                close = environ.get(CLOSE_KEY)
                if close is not None:
                    close()
            if isinstance(status, str) and status.startswith("500"):
                # The application answered an error of its own with a 500
                # (and logged it, traceback included): a failure all the same.
                with self._lock:
                    self.failures += 1
            try:
                check_headers(status, headers)
            except (UnicodeError, ValueError, TypeError):
                self.failed(environ, progress, "its headers cannot be sent")
                replaced = Response(500)
                try:
                    check_headers("", [("X-Trans-Id", progress.request_id)])
                    replaced.headers["X-Trans-Id"] = progress.request_id
                    replaced.headers["X-Openstack-Request-Id"] = progress.request_id
                except (UnicodeError, ValueError, TypeError):
                    pass
                progress.replaced = replaced
                return start_response(status_line(500), replaced.headers.items())
            return start_response(status, headers, exc_info)

        try:
            result = self.app(environ, start)
        except Exception:
            self.failed(environ, progress, "the application raised")
            raise
        return _GuardedBody(result, self, environ, progress)


class _GuardedBody:
    """The application's body, seen through a :class:`ResponseGuard`."""

    def __init__(self, inner: Iterable[bytes], guard: ResponseGuard,
                 environ: dict[str, Any], progress: _Progress) -> None:
        self._inner = inner
        self._guard = guard
        self._environ = environ
        self._progress = progress
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        replaced = self._progress.replaced
        if replaced is not None:
            if self._environ.get("REQUEST_METHOD") != "HEAD":
                yield from replaced.chunks()
            return
        try:
            yield from self._inner
        except Exception:
            self._guard.failed(self._environ, self._progress, "the body raised")
            # Some servers (wsgiref) replace the body by their error page
            # and never close it: close it now.
            self.close()
            raise

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()
