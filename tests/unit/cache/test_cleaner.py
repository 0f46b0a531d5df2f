"""The cleaner: failed fills after their grace, dead fills after the stall time."""

from __future__ import annotations

import fcntl
import os
import time

from storaged.cache import Cleaner
from storaged.cache import EntryMeta
from storaged.cache import MaintenanceLock
from tests.unit.cache.support import entry_name

OLD = time.time() - 100_000


def put(path, data=b"x" * 100, mtime=None):
    with open(path, "wb") as f:
        f.write(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def names(cache, sub):
    return sorted(os.listdir(os.path.join(cache.cache_dir, sub)))


def test_failed_fills_go_after_their_grace(make_cache):
    cache = make_cache(invalid_grace=3600)
    old = entry_name(1) + ".1"
    new = entry_name(2) + ".2"
    for name, mtime in ((old, OLD), (new, None)):
        path = put(os.path.join(cache.cache_dir, "invalid", name), mtime=mtime)
        fd = os.open(path, os.O_RDONLY)
        cache.meta.record_error(fd, name, "digest mismatch")
        os.close(fd)
    result = Cleaner(cache).clean()
    assert (result.invalid_removed, result.invalid_kept) == (1, 1)
    assert names(cache, "invalid") == [new]
    assert cache.meta.read_error("/nonexistent", old) is None


def test_a_live_writer_is_never_reaped_however_old(make_cache):
    cache = make_cache(stall_time=60)
    path = put(cache.incomplete_path(entry_name(1)), mtime=OLD)
    writer = os.open(path, os.O_RDWR)  # the writer's own open file
    fcntl.flock(writer, fcntl.LOCK_EX)
    try:
        result = Cleaner(cache).clean()
    finally:
        os.close(writer)
    assert result.in_progress == 1 and result.stalled_live == 1
    assert result.incomplete_removed == 0
    assert os.path.exists(path)


def test_dead_fills_go_after_the_stall_time_only(make_cache):
    cache = make_cache(stall_time=60)
    stalled = put(cache.incomplete_path(entry_name(1)), mtime=OLD)
    recent = put(cache.incomplete_path(entry_name(2)))
    setup = put(os.path.join(cache.cache_dir, "incomplete",
                             ".0123456789abcdef.0123456789abcdef"), mtime=OLD)
    stranger = put(os.path.join(cache.cache_dir, "incomplete", "notes.txt"),
                   mtime=OLD)
    result = Cleaner(cache).clean()
    assert result.incomplete_removed == 2 and result.incomplete_kept == 1
    assert not os.path.exists(stalled) and not os.path.exists(setup)
    assert os.path.exists(recent)
    assert os.path.exists(stranger)  # not ours: left alone


def test_dry_run_removes_nothing(make_cache):
    cache = make_cache(stall_time=60, invalid_grace=60)
    stalled = put(cache.incomplete_path(entry_name(1)), mtime=OLD)
    failed = put(os.path.join(cache.cache_dir, "invalid", entry_name(2) + ".5"),
                 mtime=OLD)
    result = Cleaner(cache).clean(dry_run=True)
    assert result.incomplete_removed == 1 and result.invalid_removed == 1
    assert sorted(result.removed) == [
        "incomplete/" + entry_name(1), "invalid/" + entry_name(2) + ".5"]
    assert os.path.exists(stalled) and os.path.exists(failed)


def test_queue_temporary_files_of_dead_enqueues(make_cache):
    cache = make_cache(stall_time=60)
    dead = put(os.path.join(cache.cache_dir, "queue", ".tmp-abc"), mtime=OLD)
    fresh = put(os.path.join(cache.cache_dir, "queue", ".tmp-def"))
    result = Cleaner(cache).clean()
    assert result.queue_temp_removed == 1
    assert not os.path.exists(dead) and os.path.exists(fresh)


def test_locked_out_while_a_prune_runs(make_cache):
    cache = make_cache(stall_time=60)
    stalled = put(cache.incomplete_path(entry_name(1)), mtime=OLD)
    holder = MaintenanceLock(cache.cache_dir)
    assert holder.acquire()
    try:
        assert Cleaner(cache).clean().locked_out
    finally:
        holder.release()
    assert os.path.exists(stalled)


def test_index_rows_without_files_are_dropped(tmp_path):
    from storaged.cache import ObjectCache

    cache = ObjectCache(str(tmp_path / "c"), metadata_store="index")
    try:
        cache.meta.write(-1, entry_name(1), EntryMeta(1, "sha256:x", "", 1))
        result = Cleaner(cache).clean()
        assert result.index_rows_dropped == 1
    finally:
        cache.close()
