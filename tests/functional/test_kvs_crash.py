"""Kill -9 at random points: no acknowledged write of the state store is lost.

A writer process sets keys in a loop (plain sets, atomic multi-key sets and
fenced sets under a lease) and prints each key's number only after the call
returned: printed means acknowledged.  The test kills at a random moment,
reopens the store and checks that every acknowledged key holds its value.

* sqlite (``synchronous = normal``, the default): the *writer* is killed.
  The claim is that a commit survives the death of the process; the file
  must also pass ``PRAGMA integrity_check``.
* Redis with ``appendfsync always``: the *server* is killed (that is where
  the data lives) and restarted from its append-only file.

The writer runs on each concurrency backend (under eventlet a sqlite call
goes through the native thread pool).

The random seed is printed on failure; set ``STORAGED_CRASH_SEED`` to
replay a run.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from storaged import concurrency
from storaged import kvs
from tests.servers import RedisServer
from tests.servers import ServerMissing
from tests.servers import skip_or_fail

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Trials per concurrency backend.
TRIALS = 6
REDIS_TRIALS = 3

WRITER = textwrap.dedent(
    """
    import sys
    from storaged import concurrency
    concurrency.setup()  # from STORAGED_CONCURRENCY_BACKEND
    from storaged import kvs

    url, prefix = sys.argv[1], sys.argv[2]
    store = kvs.open_store(url, timeout=5)
    print("ready", flush=True)
    i = 0
    while True:
        key = f"{prefix}/{i:06d}"
        value = {"i": i, "pad": "x" * (i % 400)}
        if i % 5 == 0:
            store.set_multi({key: value, key + "/pair": i})
        elif i % 7 == 0:
            with store.lock(prefix + "/lock", 30) as lease:
                store.set(key, value, lease=lease)
        else:
            store.set(key, value)
        print(i, flush=True)
        i += 1
    """
)


def _seed() -> int:
    return int(os.environ.get("STORAGED_CRASH_SEED") or time.time_ns() % 1_000_000)


def _start_writer(url: str, prefix: str, backend: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, url, prefix],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=ROOT, STORAGED_CONCURRENCY_BACKEND=backend),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line != "ready\n":
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"writer did not start: {err}")
    return proc


def _acknowledged(proc: subprocess.Popen[str]) -> list[int]:
    """Every number the writer printed in full before it died."""
    out, _ = proc.communicate(timeout=30)
    return [int(line) for line in out.split("\n")[:-1] if line.strip()]


def _check(store: kvs.KeyValueStore, prefix: str, acked: list[int], seed: int) -> None:
    for i in acked:
        key = f"{prefix}/{i:06d}"
        assert store.get(key) == {"i": i, "pad": "x" * (i % 400)}, (key, seed)
        if i % 5 == 0:
            assert store.get(key + "/pair") == i, (key, seed)


@pytest.mark.parametrize("backend", concurrency.BACKENDS)
def test_sigkilled_writer_loses_no_acknowledged_sqlite_write(tmp_path, backend):
    seed = _seed()
    rng = random.Random(seed)
    path = tmp_path / "state.sqlite"
    url = f"sqlite:///{path}"
    history: dict[str, list[int]] = {}
    for trial in range(TRIALS):
        prefix = f"trial{trial}"
        proc = _start_writer(url, prefix, backend)
        time.sleep(rng.uniform(0.01, 0.4))
        os.kill(proc.pid, signal.SIGKILL)
        history[prefix] = _acknowledged(proc)
        assert proc.returncode == -signal.SIGKILL, seed
        with kvs.open_store(url) as store:
            for done, acked in history.items():
                _check(store, done, acked, seed)
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)], seed
        finally:
            conn.close()
    assert sum(len(a) for a in history.values()) > 0, "the writer never got going"


@pytest.mark.parametrize("backend", concurrency.BACKENDS)
def test_sigkilled_redis_loses_no_acknowledged_write_with_appendfsync_always(
    tmp_path, backend
):
    seed = _seed()
    rng = random.Random(seed)
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(
        appendonly=True, appendfsync="always", directory=str(directory)
    )
    try:
        server.start()
    except ServerMissing as err:
        skip_or_fail(str(err))
    port = server.port
    history: dict[str, list[int]] = {}
    try:
        for trial in range(REDIS_TRIALS):
            prefix = f"trial{trial}"
            proc = _start_writer(server.url, prefix, backend)
            time.sleep(rng.uniform(0.05, 0.4))
            server.kill()
            history[prefix] = _acknowledged(proc)  # the writer fails and exits
            server = RedisServer(
                appendonly=True,
                appendfsync="always",
                directory=str(directory),
                port=port,
            )
            server.start()
            with kvs.open_store(server.url) as store:
                for done, acked in history.items():
                    _check(store, done, acked, seed)
    finally:
        server.stop()
    assert sum(len(a) for a in history.values()) > 0, "the writer never got going"
