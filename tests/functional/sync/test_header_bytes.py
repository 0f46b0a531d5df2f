"""Non-ASCII headers through ``storaged-sync``, both ways between two APIs.

Each ``storaged-api`` is the source of one container and the target of the
other's, so every value crosses the sync client's boundary (text to UTF-8
bytes on the wire) and the receiving API's (bytes back to text) in both
directions.  The sync point must move: a value the client cannot send would
fail the row on every pass.
"""

from __future__ import annotations

import http.client
from urllib.parse import quote

import pytest

from tests.functional.api.apiserver import ApiServer
from tests.functional.sync.cluster import SYNC_KEY
from tests.functional.sync.cluster import SyncDaemon
from tests.functional.sync.cluster import api_pair

pytest.importorskip("swiftclient")

VALUES = ["värde ñ", "名前", "🙂 ok", "𝄞𠜎"]
RAW = b"\xff\xfe\xe4"


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    yield from api_pair(tmp_path_factory)


def raw_head(server: ApiServer, container: str, obj: str) -> dict[str, bytes]:
    url, token = server.connection().get_auth()
    path = "%s/%s/%s" % (url[url.index("/v1/"):], container, quote(obj))
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("HEAD", path, headers={"X-Auth-Token": token})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200, (path, resp.status)
        return {k.lower(): v.encode("latin-1") for k, v in resp.getheaders()}
    finally:
        conn.close()


def raw_put(server: ApiServer, container: str, obj: str, meta: bytes) -> None:
    url, token = server.connection().get_auth()
    path = "%s/%s/%s" % (url[url.index("/v1/"):], container, obj)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest("PUT", path)
        conn.putheader("X-Auth-Token", token)
        conn.putheader("X-Object-Meta-Raw", meta)
        conn.putheader("Content-Length", "1")
        conn.endheaders(b"r")
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 201
    finally:
        conn.close()


@pytest.mark.parametrize("direction, backend", [
    (("one", "two"), "eventlet"),
    (("two", "one"), "threading"),
])
def test_values_sync_both_ways(pair, direction, backend):
    servers = {"one": pair[0], "two": pair[1]}
    src_name, dst_name = direction
    source, target = servers[src_name], servers[dst_name]
    cont = "from-" + src_name
    src, dst = source.connection(), target.connection()
    dst.put_container(cont, headers={"X-Container-Sync-Key": SYNC_KEY})
    src.put_container(cont, headers={
        "X-Container-Sync-To": "//us/%s/AUTH_test/%s" % (dst_name, cont),
        "X-Container-Sync-Key": SYNC_KEY})
    for i, value in enumerate(VALUES):
        src.put_object(cont, "o%d-%s" % (i, value), b"data",
                       content_type="text/x; n=" + value,
                       headers={"X-Object-Meta-Color": value,
                                "Content-Disposition": "inline; f=" + value})
    raw_put(source, cont, "raw", RAW)
    daemon = SyncDaemon(source, name="d-" + src_name, backend=backend)
    result = daemon.once()
    assert result.returncode == 0, daemon.output()
    for i, value in enumerate(VALUES):
        name = "o%d-%s" % (i, value)
        got = raw_head(target, cont, name)
        want = raw_head(source, cont, name)
        for key in ("x-object-meta-color", "content-type", "content-disposition",
                    "etag", "x-timestamp"):
            assert got[key] == want[key], (name, key)
        assert got["x-object-meta-color"] == value.encode("utf-8")
    assert raw_head(target, cont, "raw")["x-object-meta-raw"] == RAW
    # Every row went: the sync point is at the end of the container.
    status = daemon.manage("sync", "status", "--format", "json").stdout
    assert '"rows_behind": 0' in status, status
    assert "UnicodeEncodeError" not in daemon.output()
