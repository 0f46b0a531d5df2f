"""The HTTP server of one ``storaged-api`` worker.

Under the **eventlet** backend (the default) the application is served by
``eventlet.wsgi``: one green thread per connection, HTTP/1.1 keep-alive,
chunked request bodies decoded by the server.  Under the **threading**
backend it is served by the standard library (:mod:`wsgiref` handlers on a
:class:`socketserver.ThreadingMixIn` server): one native thread per
connection, keep-alive when the response has a ``Content-Length`` (every
response of the API has), chunked request bodies and ``Expect:
100-continue`` handled here.

:func:`serve` runs until its :class:`StopFlag` says stop; then it stops
accepting, closes idle kept-alive connections and lets the requests in
progress finish for at most ``[api] shutdown_timeout`` seconds.  How the
workers are started, stopped and reloaded is :mod:`storaged.api.daemon`'s.

Timeline of a stop with one request in flight::

    t=0    stop: listening socket closed; idle connections closed
    t=0.2  the upload in progress goes on ...
    t=3.1  ... its response is sent, its connection closed
    t=3.1  serve() returns (or at t=shutdown_timeout, whatever is still running)
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
import logging
import socket
import socketserver
import threading
import time
from typing import Any
from wsgiref import simple_server

from oslo_config import cfg

from storaged import concurrency
from storaged.api import body
from storaged.api import framing
from storaged.api import greenhttp
from storaged.api import guard

LOG = logging.getLogger(__name__)

WSGIApp = Callable[..., Any]
#: Pending connections the kernel queues (Swift's ``backlog``).
BACKLOG = 4096
#: Seconds between two looks at the stop flag.
_TICK = 0.1


def bind_socket(host: str, port: int) -> socket.socket:
    """Return a listening TCP socket on ``host:port`` (IPv4 or IPv6).

    Under eventlet the socket is green (the process is monkey-patched).
    """
    infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM)
    family, _type, _proto, _name, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


class StopFlag:
    """Set by the service (stop, reload), looked at by the serving loop."""

    def __init__(self) -> None:
        self.stopping = False
        self.reload = False


class _EventletLog:
    """Where eventlet's server messages go: its chatter at debug level."""

    def info(self, msg: str, *args: Any) -> None:
        LOG.debug(msg, *args)

    def debug(self, msg: str, *args: Any) -> None:
        LOG.debug(msg, *args)

    def warning(self, msg: str, *args: Any) -> None:
        LOG.warning(msg, *args)

    def error(self, msg: str, *args: Any) -> None:
        LOG.error(msg, *args)

    def write(self, msg: str) -> None:
        LOG.debug("%s", msg.rstrip())


class _ConnectionGauge:
    """The ``api_open_connections`` gauge, set from the serving loop.

    Set when the count changed only (the loop looks every tick; a statsd
    feed would otherwise get ten packets a second).
    """

    def __init__(self, app: WSGIApp) -> None:
        self.metrics = getattr(app, "metrics", None)
        self.last = -1

    def update(self, count: int) -> None:
        if self.metrics is None or count == self.last:
            return
        self.last = count
        self.metrics.set("api_open_connections", count)


# -- eventlet ------------------------------------------------------------------


def _serve_eventlet(
    sock: socket.socket,
    app: WSGIApp,
    conf: cfg.ConfigOpts,
    flag: StopFlag,
    on_ready: Callable[[], None],
    on_reload: Callable[[], None],
) -> None:
    group = conf.api
    server = concurrency.green_wsgi_server(
        sock,
        guard.ResponseGuard(app),
        protocol=greenhttp.protocol(
            framing.header_limit(conf.catalog.max_meta_count), group.max_url_length
        ),
        # A full pool blocks the accept loop: further connections wait in the
        # listen queue until a slot is freed, at the latest when the head
        # deadline of a slow client runs out.
        max_clients=group.max_clients,
        max_line=group.max_url_length,
        socket_timeout=group.client_timeout,
        log=_EventletLog(),
        keepalive=True,
        log_output=False,
        debug=False,
        minimum_chunk_size=64 * 1024,
    )
    on_ready()
    gauge = _ConnectionGauge(app)
    while not flag.stopping and not server.dead:
        concurrency.sleep(_TICK)
        gauge.update(server.open_connections())
        if flag.reload:
            flag.reload = False
            on_reload()
    LOG.info("Stopping: no new connections; %d open connection(s) get %.0fs "
             "to finish their request", server.open_connections(),
             group.shutdown_timeout)
    # Before closing the socket, which would not wake the accept loop: idle
    # kept-alive connections close now, busy ones once their response is sent.
    server.kill()
    sock.close()
    deadline = time.monotonic() + group.shutdown_timeout
    while server.open_connections() and time.monotonic() < deadline:
        concurrency.sleep(_TICK)
    left = server.open_connections()
    if left:
        LOG.warning("Stopped with %d request(s) still in progress after %.0fs",
                    left, group.shutdown_timeout)
        body.abort_uploads()


