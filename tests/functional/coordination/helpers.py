"""Helpers of the coordination functional tests: back ends, victims.

Everything here talks to the back ends directly (redis-py, etcd3gw, kazoo,
the file system) to do what an operator or a failure would do behind a
coordinator's back: evict a member, count what is left over.
"""

from __future__ import annotations

from collections.abc import Callable
import contextlib
import hashlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from typing import Any
import urllib.parse

from oslo_config import cfg
import pytest

from storaged.conf import coordination as coordination_conf
from storaged.conf import default as default_conf
from storaged.coordination import backends
from storaged.coordination.backends.etcd import ETCD_LOCK_PREFIX
from storaged.coordination.backends.file import FILE_LOCK_DIR
from storaged.coordination.backends.redis import REDIS_LOCK_PREFIX
from storaged.coordination.backends.zookeeper import ZK_LOCK_PATH

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))

BACKENDS = ("file", "redis", "etcd", "zookeeper")
#: (coordination back end, concurrency backend) of a process under test:
#: every back end on both, but ZooKeeper, refused under eventlet (kazoo's
#: threads), on threading only.
PROCESS_CASES = [
    (backend, model)
    for backend in BACKENDS
    for model in ("eventlet", "threading")
    if not (backend == "zookeeper" and model == "eventlet")
]
PROCESS_IDS = ["-".join(case) for case in PROCESS_CASES]
#: Redis database the functional tests own (flushed before each test).
REDIS_DB = 11


def make_conf(state_path: str, **overrides: Any) -> cfg.ConfigOpts:
    """A parsed ConfigOpts with the [coordination] options set."""
    conf = cfg.ConfigOpts()
    default_conf.register_opts(conf)
    coordination_conf.register_opts(conf)
    conf([])
    conf.set_override("state_path", state_path)
    for name, value in overrides.items():
        conf.set_override(name, value, "coordination")
    return conf


