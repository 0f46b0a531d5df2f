"""Symlinks through ``storaged-sync`` between two ``storaged-api``.

As Swift's container-sync sends them: a link goes as a link (an empty body
with its ``X-Symlink-Target*`` headers), never as its target's data; on the
target it is a link again, listed as one, and it resolves there.  The
sender compares the target's link itself, not what it points to.
"""

from __future__ import annotations

import pytest

from tests.functional.sync.cluster import SYNC_KEY
from tests.functional.sync.cluster import SyncDaemon
from tests.functional.sync.cluster import api_pair

pytest.importorskip("swiftclient")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    yield from api_pair(tmp_path_factory)


def synced_container(src, dst, name: str) -> None:
    dst.put_container(name, headers={"X-Container-Sync-Key": SYNC_KEY})
    src.put_container(name, headers={
        "X-Container-Sync-To": "//us/two/AUTH_test/%s" % name,
        "X-Container-Sync-Key": SYNC_KEY})


def put_link(conn, container, name, target, **headers):
    headers = {k.replace("_", "-"): v for k, v in headers.items()}
    headers["X-Symlink-Target"] = target
    conn.put_object(container, name, b"", headers=headers)


def test_links_sync_as_links(pair):
    source, target = pair
    src, dst = source.connection(), target.connection()
    synced_container(src, dst, "data")
    synced_container(src, dst, "links")
    etag = src.put_object("data", "obj", b"the data")
    put_link(src, "links", "dynamic", "data/obj")
    put_link(src, "links", "static", "data/obj", X_Symlink_Target_Etag=etag)
    put_link(src, "links", "nowhere", "data/missing")

    daemon = SyncDaemon(source, name="links")
    result = daemon.once()
    assert result.returncode == 0, daemon.output()

    for name in ("dynamic", "static"):
        headers, body = dst.get_object("links", name)
        assert body == b"the data", name
        assert headers["content-location"] == "/v1/AUTH_test/data/obj"
        headers, body = dst.get_object("links", name,
                                       query_string="symlink=get")
        assert (body, headers["content-length"]) == (b"", "0"), name
        assert headers["x-symlink-target"] == "data/obj"
        assert headers["x-timestamp"] == src.head_object(
            "links", name, query_string="symlink=get")["x-timestamp"]
    headers = dst.head_object("links", "static", query_string="symlink=get")
    assert headers["x-symlink-target-etag"] == etag
    assert headers["x-symlink-target-bytes"] == "8"
    listed = {o["name"]: o for o in dst.get_container("links")[1]}
    assert listed["dynamic"]["symlink_path"] == "/v1/AUTH_test/data/obj"
    assert listed["static"]["symlink_etag"] == etag
    assert listed["static"]["bytes"] == 0
    assert dst.head_object("links", "nowhere", query_string="symlink=get")[
        "x-symlink-target"] == "data/missing"

    # The link is changed at the source while its old target changes at
    # the destination: the sender compares the link, not its old target.
    put_link(src, "links", "dynamic", "data/other")
    src.put_object("data", "other", b"other data")
    dst.put_object("data", "obj", b"newer at the destination")
    result = daemon.once()
    assert result.returncode == 0, daemon.output()
    assert dst.get_object("links", "dynamic")[1] == b"other data"
    status = daemon.manage("sync", "status", "--format", "json").stdout
    assert '"rows_behind": 0' in status, status
