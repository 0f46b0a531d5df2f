"""Request bodies: limits, a client going away, and the hub-to-thread feed."""

from __future__ import annotations

import io
import threading

import pytest

from storaged.api import body


class Flaky(io.BytesIO):
    def __init__(self, data, error):
        super().__init__(data)
        self.error = error

    def read(self, n=-1):
        data = super().read(n)
        if not data:
            raise self.error
        return data


def test_reader_reads_declared_length_only():
    reader = body.BodyReader(io.BytesIO(b"abcdefXYZ"), 6, limit=100)
    assert reader.read(4) == b"abcd"
    assert reader.read(100) == b"ef"
    assert reader.complete and reader.received == 6
    assert reader.read() == b""


def test_reader_short_body_is_a_disconnect():
    reader = body.BodyReader(io.BytesIO(b"abc"), 10, limit=100)
    assert reader.read(10) == b"abc"
    with pytest.raises(body.ClientDisconnect):
        reader.read(10)


def test_reader_chunked_limit():
    reader = body.BodyReader(io.BytesIO(b"x" * 50), None, limit=40)
    assert reader.read(40) == b"x" * 40
    with pytest.raises(body.RequestTooLarge):
        reader.read(40)


@pytest.mark.parametrize("error, expected", [
    (TimeoutError(), body.ClientTimeout),
    (ConnectionResetError(), body.ClientDisconnect),
    (ValueError("bad chunk"), body.ClientDisconnect),
])
def test_reader_maps_socket_errors(error, expected):
    reader = body.BodyReader(Flaky(b"ab", error), None, limit=100)
    assert reader.read(2) == b"ab"
    with pytest.raises(expected):
        reader.read(2)


def test_empty_body_is_complete():
    reader = body.BodyReader(io.BytesIO(b""), 0, limit=10)
    assert reader.complete and reader.read(5) == b""


def consume(feed, size):
    out = []
    while True:
        data = feed.read(size)
        if not data:
            return b"".join(out)
        assert len(data) <= size
        out.append(data)


def test_feed_hands_over_the_whole_body():
    data = bytes(range(256)) * 1000
    reader = body.BodyReader(io.BytesIO(data), len(data), limit=10**9)
    feed = body.HubFeed(reader, chunk_size=1000, timeout=5, depth=2)
    result = {}
    consumer = threading.Thread(target=lambda: result.update(data=consume(feed, 4096)))
    consumer.start()
    consumer.join(20)
    feed.close()
    assert result["data"] == data


def test_feed_raises_the_pump_error_in_the_consumer():
    reader = body.BodyReader(io.BytesIO(b"abc"), 10, limit=100)
    feed = body.HubFeed(reader, chunk_size=2, timeout=5)
    with pytest.raises(body.ClientDisconnect):
        consume(feed, 100)


def test_abort_uploads_frees_a_waiting_consumer():
    class Silent:
        def read(self, n):
            threading.Event().wait(30)
            return b""

    feed = body.HubFeed(body.BodyReader(Silent(), 10, limit=100), 2, timeout=30)
    errors = []

    def run():
        try:
            feed.read(10)
        except Exception as err:
            errors.append(err)

    consumer = threading.Thread(target=run)
    consumer.start()
    assert body.abort_uploads() >= 1
    consumer.join(5)
    assert not consumer.is_alive()
    assert isinstance(errors[0], body.ClientDisconnect)
