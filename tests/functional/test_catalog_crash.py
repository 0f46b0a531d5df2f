"""SIGKILL a catalog writer at random points: no acknowledged change is lost.

A child process creates a container and then, in a loop, puts objects and
deletes some of them, printing each change only after the call that made it
returned (the commit).  The test kills it with SIGKILL after a random delay
(sometimes before it even got going), several times over the same catalog,
then reopens the catalog as a new process would and checks that every
acknowledged change is there, that sqlite's integrity check passes, and that
the counts agree with the rows.  The catalog runs with its default,
``synchronous = full``; the child runs on each concurrency backend (under
eventlet its sqlite calls go through the native thread pool).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from storaged import concurrency
from storaged.catalog import Catalog

TRIALS = 8  # per concurrency backend
ACCOUNT, CONTAINER = "AUTH_crash", "box"

CHILD = r"""
import sys
from storaged import concurrency
concurrency.setup()  # from STORAGED_CONCURRENCY_BACKEND
from storaged.catalog import Catalog, Timestamp

path, trial = sys.argv[1], int(sys.argv[2])
catalog = Catalog(path)
broker = catalog.container("AUTH_crash", "box")
broker.create()
out = sys.stdout
out.write("ready\n")
out.flush()
i = 0
while True:
    name = "t%d-%06d" % (trial, i)
    size = (i * 7919) % 997
    broker.put_object(name, Timestamp.now(), size, "text/plain", "e%d" % i,
                      metadata={"X-Object-Meta-Step": str(i)})
    out.write("P %s %d\n" % (name, size))
    out.flush()
    if i % 5 == 4:
        victim = "t%d-%06d" % (trial, i - 3)
        broker.delete_object(victim, Timestamp.now())
        out.write("D %s\n" % victim)
        out.flush()
    i += 1
"""


def schedule(trial):
    """The child's operations, in order, as (op, name)."""
    i = 0
    while True:
        yield "P", f"t{trial}-{i:06d}"
        if i % 5 == 4:
            yield "D", f"t{trial}-{i - 3:06d}"
        i += 1


def run_trial(path, trial, rng, backend):
    """Run one child, kill it, and return (acknowledged lines, in-flight op)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, path, str(trial)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ, STORAGED_CONCURRENCY_BACKEND=backend),
    )
    try:
        if rng.random() < 0.25:
            # Kill early: while it imports, creates the container or starts.
            time.sleep(rng.uniform(0.0, 0.6))
        else:
            assert proc.stdout.readline() == b"ready\n", proc.stderr.read()
            time.sleep(rng.uniform(0.01, 0.4))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        # The child is dead: its pipes are at their end.  (Not communicate():
        # it would skip what readline() has already buffered.)
        out, err = proc.stdout.read(), proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, err.decode(errors="replace")
    # Only whole lines were acknowledged.
    lines = out.decode().split("\n")[:-1]
    acked = [tuple(line.split()) for line in lines if line != "ready"]
    ops = schedule(trial)
    for line in acked:
        assert next(ops) == line[:2]
    return acked, next(ops)


@pytest.mark.parametrize("backend", concurrency.BACKENDS)
def test_sigkill_loses_no_acknowledged_change(tmp_path, backend):
    path = str(tmp_path / "catalog")
    rng = random.Random(int(os.environ.get("CATALOG_CRASH_SEED", "4242")))
    live, deleted, uncertain = {}, set(), set()
    total_acked = 0
    for trial in range(TRIALS):
        acked, in_flight = run_trial(path, trial, rng, backend)
        total_acked += len(acked)
        for line in acked:
            if line[0] == "P":
                live[line[1]] = int(line[2])
            else:
                live.pop(line[1])
                deleted.add(line[1])
        # The op running when the child died may or may not have committed.
        uncertain.add(in_flight[1])
        check(path, live, deleted, uncertain)
    # The runs did real work (the test would prove nothing otherwise).
    assert total_acked > 100


def check(path, live, deleted, uncertain):
    catalog = Catalog(path)
    broker = catalog.container(ACCOUNT, CONTAINER)
    if not broker.exists():
        # Only possible if no trial got as far as acknowledging anything.
        assert not live and not deleted
        return
    broker.check(full=True)
    rows = {r.name: r for r in broker.get_items_since(-1, limit=1_000_000)}
    for name, size in live.items():
        if name in uncertain:
            assert name in rows
            continue
        assert name in rows, f"acknowledged put of {name} lost"
        assert not rows[name].deleted, f"acknowledged put of {name} undone"
        assert rows[name].size == size
        assert rows[name].metadata["X-Object-Meta-Step"] == str(int(name[-6:]))
    for name in deleted:
        assert name in rows, f"tombstone of {name} lost"
        assert rows[name].deleted, f"acknowledged delete of {name} lost"
    # Nothing that was never written (rows only come from the schedule).
    for name in rows:
        assert name in live or name in deleted or name in uncertain
    info = broker.info()
    live_rows = [r for r in rows.values() if not r.deleted]
    assert info.object_count == len(live_rows)
    assert info.bytes_used == sum(r.size for r in live_rows)
    ids = sorted(r.row_id for r in rows.values())
    assert info.max_row >= ids[-1]
    file = broker.db.find_file()
    broker.close()
    conn = sqlite3.connect(file)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()
    # The account index may lag by the last change; one pass heals it.
    catalog.reclaim()
    (entry,) = catalog.list_containers(ACCOUNT)
    assert (entry.object_count, entry.bytes_used) == (
        info.object_count,
        info.bytes_used,
    )
    catalog.close()
