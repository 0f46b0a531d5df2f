"""The pruner: one snapshot, LRU by recorded access, one lock, ENOENT-tolerant."""

from __future__ import annotations

import os
import threading
import time

import pytest

from storaged import exception
from storaged import kvs
from storaged.cache import MaintenanceLock
from storaged.cache import Pruner
from storaged.cache import pruner as pruner_mod
from storaged.cache.pruner import Snapshot
from tests.unit.cache.support import entry_name
from tests.unit.cache.support import read_all
from tests.unit.cache.support import seed_entries

NOW = time.time_ns()


def entries(cache):
    return sorted(n for n in os.listdir(cache.cache_dir) if len(n) == 64)


def test_plan_follows_the_worked_example():
    mib = 1 << 20
    snap = Snapshot(
        entries=[(5, "A", 10 * mib), (1, "B", 30 * mib), (9, "C", 40 * mib),
                 (3, "D", 20 * mib)],
        entry_bytes=100 * mib,
        incomplete_count=1, incomplete_bytes=5 * mib,
        invalid=[(2, "X", 5 * mib)], invalid_bytes=5 * mib,
    )
    victims = pruner_mod.plan(snap, 100 * mib, 80 * mib)
    assert [(kind, name) for kind, name, _size, _last in victims] == [
        ("invalid", "X"), ("entry", "B")]
    assert pruner_mod.plan(snap, 0, 0) == []  # no limit
    assert pruner_mod.plan(snap, 110 * mib, 80 * mib) == []  # within the limit
    # A fill about to start needs 10 MiB: the cache goes to 80 - 10.
    victims = pruner_mod.plan(snap, 100 * mib, 80 * mib, room=10 * mib)
    assert [name for _kind, name, _size, _last in victims] == ["X", "B", "D"]


def test_prune_down_to_the_low_watermark_by_recorded_access(make_cache):
    cache = make_cache(max_size=15_000, low_watermark=0.5)
    order = [7, 3, 19, 0, 12, 5, 18, 1, 9, 14, 2, 16, 8, 11, 4, 17, 6, 13, 10, 15]
    ids = seed_entries(cache, [NOW + k * 1000 for k in order], 1000)
    result = Pruner(cache).prune()
    assert result.pruned == 13 and result.total_after == 7000
    assert result.total_before == 20_000 and not result.errors
    newest = {ids[i] for i, k in enumerate(order) if k >= 13}
    assert set(entries(cache)) == newest


def test_lru_ignores_atime_noatime_view(make_cache, backend):
    """The hot entry survives although every atime says the opposite.

    Under ``noatime`` (or with a backup reading every file) atimes lie;
    they are set to lie here: the hot entry's atime is ancient, the cold
    ones' are in the future.  Glance's xattr pruner evicted the hot one.
    """
    cache = make_cache(max_size=2 * 4096, low_watermark=1.0)
    cache_max, cache.max_size = cache.max_size, 0  # fill freely first
    refs = {}
    for name in ("hot", "cold1", "cold2"):
        refs[name] = backend.put(name, os.urandom(4096))
        read_all(cache, refs[name], backend.fetch_for(name))
        time.sleep(0.002)
    read_all(cache, refs["hot"], backend.fetch_for("hot"))  # read last
    future = time.time() + 10_000
    os.utime(cache.entry_path(refs["hot"].entry_id), (1.0, 1.0))
    for name in ("cold1", "cold2"):
        os.utime(cache.entry_path(refs[name].entry_id), (future, future))
    cache.max_size = cache_max
    result = Pruner(cache).prune()
    assert result.pruned == 1
    assert set(entries(cache)) == {refs["hot"].entry_id, refs["cold2"].entry_id}


def test_incomplete_and_invalid_count_and_failed_fills_go_first(make_cache):
    cache = make_cache(max_size=10_000, low_watermark=0.8)
    ids = seed_entries(cache, [NOW + i for i in range(8)], 1000)
    invalid = os.path.join(cache.cache_dir, "invalid", entry_name(99) + ".1")
    with open(invalid, "wb") as f:
        f.write(b"i" * 1500)
    incomplete = cache.incomplete_path(entry_name(98))
    with open(incomplete, "wb") as f:
        f.write(b"p" * 1500)
    result = Pruner(cache).prune()
    assert result.total_before == 11_000
    assert result.invalid_removed == 1 and result.pruned == 2
    assert result.total_after == 7500
    assert not os.path.exists(invalid)
    assert os.path.exists(incomplete)  # never pruned: the cleaner's business
    assert entries(cache) == sorted(ids[2:])


