"""Server-side copy: COPY with Destination, PUT with X-Copy-From, as Swift's."""

from __future__ import annotations

import hashlib
import io
import os
from urllib import parse as urlparse

import pytest

from storaged.api import app as app_mod
from storaged.api.handlers.objects import SMALL_OBJECT
from tests.unit.api.conftest import Client
from tests.unit.api.conftest import make_conf
from tests.unit.api.conftest import sync_headers

MiB = 1024 * 1024
SRC = "/v1/AUTH_test/c/o"
DATA = b"the source's data"


def md5(data):
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def source(client):
    for path in ("/v1/AUTH_test/c", "/v1/AUTH_test/c2"):
        assert client.as_user("PUT", path).status == 201
    res = client.as_user("PUT", SRC, {
        "Content-Type": "application/test",
        "Content-Encoding": "gzip",
        "Content-Disposition": "attachment; filename=myfile",
        "X-Object-Meta-Color": "blue",
        "X-Object-Meta-Size": "3",
    }, body=DATA)
    assert res.status == 201
    return client.as_user("HEAD", SRC)


def meta(res):
    return {k: v for k, v in res.headers.items() if k.startswith("x-object-meta-")}


def listed(client, container, name):
    res = client.as_user("GET", "/v1/AUTH_test/" + container, query="format=json")
    return {o["name"]: o for o in res.json()}[name]


@pytest.mark.parametrize("dest", ["c/copy", "/c/copy", "c2/copy", "/c2/copy"])
def test_copy_within_and_across_containers(client, source, dest):
    res = client.as_user("COPY", SRC, {"Destination": dest,
                                       "X-Object-Meta-Extra": "fresh"})
    assert res.status == 201, res
    assert res.headers["x-copied-from"] == "c/o"
    assert res.headers["x-copied-from-account"] == "AUTH_test"
    assert res.headers["x-copied-from-last-modified"] == source.headers["last-modified"]
    assert res.headers["etag"].strip('"') == md5(DATA)
    assert "last-modified" in res.headers
    assert meta(res) == {"x-object-meta-color": "blue", "x-object-meta-size": "3",
                         "x-object-meta-extra": "fresh"}
    path = "/v1/AUTH_test/" + dest.lstrip("/")
    copy = client.as_user("GET", path)
    assert copy.body == DATA
    assert meta(copy) == meta(res)
    assert copy.headers["content-type"] == "application/test"
    assert copy.headers["content-encoding"] == "gzip"
    assert copy.headers["content-disposition"] == "attachment; filename=myfile"
    entry = listed(client, dest.lstrip("/").split("/")[0], "copy")
    assert (entry["bytes"], entry["hash"], entry["content_type"]) == (
        len(DATA), md5(DATA), "application/test")
    # The source is untouched.
    assert client.as_user("GET", SRC).body == DATA


def test_request_headers_override_the_sources(client, source):
    res = client.as_user("COPY", SRC, {
        "Destination": "c2/copy",
        "X-Object-Meta-Color": "red",
        "Content-Type": "application/test-changed",
        "Content-Encoding": "not_gzip",
    })
    assert res.status == 201
    copy = client.as_user("HEAD", "/v1/AUTH_test/c2/copy")
    assert meta(copy) == {"x-object-meta-color": "red", "x-object-meta-size": "3"}
    assert copy.headers["content-type"] == "application/test-changed"
    assert copy.headers["content-encoding"] == "not_gzip"
    assert copy.headers["content-disposition"] == "attachment; filename=myfile"


def test_fresh_metadata_drops_the_sources(client, source):
    res = client.as_user("COPY", SRC, {
        "Destination": "c2/copy", "X-Fresh-Metadata": "true",
        "X-Object-Meta-Extra": "fresher",
    })
    assert res.status == 201
    assert meta(res) == {"x-object-meta-extra": "fresher"}
    copy = client.as_user("GET", "/v1/AUTH_test/c2/copy")
    assert copy.body == DATA
    assert meta(copy) == {"x-object-meta-extra": "fresher"}
    assert "content-encoding" not in copy.headers
    assert "content-disposition" not in copy.headers
    # No Content-Type in the request: still the source's.
    assert copy.headers["content-type"] == "application/test"
    res = client.as_user("COPY", SRC, {"Destination": "c2/copy",
                                       "X-Fresh-Metadata": "true",
                                       "Content-Type": "application/updated"})
    assert client.as_user("HEAD", "/v1/AUTH_test/c2/copy").headers[
        "content-type"] == "application/updated"


