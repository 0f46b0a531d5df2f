"""The object API through WSGI calls: statuses, headers and bodies as Swift's."""

from __future__ import annotations

import hashlib
import logging
import os

import pytest

from storaged.api import app as app_mod
from storaged.api import auth
from tests.unit.api.conftest import Client
from tests.unit.api.conftest import make_conf
from tests.unit.api.conftest import sync_headers

NOT_FOUND = b"<html><h1>Not Found</h1><p>The resource could not be found.</p></html>"
UNAUTHORIZED = (b"<html><h1>Unauthorized</h1><p>This server could not verify that "
                b"you are authorized to access the document you requested.</p></html>")


def md5(data):
    return hashlib.md5(data).hexdigest()


# -- auth ----------------------------------------------------------------------


def test_auth_gives_token_and_storage_url(client):
    res = client.call("GET", "/auth/v1.0",
                      {"X-Auth-User": "test:tester", "X-Auth-Key": "testing"})
    assert res.status == 200
    assert res.headers["x-storage-url"] == "http://127.0.0.1:8080/v1/AUTH_test"
    assert res.headers["x-auth-token"] == res.headers["x-storage-token"]
    assert int(res.headers["x-auth-token-expires"]) > 86000
    assert res.headers["x-trans-id"].startswith("tx")
    assert res.headers["x-openstack-request-id"] == res.headers["x-trans-id"]
    # The older header names work too (tempauth's).
    res = client.call("GET", "/auth/v1",
                      {"X-Storage-User": "test:reader", "X-Storage-Pass": "r3ader"})
    assert res.status == 200


def test_public_url(tmp_path):
    conf = make_conf(tmp_path, "public_url = https://swift.example.com/\n")
    application = app_mod.make_app(conf)
    try:
        res = Client(application).call(
            "GET", "/auth/v1.0",
            {"X-Auth-User": "test:tester", "X-Auth-Key": "testing"})
    finally:
        application.close()
    assert res.headers["x-storage-url"] == "https://swift.example.com/v1/AUTH_test"


@pytest.mark.parametrize("headers", [
    {"X-Auth-User": "test:tester", "X-Auth-Key": "wrong"},
    {"X-Auth-User": "test:nobody", "X-Auth-Key": "testing"},
    {"X-Auth-User": "tester", "X-Auth-Key": "testing"},
    {"X-Auth-User": "test:tester"},
    {},
])
def test_auth_refused(client, headers):
    res = client.call("GET", "/auth/v1.0", headers)
    assert res.status == 401
    assert res.body == UNAUTHORIZED
    assert res.headers["www-authenticate"] == 'Swift realm="unknown"'
    assert "x-auth-token" not in res.headers


def test_requests_need_a_valid_token(client):
    res = client.call("GET", "/v1/AUTH_test")
    assert res.status == 401
    assert res.headers["www-authenticate"] == 'Swift realm="AUTH_test"'
    assert client.call("GET", "/v1/AUTH_test", {"X-Auth-Token": "AUTH_tkbogus"}
                       ).status == 401
    token = client.token()
    assert client.call("GET", "/v1/AUTH_test", {"X-Auth-Token": token}).status == 204
    assert client.call("GET", "/v1/AUTH_test", {"X-Storage-Token": token}
                       ).status == 204


def test_other_accounts_are_forbidden(client):
    assert client.as_user("GET", "/v1/AUTH_other").status == 403
    assert client.as_user("PUT", "/v1/AUTH_other/c").status == 403
    assert client.as_user("PUT", "/v1/AUTH_test/c", login="ops:root").status == 201
    assert client.as_user("GET", "/v1/AUTH_other", login="ops:root").status == 204


def test_access_log_line_has_no_secret(client, access_log):
    token = client.token()
    client.call("PUT", "/v1/AUTH_test/c", {"X-Auth-Token": token})
    client.call("PUT", "/v1/AUTH_test/c/a%20b", {"X-Auth-Token": token}, body=b"xyz")
    lines = access_log()
    assert len(lines) == 3
    client_addr, method, path, status, sent, received, seconds, rid, note = (
        lines[-1].split())
    assert (client_addr, method, path, status) == (
        "127.0.0.1", "PUT", "/v1/AUTH_test/c/a%20b", "201")
    assert (sent, received, note) == ("0", "3", "-")
    assert float(seconds) >= 0 and rid.startswith("tx")
    text = "\n".join(lines)
    assert token not in text and "testing" not in text