def test_dry_run_removes_nothing(make_cache):
    cache = make_cache(max_size=5000, low_watermark=0.5)
    ids = seed_entries(cache, [NOW + i for i in range(10)], 1000)
    result = Pruner(cache).prune(dry_run=True)
    assert result.dry_run and result.pruned == 8
    assert [v["name"] for v in result.victims] == ids[:8]
    assert entries(cache) == sorted(ids)
    assert "would prune 8 entries" in result.summary()


def test_vanishing_victims_are_not_errors(make_cache):
    cache = make_cache(max_size=5000, low_watermark=0.5)
    ids = seed_entries(cache, [NOW + i for i in range(10)], 1000)
    snap = pruner_mod.scan(cache)
    victims = pruner_mod.plan(snap, cache.max_size, cache.target_size)
    for entry_id in ids[:4]:  # a concurrent delete, another process...
        os.unlink(cache.entry_path(entry_id))
    result = pruner_mod.PruneResult(total_after=snap.total)
    lock = MaintenanceLock(cache.cache_dir)
    assert lock.acquire()
    try:
        Pruner(cache)._remove(victims, result, False, lock, lambda: False)
    finally:
        lock.release()
    assert result.vanished == 4 and result.pruned == 8 and not result.errors
    assert entries(cache) == sorted(ids[8:])


def test_entries_vanishing_during_the_scan(make_cache, monkeypatch):
    cache = make_cache(max_size=5000, low_watermark=0.5)
    ids = seed_entries(cache, [NOW + i for i in range(10)], 1000)
    real_scandir = os.scandir
    gone = set(ids[5:7])

    def racing_scandir(path):
        it = real_scandir(path)
        if path == cache.cache_dir:
            for entry_id in gone:  # removed after the listing, before stat
                os.unlink(cache.entry_path(entry_id))
        return it

    monkeypatch.setattr(os, "scandir", racing_scandir)
    result = Pruner(cache).prune()
    assert not result.errors
    assert result.total_before in (8000, 10_000)  # depends on readdir buffering
    assert len(entries(cache)) * 1000 <= 5000


def test_a_held_lock_means_no_second_prune(make_cache):
    cache = make_cache(max_size=5000, low_watermark=0.5)
    ids = seed_entries(cache, [NOW + i for i in range(10)], 1000)
    holder = MaintenanceLock(cache.cache_dir)
    assert holder.acquire()
    try:
        result = Pruner(cache).prune()
    finally:
        holder.release()
    assert result.locked_out and result.pruned == 0
    assert "another prune" in result.summary()
    assert entries(cache) == sorted(ids)


def test_two_pruners_at_once_never_go_below_the_watermark(make_cache):
    cache = make_cache(max_size=300_000, low_watermark=0.5)
    seed_entries(cache, [NOW + i for i in range(600)], 1000)
    results, errors = [], []
    barrier = threading.Barrier(2)

    def run():
        barrier.wait()
        try:
            results.append(Pruner(cache).prune())
        except Exception as err:  # any crash fails the test
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(entries(cache)) == 150
    assert sum(r.pruned for r in results) == 450


def test_shared_lease_excludes_other_nodes(tmp_path):
    store = kvs.open_store("memory://cache-lease-test")
    try:
        node_a = MaintenanceLock(str(tmp_path), store)
        assert node_a.acquire()
        # Another node: its own flock (another host would not see ours), the
        # same lease name because it reads the same .cache-id.
        other_dir_view = MaintenanceLock(str(tmp_path), store)
        os.rename(tmp_path / ".lock", tmp_path / ".lock-node-a")
        assert not other_dir_view.acquire()
        node_a.release()
        assert other_dir_view.acquire()
        other_dir_view.release()
    finally:
        store.close()


def test_a_lost_lease_stops_the_prune(make_cache, monkeypatch):
    cache = make_cache(max_size=1000, low_watermark=0.5)
    seed_entries(cache, [NOW + i for i in range(600)], 10)
    store = kvs.open_store("memory://cache-lease-lost")
    checks = []

    def still_held(self):
        checks.append(1)
        return False  # the lease ran out during the first batch

    monkeypatch.setattr(MaintenanceLock, "still_held", still_held)
    try:
        with pytest.raises(exception.FatalError):
            Pruner(cache, store).prune()
    finally:
        store.close()
    assert len(entries(cache)) == 600 - pruner_mod._BATCH


def test_index_rows_of_pruned_entries_are_dropped(tmp_path):
    from storaged.cache import ObjectCache

    cache = ObjectCache(str(tmp_path / "c"), metadata_store="index",
                        max_size=2000, low_watermark=0.5)
    try:
        ids = seed_entries(cache, [NOW + i for i in range(4)], 1000)
        Pruner(cache).prune()
        assert cache.meta.read(-1, ids[0]) is None
        assert cache.meta.read(-1, ids[3]) is not None
    finally:
        cache.close()
