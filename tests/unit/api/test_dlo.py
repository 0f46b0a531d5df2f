"""Dynamic large objects (``X-Object-Manifest``) through WSGI calls, as Swift's dlo."""

from __future__ import annotations

import hashlib
import logging

import pytest

from storaged import exception

A = "/v1/AUTH_test"


def md5(data):
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def dlo(client):
    """``c/man`` over segments ``segs/part/00..04`` of 10 bytes each."""
    for name in ("c", "segs"):
        assert client.as_user("PUT", "%s/%s" % (A, name)).status == 201
    parts = [bytes([ord("a") + i]) * 10 for i in range(5)]
    for i, data in enumerate(parts):
        assert client.as_user("PUT", "%s/segs/part/%02d" % (A, i),
                              body=data).status == 201
    # Not a segment: another prefix.
    client.as_user("PUT", A + "/segs/other", body=b"zzz")
    res = client.as_user("PUT", A + "/c/man", {
        "X-Object-Manifest": "segs/part/", "Content-Type": "text/x-big",
        "X-Object-Meta-Kind": "dlo",
    }, body=b"")
    assert res.status == 201, res
    return parts


def dlo_etag(parts):
    return '"%s"' % md5("".join(md5(p) for p in parts).encode())


def test_get_concatenates_segments_in_listing_order(client, dlo):
    res = client.as_user("GET", A + "/c/man")
    assert res.status == 200
    assert res.body == b"".join(dlo)
    assert res.headers["content-length"] == "50"
    assert res.headers["etag"] == dlo_etag(dlo)
    assert res.headers["content-type"] == "text/x-big"
    assert res.headers["x-object-manifest"] == "segs/part/"
    assert res.headers["x-object-meta-kind"] == "dlo"
    head = client.as_user("HEAD", A + "/c/man")
    assert head.status == 200 and head.body == b""
    assert head.headers["content-length"] == "50"
    assert head.headers["etag"] == dlo_etag(dlo)


def test_segments_added_later_are_part_of_it(client, dlo):
    client.as_user("PUT", A + "/segs/part/05", body=b"ff")
    res = client.as_user("GET", A + "/c/man")
    assert res.body == b"".join(dlo) + b"ff"
    assert res.headers["etag"] == dlo_etag([*dlo, b"ff"])


def test_multipart_manifest_get_reads_the_manifest(client, dlo):
    res = client.as_user("GET", A + "/c/man", query="multipart-manifest=get")
    assert res.status == 200
    assert res.body == b""
    assert res.headers["etag"] == md5(b"")     # a plain object's: bare
    assert res.headers["x-object-manifest"] == "segs/part/"


@pytest.mark.parametrize("rng, status, body, content_range", [
    ("bytes=5-14", 206, b"aaaaabbbbb", "bytes 5-14/50"),
    ("bytes=-3", 206, b"eee", "bytes 47-49/50"),
    ("bytes=45-", 206, b"eeeee", "bytes 45-49/50"),
    ("bytes=9-40", 206, b"a" + b"b" * 10 + b"c" * 10 + b"d" * 10 + b"e",
     "bytes 9-40/50"),
    ("bytes=0-1,5-6", 200, None, None),         # several ranges: the whole
])
def test_ranges_across_segments(client, dlo, rng, status, body, content_range):
    res = client.as_user("GET", A + "/c/man", {"Range": rng})
    assert res.status == status
    assert res.body == (body if body is not None else b"".join(dlo))
    assert res.headers.get("content-range") == content_range
    assert res.headers["content-length"] == str(len(res.body))


def test_unsatisfiable_range(client, dlo):
    res = client.as_user("GET", A + "/c/man", {"Range": "bytes=50-"})
    assert res.status == 416
    assert res.headers["content-range"] == "bytes */50"


def test_conditions_use_the_large_object_etag(client, dlo):
    etag = dlo_etag(dlo)
    res = client.as_user("GET", A + "/c/man", {"If-None-Match": etag})
    assert res.status == 304
    assert res.headers["etag"] == etag
    assert res.headers["accept-ranges"] == "bytes"
    res = client.as_user("GET", A + "/c/man", {"If-Match": etag})
    assert res.status == 200 and res.body == b"".join(dlo)
    res = client.as_user("GET", A + "/c/man", {"If-Match": md5(b"")})
    assert res.status == 412