# -- paths ---------------------------------------------------------------------


@pytest.mark.parametrize("path, status, body", [
    ("/v1/AUTH_test/c/a%00b", 412, b"Invalid UTF8 or contains NULL"),
    ("/v1/AUTH_test/c/%ff%fe", 412, b"Invalid UTF8 or contains NULL"),
    ("/v1/AUTH_test/%c3", 412, b"Invalid UTF8 or contains NULL"),
    ("/v1/AUTH_test/c/" + "x" * 1025, 400,
     b"Object name length of 1025 longer than 1024"),
    ("/v1/AUTH_test/" + "\u00e9" * 129, 400,
     b"Container name length of 258 longer than 256"),
    ("/v1/AUTH_test/c/a/../b", 400, None),
    ("/v1/AUTH_test/c/..", 400, None),
    ("/v1/AUTH_test/../c", 400, None),
    ("/v1/AUTH_test/c/a\x01b", 400, None),
    ("/v2/AUTH_test", 400, None),
    ("/", 404, NOT_FOUND),
    ("/v1/AUTH_test//o", 404, NOT_FOUND),
])
def test_hostile_paths(client, path, status, body):
    res = client.as_user("GET", path)
    assert res.status == status, res
    if body is not None:
        assert res.body == body
    assert b"Traceback" not in res.body


def test_unicode_names_round_trip(client):
    assert client.as_user("PUT", "/v1/AUTH_test/%E6%97%A5%E6%9C%AC").status == 201
    name = "/v1/AUTH_test/%E6%97%A5%E6%9C%AC/%C3%BCber%20%F0%9F%98%80.txt"
    assert client.as_user("PUT", name, body=b"u").status == 201
    assert client.as_user("GET", name).body == b"u"
    listing = client.as_user("GET", "/v1/AUTH_test/%E6%97%A5%E6%9C%AC",
                             query="format=json").json()
    assert [o["name"] for o in listing] == ["\u00fcber \U0001F600.txt"]
    plain = client.as_user("GET", "/v1/AUTH_test").body.decode("utf-8")
    assert plain == "\u65e5\u672c\n"


def test_healthcheck_and_info(client):
    res = client.call("GET", "/healthcheck")
    assert (res.status, res.body) == (200, b"OK")
    info = client.call("GET", "/info").json()
    assert info["swift"]["max_object_name_length"] == 1024
    assert info["container_sync"]["realms"] == {"US": {"clusters": {"HERE": {}}}}
    assert "realm-key" not in str(info)


# -- containers ----------------------------------------------------------------


def test_container_lifecycle(client):
    res = client.as_user("PUT", "/v1/AUTH_test/c", {"X-Container-Meta-Color": "blue"})
    assert res.status == 201
    assert client.as_user("PUT", "/v1/AUTH_test/c").status == 202
    res = client.as_user("HEAD", "/v1/AUTH_test/c")
    assert res.status == 204
    assert res.headers["x-container-meta-color"] == "blue"
    assert res.headers["x-container-object-count"] == "0"
    assert res.body == b""
    assert client.as_user("POST", "/v1/AUTH_test/c", {
        "X-Container-Meta-Size": "big", "X-Remove-Container-Meta-Color": "x"}
    ).status == 204
    res = client.as_user("HEAD", "/v1/AUTH_test/c")
    assert res.headers["x-container-meta-size"] == "big"
    assert "x-container-meta-color" not in res.headers
    client.as_user("PUT", "/v1/AUTH_test/c/o", body=b"12345")
    res = client.as_user("HEAD", "/v1/AUTH_test/c")
    assert (res.headers["x-container-object-count"],
            res.headers["x-container-bytes-used"]) == ("1", "5")
    res = client.as_user("DELETE", "/v1/AUTH_test/c")
    assert res.status == 409
    assert b"Conflict" in res.body
    assert client.as_user("DELETE", "/v1/AUTH_test/c/o").status == 204
    assert client.as_user("DELETE", "/v1/AUTH_test/c").status == 204
    for method in ("HEAD", "GET", "POST", "DELETE"):
        assert client.as_user(method, "/v1/AUTH_test/c").status == 404