def test_detect_content_type_guesses_from_the_destination(client, source):
    res = client.as_user("PUT", "/v1/AUTH_test/c2/page.html",
                         {"X-Copy-From": "c/o", "X-Detect-Content-Type": "true"})
    assert res.status == 201
    assert client.as_user("HEAD", "/v1/AUTH_test/c2/page.html").headers[
        "content-type"] == "text/html"


@pytest.mark.parametrize("copy_from", ["c/o", "/c/o", "%2Fc%2Fo"])
def test_put_with_x_copy_from(client, source, copy_from):
    res = client.as_user("PUT", "/v1/AUTH_test/c2/copy",
                         {"X-Copy-From": copy_from, "X-Object-Meta-New": "1"})
    assert res.status == 201, res
    assert res.headers["x-copied-from"] == "c/o"
    assert res.headers["x-copied-from-account"] == "AUTH_test"
    copy = client.as_user("GET", "/v1/AUTH_test/c2/copy")
    assert copy.body == DATA
    assert meta(copy) == {"x-object-meta-color": "blue", "x-object-meta-size": "3",
                          "x-object-meta-new": "1"}


def test_encoded_and_utf8_names(client, source):
    # Swift's own test name: "%2F" and "%20" are part of the name.
    name = "dealde%2Fl04 011e%204c8df/flash.png"
    quoted = urlparse.quote(name)
    assert client.as_user("PUT", "/v1/AUTH_test/c/" + quoted, body=b"png").status == 201
    res = client.as_user("COPY", "/v1/AUTH_test/c/" + quoted,
                         {"Destination": urlparse.quote("c2/ünï/cödé")})
    assert res.status == 201, res
    assert res.headers["x-copied-from"] == urlparse.quote("c/" + name)
    assert client.as_user("GET", "/v1/AUTH_test/c2/%C3%BCn%C3%AF/c%C3%B6d%C3%A9"
                          ).body == b"png"
    res = client.as_user("PUT", "/v1/AUTH_test/c2/back",
                         {"X-Copy-From": urlparse.quote("/c2/ünï/cödé")})
    assert res.status == 201
    assert res.headers["x-copied-from"] == urlparse.quote("c2/ünï/cödé")
    # Raw UTF-8 bytes in the header work too.
    res = client.as_user("PUT", "/v1/AUTH_test/c2/raw",
                         {"X-Copy-From": "c2/ünï/cödé".encode()})
    assert res.status == 201
    assert client.as_user("GET", "/v1/AUTH_test/c2/raw").body == b"png"


def test_utf8_metadata_is_copied_byte_for_byte(client, source):
    value = "värde".encode()
    client.as_user("POST", SRC, {"X-Object-Meta-Note": value})
    res = client.as_user("COPY", SRC, {"Destination": "c2/copy"})
    assert res.headers["x-object-meta-note"] == value.decode("latin-1")
    assert client.as_user("HEAD", "/v1/AUTH_test/c2/copy").headers[
        "x-object-meta-note"] == value.decode("latin-1")


def test_copy_onto_itself_updates_metadata(client, source):
    res = client.as_user("COPY", SRC, {"Destination": "c/o",
                                       "X-Object-Meta-Color": "green"})
    assert res.status == 201
    copy = client.as_user("GET", SRC)
    assert copy.body == DATA
    assert copy.headers["x-object-meta-color"] == "green"


def test_range_copies_a_part(client, source):
    res = client.as_user("COPY", SRC, {"Destination": "c2/part",
                                       "Range": "bytes=4-9"})
    assert res.status == 201, res
    assert client.as_user("GET", "/v1/AUTH_test/c2/part").body == DATA[4:10]
    assert listed(client, "c2", "part")["hash"] == md5(DATA[4:10])


def test_conditions_apply_to_the_source(client, source):
    res = client.as_user("COPY", SRC, {"Destination": "c2/copy",
                                       "If-Match": '"not-the-etag"'})
    assert res.status == 412
    res = client.as_user("PUT", "/v1/AUTH_test/c2/copy",
                         {"X-Copy-From": "c/o", "If-Match": md5(DATA)})
    assert res.status == 201


