"""Container-sync requests as another cluster's daemon sends them, over raw HTTP.

The signature is computed here from the protocol's definition (HMAC-SHA1
over method, path, X-Timestamp, nonce and the container key), not with
storaged's own helper.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
from urllib import parse as urlparse
import uuid

import pytest

from tests.functional.api.apiserver import REALM_KEY
from tests.functional.api.apiserver import REALM_KEY2
from tests.functional.api.apiserver import ApiServer

pytest.importorskip("swiftclient")

SYNC_KEY = "the-container-sync-key"


@pytest.fixture(scope="module", params=["eventlet", "threading"])
def server(request, tmp_path_factory):
    srv = ApiServer(tmp_path_factory.mktemp("sync"), backend=request.param)
    srv.start()
    conn = srv.connection()
    conn.put_container("dst", headers={"X-Container-Sync-Key": SYNC_KEY})
    yield srv
    assert srv.stop() == 0


def send(server, method, name, body=b"", headers=None, realm_key=REALM_KEY,
         user_key=SYNC_KEY, ts="1700000000.00000", sign_path=None):
    path = "/v1/AUTH_test/dst/" + urlparse.quote(name.encode("utf-8"), safe="/")
    nonce = uuid.uuid4().hex
    message = "\n".join([method, sign_path or path, ts, nonce, user_key])
    sig = hmac.new(realm_key.encode(), message.encode(), hashlib.sha1).hexdigest()
    all_headers = {
        "X-Container-Sync-Auth": "US %s %s" % (nonce, sig),
        "X-Timestamp": ts,
        "Content-Length": str(len(body)),
    }
    all_headers.update(headers or {})
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=all_headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_signed_put_head_delete(server):
    data = b"from the other cluster"
    status, _h, _b = send(server, "PUT", "sub dir/ü.txt", data, {
        "Etag": hashlib.md5(data).hexdigest(), "Content-Type": "text/x-remote",
        "X-Object-Meta-Origin": "east"}, ts="1700000000.12345")
    assert status == 201
    status, headers, _b = send(server, "HEAD", "sub dir/ü.txt", ts="1700000000.12345")
    assert status == 200
    assert headers["x-timestamp"] == "1700000000.12345"
    assert headers["x-object-meta-origin"] == "east"
    assert headers["content-type"] == "text/x-remote"
    stale = send(server, "PUT", "sub dir/ü.txt", b"stale", ts="1600000000.00000")
    assert stale[0] == 202
    assert send(server, "DELETE", "sub dir/ü.txt", ts="1600000000.00000")[0] == 409
    assert send(server, "DELETE", "sub dir/ü.txt", ts="1700000001.00000")[0] == 204
    assert send(server, "DELETE", "sub dir/ü.txt", ts="1700000002.00000")[0] == 404
    assert send(server, "HEAD", "sub dir/ü.txt")[0] == 404


def test_key2_accepted(server):
    assert send(server, "PUT", "rotated", b"x", realm_key=REALM_KEY2)[0] == 201


@pytest.mark.parametrize("kwargs", [
    {"realm_key": "wrong-realm-key"},
    {"user_key": "wrong-container-key"},
    {"sign_path": "/v1/AUTH_test/dst/not encoded"},
])
def test_refused_as_swift_refuses(server, kwargs):
    name = "not encoded" if "sign_path" in kwargs else "refused"
    status, headers, body = send(server, "PUT", name, b"x", **kwargs)
    assert status == 401
    assert body == (b"X-Container-Sync-Auth header not valid; contact cluster "
                    b"operator for support.")
    assert headers["www-authenticate"] == 'SwiftContainerSync realm="AUTH_test"'


def test_legacy_key(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for key, expected in ((SYNC_KEY, 201), ("wrong", 401)):
            conn.request("PUT", "/v1/AUTH_test/dst/legacy", body=b"old", headers={
                "X-Container-Sync-Key": key, "X-Timestamp": "1700000000.00000"})
            resp = conn.getresponse()
            resp.read()
            assert resp.status == expected
        conn.request("HEAD", "/v1/AUTH_test/dst/legacy",
                     headers={"X-Container-Sync-Key": SYNC_KEY})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
        assert resp.getheader("X-Timestamp") == "1700000000.00000"
    finally:
        conn.close()