def test_account_headers_and_listing(client):
    res = client.as_user("HEAD", "/v1/AUTH_test")
    assert res.status == 204
    assert res.headers["x-account-container-count"] == "0"
    assert client.as_user("GET", "/v1/AUTH_test", query="format=json").body == b"[]"
    for name in ("b", "a", "c-1", "c-2"):
        client.as_user("PUT", "/v1/AUTH_test/" + name)
    client.as_user("PUT", "/v1/AUTH_test/a/x", body=b"1234")
    res = client.as_user("GET", "/v1/AUTH_test")
    assert res.status == 200
    assert res.body == b"a\nb\nc-1\nc-2\n"
    assert res.headers["content-type"] == "text/plain; charset=utf-8"
    assert res.headers["x-account-object-count"] == "1"
    assert res.headers["x-account-bytes-used"] == "4"
    entries = client.as_user("GET", "/v1/AUTH_test", query="format=json").json()
    assert entries[0]["name"] == "a" and entries[0]["count"] == 1
    assert entries[0]["bytes"] == 4 and "last_modified" in entries[0]
    res = client.as_user("GET", "/v1/AUTH_test", query="delimiter=-&format=json")
    assert [e.get("name", e.get("subdir")) for e in res.json()] == ["a", "b", "c-"]
    res = client.as_user("GET", "/v1/AUTH_test",
                         {"Accept": "application/json"}, query="marker=a&limit=2")
    assert [e["name"] for e in res.json()] == ["b", "c-1"]
    assert client.as_user("PUT", "/v1/AUTH_test").status == 405


def test_object_listings(client):
    client.as_user("PUT", "/v1/AUTH_test/c")
    names = ["a/1", "a/2", "b", "c/x/1", "d.txt"]
    for name in names:
        client.as_user("PUT", "/v1/AUTH_test/c/" + name, body=name.encode())
    assert client.as_user("GET", "/v1/AUTH_test/c").body == (
        "".join(n + "\n" for n in names).encode())
    js = client.as_user("GET", "/v1/AUTH_test/c", query="format=json").json()
    assert js[0] == {
        "name": "a/1", "hash": md5(b"a/1"), "bytes": 3,
        "content_type": "application/octet-stream",
        "last_modified": js[0]["last_modified"],
    }
    assert js[-1]["content_type"] == "text/plain"

    def listing(query):
        res = client.as_user("GET", "/v1/AUTH_test/c", query="format=json&" + query)
        assert res.status == 200, res
        return [e.get("name", e.get("subdir")) for e in res.json()]

    assert listing("delimiter=/") == ["a/", "b", "c/", "d.txt"]
    assert listing("delimiter=/&prefix=c/") == ["c/x/"]
    assert listing("prefix=a/") == ["a/1", "a/2"]
    assert listing("marker=b") == ["c/x/1", "d.txt"]
    assert listing("end_marker=b") == ["a/1", "a/2"]
    assert listing("limit=2") == ["a/1", "a/2"]
    assert listing("delimiter=/&reverse=true") == ["d.txt", "c/", "b", "a/"]
    res = client.as_user("GET", "/v1/AUTH_test/c", query="limit=10001")
    assert (res.status, res.body) == (412, b"Maximum limit is 10000")
    xml = client.as_user("GET", "/v1/AUTH_test/c", query="format=xml&delimiter=/")
    assert xml.headers["content-type"].startswith("application/xml")
    assert b'<container name="c">' in xml.body and b'<subdir name="a/">' in xml.body
    res = client.as_user("GET", "/v1/AUTH_test/c", query="prefix=zzz")
    assert (res.status, res.body) == (204, b"")
    res = client.as_user("GET", "/v1/AUTH_test/c", query="prefix=%ff")
    assert res.status == 400 and b"not valid UTF-8" in res.body


