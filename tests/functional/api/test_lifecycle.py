"""storaged-api as systemd runs it: READY, SIGTERM, workers, both backends."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import threading
import time

import pytest

from tests.functional.api.apiserver import ApiServer
from tests.functional.api.apiserver import children as _children

pytest.importorskip("swiftclient")

BACKENDS = ["eventlet", "threading"]


def exit_within(server, seconds):
    started = time.monotonic()
    status = server.proc.wait(seconds)
    return status, time.monotonic() - started


@pytest.mark.parametrize("backend", BACKENDS)
def test_smoke(tmp_path, backend):
    server = ApiServer(tmp_path, backend=backend)
    with server:
        # READY=1 came: the socket is listening now.
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
        conn = server.connection()
        conn.put_container("smoke")
        data = os.urandom(3 * 1024 * 1024 + 1)
        etag = conn.put_object("smoke", "whole", contents=data)
        assert etag == hashlib.md5(data).hexdigest()
        chunks = [data[i:i + 100_000] for i in range(0, len(data), 100_000)]
        assert conn.put_object("smoke", "chunked", contents=iter(chunks)) == etag
        for name in ("whole", "chunked"):
            _headers, body = conn.get_object("smoke", name)
            assert body == data
        _, part = conn.get_object("smoke", "whole", headers={"Range": "bytes=-5"})
        assert part == data[-5:]
        _, listing = conn.get_container("smoke")
        assert [o["name"] for o in listing] == ["chunked", "whole"]
        conn.close()
        server.signal(signal.SIGTERM)
        status, took = exit_within(server, 20)
        assert status == 0, server.output()
        # Idle: no wait for the 30 s shutdown_timeout.
        assert took < 15
        assert "STOPPING=1" in server.notifications(0.5)
    log = server.output()
    assert "storaged-api stopped" in log
    assert "%s backend" % backend in log
    access = [line for line in log.splitlines() if "storaged.api.access" in line]
    assert any(" PUT /v1/AUTH_test/smoke/whole 201 " in line for line in access)
    assert "testing" not in log and "AUTH_tk" not in log


def refused(port: int) -> bool:
    """Whether a new connection to the port is refused."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def slow_upload(port, token, path, size, pause, result):
    """PUT ``size`` bytes in two halves with ``pause`` seconds between."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        head = ("PUT %s HTTP/1.1\r\nHost: x\r\nX-Auth-Token: %s\r\n"
                "Content-Length: %d\r\n\r\n" % (path, token, size)).encode()
        sock.sendall(head + b"a" * (size // 2))
        result["sent_half"] = time.monotonic()
        time.sleep(pause)
        sock.sendall(b"a" * (size - size // 2))
        reply = b""
        while b"\r\n\r\n" not in reply:
            data = sock.recv(4096)
            if not data:
                break
            reply += data
        result["status"] = int(reply.split(b" ", 2)[1]) if reply else None
        sock.close()
    except Exception as err:  # reported to the test
        result["error"] = repr(err)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigterm_lets_the_request_in_progress_finish(tmp_path, backend):
    server = ApiServer(tmp_path, backend=backend)
    with server:
        conn = server.connection()
        conn.put_container("c")
        idle = server.connection()
        idle.head_container("c")            # a kept-alive idle connection
        _url, token = conn.get_auth()
        result = {}
        worker = threading.Thread(target=slow_upload, args=(
            server.port, token, "/v1/AUTH_test/c/slow", 200_000, 1.5, result))
        worker.start()
        deadline = time.monotonic() + 10
        while "sent_half" not in result and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        server.signal(signal.SIGTERM)
        # New connections are refused while the upload goes on.
        deadline = time.monotonic() + 30
        while not refused(server.port):
            assert time.monotonic() < deadline, "the socket still accepts"
            time.sleep(0.05)
        worker.join(20)
        assert result.get("status") == 201, (result, server.output())
        status, _took = exit_within(server, 20)
        assert status == 0
    assert "slow 201" in server.output()


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigterm_gives_up_on_a_stalled_request(tmp_path, backend):
    server = ApiServer(tmp_path, backend=backend, api={"shutdown_timeout": "1"})
    with server:
        conn = server.connection()
        conn.put_container("c")
        _url, token = conn.get_auth()
        result = {}
        worker = threading.Thread(target=slow_upload, args=(
            server.port, token, "/v1/AUTH_test/c/stalled", 100_000, 30, result),
            daemon=True)
        worker.start()
        time.sleep(0.5)
        server.signal(signal.SIGTERM)
        status, took = exit_within(server, 20)
        assert status == 0
        # Far less than the 30 s the stalled client would take.
        assert took < 1 + 15
    assert "still in progress" in server.output()
    # Nothing of the abandoned upload became an object.
    again = ApiServer(tmp_path, backend=backend)
    with again:
        _headers, listing = again.connection().get_container("c")
        assert listing == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_workers_share_the_socket_and_are_replaced(tmp_path, backend):
    server = ApiServer(tmp_path, backend=backend, api={"workers": "2"})
    with server:
        children = _children(server.proc.pid)
        assert len(children) == 2
        conn = server.connection()
        conn.put_container("w")
        for i in range(20):
            # New connections land on either worker: tokens work on both.
            fresh = server.connection()
            fresh.put_object("w", "o%d" % i, contents=b"x")
            fresh.close()
        os.kill(children[0], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            now = _children(server.proc.pid)
            if len(now) == 2 and children[0] not in now:
                break
            time.sleep(0.1)
        assert len(_children(server.proc.pid)) == 2
        _headers, listing = server.connection().get_container("w")
        assert len(listing) == 20
        assert server.stop() == 0
    # The launcher said so (oslo.service's or cotyledon's wording).
    assert re.search(r"Child %d killed by signal (-?9|SIGKILL)" % children[0],
                     server.output())


@pytest.mark.parametrize("backend", BACKENDS)
def test_configuration_error_exits_2_before_ready(tmp_path, backend):
    server = ApiServer(tmp_path, backend=backend,
                       api={"user_test_bad": "k3y .wizard"})
    server.start(wait=False)
    try:
        status = server.proc.wait(30)
        assert status == 2
        assert not any("READY=1" in m for m in server.notifications(0.2))
        out = server.output()
        assert "[api] user_test_bad" in out and "unknown group" in out
        assert "k3y" not in out
    finally:
        server.kill()


@pytest.mark.parametrize("backend", BACKENDS)
def test_port_in_use_exits_1(tmp_path, backend):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    server = ApiServer(tmp_path, backend=backend,
                       api={"bind_port": str(blocker.getsockname()[1])})
    server.start(wait=False)
    try:
        assert server.proc.wait(30) == 1
        assert "Cannot listen on" in server.output()
    finally:
        server.kill()
        blocker.close()


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("backend", BACKENDS)
def test_workers_stop_when_the_parent_is_killed(tmp_path, backend):
    server = ApiServer(tmp_path, backend=backend, api={"workers": "2"})
    with server:
        children = _children(server.proc.pid)
        assert len(children) == 2
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(p) for p in children):
            time.sleep(0.1)
        assert not any(_alive(p) for p in children)
    assert "Parent process has died unexpectedly" in server.output()
