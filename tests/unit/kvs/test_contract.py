"""One contract, every driver: memory, sqlite (a temp file), a real Redis
and a real PostgreSQL.

The Redis cases use the session's private redis-server (tests/servers.py)
and database 9, flushed before each test; the PostgreSQL cases use the
machine's server (``postgres_url()``) with a schema of each test's own,
dropped after it.  Waits for expiry poll until the
condition holds (with a generous limit) instead of sleeping a fixed time,
and nothing here asserts on how long anything took.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
import os
import random
import subprocess
import sys
import threading
import time
import uuid

import pytest

from storaged import exception
from storaged import kvs
from storaged.kvs import base
from storaged.kvs import keys

REDIS_DB = 9
PATIENCE = 10.0  # seconds an expected expiry may take before the test fails


class Backend:
    """How to open (and reopen) one driver's store for a test."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url
        self.opened: list[kvs.KeyValueStore] = []

    def open(self, **kwargs: float) -> kvs.KeyValueStore:
        store = kvs.open_store(self.url, **kwargs)  # type: ignore[arg-type]
        self.opened.append(store)
        return store

    def close_all(self) -> None:
        for store in self.opened:
            store.close()


@pytest.fixture(params=["memory", "sqlite", "redis", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path) -> Iterator[Backend]:
    if request.param == "memory":
        # A named memory store, so that "reopening" finds the same data.
        url = f"memory://contract-{uuid.uuid4().hex}"
    elif request.param == "sqlite":
        url = "sqlite:///%s" % (tmp_path / "state.sqlite")
    elif request.param == "postgresql":
        url = request.getfixturevalue("postgres_schema_url")
    else:
        import redis

        redis_url = request.getfixturevalue("redis_url")
        url = f"{redis_url}/{REDIS_DB}"
        client = redis.Redis.from_url(url)
        client.flushdb()
        client.close()
    b = Backend(request.param, url)
    yield b
    b.close_all()


@pytest.fixture
def store(backend: Backend) -> kvs.KeyValueStore:
    return backend.open()


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"still not {what} after {PATIENCE}s")
        time.sleep(0.02)


def missing(store: kvs.KeyValueStore, key: str) -> bool:
    try:
        store.get(key)
    except exception.KVSNotFound:
        return True
    return False


def lock_is_free(store: kvs.KeyValueStore, name: str) -> bool:
    try:
        lease = store.lock(name, 5, blocking=False)
    except exception.LockTimeout:
        return False
    lease.release()
    return True


# -- values ------------------------------------------------------------------

JSON_VALUES = [
    {"nested": {"list": [1, 2.5, "three", None, True, False]}, "": 0},
    [],
    {},
    "plain ascii",
    "unicodé ✓ \U0001f600 \u0000 and a lone \ud800 surrogate",
    0,
    -(2**63),
    2**70,
    3.141592653589793,
    True,
    False,
    None,
    "x" * 100_000,
]


@pytest.mark.parametrize("value", JSON_VALUES, ids=range(len(JSON_VALUES)))
def test_json_values_round_trip(store, value):
    store.set("v", value)
    assert store.get("v") == value
    store.set_multi({"m1": value, "m2": [value]})
    assert store.get_multi(["m1", "m2"]) == {"m1": value, "m2": [value]}


def test_tuples_come_back_as_lists(store):
    store.set("t", {"a": (1, 2)})
    assert store.get("t") == {"a": [1, 2]}


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (float("nan"), ValueError),
        (float("inf"), ValueError),
        (object(), TypeError),
        ({1, 2}, TypeError),
        (b"bytes", TypeError),
    ],
)
def test_non_json_values_are_refused_and_nothing_is_written(store, value, error):
    with pytest.raises(error):
        store.set("bad", value)
    with pytest.raises(error):
        store.set_multi({"good": 1, "bad": value})
    assert missing(store, "bad")
    assert missing(store, "good")


def test_get_missing_raises_not_found(store):
    with pytest.raises(exception.KVSNotFound) as info:
        store.get("nope")
    assert "nope" in str(info.value)
    with pytest.raises(exception.KVSNotFound):
        store.get_versioned("nope")


def test_set_overwrites_and_versions_grow(store):
    store.set("k", 1)
    _, v1 = store.get_versioned("k")
    store.set("k", 2)
    value, v2 = store.get_versioned("k")
    assert value == 2
    assert v2 > v1


