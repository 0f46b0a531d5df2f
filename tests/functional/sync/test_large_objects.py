"""Large objects through ``storaged-sync`` between two ``storaged-api``.

As Swift's container-sync does it: a manifest is synced as a manifest (an
SLO's stored manifest with ``X-Static-Large-Object``, a DLO's
``X-Object-Manifest``), never as its content; the segments' container is
synced on its own.  On the target, both read back as the source's, in
whichever order the rows went.
"""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from tests.functional.sync.cluster import SYNC_KEY
from tests.functional.sync.cluster import SyncDaemon
from tests.functional.sync.cluster import api_pair

pytest.importorskip("swiftclient")

SEGMENT = 256 * 1024


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    yield from api_pair(tmp_path_factory)


def synced_container(src, dst, name: str) -> None:
    dst.put_container(name, headers={"X-Container-Sync-Key": SYNC_KEY})
    src.put_container(name, headers={
        "X-Container-Sync-To": "//us/two/AUTH_test/%s" % name,
        "X-Container-Sync-Key": SYNC_KEY})


@pytest.mark.parametrize("backend", ["eventlet", "threading"])
def test_manifests_sync_as_manifests(pair, backend):
    source, target = pair
    src, dst = source.connection(), target.connection()
    segs, big = "segs-" + backend, "big-" + backend
    synced_container(src, dst, segs)
    synced_container(src, dst, big)
    parts = [os.urandom(SEGMENT) for _ in range(3)]
    manifest = []
    for i, part in enumerate(parts):
        etag = src.put_object(segs, "slo/%02d" % i, part)
        manifest.append({"path": "/%s/slo/%02d" % (segs, i), "etag": etag,
                         "size_bytes": len(part)})
        src.put_object(segs, "dlo/%02d" % i, part)
    src.put_object(big, "slo", json.dumps(manifest),
                   query_string="multipart-manifest=put")
    src.put_object(big, "dlo", b"",
                   headers={"X-Object-Manifest": "%s/dlo/" % segs})
    whole = b"".join(parts)

    daemon = SyncDaemon(source, name="lo-" + backend, backend=backend)
    result = daemon.once()
    assert result.returncode == 0, daemon.output()

    for name in ("slo", "dlo"):
        headers, body = dst.get_object(big, name)
        assert hashlib.md5(body).digest() == hashlib.md5(whole).digest(), name
        assert headers["etag"] == src.head_object(big, name)["etag"], name
    headers = dst.head_object(big, "slo")
    assert headers["x-static-large-object"].lower() == "true"
    assert dst.head_object(big, "dlo")["x-object-manifest"] == "%s/dlo/" % segs
    # The manifest went, not the content: the target's stored manifest is
    # the source's, naming the same segments.
    _, got = dst.get_object(big, "slo", query_string="multipart-manifest=get")
    _, want = src.get_object(big, "slo", query_string="multipart-manifest=get")
    assert json.loads(got) == json.loads(want)
    listed = {o["name"]: o for o in dst.get_container(big)[1]}
    assert listed["slo"]["bytes"] == len(whole)
    assert listed["dlo"]["bytes"] == 0
    status = daemon.manage("sync", "status", "--format", "json").stdout
    assert '"rows_behind": 0' in status, status
