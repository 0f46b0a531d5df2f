"""The sync HTTP client: canonical paths, Swift's signature, kept-alive sockets."""

from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest

from storaged.sync import client as client_mod
from storaged.sync import realms as realms_mod

REALMS = realms_mod.Realms(realms={"US": realms_mod.Realm(
    "US", "realm-secret", "", {"EAST": "http://127.0.0.1:1/v1/"})})


class _Recorder(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list = []
    close_after = False

    def log_message(self, *args):
        pass

    def _do(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        type(self).seen.append((self.command, self.path, dict(self.headers), body,
                                self.client_address))
        self.send_response(201 if self.command == "PUT" else 200)
        self.send_header("Content-Length", "0")
        self.send_header("X-Timestamp", "1700000000.00000")
        self.end_headers()
        if type(self).close_after:
            # Close the kept-alive socket without saying so.
            self.close_connection = True

    do_HEAD = do_PUT = do_DELETE = _do


@pytest.fixture
def server():
    handler = type("H", (_Recorder,), {"seen": [], "close_after": False})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv, handler
    srv.shutdown()
    srv.server_close()


def _target(port, signed=True):
    url = "http://127.0.0.1:%d/v1/AUTH_b/dst" % port
    if signed:
        return realms_mod.SyncTarget(url, realm="US", cluster="EAST")
    return realms_mod.SyncTarget(url)


def test_signed_requests_verify_as_swift_verifies(server):
    srv, handler = server
    http = client_mod.HttpClient(timeout=5)
    tc = client_mod.TargetClient(http, _target(srv.server_address[1]),
                                 "user-secret", REALMS)
    name = "sub dir/ü+%2F~x.txt"
    assert tc.head(name, "1700000000.12345").status == 200
    tc.put(name, "1700000000.12345", {"Content-Length": "3"}, b"abc")
    tc.delete(name, "1700000000.12345")
    assert [s[0] for s in handler.seen] == ["HEAD", "PUT", "DELETE"]
    for method, full_path, headers, _body, _addr in handler.seen:
        # A HEAD asks for a symlink itself; the query is not signed.
        path, _sep, query = full_path.partition("?")
        assert query == ("symlink=get" if method == "HEAD" else "")
        assert path == "/v1/AUTH_b/dst/sub%20dir/%C3%BC%2B%252F~x.txt"
        assert headers["X-Timestamp"] == "1700000000.12345"
        result = realms_mod.verify_auth(
            headers["X-Container-Sync-Auth"], method, path, "1700000000.12345",
            REALMS, "user-secret")
        assert result.valid, result
        assert headers["X-Container-Sync-Auth"].startswith("US ")
    assert handler.seen[1][3] == b"abc"
    # One connection for all three requests.
    assert http.connections_opened == 1
    assert len({s[4] for s in handler.seen}) == 1
    assert "user-secret" not in repr(tc) and "realm-secret" not in repr(tc)


def test_legacy_target_sends_the_container_key(server):
    srv, handler = server
    tc = client_mod.TargetClient(client_mod.HttpClient(), _target(
        srv.server_address[1], signed=False), "user-secret", REALMS)
    tc.delete("o", "1700000000.00000")
    headers = handler.seen[0][2]
    assert headers["X-Container-Sync-Key"] == "user-secret"
    assert "X-Container-Sync-Auth" not in headers


def test_a_silently_closed_connection_is_replaced(server):
    srv, handler = server
    handler.close_after = True
    http = client_mod.HttpClient(timeout=5)
    tc = client_mod.TargetClient(http, _target(srv.server_address[1]), "k", REALMS)
    for i in range(3):
        chunks = iter([b"ab", b"c"])
        resp = tc.put("o%d" % i, "1700000000.00000", {"Content-Length": "3"},
                      lambda chunks=chunks: list(chunks) or [b"abc"])
        assert resp.status == 201
    assert [s[3] for s in handler.seen] == [b"abc"] * 3


def test_timeouts_fail_the_request_and_name_no_secret():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)  # accepts connections, never answers
    try:
        http = client_mod.HttpClient(timeout=0.3)
        tc = client_mod.TargetClient(http, _target(listener.getsockname()[1]),
                                     "user-secret", REALMS)
        started = time.monotonic()
        with pytest.raises(client_mod.SyncRequestError) as info:
            tc.head("o", "1700000000.00000")
        assert time.monotonic() - started < 5
        assert "timed out" in str(info.value)
        assert "secret" not in str(info.value)
    finally:
        listener.close()


def test_refused_connection_is_a_request_error():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    tc = client_mod.TargetClient(client_mod.HttpClient(timeout=1), _target(port),
                                 "k", REALMS)
    with pytest.raises(client_mod.SyncRequestError):
        tc.delete("o", "1700000000.00000")


def test_unknown_realm_key_refuses_to_send():
    empty = realms_mod.Realms(realms={})
    tc = client_mod.TargetClient(client_mod.HttpClient(), _target(1), "k", empty)
    with pytest.raises(realms_mod.InvalidSyncTo):
        tc.head("o", "1700000000.00000")


def test_proxy_is_used_for_plain_http(server):
    srv, handler = server
    # The recording server plays the proxy: it receives the absolute URL.
    http = client_mod.HttpClient(
        timeout=5, proxies=["http://127.0.0.1:%d" % srv.server_address[1]])
    tc = client_mod.TargetClient(http, realms_mod.SyncTarget(
        "http://target.example:8080/v1/AUTH_b/dst", realm="US"), "k", REALMS)
    tc.head("o", "1700000000.00000")
    assert handler.seen[0][1] == (
        "http://target.example:8080/v1/AUTH_b/dst/o?symlink=get")
    with pytest.raises(ValueError):
        client_mod.HttpClient(proxies=["ftp://nope"])
