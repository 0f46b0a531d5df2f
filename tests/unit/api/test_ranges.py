"""Byte ranges as Swift serves them: swob's rules, multipart/byteranges, 416."""

from __future__ import annotations

import re

import pytest

from storaged.api.handlers.conditions import UNSATISFIABLE
from storaged.api.handlers.conditions import byte_ranges
from storaged.api.handlers.conditions import parse_range

OBJ = "/v1/AUTH_test/c/o"
DATA = b"0123456789"


@pytest.mark.parametrize("value, expected", [
    ("bytes=0-1", [(0, 2)]),
    ("bytes=2-", [(2, 10)]),
    ("bytes=-3", [(7, 10)]),
    ("bytes=-30", [(0, 10)]),
    ("bytes=5-100", [(5, 10)]),
    ("Bytes = 0-1, 4-5", [(0, 2), (4, 6)]),
    ("bytes=0-1,20-30", [(0, 2)]),          # the unsatisfiable one dropped
    ("bytes=20-30", []),
    ("bytes=10-", []),
    ("bytes=-0", []),
    ("bytes=-0,0-1", [(0, 2)]),
    ("bytes=5-3", None),                    # invalid: the header is ignored
    ("bytes=-", None),
    ("bytes=4", None),
    ("bytes=a-b", None),
    ("bytes=1--2", None),
    ("items=0-1", None),
    ("", None),
    ("bytes=0-1,5-3", None),                # one bad spec spoils them all
])
def test_byte_ranges(value, expected):
    assert byte_ranges(value, 10) == expected


def test_egregious_requests_are_refused():
    many = ",".join("%d-%d" % (i, i) for i in range(51))
    assert byte_ranges("bytes=" + many, 100) == []
    fifty = ",".join("%d-%d" % (i, i) for i in range(50))
    assert len(byte_ranges("bytes=" + fifty, 100)) == 50
    # Three overlapping pairs are too many; two are fine.
    assert byte_ranges("bytes=0-5,1-6,2-7", 100) == []
    assert byte_ranges("bytes=0-5,1-6,10-11", 100) == [(0, 6), (1, 7), (10, 12)]
    # Eight ranges out of order are refused; seven are fine.
    eight = ",".join("%d-%d" % (i, i) for i in (9, 8, 7, 6, 5, 4, 3, 2))
    assert byte_ranges("bytes=" + eight, 100) == []
    seven = ",".join("%d-%d" % (i, i) for i in (9, 8, 7, 6, 5, 4, 3))
    assert len(byte_ranges("bytes=" + seven, 100)) == 7


def test_parse_range_for_one_range_readers():
    assert parse_range("bytes=1-2", 10) == (1, 3)
    assert parse_range("bytes=20-", 10) == UNSATISFIABLE
    assert parse_range("bytes=0-1,4-5", 10) is None
    assert parse_range("bytes=-5", 0) is None
    assert parse_range("bytes=0-", 0) == UNSATISFIABLE


@pytest.fixture
def obj(client):
    client.as_user("PUT", "/v1/AUTH_test/c")
    res = client.as_user("PUT", OBJ, {"Content-Type": "text/x-digits; a=b"}, body=DATA)
    assert res.status == 201
    return res.headers["etag"]


def test_several_ranges_are_multipart(client, obj):
    res = client.as_user("GET", OBJ, {"Range": "bytes=0-1,5-6,-2"})
    assert res.status == 206
    match = re.fullmatch(r"multipart/byteranges;boundary=([0-9a-f]{32})",
                         res.headers["content-type"])
    assert match, res.headers["content-type"]
    boundary = match.group(1).encode()
    expected = b"".join(
        b"--%s\r\nContent-Type: text/x-digits; a=b\r\n"
        b"Content-Range: bytes %d-%d/10\r\n\r\n%s\r\n" % (boundary, s, e - 1, DATA[s:e])
        for s, e in ((0, 2), (5, 7), (8, 10))
    ) + b"--%s--" % boundary
    assert res.body == expected
    assert res.headers["content-length"] == str(len(expected))
    assert res.headers["etag"] == obj
    assert "content-range" not in res.headers


def test_one_range_left_is_a_plain_206(client, obj):
    res = client.as_user("GET", OBJ, {"Range": "bytes=0-1,20-30"})
    assert (res.status, res.body) == (206, b"01")
    assert res.headers["content-range"] == "bytes 0-1/10"


@pytest.mark.parametrize("value", ["bytes=20-", "bytes=-0", "bytes=0-5,1-6,2-7"])
def test_unsatisfiable_keeps_the_objects_headers(client, obj, value):
    res = client.as_user("GET", OBJ, {"Range": value})
    assert res.status == 416
    assert res.headers["content-range"] == "bytes */10"
    assert res.headers["etag"] == obj
    assert res.headers["content-type"] == "text/x-digits; a=b"
    assert res.body == (b"<html><h1>Requested Range Not Satisfiable</h1>"
                        b"<p>The Range requested is not available.</p></html>")
    assert res.headers["content-length"] == str(len(res.body))


@pytest.mark.parametrize("value", ["bytes=5-3", "bytes=x", "pages=1-2"])
def test_an_invalid_header_is_ignored(client, obj, value):
    res = client.as_user("GET", OBJ, {"Range": value})
    assert (res.status, res.body) == (200, DATA)


def test_a_suffix_of_an_empty_object_is_the_whole_of_it(client):
    client.as_user("PUT", "/v1/AUTH_test/c")
    client.as_user("PUT", OBJ, body=b"")
    res = client.as_user("GET", OBJ, {"Range": "bytes=-5"})
    assert (res.status, res.body) == (200, b"")
    assert client.as_user("GET", OBJ, {"Range": "bytes=0-"}).status == 416


def test_several_ranges_of_a_large_object(client):
    data = bytes(range(256)) * 1024
    client.as_user("PUT", "/v1/AUTH_test/c")
    client.as_user("PUT", OBJ, body=data)
    res = client.as_user("GET", OBJ, {"Range": "bytes=100-199999,-100"})
    assert res.status == 206
    boundary = res.headers["content-type"].split("boundary=")[1].encode()
    parts = res.body.split(b"--" + boundary)
    assert parts[0] == b"" and parts[-1] == b"--"
    bodies = [p.split(b"\r\n\r\n", 1)[1][:-2] for p in parts[1:-1]]
    assert bodies == [data[100:200000], data[-100:]]
    assert int(res.headers["content-length"]) == len(res.body)
