"""Raw HTTP/1.1 exchanges with a server: the bytes a test chooses, the bytes it got."""

from __future__ import annotations

import socket
import time


class Reply:
    """A response read off a socket: status, headers (lower-case names), body."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes,
                 closed: bool) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        #: the server closed the connection after this response
        self.closed = closed

    def __repr__(self) -> str:
        return "<Reply %d %r %r>" % (self.status, self.headers, self.body[:200])


def connect(port: int, timeout: float = 30.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def read_reply(sock: socket.socket, head_request: bool = False) -> Reply | None:
    """Read one response; None when the server closed without answering."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            if not buf:
                return None
            raise AssertionError("connection closed in the head: %r" % buf)
        buf += data
    head, _sep, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _c, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    if head_request:
        length = 0
    body = rest
    closed = False
    while len(body) < length:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            closed = True
            break
        body += data
    if headers.get("connection", "").lower() == "close":
        closed = True
    return Reply(status, headers, body, closed)


def exchange(port: int, raw: bytes, timeout: float = 30.0) -> Reply | None:
    """Send ``raw`` on a new connection and read one response."""
    with connect(port, timeout) as sock:
        sock.sendall(raw)
        return read_reply(sock, raw.startswith(b"HEAD "))


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Read until the server closes; return when it did, None if it did not."""
    started = time.monotonic()
    deadline = started + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            return None
        except ConnectionResetError:
            data = b""
        if not data:
            return time.monotonic() - started


def token(server) -> str:
    reply = exchange(server.port, (
        b"GET /auth/v1.0 HTTP/1.1\r\nHost: x\r\nX-Auth-User: test:tester\r\n"
        b"X-Auth-Key: testing\r\n\r\n"))
    assert reply is not None and reply.status == 200, reply
    return reply.headers["x-auth-token"]