def wait_for(condition: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll ``condition`` until true; fail after ``timeout`` (a safety net)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail("condition not met within %ss" % timeout)
        time.sleep(0.01)


def url_for(request: pytest.FixtureRequest, backend: str, tmp_path: Any) -> str:
    """The URL of a back end for one test (a fresh directory or database)."""
    if backend == "file":
        return "file://%s" % (tmp_path / "coordination")
    if backend == "redis":
        server = request.getfixturevalue("redis_server")
        redis_client(server.url + "?db=%d" % REDIS_DB).flushdb()
        return server.url + "?db=%d" % REDIS_DB
    if backend == "etcd":
        return str(request.getfixturevalue("etcd_url"))
    if backend == "zookeeper":
        return str(request.getfixturevalue("zookeeper_url"))
    raise ValueError(backend)


def _host_port(url: str) -> tuple[str, int]:
    parsed = urllib.parse.urlsplit(url)
    return parsed.hostname or "127.0.0.1", int(parsed.port or 0)


def _db(url: str) -> int:
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    return int(query.get("db", ["0"])[0])


def redis_client(url: str) -> Any:
    import redis

    host, port = _host_port(url)
    return redis.Redis(host=host, port=port, db=_db(url))


def etcd_client(url: str) -> Any:
    import etcd3gw

    host, port = _host_port(url)
    return etcd3gw.client(host=host, port=port, timeout=5)


@contextlib.contextmanager
def zk_client(url: str) -> Any:
    from kazoo.client import KazooClient

    host, port = _host_port(url)
    client = KazooClient(hosts="%s:%d" % (host, port), timeout=10)
    client.start(timeout=10)
    try:
        yield client
    finally:
        client.stop()
        client.close()


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def evict(url: str, group: str, member: str) -> None:
    """Remove ``member`` from ``group`` behind its coordinator's back."""
    kind = backends.kind_of(url)
    if kind == "file":
        base = urllib.parse.urlsplit(url).path
        os.unlink(os.path.join(base, "groups", _sha1(group), _sha1(member) + ".raw"))
    elif kind == "redis":
        client = redis_client(url)
        # One transaction: a member whose beat ran between the two steps
        # would re-join, then lose its beat key, and re-join again.
        pipe = client.pipeline(transaction=True)
        pipe.hdel("_tooz_group:" + group, member)
        pipe.delete("_tooz_beats:" + member)
        removed, _deleted = pipe.execute()
        assert removed == 1
    elif kind == "etcd":
        assert etcd_client(url).delete("tooz/groups/%s/%s" % (group, member))
    else:
        with zk_client(url) as client:
            client.delete("/tooz/%s/%s" % (group, member))


def lock_artifacts(url: str, prefix: str = "") -> list[str]:
    """What the back end keeps for locks whose stored name starts with prefix."""
    kind = backends.kind_of(url)
    if kind == "file":
        base = os.path.join(urllib.parse.urlsplit(url).path, FILE_LOCK_DIR)
        try:
            names = os.listdir(base)
        except FileNotFoundError:
            names = []
    elif kind == "redis":
        raw = redis_client(url).keys(REDIS_LOCK_PREFIX + "*")
        names = [k.decode()[len(REDIS_LOCK_PREFIX):] for k in raw]
    elif kind == "etcd":
        found = etcd_client(url).get_prefix(ETCD_LOCK_PREFIX)
        names = [
            meta["key"].decode()[len(ETCD_LOCK_PREFIX):] for _v, meta in found
        ]
    else:
        with zk_client(url) as client:
            names = client.get_children(ZK_LOCK_PATH) if client.exists(
                ZK_LOCK_PATH) else []
    return sorted(n for n in names if n.startswith(prefix))


def etcd_leases(url: str) -> set[int]:
    """Ids of every live lease of an etcd server."""
    client = etcd_client(url)
    result = client.post(client.get_url("/lease/leases"), json={})
    return {int(lease["ID"]) for lease in result.get("leases", [])}


def zk_tree(url: str) -> set[str]:
    """Every znode path of a ZooKeeper server (but its own /zookeeper)."""
    found: set[str] = set()
    with zk_client(url) as client:
        pending = ["/"]
        while pending:
            path = pending.pop()
            for child in client.get_children(path):
                full = path.rstrip("/") + "/" + child
                if full == "/zookeeper":
                    continue
                found.add(full)
                pending.append(full)
    return found


class Child:
    """A test process run with ``-m``, driven by lines on its stdin.

    It prints one JSON object per event on stdout; :meth:`expect` waits for
    one.  Its log (if it writes one) goes to ``log_path``.
    """

    def __init__(self, member: str, args: list[str], log_path: str = "") -> None:
        self.member = member
        self.args = [sys.executable, "-m", *args]
        self.log_path = log_path
        self.process: subprocess.Popen[str] | None = None
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> Child:
        env = dict(os.environ)
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        env.pop("STORAGED_CONCURRENCY_BACKEND", None)
        self.process = subprocess.Popen(
            self.args, cwd=ROOT, env=env, text=True, bufsize=1,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("{"):
                self.events.put(json.loads(line))
            else:
                self.events.put({"event": "output", "line": line.rstrip()})
        self.events.put({"event": "exit"})

    def expect(self, name: str, timeout: float = 60.0) -> dict[str, Any]:
        """Wait for the event ``name``; fail on exit or timeout."""
        deadline = time.monotonic() + timeout
        output = []
        while True:
            try:
                event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail("%s: no %r event in %ss; output: %s; log: %s"
                            % (self.member, name, timeout, output[-20:], self.log()))
            if event["event"] == name:
                return event
            if event["event"] == "output":
                output.append(event["line"])
            elif event["event"] == "exit":
                pytest.fail("%s exited before %r; output: %s; log: %s"
                            % (self.member, name, output[-20:], self.log()))

    def log(self) -> str:
        if not self.log_path:
            return ""
        try:
            with open(self.log_path) as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def send(self, command: str) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def kill(self) -> None:
        """SIGKILL: the coordinator gets no chance to leave or release."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the exit status (SIGKILL after ``timeout``)."""
        assert self.process is not None
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        return int(self.process.returncode)


class Victim(Child):
    """A coordinator in a process of its own (``victim.py``), driven by lines.

    It prints one JSON object per event on stdout; :meth:`expect` waits for
    one.  Its log goes to ``log_path``.
    """

    def __init__(self, url: str, member: str, state_path: str, *,
                 concurrency: str = "eventlet", group: str | None = None,
                 lock: str | None = None, block: float = 0.0,
                 lock_ttl: int = 4, membership_ttl: int = 4,
                 heartbeat: float = 1.0, partitions: int = 0,
                 settle_time: float = 0.0) -> None:
        log_name = "victim-%s.log" % member.replace(":", "_")
        log_path = os.path.join(state_path, log_name)
        args = [
            "tests.functional.coordination.victim",
            "--url", url, "--member", member, "--state-path", state_path,
            "--concurrency", concurrency, "--lock-ttl", str(lock_ttl),
            "--membership-ttl", str(membership_ttl), "--heartbeat", str(heartbeat),
            "--block", str(block), "--log-file", log_path,
            "--partitions", str(partitions), "--settle-time", str(settle_time),
        ]
        if group:
            args += ["--group", group]
        if lock:
            args += ["--lock", lock]
        super().__init__(member, args, log_path)

    def stop(self, timeout: float = 30.0) -> int:
        """Ask for a clean stop; return the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.send("stop")
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return int(self.process.returncode)