def test_sync_headers_only_for_owners(client):
    owner = {"X-Container-Sync-To": "//us/here/AUTH_b/dst",
             "X-Container-Sync-Key": "k3y"}
    assert client.as_user("PUT", "/v1/AUTH_test/c", owner).status == 201
    res = client.as_user("HEAD", "/v1/AUTH_test/c")
    assert res.headers["x-container-sync-to"] == "//us/here/AUTH_b/dst"
    assert res.headers["x-container-sync-key"] == "k3y"
    # A user who is not an owner neither sees nor changes them.
    res = client.as_user("HEAD", "/v1/AUTH_test/c", login="test:reader")
    assert "x-container-sync-key" not in res.headers
    assert "x-container-sync-to" not in res.headers
    client.as_user("POST", "/v1/AUTH_test/c", {"X-Container-Sync-Key": "mine"},
                   login="test:reader")
    assert client.as_user("HEAD", "/v1/AUTH_test/c").headers[
        "x-container-sync-key"] == "k3y"
    # Owners remove them.
    client.as_user("POST", "/v1/AUTH_test/c", {"X-Remove-Container-Sync-Key": "x"})
    assert "x-container-sync-key" not in client.as_user(
        "HEAD", "/v1/AUTH_test/c").headers


@pytest.mark.parametrize("value, message", [
    ("//us/nowhere/AUTH_b/c", b"No cluster endpoint for 'us' 'nowhere'"),
    ("//eu/here/AUTH_b/c", b"No realm key for 'eu'"),
    ("https://10.1.1.1/v1/AUTH_b/c", b"Invalid host '10.1.1.1'"),
    ("//us/here/AUTH_b", b"Invalid X-Container-Sync-To format"),
])
def test_bad_sync_to_is_400(client, value, message):
    res = client.as_user("PUT", "/v1/AUTH_test/c", {"X-Container-Sync-To": value})
    assert res.status == 400
    assert message in res.body
    assert client.as_user("PUT", "/v1/AUTH_test/c", {
        "X-Container-Sync-To": "https://peer.example.com/v1/AUTH_b/c"}).status == 201


def test_bad_metadata_is_400(client):
    res = client.as_user("PUT", "/v1/AUTH_test/c",
                         {"X-Container-Meta-" + "n" * 129: "v"})
    assert res.status == 400
    res = client.as_user("PUT", "/v1/AUTH_test/c", {"X-Container-Meta-Bad": b"\xff"})
    assert res.status == 400


# -- objects -------------------------------------------------------------------


@pytest.fixture
def container(client):
    assert client.as_user("PUT", "/v1/AUTH_test/c").status == 201
    return "/v1/AUTH_test/c"


def test_object_put_get_head_post_delete(client, container):
    data = os.urandom(100_000)
    res = client.as_user("PUT", container + "/o.bin", {
        "Content-Type": "image/x-test", "X-Object-Meta-Color": "red",
        "Content-Disposition": "attachment", "Etag": md5(data),
    }, body=data)
    assert res.status == 201
    assert res.headers["etag"] == md5(data)
    assert res.headers["last-modified"].endswith(" GMT")
    res = client.as_user("GET", container + "/o.bin")
    assert res.status == 200
    assert res.body == data
    assert res.headers["content-type"] == "image/x-test"
    assert res.headers["content-length"] == str(len(data))
    assert res.headers["x-object-meta-color"] == "red"
    assert res.headers["content-disposition"] == "attachment"
    assert res.headers["accept-ranges"] == "bytes"
    ts = res.headers["x-timestamp"]
    head = client.as_user("HEAD", container + "/o.bin")
    assert head.status == 200 and head.body == b""
    assert head.headers["content-length"] == str(len(data))
    assert head.headers["x-timestamp"] == ts
    res = client.as_user("POST", container + "/o.bin", {"X-Object-Meta-Size": "L"})
    assert res.status == 202
    head = client.as_user("HEAD", container + "/o.bin")
    assert head.headers["x-object-meta-size"] == "L"
    assert "x-object-meta-color" not in head.headers      # POST replaces
    assert head.headers["etag"] == md5(data)
    assert client.as_user("DELETE", container + "/o.bin").status == 204
    res = client.as_user("DELETE", container + "/o.bin")
    assert (res.status, res.body) == (404, NOT_FOUND)
    assert client.as_user("GET", container + "/o.bin").status == 404
    assert client.as_user("HEAD", container + "/o.bin").status == 404
    assert client.as_user("POST", container + "/o.bin").status == 404


