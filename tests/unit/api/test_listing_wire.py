"""Account and container listings on the wire, as Swift renders them.

Fields and their order (``storage_policy`` in an account listing), JSON's
``\\u`` escapes, the XML layout of Swift's ``listing_formats``, ``path=``,
and the markers and limits Swift accepts.
"""

from __future__ import annotations

import json

import pytest

A = "/v1/AUTH_test"
C = A + "/c"

PATH_NAMES = [
    "/file1", "/dir1/", "/dir1/file2",
    "file1", "file A", "dir1/", "dir2/", "dir1/file2", "dir1/subdir1/",
    "dir1/subdir1/file3", "dir1/subdir1/deeper/file4",
]


@pytest.fixture
def names(client):
    client.as_user("PUT", C)
    for name in PATH_NAMES:
        assert client.as_user("PUT", C + "/" + name, body=b"x").status == 201
    return PATH_NAMES


def listing(client, query, path=C):
    res = client.as_user("GET", path, query=query)
    assert res.status in (200, 204), res
    return res.body.decode("utf-8").splitlines()


@pytest.mark.parametrize("path, expected", [
    ("", ["dir1/", "dir2/", "file A", "file1"]),
    ("/", ["/file1", "/dir1/"][::-1]),
    ("dir1", ["dir1/file2", "dir1/subdir1/"]),
    ("dir1/", ["dir1/file2", "dir1/subdir1/"]),
    ("dir1//", ["dir1/file2", "dir1/subdir1/"]),
    ("dir1/subdir1", ["dir1/subdir1/file3"]),
    ("dir2", []),
    ("nothing", []),
])
def test_path_lists_what_is_directly_under(client, names, path, expected):
    assert listing(client, "path=" + path) == sorted(expected)


def test_path_overrides_prefix_and_delimiter(client, names):
    query = "path=dir1&prefix=file&delimiter=x"
    assert listing(client, query) == ["dir1/file2", "dir1/subdir1/"]
    # Reversed, Swift's broker jumps below "dir1/subdir1/" when it meets a
    # deeper name, which leaves that pseudo-directory out: so does storaged.
    assert listing(client, "path=dir1&reverse=on") == ["dir1/file2"]
    assert listing(client, "path=dir1&marker=dir1/file2") == ["dir1/subdir1/"]
    assert listing(client, "path=dir1&limit=1") == ["dir1/file2"]


def test_markers_may_hold_nul(client):
    for name in ("b1", "b2", "b3"):
        client.as_user("PUT", A + "/" + name)
    assert listing(client, "marker=b1%00", A) == ["b2", "b3"]
    assert listing(client, "reverse=on&marker=b3%00&end_marker=b1", A) == [
        "b3", "b2"]
    assert listing(client, "end_marker=b2%00", A) == ["b1", "b2"]


def test_reverse_delimited_listing_skips_the_end_marker_subdir(client):
    client.as_user("PUT", C)
    for name in ("a/1", "a/2", "b/1", "c"):
        client.as_user("PUT", C + "/" + name, body=b"x")
    # Swift's broker swaps the markers and then leaves out a subdir equal
    # to the (swapped) marker: the client's end_marker.
    assert listing(client, "delimiter=/&reverse=on&end_marker=a/") == ["c", "b/"]
    assert listing(client, "delimiter=/&reverse=on&marker=b/") == ["a/"]
    assert listing(client, "delimiter=/&marker=a/") == ["b/", "c"]


@pytest.mark.parametrize("limit", ["abc", "-1", "1.5", ""])
def test_a_limit_that_is_not_a_number_is_ignored(client, limit):
    for name in ("b1", "b2"):
        client.as_user("PUT", A + "/" + name)
    assert listing(client, "limit=" + limit, A) == ["b1", "b2"]


def test_vary_accept_unless_the_query_chose_the_format(client):
    client.as_user("PUT", C)
    for path in (A, C):
        for method in ("GET", "HEAD"):
            res = client.as_user(method, path)
            assert res.headers["vary"] == "Accept", (method, path)
            res = client.as_user(method, path, query="format=json")
            assert "vary" not in res.headers, (method, path)


def test_a_limit_over_the_maximum(client):
    client.as_user("PUT", C)
    for path in (A, C):
        res = client.as_user("GET", path, query="limit=10001")
        assert (res.status, res.body) == (412, b"Maximum limit is 10000")
        assert res.headers["content-type"] == "text/html; charset=UTF-8"


