"""A statsd feed in Swift's style: UDP packets, sent without waiting.

Swift's daemons send ``<prefix>.<name>:<value>|<type>`` datagrams (``c`` a
counter, ``ms`` a timing, ``g`` a gauge) to ``log_statsd_host``; storaged
sends the same kind to ``[metrics] statsd_host``, from the same events
that update its Prometheus metrics (:class:`storaged.metrics.registry.Metrics`).
A statsd server that is down loses packets; it never slows a daemon.
"""

from __future__ import annotations

import logging
import socket

LOG = logging.getLogger(__name__)

#: statsd types: counter, timing (milliseconds), gauge
COUNTER = "c"
TIMING = "ms"
GAUGE = "g"
#: a gauge change: sent as ``+n|g`` or ``-n|g``
GAUGE_DELTA = "+g"


class StatsdClient:
    """Sends statsd datagrams to one server.

    :param host: the server's name or address.
    :param port: its UDP port.
    :param prefix: put before every name (no trailing dot), or "".
    """

    def __init__(self, host: str, port: int, prefix: str = "") -> None:
        self.host = host
        self.port = port
        self.prefix = prefix.strip(".")
        self._target: tuple[int, tuple[str, int]] | None = None
        self._sock: socket.socket | None = None
        self._warned = False

    def name(self, name: str) -> str:
        """Return ``name`` with the prefix."""
        return "%s.%s" % (self.prefix, name) if self.prefix else name

    def send(self, name: str, value: float, kind: str) -> None:
        """Send one datagram; an error is logged once, never raised."""
        if kind == COUNTER or float(value).is_integer():
            text = "%d" % value
        else:
            text = "%.6g" % value
        if kind == GAUGE_DELTA:
            kind = GAUGE
            text = text if text.startswith("-") else "+" + text
        payload = ("%s:%s|%s" % (self.name(name), text, kind)).encode("utf-8")
        try:
            sock, address = self._socket()
            sock.sendto(payload, address)
        except OSError as err:
            if not self._warned:
                self._warned = True
                LOG.warning("Cannot send metrics to statsd at %s:%s: %s "
                            "(further errors are not logged)",
                            self.host, self.port, err)

    def close(self) -> None:
        """Close the socket (a later send opens another)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _socket(self) -> tuple[socket.socket, tuple[str, int]]:
        if self._target is None:
            # Resolved once: a lookup per packet would cost more than the
            # packet.
            info = socket.getaddrinfo(
                self.host, self.port, socket.AF_UNSPEC, socket.SOCK_DGRAM
            )[0]
            self._target = (int(info[0]), (str(info[4][0]), int(info[4][1])))
        family, address = self._target
        if self._sock is None:
            self._sock = socket.socket(family, socket.SOCK_DGRAM)
            self._sock.setblocking(False)
        return self._sock, address