def test_put_statuses(client, container):
    res = client.as_user("PUT", container + "/o", {"Etag": md5(b"other")}, body=b"x")
    assert res.status == 422
    assert client.as_user("GET", container + "/o").status == 404
    res = client.as_user("PUT", "/v1/AUTH_test/missing/o", body=b"x")
    assert res.status == 404
    res = client.call("PUT", container + "/o", {"X-Auth-Token": client.token()},
                      environ={"CONTENT_LENGTH": ""})
    assert res.status == 411
    res = client.as_user("PUT", container + "/o", environ={"CONTENT_LENGTH": "-3"})
    assert (res.status, res.body) == (400, b"Invalid Content-Length")
    res = client.as_user("PUT", container + "/o", {"X-Object-Manifest": "noprefix"},
                         body=b"")
    assert res.status == 400
    res = client.as_user("PUT", container + "/o", body=b"x",
                         query="multipart-manifest=put")
    assert (res.status, res.body) == (400, b"Manifest must be valid JSON.\n")
    assert client.as_user("PUT", container + "/o", {"If-None-Match": "*"},
                          body=b"x").status == 201
    assert client.as_user("PUT", container + "/o", {"If-None-Match": "*"},
                          body=b"y").status == 412


def test_put_too_large(tmp_path):
    conf = make_conf(tmp_path, "max_object_size = 1000\n")
    application = app_mod.make_app(conf)
    client = Client(application)
    try:
        client.as_user("PUT", "/v1/AUTH_test/c")
        res = client.as_user("PUT", "/v1/AUTH_test/c/o", body=b"x" * 1001)
        assert res.status == 413
        assert res.headers.get("connection") != "close"   # small: drained
        res = client.as_user("PUT", "/v1/AUTH_test/c/o", body=b"x" * 1001,
                             chunked=True)
        assert res.status == 413
        assert res.headers["connection"] == "close"
        assert client.as_user("PUT", "/v1/AUTH_test/c/o", body=b"x" * 1000,
                              chunked=True).status == 201
        assert client.as_user("HEAD", "/v1/AUTH_test/c/o").headers[
            "content-length"] == "1000"
    finally:
        application.close()


def test_chunked_put_and_short_body(client, container):
    data = os.urandom(70_000)
    res = client.as_user("PUT", container + "/ch", body=data, chunked=True)
    assert res.status == 201
    assert client.as_user("GET", container + "/ch").body == data
    # The client promised more than it sent: 499, nothing stored.
    res = client.as_user("PUT", container + "/short", body=b"abc",
                         environ={"CONTENT_LENGTH": "10"})
    assert res.status == 499
    assert client.as_user("HEAD", container + "/short").status == 404


def test_content_type_guessed_when_absent(client, container):
    client.as_user("PUT", container + "/page.html", body=b"<p>",
                   environ={"headers_raw": ()})
    assert client.as_user("HEAD", container + "/page.html").headers[
        "content-type"] == "text/html"
    client.as_user("PUT", container + "/p2.html", {"Content-Type": "text/plain"},
                   body=b"<p>", environ={"headers_raw": (("Content-Type", "x"),)})
    assert client.as_user("HEAD", container + "/p2.html").headers[
        "content-type"] == "text/plain"


def test_ranges(client, container):
    data = bytes(range(256)) * 40
    client.as_user("PUT", container + "/r", body=data)

    def get(value):
        return client.as_user("GET", container + "/r", {"Range": value})

    res = get("bytes=10-19")
    assert (res.status, res.body) == (206, data[10:20])
    assert res.headers["content-range"] == "bytes 10-19/%d" % len(data)
    assert res.headers["content-length"] == "10"
    res = get("bytes=-100")
    assert (res.status, res.body) == (206, data[-100:])
    assert res.headers["content-range"] == "bytes %d-%d/%d" % (
        len(data) - 100, len(data) - 1, len(data))
    res = get("bytes=10000-")
    assert (res.status, res.body) == (206, data[10000:])
    res = get("bytes=10000-99999")
    assert res.body == data[10000:]
    assert get("bytes=-99999").body == data
    res = get("bytes=%d-" % len(data))
    assert res.status == 416
    assert res.headers["content-range"] == "bytes */%d" % len(data)
    assert get("bytes=-0").status == 416
    for ignored in ("bytes=5-1", "bytes=a-b", "items=0-1"):
        res = get(ignored)
        assert (res.status, res.body) == (200, data), ignored


