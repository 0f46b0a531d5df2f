"""Pieces of the threading backend's server: the chunked decoder and the input."""

from __future__ import annotations

import io

import pytest

from storaged.api import framing
from storaged.api import server


def chunked(*parts, trailer=b""):
    out = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in parts)
    return io.BytesIO(out + b"0\r\n" + trailer + b"\r\nNEXT REQUEST")


def test_chunked_input_decodes():
    stream = chunked(b"hello ", b"world" * 1000, trailer=b"X-Trailer: 1\r\n")
    decoder = framing.ChunkedReader(stream, 8192)
    out = b""
    while True:
        data = decoder.read(777)
        if not data:
            break
        out += data
    assert out == b"hello " + b"world" * 1000
    assert decoder.done
    assert stream.read() == b"NEXT REQUEST"


@pytest.mark.parametrize("raw", [
    b"zz\r\nabc\r\n0\r\n\r\n",          # not hex
    b"5\r\nabc",                        # cut in a chunk
    b"3\r\nabcXX0\r\n\r\n",             # no CRLF after the chunk
    b"3\r\nabc\r\n",                    # no last chunk
])
def test_chunked_input_refuses_broken_framing(raw):
    decoder = framing.ChunkedReader(io.BytesIO(raw), 8192)
    with pytest.raises(ConnectionError):
        while decoder.read(100):
            pass


def test_input_sends_100_continue_on_first_read_only():
    sink = io.BytesIO()
    stream = server._Input(server._LengthInput(io.BytesIO(b"abcdef"), 6), sink, True)
    assert sink.getvalue() == b""
    assert stream.read(3) == b"abc"
    assert sink.getvalue() == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert stream.read(10) == b"def"
    assert sink.getvalue().count(b"100 Continue") == 1
    assert stream.done


def test_unread_body_without_100_continue_is_not_drained():
    sink = io.BytesIO()
    stream = server._Input(server._LengthInput(io.BytesIO(b"x" * 10), 10), sink, True)
    # The client waits for 100 Continue that never came: nothing to drain,
    # and the connection must close.
    assert stream.drain(100) is False
    stream = server._Input(server._LengthInput(io.BytesIO(b"x" * 10), 10), sink, False)
    assert stream.drain(100) is True
    big = server._Input(server._LengthInput(io.BytesIO(b"x" * 1000), 1000), sink, False)
    assert big.drain(100) is False
