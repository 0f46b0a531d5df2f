"""Fills, hits, checks and single flight of the cache engine (real files).

Every test runs on both metadata stores (user xattrs and the sqlite index).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time

import pytest

from storaged import exception
from storaged.cache import CacheRef
from storaged.cache import Pruner
from storaged.cache import usage
from storaged.cache.engine import INCOMPLETE
from storaged.cache.engine import INVALID
from tests.unit.cache.support import read_all
from tests.unit.cache.support import seed_entries

MiB = 1024 * 1024


def wait_for(predicate, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.002)
    raise AssertionError("timed out waiting for " + what)


def listing(cache, sub=""):
    return sorted(os.listdir(os.path.join(cache.cache_dir, sub)))


def entries(cache):
    return [n for n in listing(cache) if len(n) == 64]


def test_miss_fills_then_hits_are_local(cache, backend):
    data = os.urandom(3 * MiB + 17)
    ref = backend.put("loc-1", data, name="a/c/o")
    fetch = backend.fetch_for("loc-1")
    assert read_all(cache, ref, fetch) == data
    assert backend.count() == 1
    assert entries(cache) == [ref.entry_id]
    assert listing(cache, INCOMPLETE) == listing(cache, INVALID) == []
    info = cache.lookup(ref.entry_id)
    assert info.size == len(data)
    assert info.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert info.source == "slow:a/c/o"
    assert info.hits == 0
    del backend.objects["loc-1"]  # a hit never touches the back end
    for _ in range(3):
        assert read_all(cache, ref, fetch, verify=True) == data
    assert backend.count() == 1
    assert cache.lookup(ref.entry_id).hits == 3


def test_recorded_metadata_includes_the_checked_md5(cache, backend):
    data = os.urandom(1000)
    ref = backend.put("loc", data)
    read_all(cache, ref, backend.fetch_for("loc"))
    fd = os.open(cache.entry_path(ref.entry_id), os.O_RDONLY)
    try:
        meta = cache.meta.read(fd, ref.entry_id)
    finally:
        os.close(fd)
    assert meta.checks == {"md5": hashlib.md5(data).hexdigest()}
    assert meta.size == 1000


def test_ranges_are_served_from_an_entry_and_never_fill(cache, backend):
    data = os.urandom(300_000)
    ref = backend.put("loc", data)
    fetch = backend.fetch_for("loc")
    assert read_all(cache, ref, fetch, offset=10, length=100) == data[10:110]
    assert entries(cache) == []  # a ranged miss goes to the back end
    assert backend.fetches == [("loc", 10, 100)]
    read_all(cache, ref, fetch)
    assert read_all(cache, ref, fetch, offset=299_990) == data[299_990:]
    assert read_all(cache, ref, fetch, offset=5, length=7) == data[5:12]
    assert backend.count() == 2
    with pytest.raises(exception.StoreCapabilityError):
        cache.read(ref, fetch, offset=1, verify=True)


def test_empty_object(cache, backend):
    ref = backend.put("loc", b"")
    assert read_all(cache, ref, backend.fetch_for("loc")) == b""
    assert entries(cache) == [ref.entry_id]
    assert read_all(cache, ref, backend.fetch_for("loc")) == b""
    assert backend.count() == 1


def test_verified_hit_detects_a_corrupted_entry(cache, backend):
    data = os.urandom(200_000)
    ref = backend.put("loc", data)
    fetch = backend.fetch_for("loc")
    read_all(cache, ref, fetch)
    path = cache.entry_path(ref.entry_id)
    with open(path, "r+b") as f:  # bit rot
        f.seek(150_000)
        f.write(bytes([data[150_000] ^ 1]))
    chunks, n = cache.read(ref, fetch, verify=True, chunk_size=64 * 1024)
    got = []
    with pytest.raises(exception.CorruptObject):
        for chunk in chunks:
            got.append(chunk)
    assert sum(map(len, got)) < n  # the last chunk was held back
    assert entries(cache) == []  # withdrawn...
    failed = cache.invalid_files()
    assert "no longer matches its digest" in failed[0]["error"]
    assert read_all(cache, ref, fetch) == data  # ...and filled again
    assert backend.count() == 2


def test_an_entry_that_disagrees_with_the_catalog_is_not_served(cache, backend):
    old = os.urandom(5000)
    ref = backend.put("loc", old)
    fetch = backend.fetch_for("loc")
    read_all(cache, ref, fetch)
    new = os.urandom(5000)  # same location, new content (an http back end)
    new_ref = backend.put("loc", new)
    assert read_all(cache, new_ref, fetch) == new
    assert backend.count() == 2
    assert read_all(cache, new_ref, fetch) == new
    assert backend.count() == 2
    assert "md5" in cache.invalid_files()[0]["error"]


def test_back_end_bytes_not_matching_the_catalog_are_never_committed(cache, backend):
    data = os.urandom(100_000)
    ref = backend.put("loc", data)
    wrong = bytearray(data)
    wrong[500] ^= 0xFF
    backend.served["loc"] = bytes(wrong)
    got = read_all(cache, ref, backend.fetch_for("loc"))
    assert got == bytes(wrong)  # the caller gets what the back end sent
    assert entries(cache) == []
    failed = cache.invalid_files()
    assert len(failed) == 1
    assert "md5" in failed[0]["error"] and "catalog records" in failed[0]["error"]
    assert ref.source in failed[0]["error"]  # invalid/ names entries by id only
    assert failed[0]["size"] == len(data)  # kept as evidence


@pytest.mark.parametrize("with_md5", [True, False])
def test_a_file_overwritten_during_the_fill_is_never_committed(
    cache, backend, with_md5
):
    """Glance's race: a second writer truncated the file under the first.

    Here the fill's file is rewritten behind the writer's back; the check of
    the *file* (not of the stream) catches it, whether the catalog has a
    digest or not.
    """
    data = os.urandom(512 * 1024)
    backend.put("loc", data)
    ref = backend.ref("loc", md5=with_md5)
    path = cache.incomplete_path(ref.entry_id)

    def tamper(location, sent):
        if sent == 256 * 1024:
            with open(path, "r+b") as f:  # O_TRUNC-free overwrite of written data
                f.write(b"\0" * 64 * 1024)

    backend.on_chunk = tamper
    assert read_all(cache, ref, backend.fetch_for("loc")) == data
    assert entries(cache) == []
    assert len(cache.invalid_files()) == 1
    backend.on_chunk = None
    assert read_all(cache, ref, backend.fetch_for("loc")) == data
    assert entries(cache) == [ref.entry_id]


def test_a_caller_that_leaves_early_leaves_nothing_behind(cache, backend):
    data = os.urandom(1 * MiB)
    ref = backend.put("loc", data)
    chunks, _n = cache.read(ref, backend.fetch_for("loc"))
    next(chunks)
    chunks.close()
    assert entries(cache) == []
    assert listing(cache, INCOMPLETE) == listing(cache, INVALID) == []


def test_a_caller_that_stops_at_the_last_byte_still_commits(cache, backend):
    data = os.urandom(200_000)
    ref = backend.put("loc", data)
    chunks, n = cache.read(ref, backend.fetch_for("loc"))
    got = b""
    while len(got) < n:  # never asks for the end of the stream
        got += next(chunks)
    assert got == data
    assert entries(cache) == [ref.entry_id]


def test_back_end_failure_mid_fill(cache, backend):
    data = os.urandom(1 * MiB)
    ref = backend.put("loc", data)
    backend.fail_after = 256 * 1024
    chunks, _n = cache.read(ref, backend.fetch_for("loc"))
    with pytest.raises(exception.BackendUnavailable):
        b"".join(chunks)
    assert entries(cache) == []
    assert listing(cache, INCOMPLETE) == []
    failed = cache.invalid_files()
    assert len(failed) == 1
    assert "connection reset" in failed[0]["error"]
    assert failed[0]["size"] == 0  # no space held by a failed fill


def test_a_dead_writer_fill_is_taken_over(cache, backend):
    data = os.urandom(100_000)
    ref = backend.put("loc", data)
    path = cache.incomplete_path(ref.entry_id)
    with open(path, "wb") as f:  # left by a SIGKILLed writer: no lock held
        f.write(b"partial garbage")
    assert read_all(cache, ref, backend.fetch_for("loc")) == data
    assert entries(cache) == [ref.entry_id]
    assert cache.counters.get("reaped_dead_fills") == 1
    assert read_all(cache, ref, backend.fetch_for("loc"), verify=True) == data


def test_a_symlink_in_place_of_an_entry_is_never_followed(cache, backend, tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"not yours")
    data = b"y" * 9
    ref = backend.put("loc", data)
    os.symlink(secret, cache.entry_path(ref.entry_id))
    assert read_all(cache, ref, backend.fetch_for("loc")) == data
    assert secret.read_bytes() == b"not yours"
    assert os.path.islink(cache.entry_path(ref.entry_id))


def test_single_flight_across_threads(cache, backend):
    data = os.urandom(2 * MiB)
    ref = backend.put("loc", data)
    backend.delay = 0.01  # 32 chunks: the fill takes a while
    results = []
    barrier = threading.Barrier(50)

    def reader():
        barrier.wait()
        results.append(read_all(cache, ref, backend.fetch_for("loc")))

    threads = [threading.Thread(target=reader) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 50 and all(r == data for r in results)
    assert backend.count() == 1
    assert entries(cache) == [ref.entry_id]


def test_a_follower_reads_the_rest_from_the_back_end_when_the_writer_fails(
    cache, backend
):
    data = os.urandom(1 * MiB)
    ref = backend.put("loc", data)
    backend.delay = 0.005
    backend.fail_after = 512 * 1024
    backend.fail_times = 1  # only the writer's fetch breaks
    errors, results = [], []

    def writer():
        try:
            read_all(cache, ref, backend.fetch_for("loc"))
        except exception.BackendUnavailable as err:
            errors.append(err)

    t = threading.Thread(target=writer)
    t.start()
    wait_for(lambda: os.path.exists(cache.incomplete_path(ref.entry_id)), "the fill")
    results.append(read_all(cache, ref, backend.fetch_for("loc")))
    t.join()
    assert len(errors) == 1
    assert results == [data]
    assert cache.counters.get("followed") == 1
    assert cache.counters.get("follow_fallbacks") == 1
    offsets = sorted(f[1] for f in backend.fetches)
    assert offsets[0] == 0 and offsets[1] > 0  # the rest, as a ranged read


def test_a_follower_reads_what_was_written_just_before_the_commit(cache, backend):
    """The writer writes its last bytes and commits between the follower's
    empty read and its look at the writer: the follower reads them."""
    data = os.urandom(1 * MiB)
    ref = backend.put("loc", data)
    backend.delay = 0.005
    real_state = cache._writer_state
    writer_done = threading.Event()

    def state_after_the_writer_finished(fd, entry_id):
        writer_done.wait(30)  # the whole race, made to happen every time
        return real_state(fd, entry_id)

    def writer():
        try:
            read_all(cache, ref, backend.fetch_for("loc"))
        finally:
            writer_done.set()

    t = threading.Thread(target=writer)
    t.start()
    wait_for(lambda: os.path.exists(cache.incomplete_path(ref.entry_id)), "the fill")
    cache._writer_state = state_after_the_writer_finished
    try:
        got = read_all(cache, ref, backend.fetch_for("loc"))
    finally:
        t.join()
    assert got == data
    assert cache.counters.get("followed") == 1
    assert not cache.counters.get("follow_fallbacks")


def test_follower_fallback_without_ranged_reads(cache, backend):
    data = os.urandom(1 * MiB)
    ref = backend.put("loc", data)
    backend.ranged = False
    backend.delay = 0.005
    backend.fail_after = 512 * 1024
    backend.fail_times = 1

    def writer():
        try:
            read_all(cache, ref, backend.fetch_for("loc"))
        except exception.BackendUnavailable:
            pass

    t = threading.Thread(target=writer)
    t.start()
    wait_for(lambda: os.path.exists(cache.incomplete_path(ref.entry_id)), "the fill")
    assert read_all(cache, ref, backend.fetch_for("loc")) == data
    t.join()


def test_admission_refuses_objects_larger_than_the_cache(make_cache, backend):
    cache = make_cache(max_size=1000)
    ref = backend.put("loc", os.urandom(1001))
    assert len(read_all(cache, ref, backend.fetch_for("loc"))) == 1001
    assert entries(cache) == [] and listing(cache, INCOMPLETE) == []
    assert cache.counters.get("bypass_admission") == 1


def test_admission_keeps_the_free_space_floor(make_cache, backend):
    cache = make_cache(min_free_space=0.9)  # more than any test disk has free
    ref = backend.put("loc", b"z" * 4096)
    assert read_all(cache, ref, backend.fetch_for("loc")) == b"z" * 4096
    assert entries(cache) == []
    assert cache.counters.get("bypass_admission") == 1


def test_a_full_cache_makes_room_for_a_new_fill(make_cache, backend):
    cache = make_cache(max_size=100_000, low_watermark=0.5)
    now = time.time_ns()
    old = seed_entries(cache, [now - 10**9 * (100 - i) for i in range(9)], 10_000)
    ref = backend.put("loc", os.urandom(20_000))
    read_all(cache, ref, backend.fetch_for("loc"))
    assert ref.entry_id in entries(cache)  # admitted...
    left = set(entries(cache)) - {ref.entry_id}
    assert left == set(old[-3:])  # ...after the least recently read went
    assert sum(os.path.getsize(cache.entry_path(e)) for e in entries(cache)) <= 100_000


def test_an_unknown_size_is_not_cached(cache, backend):
    backend.put("loc", b"abc")
    ref = CacheRef("slow", "loc")
    assert read_all(cache, ref, backend.fetch_for("loc")) == b"abc"
    assert entries(cache) == []


def test_a_reader_that_began_reads_the_whole_body_after_a_prune(make_cache, backend):
    cache = make_cache(max_size=1, low_watermark=0.5)
    data = os.urandom(3 * MiB)
    ref = backend.put("loc", data)
    cache.max_size = 0  # admit it
    read_all(cache, ref, backend.fetch_for("loc"))
    chunks, _n = cache.read(ref, backend.fetch_for("loc"), chunk_size=MiB)
    first = next(chunks)
    cache.max_size = 1
    result = Pruner(cache).prune()
    assert result.pruned == 1 and entries(cache) == []
    assert first + b"".join(chunks) == data


def test_hits_are_exact_under_concurrent_threads(cache, backend):
    ref = backend.put("loc", os.urandom(4096))
    read_all(cache, ref, backend.fetch_for("loc"))

    def reader():
        for _ in range(100):
            read_all(cache, ref, backend.fetch_for("loc"))

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.lookup(ref.entry_id).hits == 800
    assert backend.count() == 1


def test_prefetch_fill(cache, backend):
    data = os.urandom(70_000)
    ref = backend.put("loc", data)
    assert cache.fill(ref, backend.fetch_for("loc")) == "filled"
    assert cache.fill(ref, backend.fetch_for("loc")) == "cached"
    assert backend.count() == 1
    assert cache.lookup(ref.entry_id).hits == 0  # a prefetch is not a read


def _unverifiable(fetch):
    def wrapped(offset, length, verify):
        if verify:  # like the http driver
            raise exception.StoreCapabilityError(
                backend="slow", operation="verify what it reads")
        return fetch(offset, length, verify)

    return wrapped


@pytest.mark.parametrize("max_size", [0, 10])  # filled, or refused admission
def test_verified_reads_of_a_back_end_that_cannot_verify(make_cache, backend,
                                                        max_size):
    cache = make_cache(max_size=max_size)
    data = os.urandom(300_000)
    ref = backend.put("loc", data)
    fetch = _unverifiable(backend.fetch_for("loc"))
    assert read_all(cache, ref, fetch, verify=True) == data
    assert read_all(cache, ref, fetch, verify=True) == data
    wrong = bytearray(data)
    wrong[-1] ^= 1
    backend.served["loc"] = bytes(wrong)
    cache.delete(ref.entry_id)
    chunks, n = cache.read(ref, fetch, verify=True, chunk_size=64 * 1024)
    got = []
    with pytest.raises(exception.CorruptObject):
        for chunk in chunks:
            got.append(chunk)
    assert sum(map(len, got)) < n
    assert entries(cache) == []


def test_room_made_by_a_prune_is_seen_by_the_next_fill(make_cache, backend):
    # shared_dir: fills never prune themselves, only prune passes do.
    cache = make_cache(max_size=50_000, low_watermark=0.5, shared_dir=True)
    seed_entries(cache, [time.time_ns() - 10**12 + i for i in range(8)], 10_000)
    ref = backend.put("loc", os.urandom(10_000))
    read_all(cache, ref, backend.fetch_for("loc"))
    assert cache.counters.get("bypass_admission") == 1  # full: refused
    # A prune pass on this cache: the next fill knows at once.
    Pruner(cache).prune()
    read_all(cache, ref, backend.fetch_for("loc"))
    assert ref.entry_id in entries(cache)


def test_room_made_by_another_process_is_seen_soon(make_cache, backend, monkeypatch):
    # A prune by another process (here: another instance on the directory):
    # a fill about to be refused re-measures an estimate older than
    # USAGE_RECHECK instead of trusting it for USAGE_TTL.
    cache = make_cache(max_size=50_000, low_watermark=0.5, shared_dir=True)
    seed_entries(cache, [time.time_ns() - 10**12 + i for i in range(8)], 10_000)
    ref2 = backend.put("loc2", os.urandom(10_000))
    read_all(cache, ref2, backend.fetch_for("loc2"))
    assert cache.counters.get("bypass_admission") == 1
    other = make_cache(max_size=50_000, low_watermark=0.5, shared_dir=True)
    Pruner(other).prune()
    monkeypatch.setattr(usage, "USAGE_RECHECK", 0.0)
    read_all(cache, ref2, backend.fetch_for("loc2"))
    assert ref2.entry_id in entries(cache)
    assert cache.counters.get("bypass_admission") == 1
