"""``storaged-cache-prune`` and ``storaged-cache-clean`` as cron runs them."""

from __future__ import annotations

import os
import time

import pytest

from storaged import concurrency
from storaged import kvs
from storaged.cache import ObjectCache
from tests.functional.cache import tools
from tests.unit.cache.support import entry_name
from tests.unit.cache.support import seed_entries

NOW = time.time_ns()


def _seed(tmp_path, count=10, **cache):
    options = {"max_size": "5000", "low_watermark": "0.5"}
    options.update(cache)
    path = tools.write_conf(tmp_path, cache=options)
    conf = tools.load_conf(path)
    c = ObjectCache(conf.cache.cache_dir)
    ids = seed_entries(c, [NOW + i for i in range(count)], 1000)
    c.close()
    return path, conf, ids


def _entries(conf):
    return sorted(n for n in os.listdir(conf.cache.cache_dir) if len(n) == 64)


def test_prune_dry_run_then_prune_as_cron_runs_it(tmp_path):
    path, conf, ids = _seed(tmp_path)
    dry = tools.run("storaged.cmd.cache", "prune", "--dry-run", "--config-file", path)
    assert dry.returncode == 0, dry.stderr
    assert _entries(conf) == sorted(ids)
    log = (tmp_path / "storaged.log").read_text()
    assert "would prune 8 entries" in log
    # The line of etc/cron.d/storaged (--once is implied, and accepted).
    real = tools.run("storaged.cmd.cache", "prune", "--once", "--config-file", path)
    assert real.returncode == 0, real.stderr
    assert _entries(conf) == sorted(ids[8:])
    store = kvs.open_store("sqlite:///%s" % (tmp_path / "state" / "state.sqlite"))
    try:
        record = store.get("status/node-a/cache-prune")
    finally:
        store.close()
    assert record["state"] == "ran once"
    assert record["last_pass"]["counters"]["pruned"] == 8  # not the dry run's


def test_clean_as_cron_runs_it(tmp_path):
    path, conf, _ids = _seed(tmp_path, count=0, stall_time="60")
    dead = os.path.join(conf.cache.cache_dir, "incomplete", entry_name(1))
    with open(dead, "wb") as f:
        f.write(b"x")
    old = time.time() - 3600
    os.utime(dead, (old, old))
    proc = tools.run("storaged.cmd.cache", "clean", "--dry-run", "--config-file",
                     path)
    assert proc.returncode == 0 and os.path.exists(dead)
    proc = tools.run("storaged.cmd.cache", "clean", "--config-file", path)
    assert proc.returncode == 0, proc.stderr
    assert not os.path.exists(dead)


@pytest.mark.parametrize("kind, text, where", [
    (None, "[cache]\nlow_watermark = 7\n", "[cache] low_watermark"),
    ("prune", "[cache]\nshared_dir = true\n", "[cache] shared_dir"),
    ("clean", "[cache]\nmetadata_store = maybe\n", "[cache] metadata_store"),
    ("prune", "[cache]\ncache_dir = %(blocker)s/cache\n", "[cache] cache_dir"),
])
def test_configuration_errors_exit_2_with_one_line(tmp_path, kind, text, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory should be")
    path = tmp_path / "storaged.conf"
    path.write_text("[DEFAULT]\nstate_path = %s\n" % (tmp_path / "state")
                    + text % {"blocker": blocker})
    args = ([kind] if kind else []) + ["--once", "--config-file", str(path)]
    proc = tools.run("storaged.cmd.cache", *args)
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert str(path) in line and where in line
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("backend", concurrency.BACKENDS)
def test_shared_dir_holds_a_lease_in_a_shared_state_store(tmp_path, redis_url,
                                                          backend):
    path, conf, ids = _seed(tmp_path, shared_dir="true")
    text = open(path).read() + "[kvs]\nbackend_url = %s/5\n" % redis_url
    with open(path, "w") as f:
        f.write(text)
    holder = kvs.open_store(redis_url + "/5")
    try:
        from storaged.cache import MaintenanceLock

        other_node = MaintenanceLock(conf.cache.cache_dir, holder)
        assert other_node.acquire()
        os.rename(os.path.join(conf.cache.cache_dir, ".lock"),
                  os.path.join(conf.cache.cache_dir, ".lock-other-node"))
        proc = tools.run("storaged.cmd.cache", "prune", "--config-file", path,
                         backend=backend)
        assert proc.returncode == 0, proc.stderr
        assert _entries(conf) == sorted(ids)  # the other node holds the lease
        other_node.release()
        proc = tools.run("storaged.cmd.cache", "prune", "--config-file", path,
                         backend=backend)
        assert proc.returncode == 0, proc.stderr
        assert _entries(conf) == sorted(ids[8:])
    finally:
        holder.close()