def test_a_big_object_is_streamed(client, source, monkeypatch):
    # Bigger than the small-object threshold, and than two of the file
    # back end's chunks (4 MiB by default).
    data = os.urandom(9 * MiB + 12345)
    assert len(data) > SMALL_OBJECT
    assert client.as_user("PUT", "/v1/AUTH_test/c/big", body=data).status == 201
    service = client.app.service
    real_put = service.put_object
    reads = []

    def spy(account, container, name, src, size=None, **kwargs):
        assert not isinstance(src, (bytes, bytearray))
        real_read = src.read

        def read(n=-1):
            chunk = real_read(n)
            reads.append(len(chunk))
            return chunk

        src.read = read
        return real_put(account, container, name, src, size, **kwargs)

    monkeypatch.setattr(service, "put_object", spy)
    res = client.as_user("COPY", "/v1/AUTH_test/c/big", {"Destination": "c2/big"})
    assert res.status == 201, res
    assert res.headers["etag"].strip('"') == md5(data)
    # Read in pieces of at most a back end chunk, never the whole object.
    assert sum(reads) == len(data)
    assert max(reads) <= 4 * MiB
    monkeypatch.undo()
    copy = client.as_user("GET", "/v1/AUTH_test/c2/big")
    assert copy.body == data
    assert listed(client, "c2", "big")["hash"] == md5(data)


def test_the_sources_etag_is_checked(client, source, monkeypatch):
    from storaged.api.handlers import copy as copy_mod

    real = copy_mod._ChunkReader.read

    def flip(self, size=-1):
        data = real(self, size)
        return data[:-1] + b"!" if data else data

    monkeypatch.setattr(copy_mod._ChunkReader, "read", flip)
    res = client.as_user("COPY", SRC, {"Destination": "c2/copy"})
    assert res.status == 422
    assert client.as_user("HEAD", "/v1/AUTH_test/c2/copy").status == 404


# -- errors -------------------------------------------------------------------

ERRORS = [
    ("COPY", SRC, {}, 412, b"Destination header required"),
    ("COPY", SRC, {"Destination": ""}, 412, b"Destination header required"),
    ("COPY", SRC, {"Destination": "nocontainer"}, 412,
     b"Destination header must be of the form <container name>/<object name>"),
    ("COPY", SRC, {"Destination": "//o"}, 412,
     b"Destination header must be of the form <container name>/<object name>"),
    ("COPY", SRC, {"Destination": "c/"}, 412,
     b"Destination header must be of the form <container name>/<object name>"),
    ("COPY", SRC, {"Destination": "c2/x", "Destination-Account": ""}, 412,
     b"Account name cannot be empty"),
    ("COPY", SRC, {"Destination": "c2/x", "Destination-Account": "AUTH_test%2Fc"},
     412, b"Account name cannot contain slashes"),
    ("PUT", "/v1/AUTH_test/c2/x", {"X-Copy-From": "o"}, 412,
     b"X-Copy-From header must be of the form <container name>/<object name>"),
    ("PUT", "/v1/AUTH_test/c2/x", {"X-Copy-From": "c/o",
                                   "X-Copy-From-Account": "a/b"}, 412,
     b"Account name cannot contain slashes"),
    ("PUT", "/v1/AUTH_test/c2/x", {"X-Copy-From": "c/%FF"}, 412,
     b"Invalid UTF8 or contains NULL"),
    ("PUT", "/v1/AUTH_test/c2/x", {"X-Copy-From": "c/" + "n" * 1025}, 400,
     b"Object name length of 1025 longer than 1024"),
    ("PUT", "/v1/AUTH_test/c2/x", {"X-Copy-From": "c/missing"}, 404, None),
    ("PUT", "/v1/AUTH_test/c2/x", {"X-Copy-From": "nocont/o"}, 404, None),
    ("PUT", "/v1/AUTH_test/nocont/x", {"X-Copy-From": "c/o"}, 404, None),
    ("COPY", "/v1/AUTH_test/c/missing", {"Destination": "c2/x"}, 404, None),
    ("COPY", SRC, {"Destination": "nocont/x"}, 404, None),
    ("COPY", SRC, {"Destination": "c2/x", "X-Delete-At": "soon"}, 400,
     b"Non-integer X-Delete-At"),
]


@pytest.mark.parametrize("method, path, headers, status, body", ERRORS)
def test_errors(client, source, method, path, headers, status, body):
    res = client.as_user(method, path, headers)
    assert res.status == status, res
    if body is not None:
        assert res.body == body
    if status == 412 and body != b"Invalid UTF8 or contains NULL":
        # Swift's 412s here keep swob's default type.
        assert res.headers["content-type"] == "text/html; charset=UTF-8"
    assert client.as_user("HEAD", "/v1/AUTH_test/c2/x").status == 404


