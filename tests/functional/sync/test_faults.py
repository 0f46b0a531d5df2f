"""Faults: a target that fails or hangs, SIGKILLed daemons, a dead worker.

The target sits behind :class:`FaultProxy`, which answers 500s, hangs past
the request timeout, fails one request in three, or slows every request
down.  Whatever happens, the sync point never runs ahead of what the target
confirmed (checked row by row against the target after every pass and every
kill), and once the target is healthy the target equals the source.  The sync daemons
run on each concurrency backend (the servers are shared by both).
"""

from __future__ import annotations

import random
import time

import pytest

from storaged import concurrency
from storaged.sync.engine import owner_ordinal
from tests.functional.api.apiserver import ApiServer
from tests.functional.sync.cluster import SYNC_KEY
from tests.functional.sync.cluster import FaultProxy
from tests.functional.sync.cluster import SyncDaemon
from tests.functional.sync.cluster import assert_no_run_ahead
from tests.functional.sync.cluster import snapshot
from tests.functional.sync.cluster import source_catalog
from tests.functional.sync.cluster import wait_for
from tests.functional.sync.cluster import write_realms_with

pytest.importorskip("swiftclient")

#: SIGKILL trials per concurrency backend.
KILL_TRIALS = 10


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    target = ApiServer(tmp_path_factory.mktemp("target")).start()
    proxy = FaultProxy(target)
    source = ApiServer(tmp_path_factory.mktemp("source"))
    write_realms_with(source.realms, {"dst": target.url, "flaky": proxy.url})
    source.start()
    yield source, target, proxy
    source.kill()
    target.kill()
    proxy.close()


def _pair(source, target, name):
    target.connection().put_container(
        name, headers={"X-Container-Sync-Key": SYNC_KEY})
    source.connection().put_container(name, headers={
        "X-Container-Sync-To": "//us/flaky/AUTH_test/%s" % name,
        "X-Container-Sync-Key": SYNC_KEY})
    return source.connection()


@pytest.mark.parametrize("backend", concurrency.BACKENDS)
def test_outage_then_recovery_converges_without_running_ahead(env, backend):
    source, target, proxy = env
    name = "outage-" + backend
    src = _pair(source, target, name)
    for i in range(30):
        src.put_object(name, "o%02d" % i, b"value %d" % i)
    for i in range(5):
        src.delete_object(name, "o%02d" % i)
    daemon = SyncDaemon(source, name="d-" + name, backend=backend, request_timeout=1,
                        max_failures=10, concurrency=4)
    try:
        # 500s: nothing confirmed, nothing recorded as synced, exit status 1.
        proxy.mode = "500"
        result = daemon.once()
        assert result.returncode == 1, daemon.output()
        assert proxy.failed > 0
        assert assert_no_run_ahead(daemon, target, name) == (-1, -1)
        assert snapshot(target, name) == {}
        status = daemon.manage("sync", "status", "--format", "json")
        assert status.returncode == 1
        assert "HTTP 500" in status.stdout

        # A target that accepts connections and never answers: timeouts.
        proxy.mode, proxy.hang_time = "hang", 3.0
        started = time.monotonic()
        result = daemon.once()
        assert result.returncode == 1, daemon.output()
        assert time.monotonic() - started < 30
        assert "timed out" in daemon.output()
        assert assert_no_run_ahead(daemon, target, name) == (-1, -1)

        # Flaky: one request in three fails. Points move, never ahead.
        proxy.mode = "flaky"
        for _ in range(4):
            daemon.once()
            assert_no_run_ahead(daemon, target, name)
        proxy.mode = "ok"
        result = daemon.once()
        assert result.returncode == 0, daemon.output()
        assert snapshot(target, name) == snapshot(source, name)
        assert len(snapshot(target, name)) == 25
        point1, _point2 = assert_no_run_ahead(daemon, target, name)
        catalog = source_catalog(daemon)
        try:
            assert point1 == catalog.container("AUTH_test", name).get_max_row()
        finally:
            catalog.close()
        status = daemon.manage("sync", "status", "--format", "json")
        assert status.returncode == 0, status.stdout
    finally:
        proxy.mode = "ok"