# -- threading -----------------------------------------------------------------



class _LengthInput:
    """A request body of ``Content-Length`` bytes (or none)."""

    def __init__(self, rfile: Any, length: int) -> None:
        self._rfile = rfile
        self._left = length

    @property
    def done(self) -> bool:
        return self._left <= 0

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        want = self._left if size is None or size < 0 else min(size, self._left)
        data = self._rfile.read(want)
        self._left -= len(data)
        if not data:
            self._left = 0
        return bytes(data)


class _Input:
    """``wsgi.input``: sends ``100 Continue`` before the first read if asked."""

    def __init__(self, body: framing.ChunkedReader | _LengthInput, wfile: Any,
                 expect_continue: bool) -> None:
        self._body = body
        self._wfile = wfile
        self._continue = expect_continue

    @property
    def done(self) -> bool:
        return self._body.done

    def read(self, size: int = -1) -> bytes:
        if self._continue:
            self._continue = False
            self._wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self._wfile.flush()
        return self._body.read(size)

    def readline(self, size: int = -1) -> bytes:
        return self.read(size if size and size > 0 else 8192)

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(self)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            data = self.read(64 * 1024)
            if not data:
                return
            yield data

    def drain(self, limit: int) -> bool:
        """Read and drop the rest of the body, up to ``limit`` bytes."""
        if self._continue:
            return self.done
        total = 0
        while not self.done and total <= limit:
            data = self._body.read(min(64 * 1024, limit + 1 - total))
            if not data:
                break
            total += len(data)
        return self.done


class _ServerHandler(simple_server.ServerHandler):
    """wsgiref's handler, answering in HTTP/1.1 and logging through storaged."""

    http_version = "1.1"
    # No ``Server:`` header naming the Python version.
    server_software = ""
    # A failure before the headers went: an empty 500, as eventlet (and so
    # Swift) sends; the guard has logged the traceback.
    error_body = b""
    request_handler: _RequestHandler

    def close(self) -> None:
        handler = self.request_handler
        headers = getattr(self, "headers", None)
        if headers is not None:
            handler.response_has_length = "Content-Length" in headers
            handler.response_closes = (
                (headers.get("Connection") or "").lower() == "close"
            )
        super().close()

    def start_response(self, status: str, headers: Any, exc_info: Any = None) -> Any:
        write = super().start_response(status, headers, exc_info)
        if self.request_handler.close_after_response:
            # Set past wsgiref's check that applications send no hop-by-hop
            # header: the server is the one closing.
            sent: Any = getattr(self, "headers")  # noqa: B009 (set by super)
            sent["Connection"] = "close"
        return write

    def log_exception(self, exc_info: Any) -> None:
        self.request_handler.response_closes = True
        LOG.debug("Response aborted", exc_info=exc_info)