def test_heartbeat_is_refused(client, source):
    res = client.as_user("PUT", "/v1/AUTH_test/c2/x", {"X-Copy-From": "c/o"},
                         query="heartbeat=on")
    assert res.status == 501
    assert res.body == (b"heartbeat is not supported: heartbeat responses to "
                        b"copies are not available on this server")
    assert client.as_user("HEAD", "/v1/AUTH_test/c2/x").status == 404


def test_a_body_is_refused(client, source):
    res = client.as_user("PUT", "/v1/AUTH_test/c2/x", {"X-Copy-From": "c/o"},
                         body=b"data")
    assert (res.status, res.body) == (400, b"Copy requests require a zero byte body")
    assert res.headers["content-type"] == "text/plain"
    assert client.as_user("HEAD", "/v1/AUTH_test/c2/x").status == 404


def test_an_empty_x_copy_from_is_a_plain_put(client, source):
    res = client.as_user("PUT", "/v1/AUTH_test/c2/x", {"X-Copy-From": ""},
                         body=b"plain")
    assert res.status == 201
    assert "x-copied-from" not in res.headers
    assert client.as_user("GET", "/v1/AUTH_test/c2/x").body == b"plain"


def test_source_larger_than_the_largest_object(tmp_path):
    application = app_mod.make_app(make_conf(tmp_path, "max_object_size = 1000\n"))
    client = Client(application)
    try:
        client.as_user("PUT", "/v1/AUTH_test/c")
        res = client.as_user("PUT", "/v1/AUTH_test/c/o", body=b"x" * 1000)
        assert res.status == 201
        assert client.as_user("COPY", "/v1/AUTH_test/c/o",
                              {"Destination": "c/ok"}).status == 201
        # Stored before the limit was lowered, say.
        application.service.put_object("AUTH_test", "c", "o", io.BytesIO(b"x" * 1001),
                                        1001)
        res = client.as_user("COPY", "/v1/AUTH_test/c/o", {"Destination": "c/big"})
        assert res.status == 413
        assert client.as_user("HEAD", "/v1/AUTH_test/c/big").status == 404
    finally:
        application.close()


def test_405_allows_copy(client, source):
    res = client.as_user("OPTIONS", SRC)
    assert res.status == 405
    assert res.headers["allow"] == "COPY, DELETE, GET, HEAD, POST, PUT"


def test_info_advertises_no_copy(client):
    # Swift's copy middleware registers nothing in /info.
    assert "copy" not in client.call("GET", "/info").json()


# -- permissions ----------------------------------------------------------------


@pytest.fixture
def accounts(client, source):
    res = client.as_user("PUT", "/v1/AUTH_other/oc", login="other:admin")
    assert res.status == 201
    res = client.as_user("PUT", "/v1/AUTH_other/oc/theirs", body=b"other's",
                         login="other:admin")
    assert res.status == 201


LOGINS = ["test:tester", "test:reader", "other:admin", "ops:root"]


@pytest.mark.parametrize("login", LOGINS)
@pytest.mark.parametrize("src_account, dest_account", [
    ("AUTH_test", "AUTH_other"), ("AUTH_other", "AUTH_test"),
    ("AUTH_test", "AUTH_test"),
])
def test_refused_exactly_when_a_get_or_put_would_be(client, accounts, login,
                                                    src_account, dest_account):
    src = {"AUTH_test": ("c", "o", DATA), "AUTH_other": ("oc", "theirs", b"other's")}
    dest_cont = {"AUTH_test": "c2", "AUTH_other": "oc"}[dest_account]
    container, obj, data = src[src_account]
    source_path = "/v1/%s/%s/%s" % (src_account, container, obj)
    can_get = client.as_user("HEAD", source_path, login=login).status == 200
    probe = "/v1/%s/%s/probe" % (dest_account, dest_cont)
    can_put = client.as_user("PUT", probe, body=b"", login=login).status == 201
    expected = 201 if (can_get and can_put) else 403
    for i, (method, path, headers) in enumerate([
        ("COPY", source_path, {"Destination": "%s/copy-%s" % (dest_cont, login),
                               "Destination-Account": dest_account}),
        ("PUT", "/v1/%s/%s/put-%s" % (dest_account, dest_cont, login),
         {"X-Copy-From": "%s/%s" % (container, obj),
          "X-Copy-From-Account": src_account}),
    ]):
        res = client.as_user(method, path, headers, login=login)
        assert res.status == expected, (method, res)
        dest = "/v1/%s/%s/%s-%s" % (dest_account, dest_cont,
                                    ("copy", "put")[i], login)
        copied = client.as_user("GET", dest, login="ops:root")
        if expected == 201:
            assert copied.body == data
            assert res.headers["x-copied-from-account"] == src_account
        else:
            assert copied.status == 404


