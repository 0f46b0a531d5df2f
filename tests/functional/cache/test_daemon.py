"""``storaged-cache`` as systemd runs it: three timers, status records, signals.

One daemon process on each concurrency backend, with one-second intervals:
the queued objects get prefetched, the cache is pruned under its limit,
dead and failed fills are cleaned, each worker publishes its status, SIGHUP
re-reads the intervals, and SIGTERM ends it with status 0.  ``--once`` runs
one pass of each and exits 0, or 1 when one of them failed.
"""

from __future__ import annotations

import io
import os
import re
import signal
import time

import pytest

from storaged import concurrency
from storaged import kvs
from storaged.cache import ObjectCache
from storaged.cache import Queue
from storaged.objects import ObjectRepository
from tests.functional.cache import tools
from tests.unit.cache.support import entry_name
from tests.unit.cache.support import seed_entries

OLD = time.time() - 100_000


def _setup(tmp_path, **cache):
    options = {"max_size": "50000", "low_watermark": "0.5", "prune_interval": "1",
               "clean_interval": "1", "prefetch_interval": "1",
               "stall_time": "60", "invalid_grace": "60"}
    options.update(cache)
    path = tools.write_conf(tmp_path, cache=options,
                            sections={"local": {"cache": "true"}})
    conf = tools.load_conf(path)
    svc = ObjectRepository.from_conf(conf)
    try:
        svc.create_container(tools.ACCOUNT, tools.CONTAINER)
        for name in ("p1", "p2"):
            svc.put_object(tools.ACCOUNT, tools.CONTAINER, name,
                           io.BytesIO(os.urandom(10_000)), 10_000)
    finally:
        svc.close()
    cache = ObjectCache(conf.cache.cache_dir, metadata_store=conf.cache.metadata_store)
    try:
        seed_entries(cache, [time.time_ns() - 10**12 + i for i in range(8)], 10_000)
        dead = cache.incomplete_path(entry_name(100))
        failed = os.path.join(cache.cache_dir, "invalid", entry_name(101) + ".1")
        for p in (dead, failed):
            with open(p, "wb") as f:
                f.write(b"x" * 100)
            os.utime(p, (OLD, OLD))
        queue = Queue(cache.cache_dir)
        for name in ("p1", "p2"):
            queue.add({"object": "%s/%s/%s" % (tools.ACCOUNT, tools.CONTAINER, name)})
    finally:
        cache.close()
    return path, conf


def _done(conf):
    cache_dir = conf.cache.cache_dir
    entries = [n for n in os.listdir(cache_dir) if len(n) == 64]
    sizes = 0
    for name in entries:
        try:
            sizes += os.path.getsize(os.path.join(cache_dir, name))
        except FileNotFoundError:
            return False  # pruned between the listing and now: not settled

    return (
        not os.listdir(os.path.join(cache_dir, "queue"))
        and not os.listdir(os.path.join(cache_dir, "incomplete"))
        and not os.listdir(os.path.join(cache_dir, "invalid"))
        and sizes <= 50_000
        and not any(n == entry_name(0) for n in entries)
    )


def _prefetched(conf):
    svc = ObjectRepository.from_conf(conf)
    try:
        cached = []
        for name in ("p1", "p2"):
            row = svc.catalog.container(tools.ACCOUNT, tools.CONTAINER).get_object(
                name)
            from storaged.cache import entry_id_for

            cached.append(svc.cache.lookup(entry_id_for(row.backend, row.location)))
        return cached
    finally:
        svc.close()


def _statuses(tmp_path):
    store = kvs.open_store("sqlite:///%s" % (tmp_path / "state" / "state.sqlite"))
    try:
        return {name: store.get("status/node-a/" + name)
                for name in ("cache-prune", "cache-clean", "cache-prefetch")}
    finally:
        store.close()


@pytest.mark.parametrize("backend", concurrency.BACKENDS)
def test_daemon_runs_the_three_passes_and_stops_on_sigterm(tmp_path, backend):
    path, conf = _setup(tmp_path)
    log = open(tmp_path / "daemon.out", "w")
    proc = tools.spawn("storaged.cmd.cache", "--config-file", path,
                       backend=backend, stdout=log)
    try:
        tools.wait_for(lambda: _done(conf), "the passes", timeout=60,
                       procs=[proc])
        tools.wait_for(lambda: all(s and s["passes"] >= 1
                                   for s in _statuses(tmp_path).values()),
                       "status records", procs=[proc])
        assert all(info is not None for info in _prefetched(conf))
        # SIGHUP: the options are read again (eventlet: in place; threading:
        # the service process is restarted by oslo.service).
        text = open(path).read().replace("prune_interval = 1", "prune_interval = 2")
        with open(path, "w") as f:
            f.write(text)
        proc.send_signal(signal.SIGHUP)
        pattern = re.compile(r"cache-prune (reloaded its configuration|started) "
                             r"\(.*interval 2\.0s\)")
        tools.wait_for(
            lambda: pattern.search((tmp_path / "storaged.log").read_text()),
            "the reload", procs=[proc])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()
    statuses = _statuses(tmp_path)
    assert {s["state"] for s in statuses.values()} == {"stopped"}
    text = (tmp_path / "storaged.log").read_text()
    for name in ("cache-prune", "cache-clean", "cache-prefetch"):
        # A successful pass of each loop; not necessarily the first: the
        # loops start together, and a prefetch that runs before the first
        # prune finds the cache over its limit and fails that item (its
        # next pass, after the prune, fills it).
        assert re.search(r"%s pass \d+ ok" % name, text), text


@pytest.mark.parametrize("backend", concurrency.BACKENDS)
def test_once_runs_one_pass_of_each(tmp_path, backend):
    path, conf = _setup(tmp_path)
    proc = tools.run("storaged.cmd.cache", "--once", "--config-file", path,
                     backend=backend)
    assert proc.returncode == 0, proc.stderr
    assert _done(conf)
    statuses = _statuses(tmp_path)
    assert {s["state"] for s in statuses.values()} == {"ran once"}
    assert statuses["cache-prefetch"]["last_pass"]["counters"]["filled"] == 2


@pytest.mark.parametrize("backend", concurrency.BACKENDS)
def test_once_exits_1_when_a_pass_fails(tmp_path, backend):
    path, conf = _setup(tmp_path)
    tools.add_rows(conf, {"gone": ("mirror", "http://127.0.0.1:1/gone", b"x")})
    cache = ObjectCache(conf.cache.cache_dir)
    try:
        Queue(cache.cache_dir).add({"object": "%s/%s/gone" % (tools.ACCOUNT,
                                                             tools.CONTAINER)})
    finally:
        cache.close()
    proc = tools.run("storaged.cmd.cache", "--once", "--config-file", path,
                     backend=backend)
    assert proc.returncode == 1, proc.stderr
    statuses = _statuses(tmp_path)
    assert statuses["cache-prefetch"]["last_pass"]["ok"] is False
    assert statuses["cache-prune"]["last_pass"]["ok"] is True
    left = Queue(conf.cache.cache_dir).items()
    assert [i.describe() for i in left] == ["AUTH_t/c/gone"]  # retried later
