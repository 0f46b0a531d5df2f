"""``storaged-heartbeat`` as a real process, on real coordination back ends.

What an operator relies on: the agent joins the group with its node's
capabilities, ``storaged-manage cluster members`` lists it (from the back end,
or from the view published in the state store when the back end is down),
SIGTERM leaves the group at once (no ghost member), a restart does not leave
a ghost either, the systemd watchdog is fed, and a back end outage is
survived: the agent reconnects and re-joins on its own.

The coordinator's own guarantees (starvation, takeover, eviction, leftovers)
are proven in ``tests/functional/coordination``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from storaged import concurrency
from storaged import kvs
from storaged.common import config
from tests.servers import RedisServer
from tests.servers import ServerMissing
from tests.servers import skip_or_fail

# (coordination back end, concurrency backend): ZooKeeper is refused under
# eventlet (kazoo's threads), so it runs on the threading backend only.
CASES = [
    ("file", "eventlet"),
    ("file", "threading"),
    ("redis", "eventlet"),
    ("redis", "threading"),
    ("etcd", "eventlet"),
    ("etcd", "threading"),
    ("zookeeper", "threading"),
]


def wait_for(predicate, timeout=30.0, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    text = what() if callable(what) else what
    raise AssertionError("timed out waiting for %s" % text)


def coordination_url(request, backend, tmp_path):
    if backend == "file":
        return "file://%s" % (tmp_path / "coordination")
    if backend == "redis":
        return request.getfixturevalue("redis_url") + "?db=12"
    if backend == "etcd":
        return str(request.getfixturevalue("etcd_url"))
    return str(request.getfixturevalue("zookeeper_url"))


class Node:
    """One node's configuration: its state path, node id and agent process."""

    def __init__(self, tmp_path, node_id, coord_url, backend, group, ttl=3):
        self.dir = tmp_path / node_id
        self.dir.mkdir()
        self.node_id = node_id
        self.backend = backend
        self.log = self.dir / "heartbeat.log"
        self.conf = self.dir / "storaged.conf"
        # All nodes publish to one state store, as they would share one
        # Redis in production.
        self.conf.write_text("\n".join([
            "[DEFAULT]",
            "state_path = %s" % self.dir,
            "node_id = %s" % node_id,
            "log_file = %s" % self.log,
            "[kvs]",
            "backend_url = sqlite:///%s" % (tmp_path / "state.db"),
            "[coordination]",
            "backend_url = %s" % coord_url,
            "heartbeat_interval = 0.3",
            "membership_ttl = %s" % ttl,
            "lock_ttl = %s" % ttl,
            "max_reconnect_backoff = 1",
            "[heartbeat]",
            "publish_interval = 0.5",
            "group = %s" % group,
        ]) + "\n")
        self.proc: subprocess.Popen | None = None

    def env(self, **extra):
        env = dict(os.environ, STORAGED_CONCURRENCY_BACKEND=self.backend)
        env.pop("NOTIFY_SOCKET", None)
        env.update(extra)
        return env

    def start(self, **env):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "storaged.cmd.heartbeat",
             "--config-file", str(self.conf)],
            env=self.env(**env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )

    def stop(self, sig=signal.SIGTERM, timeout=30):
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def output(self):
        out = ""
        if self.proc is not None and self.proc.poll() is not None and self.proc.stdout:
            out = self.proc.stdout.read().decode(errors="replace")
        log = self.log.read_text() if self.log.exists() else ""
        return "output:\n%s\nlog:\n%s" % (out[-3000:], log[-5000:])

    def manage(self, *args, env=None):
        return subprocess.run(
            [sys.executable, "-m", "storaged.manage.cli", "--config-file",
             str(self.conf), *args],
            env=self.env(**(env or {})), capture_output=True, text=True, timeout=120,
        )

    def members(self):
        result = self.manage("cluster", "members", "--format", "json")
        if result.returncode != 0:
            return None
        return json.loads(result.stdout)

    def view(self):
        conf = config.prepare_service(["--config-file", str(self.conf)],
                                      prog="test", setup_logging=False)
        store = kvs.get_store(conf)
        try:
            return store.get("cluster/view")
        except Exception:
            return None
        finally:
            store.close()


@pytest.fixture
def nodes(tmp_path):
    made: list[Node] = []

    def make(*args, **kwargs):
        node = Node(tmp_path, *args, **kwargs)
        made.append(node)
        return node

    yield make
    for node in made:
        if node.proc is not None and node.proc.poll() is None:
            node.proc.kill()
            node.proc.wait(10)


def _member_ids(found):
    return set((found or {}).get("members") or {})


@pytest.mark.parametrize(("coord", "backend"), CASES,
                         ids=["-".join(c) for c in CASES])