def test_a_missing_source_in_a_forbidden_account_is_403(client, accounts):
    res = client.as_user("PUT", "/v1/AUTH_test/c2/x",
                         {"X-Copy-From": "nocont/o",
                          "X-Copy-From-Account": "AUTH_other"})
    assert res.status == 403


@pytest.fixture
def synced(client, source):
    res = client.as_user("PUT", "/v1/AUTH_test/dst",
                         {"X-Container-Sync-Key": "sync-secret"})
    assert res.status == 201
    client.as_user("PUT", "/v1/AUTH_test/dst/o", body=b"synced")
    return "/v1/AUTH_test/dst"


def test_container_sync_senders_may_not_copy(client, synced):
    path = synced + "/o"
    res = client.call("COPY", path, dict(sync_headers("COPY", path),
                                         Destination="dst/copy"))
    assert res.status == 403
    path = synced + "/copy"
    res = client.call("PUT", path, dict(sync_headers("PUT", path),
                                        **{"X-Copy-From": "dst/o"}))
    assert res.status == 403
    legacy = {"X-Container-Sync-Key": "sync-secret", "X-Timestamp": "1700000000.5"}
    res = client.call("PUT", path, dict(legacy, **{"X-Copy-From": "dst/o"}))
    assert res.status == 403
    res = client.call("COPY", synced + "/o", dict(legacy, Destination="dst/copy"))
    assert res.status == 401
    assert client.as_user("HEAD", path).status == 404


# -- large objects ----------------------------------------------------------------


@pytest.fixture
def segments(client, source):
    assert client.as_user("PUT", "/v1/AUTH_test/segs").status == 201
    for name, data in (("p1", b"a" * 10), ("p2", b"b" * 7)):
        assert client.as_user("PUT", "/v1/AUTH_test/segs/" + name,
                              body=data).status == 201
    return b"a" * 10 + b"b" * 7


def test_dlo_copy_is_its_content_or_its_manifest(client, segments):
    res = client.as_user("PUT", "/v1/AUTH_test/c/dlo",
                         {"X-Object-Manifest": "segs/p", "X-Object-Meta-K": "v"})
    assert res.status == 201
    res = client.as_user("COPY", "/v1/AUTH_test/c/dlo", {"Destination": "c2/whole"})
    assert res.status == 201, res
    copy = client.as_user("GET", "/v1/AUTH_test/c2/whole")
    assert copy.body == segments
    assert "x-object-manifest" not in copy.headers
    assert copy.headers["x-object-meta-k"] == "v"
    res = client.as_user("COPY", "/v1/AUTH_test/c/dlo", {"Destination": "c2/man"},
                         query="multipart-manifest=get")
    assert res.status == 201, res
    man = client.as_user("GET", "/v1/AUTH_test/c2/man", query="multipart-manifest=get")
    assert (man.headers["x-object-manifest"], man.body) == ("segs/p", b"")
    assert client.as_user("GET", "/v1/AUTH_test/c2/man").body == segments


def test_slo_copy_is_its_content_or_its_manifest(client, segments):
    manifest = b'[{"path": "/segs/p1"}, {"path": "/segs/p2"}]'
    res = client.as_user("PUT", "/v1/AUTH_test/c/slo", body=manifest,
                         query="multipart-manifest=put")
    assert res.status == 201, res
    res = client.as_user("COPY", "/v1/AUTH_test/c/slo", {"Destination": "c2/whole"})
    assert res.status == 201, res
    copy = client.as_user("GET", "/v1/AUTH_test/c2/whole")
    assert copy.body == segments
    assert "x-static-large-object" not in copy.headers
    assert listed(client, "c2", "whole")["hash"] == md5(segments)
    res = client.as_user("PUT", "/v1/AUTH_test/c2/man",
                         {"X-Copy-From": "c/slo"}, query="multipart-manifest=get")
    assert res.status == 201, res
    copy = client.as_user("GET", "/v1/AUTH_test/c2/man")
    assert copy.body == segments
    assert copy.headers["x-static-large-object"].lower() == "true"