def test_account_listing_fields(client):
    client.as_user("PUT", A + "/caf\u00e9")
    client.as_user("PUT", A + "/caf\u00e9/o", body=b"1234")
    res = client.as_user("GET", A, query="format=json")
    assert res.body.startswith(b'[{"name": "caf\\u00e9", "count": 1, "bytes": 4, '
                               b'"last_modified": "')
    entry = json.loads(res.body)[0]
    assert list(entry) == ["name", "count", "bytes", "last_modified",
                           "storage_policy"]
    assert entry["storage_policy"] == "Policy-0"


def test_account_xml_listing_as_swift(client):
    client.as_user("PUT", A + "/a<&>\"")
    client.as_user("PUT", A + "/d/x")
    client.as_user("PUT", A + "/d")
    client.as_user("PUT", A + "/d-x")
    res = client.as_user("GET", A, query="format=xml&delimiter=-")
    entries = json.loads(client.as_user("GET", A, query="format=json").body)
    first = entries[0]
    assert res.body == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<account name="AUTH_test">\n'
        b"<container><name>a&lt;&amp;&gt;\"</name><count>0</count><bytes>0</bytes>"
        b"<last_modified>" + first["last_modified"].encode() + b"</last_modified>"
        b"<storage_policy>Policy-0</storage_policy></container>\n"
        b"<container><name>d</name><count>0</count><bytes>0</bytes>"
        b"<last_modified>" + entries[1]["last_modified"].encode() + b"</last_modified>"
        b"<storage_policy>Policy-0</storage_policy></container>\n"
        b'<subdir name="d-" />\n'
        b"</account>"
    )


def test_container_xml_listing_as_swift(client):
    client.as_user("PUT", C)
    client.as_user("PUT", C + "/a\u00e9", {"Content-Type": "text/plain"}, body=b"1")
    client.as_user("PUT", C + "/d/x", body=b"1")
    res = client.as_user("GET", C, query="format=xml&delimiter=/")
    item = json.loads(client.as_user("GET", C, query="format=json").body)[0]
    assert res.body == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<container name="c"><object><name>a\xc3\xa9</name>'
        b"<hash>c4ca4238a0b923820dcc509a6f75849b</hash><bytes>1</bytes>"
        b"<content_type>text/plain</content_type>"
        b"<last_modified>" + item["last_modified"].encode() + b"</last_modified>"
        b'</object><subdir name="d/"><name>d/</name></subdir></container>'
    )
    res = client.as_user("GET", C, query="format=json")
    assert b'"name": "a\\u00e9"' in res.body


@pytest.mark.parametrize("query, accept, expected", [
    ("", None, "text/plain"),
    ("", "application/json", "application/json"),
    ("", "text/xml", "text/xml"),
    ("", "application/xml", "application/xml"),
    ("", "*/*", "text/plain"),
    ("", "application/*", "application/json"),
    ("", "text/plain;q=0.5, application/json", "application/json"),
    ("", "application/json;q=0.2, text/*;q=0.2", "application/json"),
    ("", "text/*, application/json", "application/json"),
    ("", "image/png;q=1, text/xml;q=0", "text/xml"),
    ("format=json", "text/xml", "application/json"),
    ("format=XML", None, "application/xml"),
    ("format=application/json", None, "text/plain"),
    ("format=yaml", "application/json", "text/plain"),
])
def test_listing_media_type_as_swift_picks_it(client, query, accept, expected):
    client.as_user("PUT", C)
    headers = {"Accept": accept} if accept else {}
    for path in (A, C):
        for method in ("GET", "HEAD"):
            res = client.as_user(method, path, headers, query=query)
            assert res.status in (200, 204), (path, method, res)
            assert res.headers["content-type"] == expected + "; charset=utf-8"


def test_accept_nothing_listable(client):
    client.as_user("PUT", C)
    res = client.as_user("GET", C, {"Accept": "image/png"})
    assert res.status == 406
    assert res.body == (b"<html><h1>Not Acceptable</h1><p>The resource is not "
                        b"available in a format acceptable to your browser.</p></html>")
    # The format is picked first, as Swift's listing_formats does.
    assert client.as_user("GET", A + "/nothing", {"Accept": "image/png"}).status == 406
    for bad in ("json", "text/plain;q=1;q=2", "text/plain;q=x", "text/plain;a=b=c"):
        res = client.as_user("GET", C, {"Accept": bad})
        assert (res.status, res.body) == (400, b"Invalid Accept header"), bad
