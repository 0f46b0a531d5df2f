"""Pruning with real processes and filesystems.

* two pruner processes at once (cron and the daemon) never go below the
  watermark nor crash (Glance: 20-64 entries over-pruned, FileNotFoundError
  in 2 runs of 3);
* ``storaged-cache-prune`` started three times together;
* a reader streaming an entry keeps reading it whole while a prune removes it;
* LRU on a ``noatime`` mount: the hot entry stays (Glance evicted it).
"""

from __future__ import annotations

import hashlib
import json
import os
import time

import pytest

from storaged import concurrency
from storaged.cache import ObjectCache
from storaged.cache import entry_id_for
from tests.functional.cache import tools
from tests.unit.cache.support import seed_entries

NOW = time.time_ns()


def _entries(cache_dir):
    return [n for n in os.listdir(cache_dir) if len(n) == 64]


@pytest.mark.parametrize("backend", concurrency.BACKENDS)
def test_two_pruner_processes_at_once(tmp_path, backend):
    cache_dir = str(tmp_path / "cache")
    cache = ObjectCache(cache_dir)
    seed_entries(cache, [NOW + i for i in range(600)], 1000)
    cache.close()
    go, release = tmp_path / "go", tmp_path / "release"
    procs = [tools.spawn("tests.functional.cache.prune_child", cache_dir,
                         "400000", "0.75", str(go), str(release), backend=backend)
             for _ in range(2)]
    go.touch()
    # The pruner that holds the lock waits before its first unlink until the
    # other has tried, been locked out and exited: they overlap for sure.
    tools.wait_for(lambda: any(p.poll() is not None for p in procs),
                   "one pruner to give up", timeout=120)
    release.touch()
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    results = [json.loads(o.strip().splitlines()[-1]) for o in outputs]
    assert all(r["errors"] == [] for r in results)
    assert sorted(r["locked_out"] for r in results) == [False, True]
    assert sum(r["pruned"] for r in results) == 300
    assert len(_entries(cache_dir)) == 300


@pytest.mark.parametrize("backend", concurrency.BACKENDS)
def test_three_prune_commands_together(tmp_path, backend):
    path = tools.write_conf(tmp_path, cache={"max_size": "400000",
                                             "low_watermark": "0.75"})
    conf = tools.load_conf(path)
    cache = ObjectCache(conf.cache.cache_dir)
    ids = seed_entries(cache, [NOW + i for i in range(600)], 1000)
    cache.close()
    procs = [tools.spawn("storaged.cmd.cache", "prune", "--config-file", path,
                         backend=backend) for _ in range(3)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    assert sorted(_entries(conf.cache.cache_dir)) == sorted(ids[300:])


def test_a_reader_keeps_reading_an_entry_a_prune_removes(tmp_path):
    data = os.urandom(2 * 1024 * 1024)
    with tools.CountingServer() as server:
        url = server.put("big", data)
        path = tools.write_conf(tmp_path, cache={"max_size": "100",
                                                 "low_watermark": "0.5"})
        conf = tools.load_conf(path)
        tools.add_rows(conf, {"big": ("mirror", url, data)})
        cache = ObjectCache(conf.cache.cache_dir, backends=["mirror"])
        from storaged.objectstore import load_backends

        backends = load_backends(conf)
        try:
            driver = backends.get("mirror")
            from storaged.cache import CacheRef

            ref = CacheRef("mirror", url, len(data),
                           {"md5": hashlib.md5(data).hexdigest()})
            cache.fill(ref, lambda o, n, v: driver.get(url, offset=o, length=n))
        finally:
            backends.close()
            cache.close()
        entry = os.path.join(conf.cache.cache_dir, entry_id_for("mirror", url))
        assert os.path.exists(entry)
        progress = tmp_path / "progress"
        reader = tools.spawn("tests.functional.cache.reader", "--config-file", path,
                             "--objects", "big", "--progress", str(progress))
        tools.wait_for(lambda: progress.exists(), "the read to begin",
                       procs=[reader])
        tools.run("storaged.cmd.cache", "prune", "--config-file", path, check=True)
        assert not os.path.exists(entry)  # pruned while being read
        out = reader.communicate(timeout=120)[0]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["errors"] == []
    assert result["counters"]["hits"] == 1
    assert result["digests"] == ["big:" + hashlib.sha256(data).hexdigest()]
    assert server.gets("big") == 1


@pytest.fixture
def noatime_fs(tmp_path):
    mount = tmp_path / "noatime"
    if not tools.mount_tmpfs(mount, "64m", "noatime"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    tools.umount(mount)


def test_lru_on_a_noatime_mount(tmp_path, noatime_fs):
    with open("/proc/mounts") as f:
        assert any(str(noatime_fs) in line and "noatime" in line for line in f)
    objects = {name: os.urandom(100_000) for name in ("hot", "cold1", "cold2")}
    with tools.CountingServer() as server:
        # No limit while filling (a fill would make room itself).
        path = tools.write_conf(tmp_path, cache={"cache_dir": noatime_fs / "cache"})
        conf = tools.load_conf(path)
        urls = {n: server.put(n, d) for n, d in objects.items()}
        tools.add_rows(conf, {n: ("mirror", urls[n], d) for n, d in objects.items()})
        tools.run("tests.functional.cache.reader", "--config-file", path,
                  "--objects", "hot,cold1,cold2,hot", check=True)  # hot read last
    hot = os.path.join(conf.cache.cache_dir, entry_id_for("mirror", urls["hot"]))
    st = os.stat(hot)
    assert st.st_atime_ns <= st.st_mtime_ns  # noatime: reads left no trace
    path = tools.write_conf(tmp_path, cache={
        "cache_dir": noatime_fs / "cache", "max_size": "250000",
        "low_watermark": "0.7"})
    proc = tools.run("storaged.cmd.cache", "prune", "--config-file", path,
                     check=True)
    left = _entries(conf.cache.cache_dir)
    assert entry_id_for("mirror", urls["hot"]) in left, proc.stderr
    assert len(left) == 1