def test_conditional_requests(client, container):
    res = client.as_user("PUT", container + "/c", body=b"cond")
    etag = res.headers["etag"]
    last = res.headers["last-modified"]

    def get(headers, method="GET"):
        return client.as_user(method, container + "/c", headers).status

    assert get({"If-None-Match": etag}) == 304
    assert get({"If-None-Match": '"nope"'}) == 200
    assert get({"If-Match": etag}) == 200
    assert get({"If-Match": '"nope"'}) == 412
    assert get({"If-Match": "*"}) == 200
    assert get({"If-Modified-Since": last}) == 304
    assert get({"If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"}) == 200
    assert get({"If-Unmodified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"}) == 412
    # Both apply, as Swift's swob applies them (RFC 7232 would drop the date).
    assert get({"If-Match": etag,
                "If-Unmodified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"}) == 412
    assert get({"If-Match": etag, "If-Unmodified-Since": last}) == 200
    assert get({"If-None-Match": etag}, "HEAD") == 304


def test_users_cannot_set_timestamps(client, container):
    client.as_user("PUT", container + "/t", {"X-Timestamp": "1000000000.00000"},
                   body=b"x")
    ts = float(client.as_user("HEAD", container + "/t").headers["x-timestamp"])
    assert ts > 1_600_000_000


# -- container-sync receipt ----------------------------------------------------


@pytest.fixture
def synced(client):
    res = client.as_user("PUT", "/v1/AUTH_test/dst",
                         {"X-Container-Sync-Key": "sync-secret"})
    assert res.status == 201
    return "/v1/AUTH_test/dst"


SYNC_401 = (b"X-Container-Sync-Auth header not valid; contact cluster operator "
            b"for support.")


def test_sync_put_head_delete_with_signature(client, synced, access_log):
    path = synced + "/a%20b/%C3%BC.txt"
    data = b"synced data"
    headers = sync_headers("PUT", path, ts="1700000000.12345")
    headers.update({"Etag": md5(data), "Content-Type": "text/x-sync",
                    "X-Object-Meta-Origin": "remote", "X-Backend-Timestamp": "9",
                    "X-Object-Sysmeta-Slo-Etag": "s"})
    res = client.call("PUT", path, headers, body=data)
    assert res.status == 201, res
    res = client.call("HEAD", path, sync_headers("HEAD", path, ts="1700000000.12345"))
    assert res.status == 200
    assert res.headers["x-timestamp"] == "1700000000.12345"
    assert res.headers["last-modified"] == "Tue, 14 Nov 2023 22:13:21 GMT"
    assert res.headers["x-object-meta-origin"] == "remote"
    assert "x-object-sysmeta-slo-etag" not in res.headers
    assert res.headers["content-type"] == "text/x-sync"
    # Older PUT: 202, nothing changes, the body is not even read.
    res = client.call("PUT", path, sync_headers("PUT", path, ts="1600000000.00000"),
                      body=b"older")
    assert res.status == 202
    assert client.as_user("GET", path).body == data
    # Older DELETE: 409.
    res = client.call("DELETE", path,
                      sync_headers("DELETE", path, ts="1600000000.00000"))
    assert res.status == 409
    # Newer DELETE: 204; then 404 for what is not there (a tombstone stays).
    res = client.call("DELETE", path,
                      sync_headers("DELETE", path, ts="1700000001.00000"))
    assert res.status == 204
    res = client.call("DELETE", path,
                      sync_headers("DELETE", path, ts="1700000002.00000"))
    assert res.status == 404
    # A PUT older than the tombstone loses too.
    res = client.call("PUT", path, sync_headers("PUT", path, ts="1700000000.50000"),
                      body=b"late")
    assert res.status == 202
    assert client.as_user("HEAD", path).status == 404
    signed = [line.split() for line in access_log() if line.split()[-1] == "cs:valid"]
    assert [(f[1], f[3]) for f in signed] == [
        ("PUT", "201"), ("HEAD", "200"), ("PUT", "202"), ("DELETE", "409"),
        ("DELETE", "204"), ("DELETE", "404"), ("PUT", "202"),
    ]


