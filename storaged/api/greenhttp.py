"""The ``eventlet.wsgi`` protocol of ``storaged-api``: Swift's parser, a head deadline.

Imported only when the process runs on eventlet (by
:func:`storaged.api.server._serve_eventlet`): it subclasses eventlet's
handler, as Swift's ``SwiftHttpProtocol`` does.  What it changes is
described in :mod:`storaged.api.framing` (request head) and
:mod:`storaged.api.guard` (what was sent).
"""

from __future__ import annotations

import logging
from typing import Any

import eventlet.wsgi

from storaged.api import framing
from storaged.api import guard

LOG = logging.getLogger(__name__)


class _StrictInput(eventlet.wsgi.Input):  # type: ignore[misc]
    """eventlet's ``wsgi.input`` with :class:`framing.ChunkedReader` for chunked bodies.

    eventlet's own decoder skips whatever follows a chunk up to the next
    line end: ``3\\r\\nabcdef\\r\\n`` would be read as ``abc``.
    """

    max_line = 8192
    _decoder: framing.ChunkedReader | None = None

    def _chunked_read(self, rfile: Any, length: int | None = None,
                      use_readline: bool = False) -> bytes:
        if self.should_send_hundred_continue:
            self.send_hundred_continue_response()
            self.is_hundred_continue_response_sent = True
        if self._decoder is None:
            self._decoder = framing.ChunkedReader(rfile, self.max_line)
        if length == 0:
            return b""
        if length is not None and length > 0:
            if use_readline:
                return self._readline(length)
            return self._decoder.read(length)
        if use_readline:
            return self._readline(-1)
        parts: list[bytes] = []
        while True:
            data = self._decoder.read(64 * 1024)
            if not data:
                return b"".join(parts)
            parts.append(data)

    def _readline(self, limit: int) -> bytes:
        assert self._decoder is not None
        line = b""
        while limit < 0 or len(line) < limit:
            byte = self._decoder.read(1)
            if not byte:
                break
            line += byte
            if byte == b"\n":
                break
        return line


class StrictProtocol(framing.StrictRequestMixin, eventlet.wsgi.HttpProtocol):  # type: ignore[misc]
    """eventlet's HTTP handler with Swift's parser, the head deadline and a wire tap."""

    max_line = 8192
    _tap: guard.WireTap | None = None
    _sent: guard.SentResponse | None = None

    def setup(self) -> None:
        super().setup()
        self.use_deadline(self.connection, self.server.socket_timeout)
        self._tap = guard.WireTap(self.wfile)
        self.wfile = self._tap

    def _read_request_line(self) -> Any:
        # Idle until the first byte (per-read timeout), then the head has
        # client_timeout to arrive whole.
        try:
            if not self.wait_for_request():
                self.close_connection = True
                return b""
        except (ConnectionError, ValueError):
            self.close_connection = True
            return b""
        return super()._read_request_line()

    def get_environ(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environ()
        old = environ["eventlet.input"]
        if old.chunked_input:
            new = _StrictInput(old.rfile, old.content_length, old.get_socket(),
                               wfile=old.wfile, wfile_line=old.wfile_line,
                               chunked_input=True)
            new.max_line = self.max_line
            environ["wsgi.input"] = environ["eventlet.input"] = new
        self._sent = guard.SentResponse()
        if self._tap is not None:
            self._tap.record = self._sent
        environ[guard.SENT_KEY] = self._sent
        environ[guard.CLOSE_KEY] = self._close_after_response
        return environ

    def _close_after_response(self) -> None:
        # Before the head is written: eventlet then sends ``Connection:
        # close`` itself and does not read (to drop) the rest of the body.
        self.close_connection = True

    def handle_one_response(self) -> None:
        try:
            super().handle_one_response()
        finally:
            if self._sent is not None:
                self._sent.finish()
            if self._tap is not None:
                self._tap.record = None

    def log_message(self, format: str, *args: Any) -> None:
        LOG.debug("%s %s", self.client_address[0], format % args)


def protocol(max_header_count: float, max_line: int) -> type[StrictProtocol]:
    """Return the protocol class for a server with these limits."""
    return type("Protocol", (StrictProtocol,), {
        "max_header_count": max_header_count,
        "max_header_line": max_line,
        "max_line": max_line,
    })
