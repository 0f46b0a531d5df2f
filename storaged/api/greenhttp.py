"""The ``eventlet.wsgi`` protocol of ``storaged-api``: Swift's parser, a head deadline.

Used only when the process runs on eventlet (by
:func:`storaged.api.server._serve_eventlet`): its classes subclass
eventlet's handler, as Swift's ``SwiftHttpProtocol`` does, and eventlet's
``wsgi.input``.  They are built on first use from the module
:func:`storaged.concurrency.eventlet_wsgi` hands out, so that importing
this module imports no eventlet.  What they change is described in
:mod:`storaged.api.framing` (request head) and :mod:`storaged.api.guard`
(what was sent).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from storaged import concurrency
from storaged.api import framing
from storaged.api import guard

LOG = logging.getLogger(__name__)


def build_classes(wsgi: Any) -> tuple[type[Any], type[Any]]:
    """Build the input and protocol classes on eventlet's ``wsgi`` module.

    :param wsgi: ``eventlet.wsgi`` (from :func:`concurrency.eventlet_wsgi`).
    :returns: ``(StrictInput, StrictProtocol)``.
    """

    class StrictInput(wsgi.Input):  # type: ignore[misc]
        """eventlet's ``wsgi.input``, decoding chunked bodies strictly.

        :class:`framing.ChunkedReader` reads them: eventlet's own decoder
        skips whatever follows a chunk up to the next line end:
        ``3\\r\\nabcdef\\r\\n`` would be read as ``abc``.
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

    class StrictProtocol(
        framing.StrictRequestMixin, wsgi.HttpProtocol  # type: ignore[misc]
    ):
        """eventlet's HTTP handler: Swift's parser, the head deadline, a wire tap."""

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
                new = StrictInput(old.rfile, old.content_length, old.get_socket(),
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

    return StrictInput, StrictProtocol


@functools.cache
def _classes() -> tuple[type[Any], type[Any]]:
    return build_classes(concurrency.eventlet_wsgi())


def protocol(max_header_count: float, max_line: int) -> type[Any]:
    """Return the protocol class for a server with these limits.

    :raises RuntimeError: if the process does not run on eventlet.
    """
    return type("Protocol", (_classes()[1],), {
        "max_header_count": max_header_count,
        "max_header_line": max_line,
        "max_line": max_line,
    })