def test_sync_with_key2(client, synced):
    path = synced + "/o"
    res = client.call("PUT", path, sync_headers("PUT", path, realm_key="realm-key-2"),
                      body=b"x")
    assert res.status == 201


@pytest.mark.parametrize("change", [
    {"realm_key": "not-the-realm-key"},
    {"user_key": "not-the-container-key"},
    {"realm": "EU"},
])
def test_sync_refused(client, synced, change, access_log):
    path = synced + "/o"
    res = client.call("PUT", path, sync_headers("PUT", path, **change), body=b"x")
    assert res.status == 401
    assert res.body == SYNC_401
    assert res.headers["content-type"].startswith("text/plain")
    assert res.headers["www-authenticate"] == 'SwiftContainerSync realm="AUTH_test"'
    note = access_log()[-1].split()[-1]
    assert note in ("cs:invalid-sig", "cs:no-local-realm-key")
    assert client.as_user("HEAD", path).status == 404


def test_sync_wrong_path_encoding(client, synced):
    path = synced + "/a%20b"
    headers = sync_headers("PUT", "/v1/AUTH_test/dst/a b")
    # The sender signed "/v1/AUTH_test/dst/a b" instead of the canonical form.
    from storaged.sync import realms as realms_mod
    sig = realms_mod.sign("PUT", "/v1/AUTH_test/dst/a b", "1700000000.00000",
                          "n0nce", "realm-key-1", "sync-secret")
    headers["X-Container-Sync-Auth"] = "US n0nce " + sig
    res = client.call("PUT", path, headers, body=b"x")
    assert (res.status, res.body) == (401, SYNC_401)


def test_sync_to_container_without_key_or_missing(client, access_log):
    client.as_user("PUT", "/v1/AUTH_test/nokey")
    for container in ("nokey", "missing"):
        path = "/v1/AUTH_test/%s/o" % container
        res = client.call("PUT", path, sync_headers("PUT", path), body=b"x")
        assert (res.status, res.body) == (401, SYNC_401)
        assert access_log()[-1].split()[-1] == "cs:no-local-user-key"


def test_sync_only_for_its_container(client, synced):
    client.as_user("PUT", "/v1/AUTH_test/other",
                   {"X-Container-Sync-Key": "sync-secret"})
    # Signed for the container itself, not an object: refused (403).
    res = client.call("DELETE", synced, sync_headers("DELETE", synced))
    assert res.status == 403
    res = client.call("GET", "/v1/AUTH_test", sync_headers("GET", "/v1/AUTH_test"))
    assert res.status == 401


def test_sync_bad_timestamp(client, synced):
    path = synced + "/o"
    res = client.call("PUT", path, sync_headers("PUT", path, ts="yesterday"),
                      body=b"x")
    assert res.status == 400
    assert b"X-Timestamp should be a UNIX timestamp float value" in res.body


def test_empty_sync_header_is_ignored(client, synced):
    res = client.as_user("PUT", synced + "/o", {"X-Container-Sync-Auth": ""},
                         body=b"x")
    assert res.status == 201


def test_legacy_sync_key(client, synced, access_log):
    path = synced + "/legacy"
    headers = {"X-Container-Sync-Key": "sync-secret", "X-Timestamp": "1700000000.5"}
    assert client.call("PUT", path, headers, body=b"old style").status == 201
    # HEAD works too (Swift answers 401 there, breaking its own daemon).
    res = client.call("HEAD", path, headers)
    assert res.status == 200
    assert res.headers["x-timestamp"] == "1700000000.50000"
    assert access_log()[-1].split()[-1] == "cs:legacy-valid"
    res = client.call("DELETE", path, {"X-Container-Sync-Key": "sync-secret",
                                       "X-Timestamp": "1700000000.1"})
    assert res.status == 409
    bad = {"X-Container-Sync-Key": "wrong", "X-Timestamp": "1700000001"}
    res = client.call("PUT", path, bad, body=b"x")
    assert (res.status, res.body) == (401, UNAUTHORIZED)
    assert access_log()[-1].split()[-1] == "cs:legacy-invalid"
    # Only object HEAD, PUT and DELETE.
    res = client.call("GET", path, {"X-Container-Sync-Key": "sync-secret"})
    assert res.status == 401


