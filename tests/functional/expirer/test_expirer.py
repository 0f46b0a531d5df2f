"""``storaged-expirer`` with real processes: ``storaged-api``, expirers, sync.

* an object with ``X-Delete-After: 1`` is 404 at once after its expiry,
  stays listed, and is gone from the listing after one ``--once`` pass;
* two expirers of two nodes (same catalog, same coordination back end)
  reap each object once;
* an expiring object synced between two ``storaged-api`` keeps its
  ``X-Delete-At``, and its reaping (a delete at the expiry's timestamp)
  reaches the peer.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.functional.api.apiserver import ROOT
from tests.functional.api.apiserver import ApiServer
from tests.functional.sync.cluster import SYNC_KEY
from tests.functional.sync.cluster import SyncDaemon
from tests.functional.sync.cluster import api_pair
from tests.functional.sync.cluster import wait_for

swiftclient = pytest.importorskip("swiftclient")

SUMMARY = re.compile(r"expirer pass: reaped (\d+), stale (\d+), failed (\d+) in")


class Expirer:
    """A ``storaged-expirer`` process over an API's state path."""

    def __init__(self, api: ApiServer, node: str, interval: float = 0.5) -> None:
        self.dir = os.path.join(api.dir, "expirer-" + node)
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "expirer.conf")
        self.log = os.path.join(self.dir, "expirer.log")
        state = api.default["state_path"]
        with open(self.conf, "w") as f:
            f.write("\n".join([
                "[DEFAULT]",
                "state_path = %s" % state,
                "node_id = %s" % node,
                "log_file = %s" % self.log,
                "[daemon]",
                "stop_timeout = 10",
                "[coordination]",
                "backend_url = file://%s" % os.path.join(state, "coordination"),
                "heartbeat_interval = 0.3",
                "membership_ttl = 5",
                "lock_ttl = 5",
                "[expirer]",
                "interval = %s" % interval,
                "concurrency = 4",
                "batch_size = 5",
            ]) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def args(self, *extra: str) -> list[str]:
        return [sys.executable, "-m", "storaged.cmd.expirer", "--config-file",
                self.conf, *extra]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        return env

    def once(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.args("--once"), cwd=ROOT, env=self.env(),
                              capture_output=True, text=True, timeout=300)

    def start(self) -> Expirer:
        self.proc = subprocess.Popen(
            self.args(), cwd=ROOT, env=self.env(),
            stdout=open(os.path.join(self.dir, "stdout"), "ab"),
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        return self

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def output(self) -> str:
        if not os.path.exists(self.log):
            return ""
        with open(self.log, errors="replace") as f:
            return f.read()

    def totals(self) -> tuple[int, int, int]:
        """Reaped, stale and failed over every pass so far."""
        found = [tuple(int(n) for n in m.groups())
                 for m in SUMMARY.finditer(self.output())]
        return (sum(f[0] for f in found), sum(f[1] for f in found),
                sum(f[2] for f in found))


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    server = ApiServer(tmp_path_factory.mktemp("api"))
    server.start()
    try:
        yield server
    finally:
        server.kill()


def names(conn, container: str) -> list[str]:
    return [o["name"] for o in conn.get_container(container, full_listing=True)[1]]


def status(conn, container: str, name: str) -> int:
    try:
        conn.head_object(container, name)
    except swiftclient.ClientException as err:
        return err.http_status
    return 200


def test_expired_object_is_404_at_once_and_reaped_by_one_pass(api):
    conn = api.connection()
    conn.put_container("once")
    conn.put_object("once", "short", b"bye", headers={"X-Delete-After": "1"})
    # Its X-Delete-At is at most a second after the PUT's answer (the server
    # may be slow enough for it to have passed already: no HEAD before).
    expired_by = time.time() + 1.5
    conn.put_object("once", "long", b"stay", headers={"X-Delete-After": "86400"})
    # Not a bound on speed: the object is gone from its expiry on, whenever
    # this test gets to look.
    wait_for(lambda: time.time() > expired_by, timeout=60)
    assert status(conn, "once", "short") == 404
    with pytest.raises(swiftclient.ClientException) as err:
        conn.get_object("once", "short")
    assert err.value.http_status == 404
    assert names(conn, "once") == ["long", "short"]  # listed until reaped

    expirer = Expirer(api, "node-a")
    result = expirer.once()
    assert result.returncode == 0, result.stderr + expirer.output()
    assert names(conn, "once") == ["long"]
    assert expirer.totals() == (1, 0, 0)
    assert status(conn, "once", "long") == 200


@pytest.fixture
def fresh_api(tmp_path):
    """An API of its own: no other test's expired objects to reap."""
    directory = tmp_path / "api"
    directory.mkdir()
    server = ApiServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def test_two_expirers_reap_each_object_once(fresh_api):
    api = fresh_api
    conn = api.connection()
    conn.put_container("pair")
    count = 30
    for i in range(count):
        conn.put_object("pair", "o%02d" % i, b"x", headers={"X-Delete-After": "3"})
    one = Expirer(api, "node-b", interval=1).start()
    two = Expirer(api, "node-c", interval=1).start()
    try:
        wait_for(lambda: not names(conn, "pair"), timeout=180,
                 what=lambda: one.output()[-2000:] + two.output()[-2000:])
    finally:
        assert one.stop() == 0
        assert two.stop() == 0
    reaped_one, _stale, failed_one = one.totals()
    reaped_two, _stale, failed_two = two.totals()
    assert reaped_one + reaped_two == count
    assert failed_one == failed_two == 0
    # Each joined the group and reported its passes.
    for expirer in (one, two):
        assert "Joined expirer group storaged-expirer" in expirer.output()


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    yield from api_pair(tmp_path_factory)


def test_expiring_object_syncs_with_its_expiry_and_its_reaping(pair):
    source, target = pair
    src, dst = source.connection(), target.connection()
    dst.put_container("exp", headers={"X-Container-Sync-Key": SYNC_KEY})
    src.put_container("exp", headers={
        "X-Container-Sync-To": "//us/two/AUTH_test/exp",
        "X-Container-Sync-Key": SYNC_KEY})
    src.put_object("exp", "early", b"data", headers={"X-Delete-After": "1"})
    early_by = time.time() + 1.5
    # Long enough for one sync pass on a loaded machine (it must go out
    # before it expires), short enough to wait for.
    src.put_object("exp", "soon", b"data", headers={"X-Delete-After": "45"})
    src.put_object("exp", "keep", b"data")
    delete_at = src.head_object("exp", "soon")["x-delete-at"]
    wait_for(lambda: time.time() > early_by, timeout=60)
    sync = SyncDaemon(source, name="sync-exp")
    result = sync.once()
    assert result.returncode == 0, sync.output()
    assert dst.head_object("exp", "soon")["x-delete-at"] == delete_at
    assert names(dst, "exp") == ["keep", "soon"]  # an expired one is not sent

    wait_for(lambda: time.time() > int(delete_at) + 0.5, timeout=60)
    assert status(dst, "exp", "soon") == 404  # the peer hides it at once too
    expirer = Expirer(source, "node-a")
    assert expirer.once().returncode == 0, expirer.output()
    assert names(src, "exp") == ["keep"]
    result = sync.once()
    assert result.returncode == 0, sync.output()
    # The tombstone went as a delete at the expiry's timestamp.
    assert names(dst, "exp") == ["keep"]
