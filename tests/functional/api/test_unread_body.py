"""A request refused before its large body is read closes its connection.

Reading (and dropping) a body of gigabytes only to answer 404 would cost
both sides the whole upload: the answer says ``Connection: close`` once,
and the server closes without waiting for the body.  ``Connection`` is a
hop-by-hop header that a WSGI application may not send itself (wsgiref
refused it with a 500; eventlet sent it and then read the body all the
same), so the server is asked to close instead.
"""

from __future__ import annotations

import socket
import time

import pytest

from tests.functional.api.apiserver import ApiServer

CLIENT_TIMEOUT = 120


@pytest.fixture(scope="module", params=["eventlet", "threading"])
def server(request, tmp_path_factory):
    # A long client_timeout: a server that waited for the rest of the body
    # would hold the connection that long; one that closes does so at once.
    srv = ApiServer(tmp_path_factory.mktemp("unread-" + request.param),
                    backend=request.param,
                    api={"client_timeout": str(CLIENT_TIMEOUT)})
    srv.start()
    yield srv
    assert srv.stop() == 0, srv.output()


def read_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            break
        data += more
    return data


def test_refused_upload_closes_without_reading_the_body(server):
    token = server.connection().get_auth()[1]
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port),
                                  timeout=CLIENT_TIMEOUT * 2) as sock:
        sock.sendall(
            b"PUT /v1/AUTH_test/no-such-container/o HTTP/1.1\r\n"
            b"Host: x\r\nX-Auth-Token: " + token.encode() + b"\r\n"
            b"Content-Length: 1073741824\r\n\r\n" + b"x" * 1024)
        data = read_head(sock)
        head = data.split(b"\r\n\r\n")[0].split(b"\r\n")
        assert head[0] == b"HTTP/1.1 404 Not Found", data
        connection = [h for h in head if h.lower().startswith(b"connection:")]
        assert connection == [b"Connection: close"], head
        # Closed by the server: the rest of the body (about 1 GiB) was
        # never sent, and the recv ends instead of waiting for it.
        rest = data.split(b"\r\n\r\n", 1)[1]
        while True:
            more = sock.recv(65536)
            if not more:
                break
            rest += more
        assert len(rest) < 4096
    # Closed without waiting for the client: far less than the timeout a
    # server reading the body would have waited (however busy the machine).
    assert time.monotonic() - started < CLIENT_TIMEOUT / 2
    assert "Traceback" not in server.output()
