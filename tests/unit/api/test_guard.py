"""The response guard: failures logged and counted, headers kept sendable."""

from __future__ import annotations

import logging

import pytest

from storaged.api import guard


class Server:
    """start_response of a server, and what it was given."""

    def __init__(self):
        self.calls = []

    def start_response(self, status, headers, exc_info=None):
        self.calls.append((status, list(headers)))


def test_sent_response_reads_the_status_that_went_out():
    sent = guard.SentResponse()
    sent.wrote(b"HTTP/1.1 100 Continue\r\n")
    sent.wrote(b"\r\n")
    assert sent.status is None
    sent.wrote(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\nab")
    sent.wrote(b"cde")
    assert (sent.status, sent.body_bytes) == (500, 5)
    done = []
    sent.when_finished(lambda: done.append(1))
    assert not done
    sent.finish()
    sent.finish()
    assert done == [1]


def test_unencodable_headers_become_a_500(caplog):
    def app(environ, start_response):
        start_response("200 OK", [("X-Trans-Id", "tx1"), ("X-Bad", "\u2603")])
        return [b"hello"]

    guarded = guard.ResponseGuard(app)
    server = Server()
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/x",
               guard.SENT_KEY: guard.SentResponse()}
    with caplog.at_level(logging.ERROR, "storaged.api.guard"):
        body = b"".join(guarded(environ, server.start_response))
    status, headers = server.calls[0]
    assert status.startswith("500 ")
    assert ("X-Trans-Id", "tx1") in headers
    assert b"Internal Error" in body
    assert guarded.failures == 1
    assert environ[guard.SENT_KEY].error
    assert "(1 failed response(s)" in caplog.text
    assert caplog.records[0].exc_info is not None


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "\x00"])
def test_headers_with_line_breaks_are_refused(value):
    with pytest.raises(ValueError):
        guard.check_headers("200 OK", [("X-A", value)])


def test_a_body_that_raises_is_counted_and_closed(caplog):
    closed = []

    class Body:
        def __iter__(self):
            yield b"part"
            raise RuntimeError("disk on fire")

        def close(self):
            closed.append(1)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "100")])
        return Body()

    guarded = guard.ResponseGuard(app)
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/x"}
    result = guarded(environ, Server().start_response)
    with pytest.raises(RuntimeError), caplog.at_level(logging.ERROR):
        list(result)
    assert closed == [1]
    result.close()
    assert closed == [1]
    assert guarded.failures == 1
    assert "disk on fire" in caplog.text
