"""Form POST, as Swift's formpost middleware answers it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest

from storaged.api import formpost

KEY = "form-key"
CKEY = "container-form-key"
BOUNDARY = "----WebKitFormBoundaryAbC123"


def signature(path, redirect="", max_file_size=1024, max_file_count=10,
              expires=None, key=KEY, digest="sha256"):
    message = "%s\n%s\n%s\n%s\n%s" % (path, redirect, max_file_size,
                                      max_file_count, expires)
    return hmac.new(key.encode(), message.encode(), getattr(hashlib, digest))


def form(path, files=(), redirect="", max_file_size=1024, max_file_count=10,
         expires=None, key=KEY, sig=None, extra=(), before=b""):
    """Return a multipart body: the signed fields, ``extra`` fields, the files."""
    expires = int(time.time()) + 600 if expires is None else expires
    if sig is None:
        sig = signature(path, redirect, max_file_size, max_file_count, expires,
                        key).hexdigest()
    fields = [("redirect", redirect), ("max_file_size", str(max_file_size)),
              ("max_file_count", str(max_file_count)), ("expires", str(expires)),
              ("signature", sig), *extra]
    out = [before]
    for name, value in fields:
        out.append(b"--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n"
                   % (BOUNDARY.encode(), name.encode(), value.encode()))
    for field, filename, data, *ctype in files:
        head = (b"--%s\r\nContent-Disposition: form-data; name=\"%s\"; "
                b"filename=\"%s\"\r\n" % (BOUNDARY.encode(), field.encode(),
                                          filename.encode()))
        if ctype:
            head += b"Content-Type: %s\r\n" % ctype[0].encode()
        out.append(head + b"\r\n" + data + b"\r\n")
    out.append(b"--%s--\r\n" % BOUNDARY.encode())
    return b"".join(out)


def post(client, path, body, headers=None, **kw):
    all_headers = {"Content-Type": "multipart/form-data; boundary=" + BOUNDARY}
    all_headers.update(headers or {})
    return client.call("POST", path, all_headers, body=body, **kw)


@pytest.fixture
def keyed(client):
    assert client.as_user("POST", "/v1/AUTH_test", {
        "X-Account-Meta-Temp-URL-Key": KEY}).status == 204
    assert client.as_user("PUT", "/v1/AUTH_test/up").status == 201
    return client


def test_info_advertises_formpost(client):
    assert client.call("GET", "/info").json()["formpost"] == {
        "allowed_digests": ["sha1", "sha256", "sha512"],
        "deprecated_digests": ["sha1"],
    }


def test_files_stored_under_the_container(keyed):
    body = form("/v1/AUTH_test/up", max_file_size=100000, files=[
        ("file1", "a.txt", b"alpha\r\n--not the boundary\r\n", "text/plain"),
        ("file2", "b.bin", bytes(range(256)) * 40),
    ])
    res = post(keyed, "/v1/AUTH_test/up", body)
    assert (res.status, res.body) == (201, b"201 Created")
    assert res.headers["content-type"] == "text/plain"
    got = keyed.as_user("GET", "/v1/AUTH_test/up/a.txt")
    assert got.body == b"alpha\r\n--not the boundary\r\n"
    assert got.headers["content-type"] == "text/plain"
    assert keyed.as_user("GET", "/v1/AUTH_test/up/b.bin").body == bytes(range(256)) * 40


def test_object_prefix_and_a_token_changes_nothing(keyed):
    body = form("/v1/AUTH_test/up/user42_", files=[("f", "x.txt", b"x")])
    res = post(keyed, "/v1/AUTH_test/up/user42_", body,
               {"X-Auth-Token": keyed.token()})
    assert res.status == 201
    assert keyed.as_user("GET", "/v1/AUTH_test/up/user42_x.txt").body == b"x"
    # A token does not make a form without a signature valid.
    res = post(keyed, "/v1/AUTH_test/up", form("/v1/AUTH_test/up", sig="bad",
               files=[("f", "y.txt", b"y")]), {"X-Auth-Token": keyed.token()})
    assert res.status == 401


def test_redirect(keyed):
    body = form("/v1/AUTH_test/up", redirect="https://example.com/done?x=1",
                files=[("f", "r.txt", b"r")])
    res = post(keyed, "/v1/AUTH_test/up", body)
    assert res.status == 303
    location = "https://example.com/done?x=1&status=201&message="
    assert res.headers["location"] == location
    assert res.body == (
        b'<html><body><p><a href="%s">Click to continue...</a></p></body></html>'
        % location.encode())
    assert "content-type" not in res.headers
    body = form("/v1/AUTH_test/up", redirect="https://example.com/done",
                max_file_count=0, files=[("f", "r.txt", b"r")])
    res = post(keyed, "/v1/AUTH_test/up", body)
    assert res.headers["location"] == (
        "https://example.com/done?status=400&message=max%20file%20count%20exceeded")


def test_signatures_every_digest_and_container_key(keyed):
    assert keyed.as_user("POST", "/v1/AUTH_test/up", {
        "X-Container-Meta-Temp-URL-Key-2": CKEY}).status == 204
    path = "/v1/AUTH_test/up"
    for digest in ("sha1", "sha256", "sha512"):
        for key in (KEY, CKEY):
            expires = int(time.time()) + 600
            mac = signature(path, expires=expires, key=key, digest=digest)
            for sig in (mac.hexdigest(),
                        digest + ":" + base64.urlsafe_b64encode(mac.digest()).decode()):
                body = form(path, expires=expires, sig=sig,
                            files=[("f", "d.txt", digest.encode())])
                assert post(keyed, path, body).status == 201, (digest, key, sig)


def test_unauthorized(keyed):
    path = "/v1/AUTH_test/up"
    res = post(keyed, path, form(path, key="wrong", files=[("f", "a", b"a")]))
    assert res.status == 401
    assert res.body == b"FormPost: Invalid Signature"
    assert res.headers["www-authenticate"] == 'Swift realm="AUTH_test"'
    expired = int(time.time()) - 10
    res = post(keyed, path, form(path, expires=expired, files=[("f", "a", b"a")]))
    assert (res.status, res.body) == (401, b"FormPost: Form Expired")
    md5 = "md5:" + base64.b64encode(b"\x00" * 16).decode()
    res = post(keyed, path, form(path, sig=md5, files=[("f", "a", b"a")]))
    assert (res.status, res.body) == (401, b"FormPost: Invalid Signature")
    # The account's root: no keys apply.
    res = post(keyed, "/v1/AUTH_test", form("/v1/AUTH_test", files=[("f", "a", b"a")]))
    assert (res.status, res.body) == (401, b"FormPost: Invalid Signature")
    assert keyed.as_user("HEAD", "/v1/AUTH_test/up/a").status == 404


def test_bad_forms(keyed):
    path = "/v1/AUTH_test/up"
    res = post(keyed, path, form(path))
    assert (res.status, res.body) == (
        400, b"400 Bad Request\r\nFormPost: No Files To Process")
    res = post(keyed, path, form(path, max_file_count=1, files=[
        ("f", "one", b"1"), ("g", "two", b"2")]))
    assert (res.status, res.body) == (
        400, b"400 Bad Request\r\nFormPost: Max File Count Exceeded")
    assert keyed.as_user("GET", path + "/one").body == b"1"
    assert keyed.as_user("HEAD", path + "/two").status == 404
    big = form(path, max_file_size=10, files=[("f", "big", b"x" * 11)])
    res = post(keyed, path, big)
    assert (res.status, res.body) == (400, b"FormPost: max_file_size exceeded")
    assert keyed.as_user("HEAD", path + "/big").status == 404
    fits = form(path, max_file_size=10, files=[("f", "fits", b"x" * 10)])
    res = post(keyed, path, fits)
    assert res.status == 201
    res = post(keyed, path, b"garbage\r\n" + form(path, files=[("f", "a", b"a")]))
    assert (res.status, res.body) == (400, b"FormPost: invalid starting boundary")
    res = post(keyed, path, form(path, extra=[("x_delete_at", "soon")],
                                 files=[("f", "a", b"a")]))
    assert (res.status, res.body) == (
        400, b"FormPost: x_delete_at not an integer: Unix timestamp required.")
    res = post(keyed, path, form(path, extra=[("max_file_count", "many")],
                                 files=[("f", "a", b"a")]))
    assert (res.status, res.body) == (400, b"FormPost: max_file_count not an integer")
    # A missing container: the PUT's own answer.
    res = post(keyed, "/v1/AUTH_test/nope", form("/v1/AUTH_test/nope",
               files=[("f", "a", b"a")]))
    assert res.status == 404


def test_expiry_fields(keyed):
    path = "/v1/AUTH_test/up"
    at = int(time.time()) + 7200
    res = post(keyed, path, form(path, extra=[("x_delete_at", str(at))],
                                 files=[("f", "at", b"a")]))
    assert res.status == 201
    assert keyed.as_user("HEAD", path + "/at").headers["x-delete-at"] == str(at)
    res = post(keyed, path, form(path, extra=[("x_delete_after", "3600")],
                                 files=[("f", "after", b"t")]))
    assert res.status == 201
    delete_at = int(keyed.as_user("HEAD", path + "/after").headers["x-delete-at"])
    assert time.time() < delete_at <= time.time() + 3600
    # A time in the past: the PUT's own 400.
    res = post(keyed, path, form(path, extra=[("x_delete_after", "-5")],
                                 files=[("f", "past", b"p")]))
    assert (res.status, res.body) == (400, b"X-Delete-After in past")


def test_a_file_bigger_than_the_read_chunks(keyed):
    data = (b"0123456789abcdef\r\n--" + BOUNDARY.encode()[:-1]) * 30000
    path = "/v1/AUTH_test/up"
    body = form(path, max_file_size=len(data), files=[("f", "large", data)])
    assert post(keyed, path, body).status == 201
    got = keyed.as_user("GET", path + "/large").body
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


def test_parts_keeps_a_bounded_look_ahead():
    import io

    from storaged.api.body import BodyReader

    body = form("/v1/a/c", files=[("f", "x", b"y" * 100000)])
    reader = BodyReader(io.BytesIO(body), len(body), len(body))
    seen = []
    for part in formpost.parts(reader, BOUNDARY.encode()):
        headers = formpost.part_headers(part)
        size = 0
        while True:
            chunk = part.read(formpost.READ_CHUNK_SIZE)
            assert len(part._data.buffer) <= 2 * formpost.READ_CHUNK_SIZE + 100
            if not chunk:
                break
            size += len(chunk)
        seen.append((headers["content-disposition"], size))
    assert seen[-1] == ('form-data; name="f"; filename="x"', 100000)
    assert len(seen) == 6
