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
import contextlib
import http.client
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
import io
import json
import threading
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


# -- servers in front of the real Swift: a fault injector, a Keystone double --


class _Server:
    """A threaded HTTP server on a free loopback port, stopped by ``stop``."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> _Server:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        out = bytearray()
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                handler.rfile.readline()
                return bytes(out)
            out += handler.rfile.read(size)
            handler.rfile.readline()
    return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))


class FaultProxy(_Server):
    """A forwarding proxy to the real Swift proxy that fails chosen requests.

    ``fail(n, status)`` makes the next ``n`` requests (whose method is in
    ``methods``, all if None; and whose path contains ``path_contains``)
    answer ``status`` without reaching Swift; with
    ``lose=True`` they reach Swift, and its answer is replaced by ``status``
    (an answer lost on the way back);
    ``connections`` counts the TCP connections clients opened, ``seen`` the
    requests (method, path).  Bodies are read whole and forwarded with a
    ``Content-Length``: meant for small objects.  The ``Host`` header goes
    through unchanged, so tempauth's storage URLs point at the proxy.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.failures = 0
        self.status = 503
        self.methods: set[str] | None = None
        self.lose = False
        self.path_contains = ""
        self.connections = 0
        self.seen: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        super().__init__(_ProxyHandler)

    def fail(
        self,
        n: int,
        status: int = 503,
        methods: set[str] | None = None,
        lose: bool = False,
        path_contains: str = "",
    ) -> None:
        with self.lock:
            self.failures, self.status, self.methods = n, status, methods
            self.lose, self.path_contains = lose, path_contains


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        proxy = self.server.owner  # type: ignore[attr-defined]
        with proxy.lock:
            proxy.connections += 1

    def log_message(self, *args: object) -> None:
        pass

    def handle(self) -> None:
        # A client that drops a kept-alive connection is no error here.
        with contextlib.suppress(ConnectionError):
            super().handle()

    def _handle(self) -> None:
        proxy: FaultProxy = self.server.owner  # type: ignore[attr-defined]
        body = _read_body(self)
        with proxy.lock:
            proxy.seen.append((self.command, self.path))
            failing = (
                proxy.failures > 0
                and (proxy.methods is None or self.command in proxy.methods)
                and proxy.path_contains in self.path
            )
            if failing:
                proxy.failures -= 1
        if failing and not proxy.lose:
            self._answer_failure(proxy.status)
            return
        conn = http.client.HTTPConnection("127.0.0.1", proxy.target_port, timeout=30)
        try:
            headers = {
                k: v
                for k, v in self.headers.items()
                if k.lower() not in ("transfer-encoding", "content-length")
            }
            if body or self.command in ("PUT", "POST"):
                headers["Content-Length"] = str(len(body))
            conn.request(self.command, self.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if failing:
            self._answer_failure(proxy.status)
            return
        self.send_response(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "content-length", "connection"):
                self.send_header(k, v)
        length = resp.getheader("Content-Length")
        if self.command == "HEAD" and length is not None:
            self.send_header("Content-Length", length)
        else:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _answer_failure(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle


class KeystoneDouble(_Server):
    """A test double of Keystone v3's token API, and of Keystone only.

    ``POST /v3/auth/tokens`` with the password method checks the user,
    domain, password and project it was given, and answers a token that is
    a real tempauth token of the real Swift cluster, with a catalog whose
    ``object-store`` endpoints (public and internal, region ``RegionTwo``;
    a decoy in ``RegionOne``) point at the cluster's real storage URL.
    """

    USER = "demo"
    PASSWORD = "secret-password"
    PROJECT = "demo-project"

    def __init__(self, cluster: cluster_mod.SwiftCluster) -> None:
        self.cluster = cluster
        self.requests: list[dict[str, Any]] = []
        super().__init__(_KeystoneHandler)

    def answer(self, doc: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
        self.requests.append(doc)
        try:
            identity = doc["auth"]["identity"]
            user = identity["password"]["user"]
            scope = doc["auth"]["scope"]["project"]
        except (KeyError, TypeError):
            return 400, {"error": "malformed"}, ""
        if (
            identity.get("methods") != ["password"]
            or user.get("name") != self.USER
            or user.get("password") != self.PASSWORD
            or user.get("domain", {}).get("name") != "Default"
            or scope.get("name") != self.PROJECT
            or scope.get("domain", {}).get("name") != "Default"
        ):
            return 401, {"error": {"code": 401, "title": "Unauthorized"}}, ""
        storage = self.cluster.storage_url

        def endpoint(interface: str, region: str, url: str) -> dict[str, str]:
            return {"interface": interface, "region": region, "region_id": region,
                    "url": url}  # fmt: skip

        catalog = [
            {"type": "identity",
             "endpoints": [endpoint("public", "RegionTwo", self.url)]},
            {
                "type": "object-store",
                "endpoints": [
                    endpoint("public", "RegionOne", "http://127.0.0.1:9/v1/AUTH_x"),
                    endpoint("public", "RegionTwo", storage),
                    endpoint("internal", "RegionTwo", storage),
                ],
            },
        ]  # fmt: skip
        token = {
            "expires_at": "2999-01-01T00:00:00.000000Z",
            "methods": ["password"],
            "catalog": catalog,
        }
        return 201, {"token": token}, self.cluster.token()


class _KeystoneHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        keystone: KeystoneDouble = self.server.owner  # type: ignore[attr-defined]
        body = _read_body(self)
        if self.path.rstrip("/") != "/v3/auth/tokens":
            status, doc, token = 404, {"error": "not found"}, ""
        else:
            try:
                status, doc, token = keystone.answer(json.loads(body))
            except ValueError:
                status, doc, token = 400, {"error": "bad json"}, ""
        raw_doc = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw_doc)))
        if token:
            self.send_header("X-Subject-Token", token)
        self.end_headers()
        self.wfile.write(raw_doc)
