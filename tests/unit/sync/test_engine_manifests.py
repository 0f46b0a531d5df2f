"""Large objects through the sync engine: manifests go as manifests."""

from __future__ import annotations

import hashlib
import json

from tests.unit.api.conftest import Client
from tests.unit.sync.conftest import put


def md5(data):
    return hashlib.md5(data).hexdigest()


def test_static_large_object_syncs_as_its_manifest(source, target, make_engine):
    parts = [b"a" * 100, b"b" * 50]
    stored = []
    for i, data in enumerate(parts):
        put(source, "seg/%d" % i, data)
        stored.append({"name": "/dst/seg/%d" % i, "bytes": len(data),
                       "hash": md5(data), "content_type": "application/octet-stream",
                       "last_modified": "2026-01-01T00:00:00.000000"})
    # What storaged-api stores for ``PUT ?multipart-manifest=put`` (the
    # segments named in the target's container, as a user syncing both
    # containers would write them).
    manifest = json.dumps(stored).encode()
    slo_etag = md5("".join(md5(p) for p in parts).encode())
    put(source, "big", manifest, content_type="text/x-big;swift_bytes=150",
        metadata={"X-Static-Large-Object": "True",
                  "X-Object-Sysmeta-Slo-Etag": slo_etag,
                  "X-Object-Sysmeta-Slo-Size": "150",
                  "X-Object-Meta-Kind": "slo"})
    report = make_engine().sync_container("AUTH_test", "src", None)
    assert report.ok and report.puts == 3

    remote = target.service.head_object("AUTH_test", "dst", "big")
    assert remote.content_type == "text/x-big"
    assert remote.etag == md5(manifest)
    assert remote.metadata["X-Static-Large-Object"] == "True"
    client = Client(target.app)
    res = client.as_user("GET", "/v1/AUTH_test/dst/big")
    assert res.status == 200
    assert res.body == b"".join(parts)
    assert res.headers["etag"] == '"%s"' % slo_etag
    assert res.headers["content-type"] == "text/x-big"
    listing = client.as_user("GET", "/v1/AUTH_test/dst", query="format=json").json()
    entry = next(e for e in listing if e["name"] == "big")
    assert (entry["bytes"], entry["hash"], entry["slo_etag"]) == (
        150, md5(manifest), '"%s"' % slo_etag)
    res = client.as_user("GET", "/v1/AUTH_test/dst/big",
                         query="multipart-manifest=get")
    assert json.loads(res.body) == stored
