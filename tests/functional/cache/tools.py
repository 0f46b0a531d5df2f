"""Helpers of the cache's functional tests: configurations, an HTTP back end
that counts requests, catalog rows, and real commands run as subprocesses."""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import subprocess
import sys
import threading
import time
from typing import Any

from oslo_config import cfg

from storaged import objectstore
from storaged.catalog import Catalog
from storaged.catalog import Timestamp
from storaged.common import config
from storaged.conf import cache as cache_conf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
ACCOUNT, CONTAINER = "AUTH_t", "c"

_RANGE = re.compile(r"bytes=(\d+)-(\d*)\Z")


def write_conf(tmp_path, backends="mirror:http, local:file", cache=None,
               sections=None, kvs_url=None) -> str:
    """Write a storaged.conf for the tests; return its path."""
    state = tmp_path / "state"
    lines = [
        "[DEFAULT]",
        "state_path = %s" % state,
        "node_id = node-a",
        "enabled_backends = %s" % backends,
        "log_file = %s" % (tmp_path / "storaged.log"),
        "graceful_shutdown_timeout = 60",
        "[store]",
        "default_backend = local",
        "[daemon]",
        "stop_timeout = 10",
        "[mirror]",
        "cache = true",
        "read_timeout = 30",
        "chunk_size = 65536",
    ]
    options = {"min_free_space": "0", "max_size": "0"}
    options.update(cache or {})
    lines.append("[cache]")
    lines += ["%s = %s" % kv for kv in options.items()]
    for section, values in (sections or {}).items():
        lines.append("[%s]" % section)
        lines += ["%s = %s" % kv for kv in values.items()]
    if kvs_url:
        lines += ["[kvs]", "backend_url = %s" % kvs_url]
    path = tmp_path / "storaged.conf"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def load_conf(path: str) -> cfg.ConfigOpts:
    """Parse a test configuration in this process."""
    return config.prepare_service(
        ["--config-file", path], prog="test", setup_logging=False,
        register=cache_conf.register_opts, conf=cfg.ConfigOpts(),
    )


def add_rows(conf: cfg.ConfigOpts, objects: dict[str, tuple[str, str, bytes]]) -> None:
    """Record objects in the catalog: name -> (back end, location, data).

    The back ends are set up here once: processes started together then
    find their directories made.
    """
    objectstore.load_backends(conf).close()
    catalog = Catalog.from_conf(conf)
    try:
        broker = catalog.container(ACCOUNT, CONTAINER)
        broker.create()
        for name, (backend, location, data) in objects.items():
            broker.put_object(
                name, Timestamp.now(), len(data), "application/octet-stream",
                hashlib.md5(data).hexdigest(), backend=backend, location=location,
                metadata={},
            )
        broker.close()
    finally:
        catalog.close()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: CountingServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        name = self.path.rsplit("/", 1)[-1]
        with self.server.lock:
            self.server.requests.append((self.command, name, self.headers.get("Range")))
        data = self.server.objects.get(name)
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start, end, status = 0, len(data) - 1, 200
        match = _RANGE.match(self.headers.get("Range") or "")
        if match:
            start = int(match.group(1))
            end = int(match.group(2)) if match.group(2) else len(data) - 1
            status = 206
        body = data[start:end + 1]
        self.send_response(status)
        if status == 206:
            self.send_header("Content-Range",
                             "bytes %d-%d/%d" % (start, end, len(data)))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "HEAD":
            return
        step = self.server.chunk
        for i in range(0, len(body), step):
            if self.server.delay:
                time.sleep(self.server.delay)
            try:
                self.wfile.write(body[i:i + step])
                self.wfile.flush()
            except OSError:
                return


class CountingServer(http.server.ThreadingHTTPServer):
    """An HTTP back end that serves objects from memory and counts requests.

    :param delay: seconds between two chunks of a body (a slow back end).
    """

    daemon_threads = True

    def __init__(self, delay: float = 0.0, chunk: int = 64 * 1024) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.objects: dict[str, bytes] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        self.lock = threading.Lock()
        self.delay = delay
        self.chunk = chunk
        self.url = "http://127.0.0.1:%d" % self.server_address[1]
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients killed on purpose are not errors here

    def put(self, name: str, data: bytes) -> str:
        self.objects[name] = data
        return "%s/obj/%s" % (self.url, name)

    def gets(self, name: str | None = None) -> int:
        with self.lock:
            return sum(1 for m, n, _r in self.requests
                       if m == "GET" and name in (None, n))

    def __enter__(self) -> CountingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(5)


def env(backend: str = "eventlet", **extra: str) -> dict[str, str]:
    result = dict(os.environ, STORAGED_CONCURRENCY_BACKEND=backend)
    result.pop("NOTIFY_SOCKET", None)
    result.update(extra)
    return result


def run(module: str, *args: str, backend: str = "eventlet", timeout: float = 120,
        check: bool = False) -> subprocess.CompletedProcess:
    """Run ``python -m <module> args`` and wait for it."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, env=env(backend),
        capture_output=True, text=True, timeout=timeout,
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def spawn(module: str, *args: str, backend: str = "eventlet",
          stdout: Any = subprocess.PIPE) -> subprocess.Popen:
    """Start ``python -m <module> args`` in a session of its own."""
    return subprocess.Popen(
        [sys.executable, "-m", module, *args], cwd=ROOT, env=env(backend),
        stdout=stdout, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )


def wait_for(predicate, what: str, timeout: float = 60.0, interval: float = 0.02,
             procs=()):
    """Wait until ``predicate()``; on time-out show what ``procs`` printed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if any(p.poll() not in (None, 0) for p in procs):
            break
        time.sleep(interval)
    outputs = []
    for p in procs:
        p.kill()
        outputs.append((p.communicate()[0] or "")[-2000:])
    raise AssertionError("timed out waiting for %s %s" % (what, outputs))


def mount_tmpfs(path, size: str, options: str = "") -> bool:
    """Mount a tmpfs of ``size`` at ``path``; False if this host does not let us."""
    os.makedirs(path, exist_ok=True)
    opts = "size=%s" % size + ("," + options if options else "")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                          capture_output=True, text=True)
    return proc.returncode == 0


def umount(path) -> None:
    subprocess.run(["umount", str(path)], capture_output=True)
