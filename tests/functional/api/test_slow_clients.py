"""Slow and idle clients cannot hold the server: the request head has a deadline.

Every bound below is one the server guarantees with a wide margin: a
connection is closed ``client_timeout`` after its head began (or after it
went idle), and a queued connection gets a slot once one is freed, so a real
request is served within a few ``client_timeout`` whatever the tricklers do.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.functional.api import rawhttp
from tests.functional.api.apiserver import ApiServer

BACKENDS = ["eventlet", "threading"]
TIMEOUT = 1.0
#: The most a test waits for what the server guarantees within TIMEOUT.
MARGIN = 5 * TIMEOUT


def serve(tmp_path, backend, **api):
    options = {"client_timeout": str(TIMEOUT)}
    options.update({k: str(v) for k, v in api.items()})
    return ApiServer(tmp_path, backend=backend, api=options)


class Trickler(threading.Thread):
    """Connections that send a request head one piece at a time, forever.

    Each piece comes well within the per-read timeout; a connection the
    server closes is opened again (``reconnect``), so that the server stays
    saturated.
    """

    def __init__(self, port, pieces, pause=0.2, reconnect=True):
        super().__init__(daemon=True)
        self.port = port
        self.pieces = pieces
        self.pause = pause
        self.reconnect = reconnect
        self.stop = threading.Event()
        self.cut_after: list[float] = []

    def run(self):
        while not self.stop.is_set():
            try:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
            except OSError:
                time.sleep(0.05)
                continue
            started = time.monotonic()
            try:
                for piece in self.pieces():
                    if self.stop.is_set():
                        break
                    sock.sendall(piece)
                    if self.stop.wait(self.pause):
                        break
                    # A connection the server closed reads as EOF.
                    sock.setblocking(False)
                    try:
                        if sock.recv(1) == b"":
                            raise ConnectionResetError
                    except BlockingIOError:
                        pass
                    finally:
                        sock.setblocking(True)
            except OSError:
                self.cut_after.append(time.monotonic() - started)
            finally:
                sock.close()
            if not self.reconnect:
                return


def header_lines():
    yield b"GET /healthcheck HTTP/1.1\r\nHost: x\r\n"
    n = 0
    while True:
        n += 1
        yield b"X-Slow-%d: y\r\n" % n


def request_line_bytes():
    for byte in b"GET /healthcheck/" + b"a" * 100_000:
        yield bytes([byte])


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_trickled_head_is_cut_off(tmp_path, backend):
    with serve(tmp_path, backend) as server:
        slow = [Trickler(server.port, header_lines, reconnect=False),
                Trickler(server.port, request_line_bytes, reconnect=False)]
        for t in slow:
            t.start()
        for t in slow:
            t.join(MARGIN)
            assert not t.is_alive(), "a trickler was not cut off"
            t.stop.set()
            assert t.cut_after and t.cut_after[0] >= 0.5 * TIMEOUT, t.cut_after


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_idle_kept_alive_connection_is_closed(tmp_path, backend):
    with serve(tmp_path, backend) as server:
        with rawhttp.connect(server.port) as sock:
            sock.sendall(b"GET /healthcheck HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = rawhttp.read_reply(sock)
            assert reply is not None and reply.status == 200 and not reply.closed
            took = rawhttp.closed_within(sock, MARGIN)
        assert took is not None, "the idle connection was kept open"
        assert took >= 0.5 * TIMEOUT
        with rawhttp.connect(server.port) as sock:
            # Never a byte: closed as well.
            assert rawhttp.closed_within(sock, MARGIN) is not None


@pytest.mark.parametrize("backend", BACKENDS)
def test_real_clients_are_served_past_max_clients_tricklers(tmp_path, backend):
    max_clients = 8
    with serve(tmp_path, backend, max_clients=max_clients) as server:
        tricklers = [Trickler(server.port, header_lines)
                     for _ in range(3 * max_clients)]
        for t in tricklers:
            t.start()
        # What the server guarantees: a connection holds a slot at most
        # twice client_timeout (idle, then the head's deadline), so a real
        # client queued behind every trickler is served within that many
        # rounds; the bound allows three times it (a busy machine).
        rounds = len(tricklers) // max_clients + 1
        guaranteed = rounds * 2 * TIMEOUT
        try:
            time.sleep(2 * TIMEOUT)     # saturated, tricklers cut and back
            for _ in range(3):
                started = time.monotonic()
                with rawhttp.connect(server.port, timeout=4 * guaranteed) as sock:
                    sock.sendall(b"GET /healthcheck HTTP/1.1\r\nHost: x\r\n"
                                 b"Connection: close\r\n\r\n")
                    reply = rawhttp.read_reply(sock)
                took = time.monotonic() - started
                assert reply is not None, server.output()[-2000:]
                assert reply.status == 200, reply
                assert took < 3 * guaranteed, took
        finally:
            for t in tricklers:
                t.stop.set()
            for t in tricklers:
                t.join(10)
        assert sum(len(t.cut_after) for t in tricklers) >= max_clients
