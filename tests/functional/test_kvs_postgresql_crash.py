"""Kill -9 and stall the clients of a PostgreSQL state store.

The server is the machine's PostgreSQL (``tests.servers.postgres_url``),
which the tests do not own, so here the *clients* are killed and stopped:

* a writer (plain sets, atomic multi-key sets, fenced sets) is SIGKILLed at
  random points: every write it acknowledged is there, and every multi-key
  set is all there or not at all;
* a lease holder is SIGKILLed: its lease runs out by the server's clock and
  the next holder gets a larger token;
* a lease holder that believes its lease is still good (its local deadline
  pushed out, as a paused process with a skewed view would) is SIGSTOPped
  until the lease expires and another process took the lock and wrote; woken
  with SIGCONT, its next fenced write is rejected by the server and writes
  nothing.

The random seed is printed on failure; set ``STORAGED_CRASH_SEED`` to
replay a run.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from storaged import concurrency
from storaged import exception
from storaged import kvs
from tests.functional.test_kvs_crash import _acknowledged
from tests.functional.test_kvs_crash import _check
from tests.functional.test_kvs_crash import _seed
from tests.functional.test_kvs_crash import _start_writer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRIALS = 4
PATIENCE = 60.0  # seconds a lease that must run out may take before failing

HOLDER = textwrap.dedent(
    """
    import sys
    from storaged import concurrency
    concurrency.setup()  # from STORAGED_CONCURRENCY_BACKEND
    from storaged import exception, kvs

    url, ttl, believer = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "1"
    store = kvs.open_store(url, timeout=2)
    lease = store.lock("job", ttl)
    if believer:
        # Never trust the local deadline: only the server decides.
        lease.expires_at = float("inf")
    print("token", lease.token, flush=True)
    i = 0
    while True:
        try:
            store.set("point", {"by": "holder", "i": i}, lease=lease)
        except exception.LeaseLost:
            print("lost", flush=True)
            break
        print(i, flush=True)
        i += 1
    """
)


def _start_holder(
    url: str, ttl: float, believer: bool
) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, str(ttl), "1" if believer else "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=ROOT),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("token "):
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"holder did not start: {err}")
    # Let it write under the lease for a moment.
    assert proc.stdout.readline().strip() == "0"
    return proc, int(line.split()[1])


def _take_over(store: kvs.KeyValueStore, name: str) -> kvs.Lease:
    """Wait (polling, with a generous limit) until ``name`` is free; take it."""
    deadline = time.monotonic() + PATIENCE
    while True:
        try:
            return store.lock(name, 60, blocking=False)
        except exception.LockTimeout:
            if time.monotonic() > deadline:
                pytest.fail(f"lock {name} still held after {PATIENCE}s")
            time.sleep(0.05)


@pytest.mark.parametrize("backend", concurrency.BACKENDS)
def test_sigkilled_writer_loses_no_acknowledged_write(postgres_schema_url, backend):
    url = postgres_schema_url
    seed = _seed()
    rng = random.Random(seed)
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
            # A multi-key set is all there or not at all, acknowledged or not.
            keys = {key for key, _ in store.scan(prefix + "/")}
            for key in keys:
                if key.endswith("/pair"):
                    assert key[: -len("/pair")] in keys, (key, seed)
                elif int(key.split("/")[1]) % 5 == 0:
                    assert key + "/pair" in keys, (key, seed)
    assert sum(len(a) for a in history.values()) > 0, "the writer never got going"


def test_sigkilled_lease_holder_loses_the_lock_by_the_server_clock(
    postgres_schema_url,
):
    url = postgres_schema_url
    proc, token = _start_holder(url, ttl=1.0, believer=False)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    with kvs.open_store(url) as store:
        lease = _take_over(store, "job")
        assert lease.token > token
        store.set("point", {"by": "next"}, lease=lease)
        assert store.get("point") == {"by": "next"}
        assert lease.release()


def test_stalled_holder_that_wakes_up_writes_nothing(postgres_schema_url):
    url = postgres_schema_url
    proc, token = _start_holder(url, ttl=1.0, believer=True)
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        with kvs.open_store(url) as store:
            # The holder may have stopped inside a fenced write's transaction:
            # the server ends that session after the holder's timeout, and
            # the lease runs out by the server's clock.
            lease = _take_over(store, "job")
            assert lease.token > token
            store.set("point", {"by": "next"}, lease=lease)
            os.kill(proc.pid, signal.SIGCONT)
            out, err = proc.communicate(timeout=60)
            lines = out.split()
            # Woken, the holder either found its session ended (a backend
            # error) or tried a fenced write that the server refused.
            assert lines[-1] == "lost" or "KVSBackendError" in err, (out, err)
            assert store.get("point") == {"by": "next"}
            store.set("point", {"by": "next", "again": True}, lease=lease)
            assert lease.release()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate()