def test_empty_and_missing_segment_container(client):
    client.as_user("PUT", A + "/c")
    client.as_user("PUT", A + "/segs")
    client.as_user("PUT", A + "/c/man", {"X-Object-Manifest": "segs/none"})
    res = client.as_user("GET", A + "/c/man")
    assert (res.status, res.body) == (200, b"")
    assert res.headers["etag"] == '"%s"' % md5(b"")
    client.as_user("PUT", A + "/c/man2", {"X-Object-Manifest": "nowhere/x"})
    assert client.as_user("GET", A + "/c/man2").status == 404


@pytest.mark.parametrize("value", ["noslash", "/c/p", "c/", "c//p", "c/p?x",
                                   "c/p&x"])
def test_bad_manifest_header(client, value):
    client.as_user("PUT", A + "/c")
    res = client.as_user("PUT", A + "/c/man", {"X-Object-Manifest": value})
    assert res.status == 400
    assert res.body == b"X-Object-Manifest must be in the format container/prefix"


def test_post_makes_and_unmakes_a_manifest(client, dlo):
    client.as_user("PUT", A + "/c/plain", body=b"body")
    res = client.as_user("POST", A + "/c/plain", {"X-Object-Manifest": "segs/part/"})
    assert res.status == 202
    assert client.as_user("GET", A + "/c/plain").body == b"".join(dlo)
    client.as_user("POST", A + "/c/plain", {"X-Object-Meta-A": "b"})
    assert client.as_user("GET", A + "/c/plain").body == b"body"


def test_utf8_names(client):
    client.as_user("PUT", A + "/c")
    client.as_user("PUT", A + "/s\u00e9gs")
    client.as_user("PUT", A + "/s%C3%A9gs/p\u00e4rt1", body=b"12")
    client.as_user("PUT", A + "/s%C3%A9gs/p\u00e4rt2", body=b"34")
    res = client.as_user("PUT", A + "/c/man", {
        "X-Object-Manifest": b"s%C3%A9gs/p%C3%A4rt"})
    assert res.status == 201
    res = client.as_user("PUT", A + "/c/man3", {
        "X-Object-Manifest": "s\u00e9gs/p\u00e4rt".encode()})
    assert res.status == 201
    assert client.as_user("GET", A + "/c/man").body == b"1234"
    assert client.as_user("GET", A + "/c/man3").body == b"1234"
    res = client.as_user("PUT", A + "/c/man4", {"X-Object-Manifest": b"c/\xff"})
    assert res.status == 400


def test_changed_segment_cuts_the_body_and_is_logged(client, dlo, caplog):
    caplog.set_level(logging.ERROR)
    # The third segment vanishes between the listing and its read.
    app = client.app
    real = app.service.get_object
    calls = []

    def flaky(a, c, o, **kw):
        calls.append(o)
        if o == "part/02":
            raise exception.ObjectNotFound(what="segs/part/02")
        return real(a, c, o, **kw)

    app.service.get_object = flaky
    try:
        with pytest.raises(exception.StoragedError):
            client.as_user("GET", A + "/c/man")
    finally:
        app.service.get_object = real
    assert "part/02" in calls
    assert any("cut" in r.getMessage() for r in caplog.records)


def test_first_segment_missing_is_409(client, dlo):
    app = client.app
    real = app.service.get_object

    def gone(a, c, o, **kw):
        if o.startswith("part/"):
            raise exception.ObjectNotFound(what=o)
        return real(a, c, o, **kw)

    app.service.get_object = gone
    try:
        res = client.as_user("GET", A + "/c/man")
    finally:
        app.service.get_object = real
    assert res.status == 409


def test_listing_pages_are_followed(client, dlo, monkeypatch):
    # Pages of two names: five segments take three listings per walk.
    monkeypatch.setattr("storaged.api.handlers.dlo.MAX_LIMIT", 2)
    res = client.as_user("GET", A + "/c/man")
    assert res.body == b"".join(dlo)
    assert res.headers["content-length"] == "50"
    assert res.headers["etag"] == dlo_etag(dlo)
    res = client.as_user("GET", A + "/c/man", {"Range": "bytes=38-41"})
    assert (res.status, res.body) == (206, b"ddee")
