"""A response that cannot be sent is never silent, on either backend.

The server logs the traceback, counts the failure, and the access log line
says what the client really got.
"""

from __future__ import annotations

import re
import sys
import time

import pytest

from tests.functional.api import faultserver
from tests.functional.api import rawhttp
from tests.functional.api.apiserver import ApiServer

BACKENDS = ["eventlet", "threading"]


class FaultServer(ApiServer):
    def args(self) -> list[str]:
        return [sys.executable, "-m", "tests.functional.api.faultserver",
                "--config-file", self.conf]


def get(server, path):
    return rawhttp.exchange(
        server.port, ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode()
    )


def access_line(server, path, timeout=10.0):
    """Return the access log line of ``path`` (it is written once sent)."""
    pattern = re.compile(r"storaged\.api\.access.* GET %s " % re.escape(path))
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in server.output().splitlines()
                 if pattern.search(line)]
        if lines or time.monotonic() > deadline:
            return lines[-1] if lines else ""
        time.sleep(0.05)


def logged_fields(line, path):
    """Return (status, bytes sent, note) of an access log line."""
    after = line.split(" GET %s " % path, 1)[1].split()
    return int(after[0]), int(after[1]), after[-1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_failed_responses_are_logged_counted_and_truthful(tmp_path, backend):
    with FaultServer(tmp_path, backend=backend) as server:
        # A header that cannot be encoded: the client gets a 500, not an
        # empty reply.
        reply = get(server, "/fault/header")
        assert reply is not None and reply.status == 500, (reply, server.output())
        line = access_line(server, "/fault/header")
        status, _sent, note = logged_fields(line, "/fault/header")
        assert status == 500 and "error" in note, line

        # The body fails before its first byte: 500, logged as 500.
        reply = get(server, "/fault/early")
        assert reply is not None and reply.status == 500, reply
        line = access_line(server, "/fault/early")
        status, _sent, note = logged_fields(line, "/fault/early")
        assert status == 500 and "error" in note, line

        # The body fails after the headers went: the client got a 200 and
        # part of the body; the log says so, with the bytes really sent.
        with rawhttp.connect(server.port) as sock:
            sock.sendall(b"GET /fault/midbody HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = rawhttp.read_reply(sock)
        assert reply is not None and reply.status == 200
        assert reply.closed
        assert len(reply.body) < faultserver.MIDBODY_LENGTH
        line = access_line(server, "/fault/midbody")
        status, sent, note = logged_fields(line, "/fault/midbody")
        assert status == 200, line
        assert sent == len(reply.body), (line, len(reply.body))
        assert "error" in note and "incomplete" in note, line

        # The server is fine afterwards.
        reply = get(server, "/healthcheck")
        assert reply is not None and reply.status == 200
    log = server.output()
    errors = [line for line in log.splitlines()
              if " ERROR " in line and "failed response" in line]
    assert len(errors) == 3, log
    for count, line in enumerate(errors, 1):
        assert "(%d failed response" % count in line, line
    # Each with its traceback.
    assert log.count("Traceback (most recent call last)") >= 3, log
    assert "fault injected after 0 bytes" in log
    assert "fault injected after %d bytes" % faultserver.MIDBODY_SENT in log
    assert "UnicodeEncodeError" in log