@pytest.mark.slow
@pytest.mark.parametrize("backend", concurrency.BACKENDS)
def test_sigkill_at_random_points(env, backend):
    source, target, proxy = env
    name = "killed-" + backend
    src = _pair(source, target, name)
    rng = random.Random(20)
    proxy.delay = 0.04
    daemon = SyncDaemon(source, name="d-" + name, backend=backend, interval=0.2,
                        concurrency=4)
    live: set[str] = set()
    killed_mid_pass = 0
    try:
        for trial in range(KILL_TRIALS):
            # Changes of every kind: new, overwritten, deleted, re-created.
            for i in range(25):
                obj = "k%03d" % rng.randrange(60)
                if obj in live and rng.random() < 0.3:
                    src.delete_object(name, obj)
                    live.discard(obj)
                else:
                    src.put_object(name, obj, b"trial %d %d" % (trial, i))
                    live.add(obj)
            forwarded = proxy.forwarded
            daemon.start()
            # Kill a moment after the pass started sending, however long the
            # start-up took on a busy machine (a fixed sleep could end before).
            deadline = time.monotonic() + 60
            while proxy.forwarded == forwarded and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.2))
            daemon.kill()
            point1, _p2 = assert_no_run_ahead(daemon, target, name)
            if proxy.forwarded > forwarded and point1 < _max_row(daemon, name):
                # Requests were sent and the pass had not finished.
                killed_mid_pass += 1
            result = daemon.once()
            assert result.returncode == 0, daemon.output()
            assert snapshot(target, name) == snapshot(source, name), trial
            assert set(snapshot(target, name)) == live
            open(daemon.log, "w").close()
            open(daemon.dir + "/stdout", "w").close()
        # The kills did land inside passes, not only between them.
        assert killed_mid_pass >= KILL_TRIALS // 4 + 1, killed_mid_pass
    finally:
        proxy.delay = 0.0
        daemon.kill()


@pytest.mark.slow
@pytest.mark.parametrize("backend", concurrency.BACKENDS)
def test_three_workers_split_and_take_over_a_dead_ones_share(env, backend):
    source, target, proxy = env
    name = "split-" + backend
    src = _pair(source, target, name)
    proxy.delay = 0.05
    workers = [SyncDaemon(source, name="w%d-%s" % (i, backend), worker=i,
                          backend=backend, interval=0.5, concurrency=2)
               for i in range(3)]
    try:
        for w in workers:
            w.start()
        for w in workers:
            wait_for(lambda w=w: "Joined sync group" in w.output(),
                     what=lambda w=w: "worker joined\n" + w.output())
        time.sleep(1.0)  # every worker sees the three members
        for i in range(90):
            src.put_object(name, "s%03d" % i, b"split %d" % i)
        # Kill worker 2 while its share is being pushed.
        wait_for(lambda: len(snapshot(target, name)) >= 10, timeout=60,
                 what="the first pushes")
        workers[2].kill()
        # Some of worker 2's share (ordinal 2 of 3) is not on the target yet.
        on_target = set(snapshot(target, name))
        share2 = {"s%03d" % i for i in range(90)
                  if owner_ordinal("AUTH_test", name, "s%03d" % i, 3) == 2}
        assert share2 - on_target, "too late: worker 2 had pushed its share"
        wait_for(lambda: snapshot(target, name) == snapshot(source, name),
                 timeout=90, what=lambda: "the others finish\n" + "\n".join(
                     w.output()[-2000:] for w in workers))
        catalog = source_catalog(workers[0])
        try:
            points = catalog.container("AUTH_test", name).list_sync_points()
        finally:
            catalog.close()
        # The survivors re-checked past every row: the dead one's share too.
        max_row = max(p[0] for p in points.values())
        for member in ("node-a:sync:0", "node-a:sync:1"):
            wait_for(lambda m=member: _points(workers[0], name)[m][1] >= max_row,
                     timeout=30, what="point2 of %s" % member)
        # The rows were split: each survivor pushed objects itself.
        for w in workers[:2]:
            puts = [int(line.split(" puts=")[1].split()[0])
                    for line in w.output().splitlines()
                    if "Container sync report: AUTH_test/%s" % name in line]
            assert sum(puts) > 0
            assert sum(puts) < 90
        assert all(w.stop() == 0 for w in workers[:2])
    finally:
        proxy.delay = 0.0
        for w in workers:
            w.kill()


def _points(daemon, name):
    catalog = source_catalog(daemon)
    try:
        return catalog.container("AUTH_test", name).list_sync_points()
    finally:
        catalog.close()


def _max_row(daemon, name):
    catalog = source_catalog(daemon)
    try:
        return catalog.container("AUTH_test", name).get_max_row()
    finally:
        catalog.close()
