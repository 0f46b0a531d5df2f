"""The ``swift`` driver on a real Swift cluster, for the contract suite and its tests.

The cluster is the session's (:mod:`tests.swift_cluster`): Debian's Swift
servers with tempauth, no mock.  Each store gets a container of its own (a
fresh name, created on the first add), so that a scrub sees only what its
test wrote.  Sizes are small so that every add path runs on small data: with
``chunk`` bytes of ``chunk_size``, objects up to ``chunk`` go in one PUT,
up to ``2 * chunk`` are streamed, larger ones become static large objects
of ``chunk``-byte segments.
"""

from __future__ import annotations

from collections.abc import Callable
import http.client
import io
import json
from typing import Any
from urllib import parse as urlparse
import uuid

from storaged.objectstore.drivers import swift as swift_driver
from tests import swift_cluster as cluster_mod
from tests.unit.objectstore.conftest import make_conf


def new_container() -> str:
    """Return a container name no other test uses."""
    return "c" + uuid.uuid4().hex[:20]


def options(cluster: cluster_mod.SwiftCluster, **overrides: object) -> dict[str, Any]:
    """Options of a ``swift`` back end on ``cluster`` (with a fresh container)."""
    result: dict[str, Any] = {
        "auth_url": cluster.auth_url,
        "auth_version": "1",
        "user": cluster_mod.USER,
        "key": cluster_mod.KEY,
        "container": new_container(),
        "retries": 0,
    }
    result.update(overrides)
    return {k: v for k, v in result.items() if v is not None}


def build(
    tmp_path: Any, cluster: cluster_mod.SwiftCluster, **overrides: object
) -> swift_driver.SwiftStore:
    """Build a ``swift`` store (back end id ``obj``) on ``cluster``."""
    lines = ["[DEFAULT]", "enabled_backends = obj:swift", "[obj]"]
    lines += [f"{k} = {v}" for k, v in options(cluster, **overrides).items()]
    conf = make_conf(tmp_path, "\n".join(lines) + "\n")
    return swift_driver.SwiftStore(conf, "obj")


def small_sizes(chunk: int) -> dict[str, Any]:
    """Options that make every add path run on a few ``chunk``s of data."""
    return {
        "chunk_size": chunk,
        "large_object_size": f"{2 * chunk // 1024}K",
        "large_object_chunk_size": f"{chunk // 1024}K",
    }


def raw(
    cluster: cluster_mod.SwiftCluster,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """A plain request to ``STORAGE_URL/path`` (for tests to look behind)."""
    parts = urlparse.urlsplit(cluster.storage_url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        send = {"X-Auth-Token": cluster.token(), **(headers or {})}
        conn.request(method, f"{parts.path}/{path}", body=body, headers=send)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def names(
    cluster: cluster_mod.SwiftCluster, container: str, prefix: str = ""
) -> list[str]:
    """The object names in ``container`` (empty if it does not exist)."""
    query = urlparse.urlencode({"format": "json", "prefix": prefix})
    status, _h, body = raw(cluster, "GET", f"{container}?{query}")
    if status == 404:
        return []
    return [entry["name"] for entry in json.loads(body or b"[]")]


def harness_parts(
    tmp_path: Any, cluster: cluster_mod.SwiftCluster, chunk: int
) -> tuple[swift_driver.SwiftStore, Callable[[str, bytes], str], Callable[[str], None]]:
    """Return ``(store, seed, unseed)`` for the contract's Harness."""
    store = build(tmp_path, cluster, **small_sizes(chunk))

    def seed(object_id: str, data: bytes) -> str:
        return store.add(object_id, io.BytesIO(data), len(data)).location

    return store, seed, store.delete