def test_agents_join_publish_and_leave_without_ghosts(request, tmp_path, nodes,
                                                      coord, backend):
    group = "hb-%d" % os.getpid() + coord
    url = coordination_url(request, coord, tmp_path)
    # A TTL far longer than any stop takes, even on a loaded machine: a
    # member still listed after its process exited did not leave, it would
    # only expire.
    ttl = 30
    a = nodes("node-a", url, backend, group, ttl=ttl)
    b = nodes("node-b", url, backend, group, ttl=ttl)
    a.start()
    b.start()
    both = {"node-a:heartbeat", "node-b:heartbeat"}
    found = wait_for(lambda: (m := a.members()) and _member_ids(m) == both and m,
                     what=lambda: "both agents listed\n" + a.output())
    caps = found["members"]["node-a:heartbeat"]
    assert caps["node_id"] == "node-a"
    assert caps["backends"] == ["local:file"]
    assert found["source"] == "coordination back end"
    # The cluster view is published to the state store too.
    wait_for(lambda: (v := a.view()) and set(v["members"]) == both,
             what="view with both members")
    # Both agents publish the view: wait until a's own pass has seen b, or
    # b's departure has nothing to be told apart from.
    wait_for(lambda: "Member node-b:heartbeat is in group" in a.log.read_text(),
             what=lambda: "a's pass seeing b\n" + a.output())

    # SIGTERM: exit 0, and the member is gone at once (well before its TTL).
    stopped = time.monotonic()
    assert b.stop() == 0, b.output()
    assert _member_ids(a.members()) == {"node-a:heartbeat"}
    assert time.monotonic() - stopped < ttl / 2, "left only when its TTL expired"
    assert "Left group" in b.log.read_text()
    wait_for(lambda: "node-b:heartbeat left group" in a.log.read_text()
             or "node-b:heartbeat is no longer in group" in a.log.read_text(),
             what=lambda: "the departure logged\n" + a.output())

    # Restart: the same member id again, once (no ghost of the old process).
    b.start()
    wait_for(lambda: _member_ids(a.members()) == both, what="b back")
    assert a.stop() == 0, a.output()
    assert b.stop() == 0, b.output()
    assert _member_ids(b.members()) == set()


@pytest.mark.parametrize("backend", concurrency.BACKENDS)
def test_once_publishes_one_view_and_leaves(tmp_path, nodes, backend):
    a = nodes("node-a", "file://%s" % (tmp_path / "coord"), backend, "once")
    result = subprocess.run(
        [sys.executable, "-m", "storaged.cmd.heartbeat", "--config-file",
         str(a.conf), "--once"],
        env=a.env(), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    view = a.view()
    assert set(view["members"]) == {"node-a:heartbeat"}
    assert _member_ids(a.members()) == set()
    status = a.manage("status", "--format", "json")
    records = json.loads(status.stdout)
    assert [(r["node"], r["daemon"]) for r in records] == [("node-a", "heartbeat")]
    assert records[0]["last_pass"]["counters"]["members"] == 1


@pytest.mark.parametrize("backend", concurrency.BACKENDS)
def test_watchdog_is_fed(tmp_path, nodes, backend):
    a = nodes("node-a", "file://%s" % (tmp_path / "coord"), backend, "wd")
    sock_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(0.2)
    messages: list[str] = []
    try:
        a.start(NOTIFY_SOCKET=sock_path, WATCHDOG_USEC="300000")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                messages.append(sock.recv(4096).decode())
            except TimeoutError:
                pass
            if messages.count("WATCHDOG=1") >= 5:
                break
        assert a.stop() == 0, a.output()
    finally:
        sock.close()
    assert any(m.startswith("READY=1") for m in messages), messages
    assert messages.count("WATCHDOG=1") >= 5, messages


@pytest.mark.parametrize("backend", concurrency.BACKENDS)
def test_agent_survives_a_backend_outage(tmp_path, nodes, backend):
    server = RedisServer()
    try:
        server.start()
    except ServerMissing as err:
        skip_or_fail(str(err))
    try:
        a = nodes("node-a", server.url, backend, "outage")
        a.start()
        wait_for(lambda: _member_ids(a.members()) == {"node-a:heartbeat"},
                 what=lambda: "joined\n" + a.output())
        # The first pass (and so the first published view) comes up to one
        # publish interval after the join.
        wait_for(a.view, what=lambda: "a published view\n" + a.output())
        server.kill()
        # While the back end is down: the agent lives on, the published view
        # answers `cluster members` (exit 1, saying where it came from).
        time.sleep(2)
        assert a.proc.poll() is None, a.output()
        result = a.manage("cluster", "members", "--format", "json")
        assert result.returncode == 1, result.stdout + result.stderr
        seen = json.loads(result.stdout)
        assert "unreachable" in seen["source"]
        assert set(seen["members"]) == {"node-a:heartbeat"}
        # Back up on the same port, empty: the agent reconnects and re-joins.
        server.start()
        wait_for(lambda: _member_ids(a.members()) == {"node-a:heartbeat"},
                 timeout=30, what=lambda: "re-joined after the outage\n" + a.output())
        assert a.stop() == 0, a.output()
        assert _member_ids(a.members()) == set()
    finally:
        server.stop()


@pytest.mark.parametrize("backend", concurrency.BACKENDS)
def test_agent_started_while_the_backend_is_down_joins_later(tmp_path, nodes,
                                                             backend):
    server = RedisServer()
    try:
        server.start()
    except ServerMissing as err:
        skip_or_fail(str(err))
    try:
        server.kill()
        a = nodes("node-a", server.url, backend, "late")
        a.start()
        wait_for(lambda: a.log.exists() and "once it is reachable" in a.log.read_text(),
                 what=lambda: "the agent waiting for its back end\n" + a.output())
        assert a.proc.poll() is None, a.output()
        server.start()
        wait_for(lambda: _member_ids(a.members()) == {"node-a:heartbeat"},
                 timeout=30, what=lambda: "joined once reachable\n" + a.output())
        assert a.stop() == 0, a.output()
    finally:
        server.stop()