class _RequestHandler(framing.StrictRequestMixin, simple_server.WSGIRequestHandler):
    """One connection: requests one after the other (keep-alive).

    The request head is parsed as Swift does, within a deadline
    (:mod:`storaged.api.framing`); what is written is recorded
    (:mod:`storaged.api.guard`).
    """

    protocol_version = "HTTP/1.1"
    server: _ThreadingServer
    response_has_length = False
    response_closes = False
    close_after_response = False

    def setup(self) -> None:
        super().setup()
        self.max_header_count = self.server.max_header_count
        self.max_header_line = self.server.max_line
        self.connection.settimeout(self.server.client_timeout)
        self.use_deadline(self.connection, self.server.client_timeout)
        self.tap = guard.WireTap(self.wfile)
        # wsgiref writes the status line, the headers and the body in
        # separate sends: without this, Nagle's algorithm and the client's
        # delayed ACK add 40 ms to every small response on a kept-alive
        # connection.
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.server.track(self, idle=True)

    def finish(self) -> None:
        self.server.untrack(self)
        super().finish()

    def handle(self) -> None:
        self.close_connection = True
        self.handle_one_request()
        while not self.close_connection:
            self.handle_one_request()

    def handle_one_request(self) -> None:
        max_line = self.server.max_line
        try:
            # Idle until the first byte, then client_timeout for the head.
            if not self.wait_for_request():
                self.close_connection = True
                return
            self.raw_requestline = self.rfile.readline(max_line + 1)
        except (TimeoutError, OSError, ValueError):
            self.close_connection = True
            return
        if not self.raw_requestline:
            self.close_connection = True
            return
        self.server.track(self, idle=False)
        try:
            self._one_request(max_line)
        finally:
            self.server.track(self, idle=True)
            if self.server.stopping:
                self.close_connection = True

    def _one_request(self, max_line: int) -> None:
        if len(self.raw_requestline) > max_line:
            self.requestline = ""
            self.request_version = ""
            self.command = ""
            self.send_error(414)
            self.close_connection = True
            return
        try:
            parsed = self.parse_request()
        except (TimeoutError, OSError):
            parsed = False
        if not parsed:
            self.close_connection = True
            return
        # parse_request checked the framing: "chunked" alone, or digits.
        chunked = self.headers.get("Transfer-Encoding") is not None
        body: framing.ChunkedReader | _LengthInput
        if chunked:
            body = framing.ChunkedReader(self.rfile, max_line)
        else:
            length = int(self.headers.get("Content-Length") or 0)
            body = _LengthInput(self.rfile, length)
        expect = (self.headers.get("Expect") or "").lower() == "100-continue"
        stream = _Input(body, self.wfile, expect)
        environ = self.get_environ()
        if self.headers.get("Content-Type") is None:
            # wsgiref fills in text/plain: let the application know there was
            # none (the object's name tells its type then).
            environ.pop("CONTENT_TYPE", None)
        if chunked:
            environ.pop("CONTENT_LENGTH", None)
        self.response_has_length = False
        self.response_closes = False
        self.close_after_response = False
        sent = guard.SentResponse()
        environ[guard.SENT_KEY] = sent
        environ[guard.CLOSE_KEY] = self._close_after_response
        self.tap.record = sent
        wfile: Any = self.tap
        handler = _ServerHandler(
            stream, wfile, self.get_stderr(), environ, multithread=True,
        )
        handler.request_handler = self
        try:
            handler.run(self.server.guard)
        finally:
            self.tap.record = None
            sent.finish()
        if self.response_closes or not self.response_has_length:
            # Closing: what is left of the body is never read.
            self.close_connection = True
            return
        try:
            drained = stream.drain(64 * 1024)
        except OSError:
            drained = False     # a broken chunked framing: cannot go on
        if not drained:
            self.close_connection = True

    def _close_after_response(self) -> None:
        self.close_after_response = True

    def handle_expect_100(self) -> bool:
        """Defer ``100 Continue`` to the first read of the body.

        A request refused before its body is read (401, 404, 413) then
        gets its answer without the client sending the body first.
        """
        return True

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        """The application writes the access log."""

    def log_message(self, format: str, *args: Any) -> None:
        LOG.debug("%s %s", self.address_string(), format % args)


