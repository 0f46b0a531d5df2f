"""The PostgreSQL catalog under several processes at once, and under SIGKILL.

Each process opens a catalog of its own on the same schema, as the nodes of
a cluster do.

*Writers and a follower.*  Four writer processes start together (after a
barrier) and write one container: each puts names of its own
(``u-<writer>-<n>``, never written again) between puts and deletes of a
shared pool of names with random timestamps (a per-process offset keeps
them distinct).  A follower process meanwhile reads the change log the way
the sync daemon does: rows after its point, then its point moves to the
last row read.  If a row id could commit after a larger one was read, the
follower would skip it; so it must see every name of its own kind, with
strictly increasing row ids.  Afterwards every shared name holds the write
with the largest timestamp any process made, the counts agree with the
rows, and every applied write took a row id of its own.

*SIGKILL.*  A writer that puts and overwrites objects (each overwrite leaves
garbage) is killed with SIGKILL mid-way, three times over: every row there
is whole, the counts, the garbage count and the change log's end agree with
the rows, and the container takes writes at once (the dead writer's
transaction was rolled back, its row lock freed).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from storaged.catalog import Timestamp

psycopg = pytest.importorskip("psycopg")

WRITERS = 4
OPS = 200
NAMES = 8  # few: writers of one name often wait for each other
ACCOUNT, CONTAINER = "AUTH_conc", "shared"

WRITER = r"""
import json, os, random, sys, time
from storaged.catalog import Timestamp
from storaged.catalog.postgresql import PostgresCatalog

url, go, me, ops, names, out = sys.argv[1:7]
me, ops, names = int(me), int(ops), int(names)
rng = random.Random(1000 + me)
catalog = PostgresCatalog(url, timeout=30.0)
broker = catalog.container("AUTH_conc", "shared")
while not os.path.exists(go):
    time.sleep(0.002)
created = broker.create(Timestamp(1000, offset=me + 1))
log, used = [], set()
for n in range(ops):
    if n % 2:
        ts = Timestamp(1_800_000_000 + n, offset=me + 1)
        applied = broker.put_object("u-%d-%04d" % (me, n), ts, 1, "t", "u")
        log.append(["U", "u-%d-%04d" % (me, n), ts.internal, 1, applied])
        continue
    name = "obj-%02d-\u00e9" % rng.randrange(names)
    while True:
        ticks = rng.randrange(10**6)
        if (name, ticks) not in used:
            used.add((name, ticks))
            break
    ts = Timestamp(1_700_000_000 + ticks / 100_000, offset=me + 1)
    if rng.random() < 0.25:
        applied = broker.delete_object(name, ts)
        log.append(["D", name, ts.internal, 0, applied])
    else:
        size = rng.randrange(10_000)
        applied = broker.put_object(name, ts, size, "text/plain", "e-%s" % ts)
        log.append(["P", name, ts.internal, size, applied])
with open(out, "w") as f:
    json.dump({"created": created, "log": log}, f)
"""

FOLLOWER = r"""
import json, os, sys, time
from storaged import exception
from storaged.catalog.postgresql import PostgresCatalog

url, go, stop, out = sys.argv[1:5]
catalog = PostgresCatalog(url, timeout=30.0)
broker = catalog.container("AUTH_conc", "shared")
while not os.path.exists(go):
    time.sleep(0.002)
point, seen, problems, reads = -1, [], [], 0
last_pass = False
while True:
    stopping = os.path.exists(stop)
    try:
        rows = broker.get_items_since(point, limit=50)
    except exception.ContainerNotFound:
        continue  # not created yet
    reads += 1
    for row in rows:
        if row.row_id <= point:
            problems.append("row %d after point %d" % (row.row_id, point))
        point = row.row_id
        seen.append(row.name)
    if not rows and last_pass:
        break
    # One more full pass once the writers are done: nothing is left behind.
    last_pass = stopping
with open(out, "w") as f:
    json.dump({"reads": reads, "problems": problems, "seen": seen}, f)
"""

KILLED = r"""
import os
import sys
from storaged.catalog import Timestamp
from storaged.catalog.postgresql import PostgresCatalog

url, progress, base = sys.argv[1], sys.argv[2], int(sys.argv[3])
catalog = PostgresCatalog(url, timeout=30.0)
broker = catalog.container("AUTH_conc", "crash")
broker.create(Timestamp(1000))
n = 0
while True:
    ts = Timestamp(base + n / 1000)
    name = "o-%02d" % (n % 30)
    if n % 7 == 6:
        broker.delete_object(name, ts)
    else:
        broker.put_object(name, ts, n % 1000 + 1, "t", "e-%s" % ts.internal,
                          backend="b1", location="loc-%s" % ts.internal)
    n += 1
    if n % 50 == 0:
        # Renamed into place: the test never reads a file half written.
        with open(progress + ".tmp", "w") as f:
            f.write(str(n))
        os.replace(progress + ".tmp", progress)
