"""Server-side copy on a real storaged-api, driven by python-swiftclient."""

from __future__ import annotations

import hashlib
import os

import pytest

from tests.functional.api.apiserver import ApiServer
from tests.functional.api.test_swiftclient import cli

swiftclient = pytest.importorskip("swiftclient")
from swiftclient import client as swift  # noqa: E402

MiB = 1024 * 1024


@pytest.fixture(scope="module", params=["eventlet", "threading"])
def server(request, tmp_path_factory):
    srv = ApiServer(tmp_path_factory.mktemp("api"), backend=request.param)
    srv.start()
    yield srv
    status = srv.stop()
    assert status == 0, srv.output()


@pytest.fixture
def conn(server):
    return server.connection()




def user_meta(headers):
    return {k: v for k, v in headers.items() if k.startswith("x-object-meta-")}


def test_swift_copy_with_destination(server, conn):
    conn.put_container("src")
    conn.put_container("dst")
    conn.put_object("src", "ünï cödé.txt", b"some data", content_type="text/x-test",
                    headers={"X-Object-Meta-Color": "blue",
                             "Content-Disposition": "attachment"})
    res = cli(server, "copy", "src", "ünï cödé.txt", "--destination", "/dst/cöpy",
              "-m", "Extra:fresh")
    assert res.returncode == 0, res.stderr
    assert "copied to /dst/cöpy" in res.stdout
    headers, body = conn.get_object("dst", "cöpy")
    assert body == b"some data"
    assert user_meta(headers) == {"x-object-meta-color": "blue",
                                  "x-object-meta-extra": "fresh"}
    assert headers["content-type"] == "text/x-test"
    assert headers["content-disposition"] == "attachment"
    # -M: the source's metadata is not copied.
    res = cli(server, "copy", "-M", "-m", "Only:this", "src", "ünï cödé.txt",
              "--destination", "/dst/fresh")
    assert res.returncode == 0, res.stderr
    headers = conn.head_object("dst", "fresh")
    assert user_meta(headers) == {"x-object-meta-only": "this"}
    assert "content-disposition" not in headers
    # A destination without a name keeps the source's.
    res = cli(server, "copy", "src", "ünï cödé.txt", "--destination", "/dst")
    assert res.returncode == 0, res.stderr
    assert conn.get_object("dst", "ünï cödé.txt")[1] == b"some data"


def test_swift_copy_onto_itself_updates_metadata(server, conn):
    conn.put_container("self")
    conn.put_object("self", "o", b"data", headers={"X-Object-Meta-Color": "blue"})
    res = cli(server, "copy", "self", "o", "-m", "Color:red")
    assert res.returncode == 0, res.stderr
    headers, body = conn.get_object("self", "o")
    assert body == b"data"
    assert headers["x-object-meta-color"] == "red"


def test_a_large_object_is_streamed(server, conn):
    data = os.urandom(9 * MiB + 4321)
    conn.put_container("big")
    conn.put_object("big", "src", data)
    res = cli(server, "copy", "big", "src", "--destination", "/big/copy")
    assert res.returncode == 0, res.stderr
    headers, body = conn.get_object("big", "copy")
    assert body == data
    assert headers["etag"].strip('"') == hashlib.md5(data).hexdigest()
    listing = {o["name"]: o for o in conn.get_container("big")[1]}
    assert listing["copy"]["hash"] == hashlib.md5(data).hexdigest()
    assert listing["copy"]["bytes"] == len(data)


def test_put_with_x_copy_from(server, conn):
    conn.put_container("xcf")
    conn.put_object("xcf", "a b/src", b"0123456789",
                    headers={"X-Object-Meta-Color": "blue"})
    resp = {}
    conn.put_object("xcf", "dst", None, headers={"X-Copy-From": "/xcf/a%20b/src"},
                    response_dict=resp)
    assert resp["status"] == 201
    # Sent percent-encoded (xcf/a%20b/src); swiftclient decodes headers.
    assert resp["headers"]["x-copied-from"] == "xcf/a b/src"
    assert resp["headers"]["x-copied-from-account"] == "AUTH_test"
    assert conn.get_object("xcf", "dst")[1] == b"0123456789"
    # A range of the source.
    conn.put_object("xcf", "part", None, response_dict=resp,
                    headers={"X-Copy-From": "xcf/a%20b/src", "Range": "bytes=2-4"})
    assert conn.get_object("xcf", "part")[1] == b"234"
    with pytest.raises(swift.ClientException) as info:
        conn.put_object("xcf", "dst2", None, headers={"X-Copy-From": "xcf/missing"})
    assert info.value.http_status == 404
    with pytest.raises(swift.ClientException) as info:
        conn.copy_object("xcf", "dst", destination="nocontainer")
    assert info.value.http_status == 412


def test_copy_between_accounts(server, conn):
    conn.put_container("mine")
    conn.put_object("mine", "o", b"private")
    other = server.connection("other:admin")
    other.put_container("theirs")
    # Neither user may use the other's account: both sides are checked.
    with pytest.raises(swift.ClientException) as info:
        conn.copy_object("mine", "o", destination="/theirs/o",
                         headers={"Destination-Account": "AUTH_other"})
    assert info.value.http_status == 403
    with pytest.raises(swift.ClientException) as info:
        other.put_object("theirs", "o", None, headers={
            "X-Copy-From": "mine/o", "X-Copy-From-Account": "AUTH_test"})
    assert info.value.http_status == 403
    with pytest.raises(swift.ClientException):
        other.head_object("theirs", "o")
    # Within one's own account, naming it is fine.
    conn.copy_object("mine", "o", destination="/mine/o2",
                     headers={"Destination-Account": "AUTH_test"})
    assert conn.get_object("mine", "o2")[1] == b"private"
