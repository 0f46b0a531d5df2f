"""What only the sqlite driver does: files, schema, processes, eventlet."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from storaged import exception
from storaged import kvs
from storaged.kvs.drivers import sqlite as sqlite_driver

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


def _url(path) -> str:
    return f"sqlite:///{path}"


def _python(
    code: str, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def test_file_is_wal_with_versioned_schema(tmp_path):
    path = tmp_path / "s.sqlite"
    with kvs.open_store(_url(path)) as store:
        store.set("k", 1)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert (
        conn.execute("PRAGMA user_version").fetchone()[0]
        == sqlite_driver.SCHEMA_VERSION
    )
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT key, value FROM kv").fetchall() == [("k", "1")]
    conn.close()


@pytest.mark.parametrize(("option", "pragma"), [("normal", 1), ("full", 2)])
def test_synchronous_option(tmp_path, option, pragma):
    with kvs.open_store(
        _url(tmp_path / "s.sqlite"), sqlite_synchronous=option
    ) as store:
        assert store._conn().execute("PRAGMA synchronous").fetchone()[0] == pragma


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "s.sqlite"
    kvs.open_store(_url(path)).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(exception.KVSError) as info:
        kvs.open_store(_url(path))
    assert "schema version 99" in str(info.value)


def test_not_a_database(tmp_path):
    path = tmp_path / "s.sqlite"
    path.write_bytes(b"this is not sqlite" * 1000)
    with pytest.raises(exception.KVSBackendError) as info:
        kvs.open_store(_url(path))
    assert "s.sqlite" in str(info.value)


def test_missing_directory(tmp_path):
    with pytest.raises(exception.KVSBackendError) as info:
        kvs.open_store(_url(tmp_path / "nowhere" / "s.sqlite"))
    assert "No such file or directory" in str(info.value)


def test_busy_database_is_a_backend_error(tmp_path):
    path = tmp_path / "s.sqlite"
    store = kvs.open_store(_url(path), timeout=0.2)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(exception.KVSBackendError) as info:
            store.set("k", 1)
        assert isinstance(info.value, exception.RetryableError)
        assert "locked" in str(info.value)
        with pytest.raises(exception.KVSBackendError):
            store.set_multi({"a": 1, "b": 2})
        assert store.get_multi([]) == {}
    finally:
        other.execute("ROLLBACK")
        other.close()
    store.set_multi({"a": 1, "b": 2})  # the failed transaction left nothing open
    assert store.get("a") == 1
    store.close()


def test_each_thread_gets_its_own_connection(tmp_path):
    import threading

    store = kvs.open_store(_url(tmp_path / "s.sqlite"))
    seen = []

    def work() -> None:
        seen.append(id(store._conn()))
        store.set("k", 1)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
        t.join()  # one after another, so ids of dead connections are not reused
    assert len(set(seen)) == 3
    store.close()
    assert store._conns == {}


def test_connections_of_exited_threads_are_closed(tmp_path):
    import threading

    store = kvs.open_store(_url(tmp_path / "s.sqlite"))
    for i in range(3 * sqlite_driver._REAP_AT):
        t = threading.Thread(target=store.set, args=(f"k{i}", i))
        t.start()
        t.join()
    assert len(store._conns) <= sqlite_driver._REAP_AT
    assert len(list(store.scan("k"))) == 3 * sqlite_driver._REAP_AT
    store.close()


WORKER = """
import json, os, sys, time
from storaged import exception, kvs

url, rounds, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
store = kvs.open_store(url, timeout=30)
print("ready", flush=True)
while not os.path.exists(go):  # start together, to contend
    time.sleep(0.001)
conflicts = 0
for _ in range(rounds):
    while True:
        value, version = store.get_versioned("cas")
        try:
            store.compare_and_set("cas", version, value + 1)
            break
        except exception.KVSConflict:
            conflicts += 1
tokens = []
for _ in range(rounds):
    with store.lock("excl", 30, timeout=60) as lease:
        # A read-modify-write that only the lease makes safe, and a check that
        # tokens grow in the order the lease is granted.
        state = store.get("excl-state")
        if lease.token <= state["last_token"]:
            raise SystemExit("token went backwards: %s <= %s"
                             % (lease.token, state["last_token"]))
        time.sleep(0.0005)
        store.set("excl-state", {"count": state["count"] + 1,
                                 "last_token": lease.token}, lease=lease)
        tokens.append(lease.token)
print(json.dumps({"conflicts": conflicts, "tokens": tokens}))
"""


def test_processes_share_one_file_safely(tmp_path):
    url = _url(tmp_path / "shared.sqlite")
    with kvs.open_store(url) as store:
        store.set("cas", 0)
        store.set("excl-state", {"count": 0, "last_token": 0})
    workers, rounds = 4, 60
    go = tmp_path / "go"
    env = dict(os.environ, PYTHONPATH=ROOT)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, str(rounds), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(workers)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    # The workers really did run into each other.
    assert sum(r["conflicts"] for r in results) > 0
    with kvs.open_store(url) as store:
        assert store.get("cas") == workers * rounds
        state = store.get("excl-state")
    assert state["count"] == workers * rounds
    tokens = [t for r in results for t in r["tokens"]]
    assert len(set(tokens)) == len(tokens) == workers * rounds
    assert state["last_token"] == max(tokens)


def test_concurrent_first_open_creates_the_schema_once(tmp_path):
    url = _url(tmp_path / "new.sqlite")
    code = """
        import sys
        from storaged import kvs
        with kvs.open_store(sys.argv[1], timeout=30) as store:
            store.set("k-" + sys.argv[2], 1)
    """
    env = dict(os.environ, PYTHONPATH=ROOT)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code), url, str(i)],
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(4)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    with kvs.open_store(url) as store:
        assert [k for k, _ in store.scan("k-")] == ["k-0", "k-1", "k-2", "k-3"]


def test_green_threads_and_the_native_pool_in_one_process(tmp_path):
    """Under eventlet: green threads, run_blocking (tpool) and a native thread."""
    code = """
        import sys
        from storaged import concurrency
        concurrency.setup("eventlet")
        import eventlet
        from storaged import exception, kvs

        store = kvs.open_store(sys.argv[1])
        store.set("n", 0)

        def bump(i):
            for _ in range(20):
                while True:
                    value, version = concurrency.run_blocking(store.get_versioned, "n")
                    try:
                        concurrency.run_blocking(
                            store.compare_and_set, "n", version, value + 1)
                        break
                    except exception.KVSConflict:
                        eventlet.sleep(0)
            with store.lock("green", 10, timeout=30) as lease:  # on the hub thread
                store.set("g%d" % i, i, lease=lease)
            return i

        pool = [eventlet.spawn(bump, i) for i in range(8)]
        native = concurrency.start_native_thread(lambda: store.set("native", 1), "n")
        assert sorted(g.wait() for g in pool) == list(range(8))
        native.join()
        assert store.get("n") == 160, store.get("n")
        assert store.get("native") == 1
        assert len(list(store.scan("g"))) == 8
        print("ok", len(store._conns) >= 2)
    """
    result = _python(code, _url(tmp_path / "g.sqlite"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ok", "True"]
