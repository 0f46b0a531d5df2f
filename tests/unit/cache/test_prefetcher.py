"""The prefetch queue and the prefetcher: queue order, isolation, retries."""

from __future__ import annotations

import os

from storaged import exception
from storaged.cache import Prefetcher
from storaged.cache import Queue
from storaged.cache import prefetcher as prefetcher_mod
from storaged.common.daemon import PassContext


def resolver(backend):
    def resolve(target):
        location = target["object"]
        if location not in backend.objects:
            raise exception.ObjectNotFound(what=location)
        return backend.ref(location), backend.fetch_for(location)

    return resolve


def one_pass(prefetcher):
    ctx = PassContext("cache-prefetch")
    prefetcher.run_pass(ctx)
    return ctx.stats


def test_queue_keeps_order_and_each_object_once(tmp_path):
    queue = Queue(str(tmp_path))
    for name in ("a/c/3", "a/c/1", "a/c/2"):
        _item, added = queue.add({"object": name})
        assert added
    item, added = queue.add({"object": "a/c/1"})
    assert not added and item.describe() == "a/c/1"
    assert [i.describe() for i in queue.items()] == ["a/c/3", "a/c/1", "a/c/2"]
    assert queue.remove_target({"object": "a/c/1"}) == 1
    assert [i.describe() for i in queue.items()] == ["a/c/3", "a/c/2"]


def test_malformed_queue_files_are_dropped(tmp_path):
    queue = Queue(str(tmp_path))
    queue.add({"object": "a/c/o"})
    bad = os.path.join(queue.directory, "%020d-%s" % (1, "0" * 16))
    with open(bad, "w") as f:
        f.write("{not json")
    assert [i.describe() for i in queue.items()] == ["a/c/o"]
    assert not os.path.exists(bad)


def test_prefetch_in_queue_order_with_failures_isolated(cache, backend):
    for name in ("a/c/1", "a/c/2", "a/c/3"):
        backend.put(name, os.urandom(10_000 + len(name)))
    queue = Queue(cache.cache_dir)
    for name in ("a/c/2", "a/c/missing", "a/c/3", "a/c/1"):
        queue.add({"object": name})
    broken = backend.fetch_for("a/c/3")

    def resolve(target):
        ref, fetch = resolver(backend)(target)
        if target["object"] == "a/c/3":
            def fetch(offset, length, verify):
                broken(offset, length, verify)  # counted as a fetch
                raise exception.BackendUnavailable(backend="slow", reason="down")
        return ref, fetch

    stats = one_pass(Prefetcher(cache, resolve))
    assert stats.counters["filled"] == 2
    assert stats.counters["failed"] == 2 and not stats.ok
    assert [f[0] for f in backend.fetches] == ["a/c/2", "a/c/3", "a/c/1"]
    for name in ("a/c/1", "a/c/2"):
        assert cache.lookup(backend.ref(name).entry_id) is not None
    left = Queue(cache.cache_dir).items()
    # The missing object can never be filled: dropped at once.  The one
    # whose back end failed stays, with its attempt recorded.
    assert [(i.describe(), i.attempts) for i in left] == [("a/c/3", 1)]
    assert "down" in left[0].last_error


def test_an_item_is_dropped_after_repeated_failures(cache, backend):
    backend.put("a/c/o", b"x" * 100)
    Queue(cache.cache_dir).add({"object": "a/c/o"})
    backend.fail_after = 0
    for attempt in range(1, prefetcher_mod.MAX_ATTEMPTS + 1):
        stats = one_pass(Prefetcher(cache, resolver(backend)))
        assert stats.counters["failed"] == 1
        left = Queue(cache.cache_dir).items()
        if attempt < prefetcher_mod.MAX_ATTEMPTS:
            assert left[0].attempts == attempt
    assert Queue(cache.cache_dir).items() == []


def test_already_cached_objects_are_not_fetched_again(cache, backend):
    backend.put("a/c/o", b"x" * 100)
    cache.fill(backend.ref("a/c/o"), backend.fetch_for("a/c/o"))
    Queue(cache.cache_dir).add({"object": "a/c/o"})
    stats = one_pass(Prefetcher(cache, resolver(backend)))
    assert stats.counters["cached"] == 1 and stats.ok
    assert backend.count() == 1
    assert Queue(cache.cache_dir).items() == []


def test_refused_admission_keeps_the_item(make_cache, backend):
    cache = make_cache(max_size=10)
    backend.put("a/c/o", b"x" * 100)
    Queue(cache.cache_dir).add({"object": "a/c/o"})
    stats = one_pass(Prefetcher(cache, resolver(backend)))
    assert stats.counters["failed"] == 1
    assert backend.count() == 0  # nothing fetched for nothing
    assert Queue(cache.cache_dir).items()[0].attempts == 1
