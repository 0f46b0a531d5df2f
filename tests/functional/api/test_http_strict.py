"""Requests Swift's server refuses, or that a proxy in front could read
differently, are refused by both backends, with Swift's answers."""

from __future__ import annotations

import pytest

from tests.functional.api import rawhttp
from tests.functional.api.apiserver import ApiServer

BACKENDS = ["eventlet", "threading"]
# Swift reads at most MAX_HEADER_COUNT (max_meta_count 90 + 36) times 1.6
# lines, the empty one included: 200 headers, 431 beyond.
MAX_HEADERS = 200


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, tmp_path_factory):
    srv = ApiServer(tmp_path_factory.mktemp("strict-" + request.param),
                    backend=request.param)
    with srv:
        srv.token = rawhttp.token(srv)
        reply = rawhttp.exchange(srv.port, (
            "PUT /v1/AUTH_test/c HTTP/1.1\r\nHost: x\r\nX-Auth-Token: %s\r\n"
            "Content-Length: 0\r\n\r\n" % srv.token).encode())
        assert reply is not None and reply.status in (201, 202), reply
        yield srv


def request(server, method, path, headers=(), body=b""):
    head = "%s %s HTTP/1.1\r\nHost: x\r\nX-Auth-Token: %s\r\n" % (
        method, path, server.token)
    head += "".join("%s: %s\r\n" % h for h in headers)
    return head.encode("latin-1") + b"\r\n" + body


def exchange(server, raw):
    reply = rawhttp.exchange(server.port, raw)
    assert reply is not None, server.output()[-3000:]
    return reply


def object_status(server, name):
    return exchange(server, request(server, "HEAD", "/v1/AUTH_test/c/" + name)).status


def test_two_different_content_lengths_are_refused(server):
    reply = exchange(server, request(
        server, "PUT", "/v1/AUTH_test/c/two-cl",
        [("Content-Length", "3"), ("Content-Length", "5")], b"abcde"))
    assert reply.status == 400
    assert reply.closed
    assert object_status(server, "two-cl") == 404


def test_the_same_content_length_twice_is_one(server):
    reply = exchange(server, request(
        server, "PUT", "/v1/AUTH_test/c/same-cl",
        [("Content-Length", "3"), ("Content-Length", "3")], b"abc"))
    assert reply.status == 201


@pytest.mark.parametrize("value", ["+3", "3_0", "0x3", " 3 3", "-3"])
def test_a_content_length_not_all_digits_is_refused(server, value):
    name = "odd-cl-%s" % value.encode().hex()
    reply = exchange(server, request(
        server, "PUT", "/v1/AUTH_test/c/" + name, [("Content-Length", value)],
        b"abc"))
    assert reply.status == 400
    assert reply.closed
    assert object_status(server, name) == 404


@pytest.mark.parametrize("body", [
    b"3\r\nabcdef\r\n0\r\n\r\n",        # more data than the size line says
    b"+3\r\nabc\r\n0\r\n\r\n",          # a size that is not hex digits
    b"0x3\r\nabc\r\n0\r\n\r\n",
])
def test_a_chunk_that_breaks_its_framing_stores_nothing(server, body):
    name = "bad-chunk-%s" % body[:6].hex()
    with rawhttp.connect(server.port) as sock:
        sock.sendall(request(server, "PUT", "/v1/AUTH_test/c/" + name,
                             [("Transfer-Encoding", "chunked")], body))
        reply = rawhttp.read_reply(sock)
        if reply is not None:
            assert reply.status >= 400, reply
        # Whatever was answered, the connection does not go on.
        assert rawhttp.closed_within(sock, 10) is not None
    assert object_status(server, name) == 404