def test_get_multi_in_order_and_first_missing_named(store):
    store.set_multi({"a": 1, "b": 2, "c": 3})
    assert list(store.get_multi(["c", "a", "b"]).items()) == [
        ("c", 3),
        ("a", 1),
        ("b", 2),
    ]
    assert store.get_multi([]) == {}
    with pytest.raises(exception.KVSNotFound) as info:
        store.get_multi(["a", "missing-1", "b", "missing-2"])
    assert "missing-1" in str(info.value)
    assert "missing-2" not in str(info.value)


def test_delete_one_and_many(store):
    store.set_multi({"a": 1, "b": 2, "c": 3})
    store.delete("a")
    assert missing(store, "a")
    with pytest.raises(exception.KVSNotFound):
        store.delete("a")
    store.delete_multi(["b", "never-existed", "c"])
    assert missing(store, "b") and missing(store, "c")
    store.delete_multi([])


# -- compare-and-set ---------------------------------------------------------


def test_compare_and_set(store):
    v1 = store.compare_and_set("c", None, "first")
    assert store.get_versioned("c") == ("first", v1)
    with pytest.raises(exception.KVSConflict):
        store.compare_and_set("c", None, "must not exist")
    v2 = store.compare_and_set("c", v1, "second")
    assert v2 > v1
    with pytest.raises(exception.KVSConflict) as info:
        store.compare_and_set("c", v1, "stale")
    assert str(v2) in str(info.value)
    assert store.get("c") == "second"
    with pytest.raises(exception.KVSConflict):
        store.compare_and_set("absent", v1, "x")
    assert missing(store, "absent")


def test_delete_and_recreate_does_not_reuse_versions(store):
    v1 = store.compare_and_set("aba", None, "A")
    store.delete("aba")
    v2 = store.compare_and_set("aba", None, "B")
    assert v2 != v1
    with pytest.raises(exception.KVSConflict):
        store.compare_and_set("aba", v1, "stale writer")
    assert store.get("aba") == "B"


