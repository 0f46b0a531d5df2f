"""Form POSTs as a browser sends them (curl -F), to a real storaged-api."""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import time

import pytest

from tests.functional.api.apiserver import ApiServer

swiftclient = pytest.importorskip("swiftclient")

KEY = "functional-form-key"
MiB = 1024 * 1024


@pytest.fixture(scope="module", params=["eventlet", "threading"])
def server(request, tmp_path_factory):
    srv = ApiServer(tmp_path_factory.mktemp("api"), backend=request.param)
    srv.start()
    yield srv
    status = srv.stop()
    assert status == 0, srv.output()


def signed_fields(path, redirect="", max_file_size=MiB * 8, max_file_count=5):
    expires = int(time.time()) + 600
    message = "%s\n%s\n%s\n%s\n%s" % (path, redirect, max_file_size,
                                      max_file_count, expires)
    sig = hmac.new(KEY.encode(), message.encode(), hashlib.sha512).hexdigest()
    return [("redirect", redirect), ("max_file_size", str(max_file_size)),
            ("max_file_count", str(max_file_count)), ("expires", str(expires)),
            ("signature", sig)]


def curl_form(url, fields, files):
    """POST a form with curl; return (status, headers text, body)."""
    args = ["curl", "-s", "-D", "-", "-o", "-"]
    for name, value in fields:
        args += ["--form-string", "%s=%s" % (name, value)]
    for name, path in files:
        args += ["-F", "%s=@%s" % (name, path)]
    out = subprocess.run([*args, url], capture_output=True, timeout=120, check=True)
    data = out.stdout
    while data.startswith(b"HTTP/1.1 100"):  # curl sends Expect: 100-continue
        data = data.partition(b"\r\n\r\n")[2]
    head, _sep, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, head.decode("latin-1"), body


def test_browser_form_post_stores_files(server, tmp_path):
    conn = server.connection()
    conn.post_account({"X-Account-Meta-Temp-URL-Key": KEY})
    conn.put_container("inbox")
    small = tmp_path / "note.txt"
    small.write_bytes(b"hello from a form\n")
    large = tmp_path / "photo.jpg"
    large.write_bytes(os.urandom(3 * MiB + 17))

    path = "/v1/AUTH_test/inbox/user7_"
    status, _head, body = curl_form(server.url + path, signed_fields(path),
                                    [("file1", small), ("file2", large)])
    assert (status, body) == (201, b"201 Created")
    _headers, got = conn.get_object("inbox", "user7_note.txt")
    assert got == b"hello from a form\n"
    headers, got = conn.get_object("inbox", "user7_photo.jpg")
    assert hashlib.sha256(got).digest() == hashlib.sha256(large.read_bytes()).digest()
    assert headers["content-type"] == "image/jpeg"

    # With a redirect: 303 to it, with the outcome.
    fields = signed_fields(path, redirect="https://example.com/thanks")
    status, head, _body = curl_form(server.url + path, fields, [("f", small)])
    assert status == 303
    assert "Location: https://example.com/thanks?status=201&message=\r\n" in head

    # Too large: 400, and nothing stored.
    fields = signed_fields(path, max_file_size=MiB)
    renamed = tmp_path / "toolarge.bin"
    renamed.write_bytes(large.read_bytes())
    status, _head, body = curl_form(server.url + path, fields, [("f", renamed)])
    assert (status, body) == (400, b"FormPost: max_file_size exceeded")
    names = [o["name"] for o in conn.get_container("inbox")[1]]
    assert names == ["user7_note.txt", "user7_photo.jpg"]

    # A forged form: 401.
    fields = [(k, v if k != "signature" else "0" * 128)
              for k, v in signed_fields(path)]
    status, _head, body = curl_form(server.url + path, fields, [("f", small)])
    assert (status, body) == (401, b"FormPost: Invalid Signature")