def test_a_good_chunked_upload_is_stored(server):
    reply = exchange(server, request(
        server, "PUT", "/v1/AUTH_test/c/good-chunk",
        [("Transfer-Encoding", "chunked")], b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n"))
    assert reply.status == 201
    reply = exchange(server, request(server, "GET", "/v1/AUTH_test/c/good-chunk"))
    assert reply.body == b"abcde"


def test_an_unknown_transfer_coding_is_refused_as_swift_does(server):
    # swob.is_chunked: one coding that is not chunked is a ValueError (400),
    # a list of codings an AttributeError (501).
    reply = exchange(server, request(
        server, "PUT", "/v1/AUTH_test/c/te", [("Transfer-Encoding", "gzip")],
        b"abc"))
    assert reply.status == 400
    assert reply.body == b"Invalid Transfer-Encoding header value"
    reply = exchange(server, request(
        server, "PUT", "/v1/AUTH_test/c/te",
        [("Transfer-Encoding", "gzip, chunked")], b"3\r\nabc\r\n0\r\n\r\n"))
    assert reply.status == 501
    assert reply.body == (b"Unsupported Transfer-Coding header value specified "
                          b"in Transfer-Encoding header")
    assert reply.closed
    assert object_status(server, "te") == 404


def test_content_length_with_transfer_encoding_is_refused(server):
    reply = exchange(server, request(
        server, "PUT", "/v1/AUTH_test/c/cl-te",
        [("Content-Length", "3"), ("Transfer-Encoding", "chunked")],
        b"3\r\nabc\r\n0\r\n\r\n"))
    assert reply.status == 400
    assert object_status(server, "cl-te") == 404


def test_a_double_slash_is_not_folded(server):
    # Swift's parser keeps the path as sent; split_path refuses it: 404.
    assert exchange(server, request(server, "GET", "/v1/AUTH_test")).status == 200
    assert exchange(server, request(server, "GET", "//v1/AUTH_test")).status == 404
    assert exchange(server, request(server, "GET", "///v1/AUTH_test")).status == 404


def test_an_absolute_url_is_served_by_its_path(server):
    reply = exchange(server, request(server, "GET", "http://example.com/v1/AUTH_test"))
    assert reply.status == 200


@pytest.mark.parametrize("path", ["/v1", "/v1/", "/v2", "/whatever"])
def test_a_version_without_account_is_412_bad_url(server, path):
    reply = exchange(server, request(server, "GET", path))
    assert reply.status == 412
    assert reply.body == b"Bad URL"


@pytest.mark.parametrize("path,status", [("/", 404), ("/v2/AUTH_test", 400),
                                         ("/v1//c", 404)])
def test_other_bad_paths_keep_swifts_answers(server, path, status):
    assert exchange(server, request(server, "GET", path)).status == status


def test_header_count_limit_is_swifts(server):
    # Host and X-Auth-Token are two of them.
    many = [("X-Filler-%d" % i, "x") for i in range(MAX_HEADERS - 2)]
    reply = exchange(server, request(server, "GET", "/v1/AUTH_test", many))
    assert reply.status == 200
    many.append(("X-One-Too-Many", "x"))
    reply = exchange(server, request(server, "GET", "/v1/AUTH_test", many))
    assert reply.status == 431
    assert b"Too many headers" in reply.body
    assert reply.closed


def test_request_line_split_on_spaces_only(server):
    # A vertical tab is part of the path (Swift splits on spaces, cpython's
    # parser on any whitespace): this is not container ``c``.
    reply = exchange(server, request(server, "GET", "/v1/AUTH_test/c\x0b"))
    assert reply.status in (400, 404)


def test_header_line_and_head_size_limits_are_eventlets(server):
    """What Swift's clients get from eventlet: 400 at 8192 bytes a line
    (``max_url_length``, Swift's ``max_header_size``), and past 64 KiB."""
    line = ("X-Long", "x" * (8192 - len("X-Long: \r\n") - 1))
    assert exchange(server, request(server, "GET", "/v1/AUTH_test", [line])
                    ).status == 200
    long = ("X-Long", "x" * (8192 - len("X-Long: \r\n")))
    reply = exchange(server, request(server, "GET", "/v1/AUTH_test", [long]))
    assert reply.status == 400
    assert reply.closed
    big = [("X-Big-%d" % i, "x" * 8000) for i in range(9)]
    reply = exchange(server, request(server, "GET", "/v1/AUTH_test", big))
    assert reply.status == 400
    assert reply.closed
