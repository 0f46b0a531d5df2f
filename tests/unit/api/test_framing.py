"""The request head as Swift reads it: framing checks, header limit, chunks."""

from __future__ import annotations

import email.message
import http.client
import io

import pytest

from storaged.api import framing


def headers(*items):
    message = email.message.Message()
    for name, value in items:
        message[name] = value
    return message


@pytest.mark.parametrize("items,refusal", [
    ((), None),
    ((("Content-Length", "3"),), None),
    ((("Content-Length", "3"), ("Content-Length", "3")), None),
    ((("Content-Length", "3"), ("Content-Length", "5")), (400, framing.CL_INVALID)),
    ((("Content-Length", "+3"),), (400, framing.CL_INVALID)),
    ((("Content-Length", "3_0"),), (400, framing.CL_INVALID)),
    ((("Content-Length", "-1"),), (400, framing.CL_INVALID)),
    ((("Content-Length", "3, 3"),), (400, framing.CL_INVALID)),
    ((("Transfer-Encoding", "chunked"),), None),
    ((("Transfer-Encoding", "Chunked"),), None),
    ((("Transfer-Encoding", "gzip"),), (400, framing.TE_INVALID)),
    ((("Transfer-Encoding", "gzip, chunked"),), (501, framing.TE_UNSUPPORTED)),
    ((("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")),
     (501, framing.TE_UNSUPPORTED)),
    ((("Transfer-Encoding", "chunked"), ("Content-Length", "3")),
     (400, framing.CL_AND_TE)),
])
def test_check_framing(items, refusal):
    assert framing.check_framing(headers(*items)) == refusal


def test_header_limit_is_swifts():
    # (90 + 36) * 1.6 lines, the empty one included: 200 headers.
    limit = framing.header_limit(90)
    ok = b"".join(b"X-%d: y\r\n" % i for i in range(200)) + b"\r\n"
    assert len(framing.read_headers(io.BytesIO(ok), limit)) == 200
    too_many = b"X-Last: y\r\n" + ok
    with pytest.raises(http.client.HTTPException, match="more than 201 headers"):
        framing.read_headers(io.BytesIO(too_many), limit)


@pytest.mark.parametrize("raw", [
    b"3\r\nabcdef\r\n0\r\n\r\n",        # more data than the size line says
    b"+3\r\nabc\r\n0\r\n\r\n",
    b"0x3\r\nabc\r\n0\r\n\r\n",
    b"-3\r\nabc\r\n0\r\n\r\n",
    b"3 3\r\nabc\r\n0\r\n\r\n",
])
def test_chunked_reader_refuses_and_stays_broken(raw):
    reader = framing.ChunkedReader(io.BytesIO(raw), 8192)
    with pytest.raises(ConnectionError):
        while reader.read(100):
            pass
    with pytest.raises(ConnectionError):
        reader.read(100)


def test_chunked_reader_reads_extensions_and_trailers():
    raw = b"3;x=y\r\nabc\r\nA \r\n0123456789\r\n0\r\nX-T: 1\r\n\r\nNEXT"
    stream = io.BytesIO(raw)
    reader = framing.ChunkedReader(stream, 8192)
    out = b""
    while True:
        data = reader.read(4)
        if not data:
            break
        out += data
    assert out == b"abc0123456789"
    assert reader.done
    assert stream.read() == b"NEXT"


class FakeSocket:
    def __init__(self):
        self.timeouts = []

    def settimeout(self, value):
        self.timeouts.append(value)


def test_deadline_reader_cuts_reads_at_the_deadline():
    sock = FakeSocket()
    reader = framing.DeadlineReader(io.BytesIO(b"GET / HTTP/1.1\r\n"), sock, 5.0)
    buf = bytearray(4)
    assert reader.readinto(buf) == 4 and sock.timeouts == []
    reader.start()
    assert reader.readinto(buf) == 4
    assert 0 < sock.timeouts[-1] <= 5.0
    reader.deadline = 0.0           # long past
    with pytest.raises(TimeoutError):
        reader.readinto(buf)
    reader.stop()
    assert sock.timeouts[-1] == 5.0
    assert reader.readinto(buf) == 4
