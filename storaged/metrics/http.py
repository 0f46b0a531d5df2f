"""``/metrics`` over HTTP, on a socket bound before the daemon starts.

The socket is bound by the command (:func:`bind`), so that a port already
in use stops the daemon at start with one line; the endpoint is served
(:func:`serve`) by the process that holds the figures: under oslo.service's
threading backend a periodic daemon's passes run in a child process, which
inherits the socket.  Under eventlet the endpoint is an ``eventlet.wsgi``
server in a green thread (:func:`storaged.concurrency.green_wsgi_server`);
under threading a :mod:`wsgiref` server on a native thread.  Either way
the application is prometheus_client's own (``make_wsgi_app``): no
exposition format is written here.
"""

from __future__ import annotations

import logging
import os
import socket
import socketserver
from typing import Any
from wsgiref import simple_server

import prometheus_client
from prometheus_client import registry as prom_registry

from storaged import concurrency
from storaged import exception

LOG = logging.getLogger(__name__)

#: connections served at once (a scrape or two, a curl)
MAX_CLIENTS = 16
#: seconds a scraper may take to send its request
SOCKET_TIMEOUT = 30.0


class MetricsPortInUse(exception.ConfigError):
    """The ``metrics_port`` of a daemon cannot be bound."""


def bind(host: str, port: int, group: str) -> socket.socket:
    """Return a listening socket on ``host:port`` for ``/metrics``.

    :param group: the option group whose ``metrics_port`` this is (named in
        the error).
    :raises MetricsPortInUse: the port is taken (or the address unusable).
    """
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM)
        family, _type, _proto, _name, address = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as err:
        raise MetricsPortInUse(
            "cannot listen on %s:%d for /metrics: %s"
            % (host, port, err.strerror or err),
            group=group, option="metrics_port",
        ) from err
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(64)
    except OSError as err:
        sock.close()
        raise MetricsPortInUse(
            "cannot listen on %s:%d for /metrics: %s (another daemon "
            "of this node may use it: each needs a port of its own)"
            % (host, port, err.strerror or err),
            group=group, option="metrics_port",
        ) from err
    return sock


class _Handler(simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged (one every few seconds)."""


class _Server(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    daemon_threads = True

    def __init__(self, sock: socket.socket) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__((host, port), _Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.server_name = str(host)
        self.server_port = int(port)
        self.setup_environ()


class Endpoint:
    """A running ``/metrics`` server (:meth:`close` stops it)."""

    def __init__(self, sock: socket.socket, pid: int, server: Any) -> None:
        self.sock = sock
        self.pid = pid
        self._server = server

    @property
    def address(self) -> tuple[str, int]:
        """The host and port served."""
        host, port = self.sock.getsockname()[:2]
        return str(host), int(port)

    def close(self) -> None:
        """Stop serving (the socket is closed)."""
        if isinstance(self._server, _Server):
            self._server.shutdown()
            self._server.server_close()
        else:
            self._server.kill()
            self.sock.close()


def serve(
    sock: socket.socket, registry: prom_registry.CollectorRegistry
) -> Endpoint:
    """Serve ``registry`` at ``/metrics`` on ``sock`` from this process."""
    app = prometheus_client.make_wsgi_app(registry)
    server: Any
    if concurrency.is_eventlet():
        wsgi = concurrency.eventlet_wsgi()
        server = concurrency.green_wsgi_server(
            sock, app, protocol=wsgi.HttpProtocol, max_clients=MAX_CLIENTS,
            max_line=8192, socket_timeout=SOCKET_TIMEOUT, log=_QuietLog(),
            log_output=False,
        )
    else:
        server = _Server(sock)
        server.set_app(app)
        concurrency.start_native_thread(server.serve_forever, "metrics-http", 0.5)
    host, port = sock.getsockname()[:2]
    LOG.info("Serving metrics on http://%s:%s/metrics (pid %d)", host, port,
             os.getpid())
    return Endpoint(sock, os.getpid(), server)


class _QuietLog:
    """eventlet.wsgi's log: its errors to ours, the rest dropped."""

    def info(self, msg: str, *args: Any) -> None:
        pass

    def debug(self, msg: str, *args: Any) -> None:
        pass

    def warning(self, msg: str, *args: Any) -> None:
        LOG.warning(msg, *args)

    def error(self, msg: str, *args: Any) -> None:
        LOG.error(msg, *args)

    def write(self, msg: str) -> None:
        pass