# -- failures ------------------------------------------------------------------


def test_unexpected_error_is_500_logged_with_request_id(client, container, caplog,
                                                        monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(client.app.service, "head_object", boom)
    caplog.set_level(logging.ERROR)
    res = client.as_user("HEAD", container + "/o")
    assert res.status == 500
    res = client.as_user("GET", container + "/o", {"Range": "bytes=0-1"})
    assert res.status == 500
    assert res.body == (b"<html><h1>Internal Error</h1><p>The server has either "
                        b"erred or is incapable of performing the requested "
                        b"operation.</p></html>")
    assert b"secret internals" not in res.body
    rid = res.headers["x-trans-id"]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and rid in errors[-1].getMessage()
    assert errors[-1].exc_info is not None


def test_storage_errors_map_to_statuses(client, container, monkeypatch):
    from storaged import exception

    def full(*args, **kwargs):
        raise exception.StorageFull(backend="local", reason="ENOSPC")

    monkeypatch.setattr(client.app.service, "put_object", full)
    res = client.as_user("PUT", container + "/o", body=b"x")
    assert res.status == 507

    def busy(*args, **kwargs):
        raise exception.CatalogBusy(path="p", reason="locked")

    monkeypatch.setattr(client.app.service, "head_object", busy)
    assert client.as_user("HEAD", container + "/o").status == 503


def test_corrupt_object_cuts_the_stream(client, container, monkeypatch, caplog):
    from storaged import exception

    def corrupt_chunks():
        yield b"first part"
        raise exception.CorruptObject(what="x", reason="digest mismatch")

    real = client.app.service.get_object
    client.as_user("PUT", container + "/bad", body=b"x" * 100_000)
    client.as_user("PUT", container + "/small", body=b"x" * 100)

    def fake(*args, **kwargs):
        info, chunks, n = real(*args, **kwargs)
        chunks.close()
        return info, corrupt_chunks(), n

    monkeypatch.setattr(client.app.service, "get_object", fake)
    # Large: the response has started, the connection is cut.
    with pytest.raises(exception.CorruptObject):
        client.as_user("GET", container + "/bad")
    assert any("connection cut" in r.getMessage() for r in caplog.records)
    # Small: read before answering, so the client gets a 503 instead.
    assert client.as_user("GET", container + "/small").status == 503


def test_identity_roles_are_checked_per_account(client):
    ident = auth.Identity("test:reader", "AUTH_test")
    assert not ident.owns("AUTH_test")
    res = client.as_user("GET", "/v1/AUTH_test", login="test:reader")
    assert res.status == 403  # a user of the account, not its owner


def _corrupt_on_disk(service, name):
    from urllib import parse as urlparse

    row = service.catalog.container("AUTH_test", "c").get_object(name)
    path = urlparse.unquote(urlparse.urlsplit(row.location).path)
    with open(path, "r+b") as f:
        f.seek(10)
        byte = f.read(1)
        f.seek(10)
        f.write(bytes([byte[0] ^ 0xFF]))


def test_reads_are_verified(client, container, caplog):
    from storaged import exception

    big = os.urandom(5 * 1024 * 1024)
    client.as_user("PUT", container + "/big", body=big)
    client.as_user("PUT", container + "/small", body=b"small object")
    _corrupt_on_disk(client.app.service, "big")
    _corrupt_on_disk(client.app.service, "small")
    assert client.as_user("GET", container + "/small").status == 503
    with pytest.raises(exception.CorruptObject):
        client.as_user("GET", container + "/big")
    # A range is not verified (and still served).
    res = client.as_user("GET", container + "/big", {"Range": "bytes=0-99"})
    assert res.status == 206 and len(res.body) == 100