def test_cas_rejects_bad_expected(store):
    with pytest.raises(TypeError):
        store.compare_and_set("k", "1", "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.compare_and_set("k", True, "x")


def test_concurrent_cas_increments_lose_nothing(store):
    store.set("counter", 0)
    threads, per_thread = 4, 25

    def worker() -> None:
        for _ in range(per_thread):
            while True:
                value, version = store.get_versioned("counter")
                try:
                    store.compare_and_set("counter", version, value + 1)
                    break
                except exception.KVSConflict:
                    continue

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert store.get("counter") == threads * per_thread


# -- expiry ------------------------------------------------------------------


def test_expiry(store, backend):
    store.set("short", 1, ttl=0.2)
    store.set_multi({"m1": 1, "m2": 2}, ttl=0.2)
    store.set("long", 2, ttl=3600)
    store.set("forever", 3)
    wait_until(lambda: missing(store, "short"), "expired")
    wait_until(lambda: missing(store, "m2"), "expired")
    assert store.get("long") == 2
    with pytest.raises(exception.KVSNotFound):
        store.get_multi(["long", "short"])
    assert [k for k, _ in store.scan("")] == ["forever", "long"]
    with pytest.raises(exception.KVSNotFound):
        store.delete("short")
    # An expired key counts as absent for compare-and-set.
    store.set("gone", 1, ttl=0.1)
    wait_until(lambda: missing(store, "gone"), "expired")
    version = store.compare_and_set("gone", None, "reborn")
    assert store.get_versioned("gone") == ("reborn", version)
    store.set("again", 1, ttl=0.1)
    wait_until(lambda: missing(store, "again"), "expired")
    purged = store.purge_expired()
    assert purged >= (0 if backend.name == "redis" else 2)
    assert store.purge_expired() == 0
    assert store.get("forever") == 3 and store.get("gone") == "reborn"


def test_set_without_ttl_clears_an_earlier_ttl(store):
    store.set("k", 1, ttl=0.2)
    store.set("k", 2)
    time.sleep(0.3)
    assert store.get("k") == 2


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf")])
def test_bad_ttl(store, ttl):
    with pytest.raises(ValueError):
        store.set("k", 1, ttl=ttl)
    with pytest.raises(ValueError):
        store.lock("l", ttl)


# -- scan --------------------------------------------------------------------


def test_scan_is_sorted_and_bounded_by_prefix(store):
    keys = [
        "status/n1/sync",
        "status/n2/cache",
        "status/n1/api",
        "status0",
        "statuS/x",
        "status",
        "status/",
        "stat",
        "z",
        "status/n1/\U0001f600",
        "status/n1/\uffff",
        "status/n1/\U0010ffff",
    ]
    shuffled = keys[:]
    random.shuffle(shuffled)
    for k in shuffled:
        store.set(k, k.upper())
    got = list(store.scan("status/"))
    expected = sorted(k for k in keys if k.startswith("status/"))
    assert [k for k, _ in got] == expected
    assert all(v == k.upper() for k, v in got)
    assert [k for k, _ in store.scan("")] == sorted(keys)
    assert list(store.scan("nothing-here")) == []
    assert [k for k, _ in store.scan("status/n1/\U0010ffff")] == [
        "status/n1/\U0010ffff"
    ]


def test_scan_prefix_is_literal_not_a_pattern(store):
    for k in ["a*b", "axb", "a?c", "abc", "[x]y", "xy", "a\\b", "a\\c", "%_", "%x"]:
        store.set(k, 1)
    assert [k for k, _ in store.scan("a*")] == ["a*b"]
    assert [k for k, _ in store.scan("a?")] == ["a?c"]
    assert [k for k, _ in store.scan("[x]")] == ["[x]y"]
    assert [k for k, _ in store.scan("a\\")] == ["a\\b", "a\\c"]
    assert [k for k, _ in store.scan("%_")] == ["%_"]


def test_scan_pages_through_many_keys(store):
    store.set_multi({f"p/{i:05d}": i for i in range(1234)})
    got = list(store.scan("p/"))
    assert [v for _, v in got] == list(range(1234))


def test_scan_prefix_validation(store):
    with pytest.raises(exception.InvalidName):
        store.scan("x" * 151)  # at the call, not at the first next()
    with pytest.raises(exception.InvalidName):
        store.scan("a\x00")
    list(store.scan("x" * 150))


# -- keys --------------------------------------------------------------------


def test_long_keys_are_mangled_without_collisions(store):
    common = "status/" + "n" * 200
    k1, k2 = common + "/one", common + "/two"
    store.set(k1, 1)
    store.set(k2, 2)
    assert store.get(k1) == 1 and store.get(k2) == 2
    assert store.get_multi([k2, k1]) == {k2: 2, k1: 1}
    stored = [k for k, _ in store.scan("status/")]
    assert sorted(stored) == sorted([kvs.mangle_key(k1), kvs.mangle_key(k2)])
    assert all(len(k) == 215 and keys.is_mangled(k) for k in stored)
    assert all(k.startswith(common[:150]) for k in stored)
    store.delete(k1)
    assert store.get(k2) == 2
    assert missing(store, k1)


def test_mangling_bounds():
    at_limit = "k" * kvs.MAX_KEY_LENGTH
    assert kvs.mangle_key(at_limit) == at_limit
    over = at_limit + "k"
    mangled = kvs.mangle_key(over)
    assert mangled != over and len(mangled) == 215
    assert mangled.startswith(over[:150] + "#")
    # Same function, same result: every driver stores the same form.
    assert kvs.mangle_key(over) == mangled
    assert kvs.mangle_key(over + "x") != mangled


HOSTILE_OK = [
    "a b",
    "new\nline",
    "tab\t",
    "\U0001f600",
    "../../etc/passwd",
    "*",
    "?",
    "[",
    "]",
    "\\",
    "storaged:lock:x",
    "#",
    "'; DROP TABLE kv; --",
    "\u202e",
    "k" * 10_000,
    "\x7f",
    "\x01",
]


@pytest.mark.parametrize("key", HOSTILE_OK, ids=range(len(HOSTILE_OK)))
def test_hostile_but_valid_keys(store, key):
    store.set(key, key)
    assert store.get(key) == key
    assert store.get_multi([key]) == {key: key}
    assert dict(store.scan(kvs.mangle_key(key)[:150]))[kvs.mangle_key(key)] == key
    lease = store.lock(key, 5)
    store.set(key, "fenced", lease=lease)
    assert lease.release()
    store.delete(key)
    assert missing(store, key)


@pytest.mark.parametrize("key", ["", "a\x00b", "\ud800", "x\udfff", b"bytes", 1, None])
def test_invalid_keys(store, key):
    for call in (
        lambda: store.get(key),
        lambda: store.set(key, 1),
        lambda: store.get_multi(["ok", key]),
        lambda: store.set_multi({key: 1}),
        lambda: store.delete(key),
        lambda: store.compare_and_set(key, None, 1),
        lambda: store.lock(key, 1),
    ):
        with pytest.raises(exception.InvalidName):
            call()


# -- leases ------------------------------------------------------------------


def test_lease_basics(backend):
    store = backend.open(default_lock_ttl=7.0)
    before = time.monotonic()
    lease = store.lock("job")
    after = time.monotonic()
    assert lease.name == "job" and lease.ttl == 7.0 and lease.valid
    assert isinstance(lease.token, int) and lease.token > 0
    # The local deadline counts from before the request: never later than
    # the back end's.
    assert before + 7.0 <= lease.expires_at <= after + 7.0
    with pytest.raises(exception.LockTimeout):
        store.lock("job", blocking=False)
    with pytest.raises(exception.LockTimeout):
        store.lock("job", 1, timeout=0.1)
    other = store.lock("other-job", 1, blocking=False)
    assert other.release()
    assert lease.release()
    assert not lease.valid
    assert not lease.release()  # twice: quietly False
    again = store.lock("job", 1, blocking=False)
    assert again.token > lease.token
    again.release()


def test_lock_waits_for_release(store):
    lease = store.lock("w", 30)
    timer = threading.Timer(0.2, lease.release)
    timer.start()
    try:
        second = store.lock("w", 5, timeout=PATIENCE)
    finally:
        timer.join()
    assert second.token > lease.token
    second.release()


def test_lock_waits_for_expiry(store):
    first = store.lock("e", 0.2)
    second = store.lock("e", 5, timeout=PATIENCE)
    assert second.token > first.token
    assert not first.release()
    assert second.release()


def test_refresh_extends_only_the_owner(store):
    lease = store.lock("r", 0.6)
    lease.refresh(30)
    assert lease.ttl == 30
    time.sleep(0.8)  # well past the first ttl
    assert lease.valid
    assert not lock_is_free(store, "r")
    lease.release()
    with pytest.raises(exception.LeaseLost):
        lease.refresh()
    short = store.lock("r2", 0.2)
    wait_until(lambda: lock_is_free(store, "r2"), "free")
    with pytest.raises(exception.LeaseLost):
        short.refresh(30)
    assert not short.valid


def test_tokens_increase_across_release_reopen_and_purge(backend):
    store = backend.open()
    tokens = []
    for _ in range(5):
        lease = store.lock("t", 5)
        tokens.append(lease.token)
        lease.release()
    store.purge_expired()  # may drop the released lock's record
    store.close()
    reopened = backend.open()
    lease = reopened.lock("t", 5)
    tokens.append(lease.token)
    lease.release()
    short = reopened.lock("t", 0.1)
    tokens.append(short.token)
    wait_until(lambda: lock_is_free(reopened, "t"), "free")
    reopened.purge_expired()
    tokens.append(reopened.lock("t", 5).token)
    assert tokens == sorted(set(tokens)), tokens


def test_context_manager_releases_and_swallows_lost_lease(store):
    with store.lock("cm", 5) as lease:
        assert lease.valid
    assert lock_is_free(store, "cm")
    with store.lock("cm", 0.2) as stale:
        # Stall past expiry while someone else takes the lock over.
        newer = store.lock("cm", 30, timeout=PATIENCE)
    assert not stale.valid
    assert not lock_is_free(store, "cm")  # __exit__ left the new owner alone
    newer.release()


def test_concurrent_threads_never_hold_one_lock_together(store):
    holders: list[int] = []
    overlaps: list[tuple[int, int]] = []
    guard = threading.Lock()
    done = []

    def worker(ident: int) -> None:
        for _ in range(15):
            with store.lock("contended", 30, timeout=60):
                with guard:
                    if holders:
                        overlaps.append((holders[-1], ident))
                    holders.append(ident)
                time.sleep(0.001)
                with guard:
                    holders.remove(ident)
        done.append(ident)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert sorted(done) == [0, 1, 2, 3]
    assert overlaps == []


# -- fencing -----------------------------------------------------------------


def test_stalled_holder_cannot_overwrite_the_new_owner(backend):
    a_store, b_store = backend.open(), backend.open()
    lease_a = a_store.lock("sync/c1", 0.3)
    # A stalls past its lease; B takes over as soon as the back end lets it.
    lease_b = b_store.lock("sync/c1", 30, timeout=PATIENCE)
    assert lease_b.token > lease_a.token
    b_store.set("sync/c1/point", 900, lease=lease_b)
    # A wakes up and tries every kind of write under its old lease.
    for write in (
        lambda: a_store.set("sync/c1/point", 500, lease=lease_a),
        lambda: a_store.set_multi({"sync/c1/point": 500, "x": 1}, lease=lease_a),
        lambda: a_store.delete("sync/c1/point", lease=lease_a),
        lambda: a_store.delete_multi(["sync/c1/point"], lease=lease_a),
    ):
        with pytest.raises(exception.LeaseLost):
            write()
    assert b_store.get("sync/c1/point") == 900
    assert missing(b_store, "x")
    assert not lease_a.release()
    assert not lock_is_free(b_store, "sync/c1")
    b_store.set("sync/c1/point", 901, lease=lease_b)
    assert lease_b.release()


def test_back_end_rejects_a_lease_the_holder_still_believes_in(backend):
    """The fence is checked by the back end, not only by the local clock."""
    store = backend.open()
    lease = store.lock("f", 0.2)
    newer = store.lock("f", 30, timeout=PATIENCE)
    # A holder whose local clock is wrong (or who forged its deadline):
    believer = base.Lease(store, "f", lease.token, 0.2, time.monotonic() + 3600)
    assert believer.valid
    store.set("guarded", "newer")
    for write in (
        lambda: store.set("guarded", "stale", lease=believer),
        lambda: store.set_multi({"guarded": "stale"}, lease=believer),
        lambda: store.delete("guarded", lease=believer),
        lambda: store.delete_multi(["guarded"], lease=believer),
    ):
        with pytest.raises(exception.LeaseLost):
            write()
    assert not believer.valid  # a rejection also ends the local view
    assert store.get("guarded") == "newer"
    # Expired but not yet taken over: still rejected, by the back end.
    newer.release()
    lapsed = store.lock("g", 0.2)
    wait_until(lambda: lock_is_free(store, "g"), "free")
    believer = base.Lease(store, "g", lapsed.token, 0.2, time.monotonic() + 3600)
    with pytest.raises(exception.LeaseLost):
        store.set("guarded", "lapsed", lease=believer)
    assert store.get("guarded") == "newer"


def test_fenced_writes_succeed_while_held(store):
    with store.lock("held", 30) as lease:
        store.set("a", 1, lease=lease, ttl=60)
        store.set_multi({"b": 2, "c": 3}, lease=lease)
        store.delete("a", lease=lease)
        with pytest.raises(exception.KVSNotFound):
            store.delete("a", lease=lease)
        store.delete_multi(["b", "zzz"], lease=lease)
    assert store.get_multi(["c"]) == {"c": 3}
    assert missing(store, "b")


def test_released_or_locally_expired_lease_writes_nothing(store):
    lease = store.lock("l", 30)
    lease.release()
    with pytest.raises(exception.LeaseLost):
        store.set("k", 1, lease=lease)
    lease = store.lock("l", 30)
    lease.expires_at = time.monotonic() - 1  # as if the holder had stalled
    with pytest.raises(exception.LeaseLost):
        store.set("k", 1, lease=lease)
    assert missing(store, "k")
    assert lease.release()  # still ours on the back end


def test_a_lease_of_another_name_does_not_fence(store):
    mine = store.lock("mine", 30)
    theirs = store.lock("theirs", 30)
    forged = base.Lease(store, "theirs", mine.token, 30, mine.expires_at)
    with pytest.raises(exception.LeaseLost):
        store.set("k", 1, lease=forged)
    assert missing(store, "k")
    mine.release()
    theirs.release()


# -- life cycle ----------------------------------------------------------------


def test_closed_store_refuses_work(backend):
    store = backend.open()
    with store:
        store.set("k", 1)
    with pytest.raises(exception.KVSError):
        store.get("k")
    store.close()  # idempotent
    assert backend.open().get("k") == 1


# -- under eventlet: called from run_blocking's native threads ------------------

_POOL_CHILD = """
import sys
from storaged import concurrency
concurrency.setup("eventlet")
import eventlet
from storaged import kvs

store = kvs.open_store(sys.argv[1])


def worker(n):
    for i in range(150):
        store.call(store.set, "k%d" % (i % 5), {"n": n, "i": i})
        store.call(store.get, "k%d" % (i % 5))


threads = [eventlet.spawn(worker, n) for n in range(16)]
with eventlet.Timeout(90):
    for thread in threads:
        thread.wait()
store.close()
print("done")
"""


def test_green_callers_through_the_thread_pool(backend):
    """A daemon under eventlet calls the store through ``store.call``:
    sixteen green threads at once.  A blocking driver's calls go to the
    native thread pool, whose threads then contend for the driver's locks;
    a green lock there once left a pool thread waiting forever (a wake-up
    sent to the wrong thread's hub) and the daemon's work stalled.  Redis's
    calls stay on the hub's thread, where its green locks belong."""
    child = subprocess.run(
        [sys.executable, "-c", _POOL_CHILD, backend.url],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "STORAGED_CONCURRENCY_BACKEND": "eventlet"},
    )
    assert "Cannot switch" not in child.stderr, child.stderr[-3000:]
    assert (child.returncode, child.stdout) == (0, "done\n"), child.stderr[-3000:]