"""


def _start_writers(url, tmp_path, go):
    procs = []
    for me in range(WRITERS):
        out = str(tmp_path / f"writer-{me}.json")
        procs.append((out, subprocess.Popen(
            [sys.executable, "-c", WRITER, url, go, str(me), str(OPS), str(NAMES),
             out],
            stderr=subprocess.PIPE,
        )))
    return procs


def test_writers_and_a_follower_lose_nothing(postgres_schema_url, tmp_path):
    from storaged.catalog.postgresql import PostgresCatalog

    url = postgres_schema_url
    go, stop = str(tmp_path / "go"), str(tmp_path / "stop")
    PostgresCatalog(url).list_accounts()  # the schema, made before the race
    procs = _start_writers(url, tmp_path, go)
    follower_out = str(tmp_path / "follower.json")
    follower = subprocess.Popen(
        [sys.executable, "-c", FOLLOWER, url, go, stop, follower_out],
        stderr=subprocess.PIPE,
    )
    time.sleep(0.5)  # let them import and wait at the barrier
    open(go, "w").close()
    results = []
    try:
        for out, proc in procs:
            _, err = proc.communicate(timeout=180)
            assert proc.returncode == 0, err.decode(errors="replace")
            with open(out) as f:
                results.append(json.load(f))
    finally:
        open(stop, "w").close()
        _, err = follower.communicate(timeout=60)
        for _, proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert follower.returncode == 0, err.decode(errors="replace")
    with open(follower_out) as f:
        followed = json.load(f)
    assert followed["problems"] == []
    assert followed["reads"] > 10

    # The follower saw every row nobody replaced: none committed behind it.
    own = {e[1] for r in results for e in r["log"] if e[0] == "U"}
    assert len(own) == WRITERS * OPS // 2
    assert own <= set(followed["seen"])

    assert sum(r["created"] for r in results) == 1
    newest = {}
    for result in results:
        for op, name, ts, size, applied in result["log"]:
            ts = Timestamp(ts)
            if name not in newest or ts > newest[name][1]:
                newest[name] = (op, ts, size, applied)

    catalog = PostgresCatalog(url)
    try:
        broker = catalog.container(ACCOUNT, CONTAINER)
        log = broker.get_items_since(-1, limit=100_000)
        rows = {r.name: r for r in log}
        assert set(rows) == set(newest)  # nothing lost, nothing extra
        for name, (op, ts, size, applied) in newest.items():
            row = rows[name]
            assert applied, f"the newest write of {name} was not applied"
            assert row.created_at == ts, name
            assert row.deleted is (op == "D"), name
            if op == "P":
                assert row.size == size and row.etag == f"e-{ts.internal}"
        live = [r for r in log if not r.deleted]
        info = broker.info()
        assert info.object_count == len(live)
        assert info.bytes_used == sum(r.size for r in live)
        (entry,) = catalog.list_containers(ACCOUNT)
        assert (entry.object_count, entry.bytes_used) == (
            info.object_count, info.bytes_used)
        ids = [r.row_id for r in log]
        assert all(a < b for a, b in itertools.pairwise(ids))
        # Every applied write took a row id of its own, with no gap.
        applied_count = sum(e[4] for r in results for e in r["log"])
        assert info.max_row == applied_count == ids[-1]
    finally:
        catalog.close()


def _check_whole(catalog):
    broker = catalog.container(ACCOUNT, "crash")
    log = broker.get_items_since(-1, limit=100_000)
    info = broker.info()
    for row in log:
        if row.deleted:
            assert (row.size, row.etag, row.location) == (0, "", "")
            continue
        ts = row.created_at.internal
        assert row.etag == f"e-{ts}" and row.location == f"loc-{ts}", row
    live = [r for r in log if not r.deleted]
    assert info.object_count == len(live)
    assert info.bytes_used == sum(r.size for r in live)
    assert info.max_row == max(r.row_id for r in log)
    garbage = broker.list_garbage(limit=100_000)
    assert info.garbage_count == len(garbage)
    # Data is garbage once, and never data a live row still points at.
    locations = [g.location for g in garbage]
    assert len(locations) == len(set(locations))
    assert not set(locations) & {r.location for r in live}
    return info


def test_sigkill_mid_write_leaves_whole_rows(postgres_schema_url, tmp_path):
    from storaged.catalog.postgresql import PostgresCatalog

    url = postgres_schema_url
    catalog = PostgresCatalog(url, timeout=10.0)
    progress = tmp_path / "progress"
    try:
        last_max = -1
        for attempt in range(3):
            progress.unlink(missing_ok=True)
            proc = subprocess.Popen(
                [sys.executable, "-c", KILLED, url, str(progress),
                 str(1_700_000_000 + attempt * 10_000)],
                stderr=subprocess.PIPE,
            )
            try:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    done = progress.read_text() if progress.exists() else "0"
                    if int(done) >= 150 + attempt * 37:
                        break
                    assert proc.poll() is None, proc.stderr.read().decode()
                    time.sleep(0.005)
                else:
                    pytest.fail("the writer made no progress")
            finally:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                proc.stderr.close()
            info = _check_whole(catalog)
            assert info.max_row > last_max
            last_max = info.max_row
            # The dead writer's transaction is gone with its row lock.
            started = time.monotonic()
            broker = catalog.container(ACCOUNT, "crash")
            assert broker.put_object("after", Timestamp.now(), 1, "t", "x")
            assert time.monotonic() - started < 5
            assert broker.delete_object("after", Timestamp.now())
            _check_whole(catalog)
    finally:
        catalog.close()