class _ThreadingServer(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    """A thread per connection; knows which connections are idle."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, sock: socket.socket, app: WSGIApp, conf: cfg.ConfigOpts) -> None:
        group = conf.api
        socketserver.BaseServer.__init__(self, sock.getsockname()[:2],
                                         _RequestHandler)
        self.socket = sock
        host, port = sock.getsockname()[:2]
        self.server_name = socket.getfqdn(host) if host else "localhost"
        self.server_port = port
        self.setup_environ()
        self.set_app(app)
        self.guard = guard.ResponseGuard(app)
        self.client_timeout = group.client_timeout
        self.max_line = group.max_url_length
        self.max_clients = group.max_clients
        self.max_header_count = framing.header_limit(conf.catalog.max_meta_count)
        self.stopping = False
        self._lock = threading.Lock()
        self._slot_freed = threading.Condition(self._lock)
        self._admitted: set[int] = set()
        self._connections: dict[_RequestHandler, bool] = {}

    def track(self, handler: _RequestHandler, idle: bool) -> None:
        with self._lock:
            self._connections[handler] = idle

    def untrack(self, handler: _RequestHandler) -> None:
        with self._lock:
            self._connections.pop(handler, None)

    def busy(self) -> int:
        """Return the number of connections in the middle of a request."""
        with self._lock:
            return sum(1 for idle in self._connections.values() if not idle)

    def open_connections(self) -> int:
        with self._lock:
            return len(self._connections)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Wait for one of the ``max_clients`` slots, as eventlet's pool does.

        The accept loop waits here, so further connections stay in the
        listen queue instead of being refused; a slot is freed at the
        latest when a slow client's head deadline runs out.
        """
        with self._slot_freed:
            while len(self._admitted) >= self.max_clients and not self.stopping:
                self._slot_freed.wait(_TICK)
            if self.stopping:
                return False
            self._admitted.add(id(request))
        return True

    def shutdown_request(self, request: Any) -> None:
        try:
            super().shutdown_request(request)
        finally:
            with self._slot_freed:
                if id(request) in self._admitted:
                    self._admitted.discard(id(request))
                    self._slot_freed.notify()

    def close_idle(self) -> None:
        """Wake the threads waiting for a next request, so that they end."""
        with self._lock:
            idle = [h for h, is_idle in self._connections.items() if is_idle]
        for handler in idle:
            try:
                handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _serve_threading(
    sock: socket.socket,
    app: WSGIApp,
    conf: cfg.ConfigOpts,
    flag: StopFlag,
    on_ready: Callable[[], None],
    on_reload: Callable[[], None],
) -> None:
    group = conf.api
    server = _ThreadingServer(sock, app, conf)
    thread = threading.Thread(
        target=server.serve_forever, args=(_TICK,), name="api-accept", daemon=True
    )
    thread.start()
    on_ready()
    gauge = _ConnectionGauge(app)
    while not flag.stopping and thread.is_alive():
        time.sleep(_TICK)
        gauge.update(server.open_connections())
        if flag.reload:
            flag.reload = False
            on_reload()
    LOG.info("Stopping: no new connections; %d busy get %.0fs to finish",
             server.busy(), group.shutdown_timeout)
    server.stopping = True
    server.shutdown()
    server.server_close()
    deadline = time.monotonic() + group.shutdown_timeout
    while time.monotonic() < deadline:
        server.close_idle()
        if not server.open_connections():
            break
        time.sleep(_TICK)
    left = server.busy()
    if left:
        LOG.warning("Stopped with %d request(s) still in progress after %.0fs",
                    left, group.shutdown_timeout)
        body.abort_uploads()


# -- one worker's serving loop ---------------------------------------------------


def reopen_log_files() -> None:
    """Close the log file handlers; the next record reopens them (logrotate)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.acquire()
            try:
                handler.close()
            finally:
                handler.release()


def serve(
    sock: socket.socket,
    app: WSGIApp,
    conf: cfg.ConfigOpts,
    flag: StopFlag,
    on_ready: Callable[[], None],
    on_reload: Callable[[], None],
) -> None:
    """Serve ``sock`` with ``app`` until ``flag`` says stop, then drain.

    :param on_ready: called once the server accepts connections.
    :param on_reload: called in the serving loop after ``flag.reload`` was set.
    """
    serve_with = _serve_eventlet if concurrency.is_eventlet() else _serve_threading
    serve_with(sock, app, conf, flag, on_ready, on_reload)
