"""A source and a target ``storaged-api``, and ``storaged-sync`` processes.

The source API and the sync daemons share one state path (catalog, object
store, state store): the daemons read what clients write through the source
API, as on a storage node.  The target is another ``storaged-api`` with its
own state, receiving the sync requests over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

from tests.functional.api.apiserver import REALM_KEY
from tests.functional.api.apiserver import ROOT
from tests.functional.api.apiserver import ApiServer

SYNC_KEY = "the-sync-key-of-both-containers"


def wait_for(predicate, timeout=30.0, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    text = what() if callable(what) else what
    raise AssertionError("timed out waiting for %s" % text)


def write_cluster_realms(path: str, servers: dict[str, ApiServer]) -> None:
    """The realm ``us`` with one cluster per named server."""
    with open(path, "w") as f:
        f.write("[us]\nkey = %s\n" % REALM_KEY)
        for name, srv in servers.items():
            f.write("cluster_%s = %s/v1/\n" % (name, srv.url))


def api_pair(tmp_path_factory) -> Iterator[tuple[ApiServer, ApiServer]]:
    """Two started storaged-api, clusters ``one`` and ``two`` of realm ``us``.

    A generator for a module-scoped fixture: ``yield from api_pair(...)``.
    """
    one = ApiServer(tmp_path_factory.mktemp("one"))
    two = ApiServer(tmp_path_factory.mktemp("two"))
    for srv in (one, two):
        write_cluster_realms(srv.realms, {"one": one, "two": two})
    one.start()
    two.start()
    try:
        yield one, two
    finally:
        one.kill()
        two.kill()


def write_realms(path: str, target: ApiServer) -> None:
    """The realm ``us`` with the target cluster ``dst`` (and the source's own)."""
    with open(path, "w") as f:
        f.write("[us]\nkey = %s\ncluster_dst = %s/v1/\n" % (REALM_KEY, target.url))


class SyncDaemon:
    """A ``storaged-sync`` process over the source's state path."""

    def __init__(self, source: ApiServer, name: str = "sync", worker: int | None = None,
                 backend: str = "eventlet", **sync_opts: object) -> None:
        self.source = source
        self.backend = backend
        self.worker = worker
        self.dir = os.path.join(source.dir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "sync.conf")
        self.log = os.path.join(self.dir, "sync.log")
        self.sync = {
            "realms_conf": source.realms,
            "interval": "0.5",
            "request_timeout": "3",
            "concurrency": "16",
            "metrics_file": os.path.join(self.dir, "sync.prom"),
        }
        self.sync.update({k: str(v) for k, v in sync_opts.items()})
        self.proc: subprocess.Popen[bytes] | None = None
        self.write_conf()

    def write_conf(self) -> None:
        state = self.source.default["state_path"]
        lines = [
            "[DEFAULT]",
            "state_path = %s" % state,
            "node_id = node-a",
            "log_file = %s" % self.log,
            "debug = false",
            "[daemon]",
            "stop_timeout = 10",
            "[coordination]",
            "backend_url = file://%s" % os.path.join(state, "coordination"),
            "heartbeat_interval = 0.3",
            "membership_ttl = 2",
            "lock_ttl = 2",
            "[sync]",
        ]
        lines += ["%s = %s" % kv for kv in self.sync.items()]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def args(self, *extra: str) -> list[str]:
        args = [sys.executable, "-m", "storaged.cmd.sync", "--config-file", self.conf]
        if self.worker is not None:
            args += ["--worker", str(self.worker)]
        return args + list(extra)

    def env(self) -> dict[str, str]:
        env = dict(os.environ, STORAGED_CONCURRENCY_BACKEND=self.backend)
        env.pop("NOTIFY_SOCKET", None)
        return env

    def once(self, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run one pass (``--once``)."""
        return subprocess.run(self.args("--once"), cwd=ROOT, env=self.env(),
                              capture_output=True, text=True, timeout=timeout)

    def start(self) -> SyncDaemon:
        self.proc = subprocess.Popen(
            self.args(), cwd=ROOT, env=self.env(),
            stdout=open(os.path.join(self.dir, "stdout"), "ab"),
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.kill()

    def output(self) -> str:
        text = ""
        for name in ("stdout", "sync.log"):
            path = os.path.join(self.dir, name)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    text += f.read()[-6000:]
        return text

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "storaged.manage.cli", "--config-file", self.conf,
             *args], cwd=ROOT, env=self.env(), capture_output=True, text=True,
            timeout=60)


def listing(server: ApiServer, container: str) -> dict[str, tuple[str, str]]:
    """``name -> (etag, last_modified)`` of a container's objects."""
    conn = server.connection()
    _headers, objects = conn.get_container(container, full_listing=True)
    return {o["name"]: (o["hash"], o["last_modified"]) for o in objects}


def snapshot(server: ApiServer, container: str, with_meta: bool = False) -> dict:
    """``name -> (etag, x-timestamp, content type, user metadata)``."""
    conn = server.connection()
    _headers, objects = conn.get_container(container, full_listing=True)
    found = {}
    for obj in objects:
        if with_meta:
            headers = conn.head_object(container, obj["name"])
            meta = tuple(sorted((k, v) for k, v in headers.items()
                                if k.startswith("x-object-meta-")))
            found[obj["name"]] = (headers["etag"], headers["x-timestamp"],
                                  headers["content-type"], meta)
        else:
            found[obj["name"]] = (obj["hash"], obj["last_modified"],
                                  obj["content_type"])
    return found


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def progress(daemon: SyncDaemon) -> dict:
    result = daemon.manage("sync", "status", "--format", "json")
    return json.loads(result.stdout) if result.stdout.strip() else {}


class FaultProxy:
    """An HTTP server in front of the target that can fail on demand.

    Modes: ``ok`` (forward), ``500`` (answer 500), ``hang`` (read the request,
    answer nothing for ``hang_time`` seconds, then close), ``flaky`` (fail
    one request in ``1/flaky_every`` with a 503, forward the others).  A
    ``delay`` is added before forwarding.  Counts what it forwarded.
    """

    def __init__(self, target: ApiServer) -> None:
        import http.client
        import http.server
        import random
        import threading

        self.target = target
        self.mode = "ok"
        self.delay = 0.0
        self.hang_time = 5.0
        self.flaky_every = 3
        self.forwarded = 0
        self.failed = 0
        proxy = self
        rng = random.Random(7)
        lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self, status, headers, body):
                self.send_response(status)
                for k, v in headers:
                    if k.lower() not in ("connection", "transfer-encoding",
                                         "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                mode = proxy.mode
                if mode == "flaky":
                    with lock:
                        mode = "503" if rng.randrange(proxy.flaky_every) == 0 else "ok"
                if mode == "hang":
                    time.sleep(proxy.hang_time)
                    self.close_connection = True
                    return
                if mode in ("500", "503"):
                    with lock:
                        proxy.failed += 1
                    self._answer(int(mode), [], b"injected failure")
                    return
                if proxy.delay:
                    time.sleep(proxy.delay)
                conn = http.client.HTTPConnection("127.0.0.1", proxy.target.port,
                                                  timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items()
                               if k.lower() != "connection"}
                    conn.request(self.command, self.path, body=body or None,
                                 headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    with lock:
                        proxy.forwarded += 1
                    self._answer(resp.status, resp.getheaders(), data)
                finally:
                    conn.close()

            do_HEAD = do_PUT = do_DELETE = do_GET = do_POST = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.port

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def write_realms_with(path: str, clusters: dict[str, str]) -> None:
    """The realm ``us`` with the given clusters (name -> base URL)."""
    with open(path, "w") as f:
        f.write("[us]\nkey = %s\n" % REALM_KEY)
        for name, url in clusters.items():
            f.write("cluster_%s = %s/v1/\n" % (name, url))


def source_catalog(daemon: SyncDaemon):
    """The source's catalog, opened from the test process."""
    from storaged.catalog import Catalog
    from storaged.common import config

    conf = config.prepare_service(["--config-file", daemon.conf], prog="test",
                                  setup_logging=False)
    return Catalog.from_conf(conf)


def assert_no_run_ahead(daemon: SyncDaemon, target: ApiServer, container: str,
                        worker: str = "node-a:sync") -> tuple[int, int]:
    """Every row at or below the worker's point1 is on the target.

    A live row: the target has the object with the same or a newer
    timestamp.  A tombstone: the target has no object, or a newer one.
    :returns: the worker's sync points.
    """
    from swiftclient import ClientException

    from storaged.catalog import Timestamp

    catalog = source_catalog(daemon)
    try:
        broker = catalog.container("AUTH_test", container)
        point1, point2 = broker.get_sync_points(worker)
        rows = [r for r in broker.get_items_since(-1, 100000) if r.row_id <= point1]
        broker.close()
    finally:
        catalog.close()
    conn = target.connection()
    for row in rows:
        try:
            remote = Timestamp(conn.head_object(container, row.name)["x-timestamp"])
        except ClientException as err:
            assert err.http_status == 404
            assert row.deleted, "row %d (%s) below point1 %d is not on the target" % (
                row.row_id, row.name, point1)
            continue
        if row.deleted:
            assert remote > row.created_at, "deleted %s still on the target" % row.name
        else:
            assert remote >= row.created_at, "%s older on the target" % row.name
    return point1, point2
