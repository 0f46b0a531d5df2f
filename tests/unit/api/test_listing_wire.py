"""Account and container listings on the wire, as Swift renders them.

Fields and their order (``storage_policy`` in an account listing), JSON's
``\\u`` escapes, the XML layout of Swift's ``listing_formats``, ``path=``,
and the markers and limits Swift accepts.
"""

from __future__ import annotations

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
