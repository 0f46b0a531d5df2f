"""Several processes write one container at once: last writer wins, nothing lost.

Four writer processes start together (after a barrier), all create the same
container, then put and delete objects from one shared pool of names, each
with its own random timestamps (a per-process offset keeps them distinct),
and record every call and its result.  A fifth process reads the change log
meanwhile.  Afterwards, for every name, the row holds the write with the
largest timestamp any process made (and that call said it applied), the
counts agree with the rows, and the change log's row ids are strictly
increasing with each name once.  It runs on each concurrency backend.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time

import pytest

from storaged import concurrency
from storaged.catalog import Catalog
from storaged.catalog import Timestamp

WRITERS = 4
OPS = 150
NAMES = 60
ACCOUNT, CONTAINER = "AUTH_conc", "shared"

WRITER = r"""
import json, os, random, sys, time
from storaged import concurrency
concurrency.setup()  # from STORAGED_CONCURRENCY_BACKEND
from storaged.catalog import Catalog, Timestamp

path, go, me, ops, names, out = sys.argv[1:7]
me, ops, names = int(me), int(ops), int(names)
rng = random.Random(1000 + me)
catalog = Catalog(path, timeout=30.0)
broker = catalog.container("AUTH_conc", "shared")
while not os.path.exists(go):
    time.sleep(0.002)
created = broker.create(Timestamp(1000, offset=me + 1))
log = []
used = set()
for _ in range(ops):
    name = "obj-%02d-\u00e9" % rng.randrange(names)
    while True:
        ticks = rng.randrange(10**6)
        if (name, ticks) not in used:
            used.add((name, ticks))
            break
    # The offset makes timestamps of different processes distinct.
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

READER = r"""
import json, os, sys, time
from storaged import concurrency
concurrency.setup()  # from STORAGED_CONCURRENCY_BACKEND
from storaged import exception
from storaged.catalog import Catalog

path, go, stop, out = sys.argv[1:5]
catalog = Catalog(path, timeout=30.0)
broker = catalog.container("AUTH_conc", "shared")
while not os.path.exists(go):
    time.sleep(0.002)
reads, last_max, problems = 0, -1, []
while not os.path.exists(stop):
    try:
        rows = broker.get_items_since(-1, limit=100000)
        max_row = broker.get_max_row()
    except exception.ContainerNotFound:
        continue  # not created yet
    ids = [r.row_id for r in rows]
    if ids != sorted(set(ids)):
        problems.append("row ids out of order: %r" % ids[:20])
    if max_row < last_max:
        problems.append("max row went back from %d to %d" % (last_max, max_row))
    if ids and ids[-1] > max_row:
        problems.append("row %d beyond max row %d" % (ids[-1], max_row))
    if len({r.name for r in rows}) != len(rows):
        problems.append("a name appears twice in the change log")
    last_max = max(last_max, max_row)
    reads += 1
with open(out, "w") as f:
    json.dump({"reads": reads, "problems": problems}, f)
"""


@pytest.mark.parametrize("backend", concurrency.BACKENDS)
def test_concurrent_writers_last_writer_wins(tmp_path, backend):
    env = dict(os.environ, STORAGED_CONCURRENCY_BACKEND=backend)
    path = str(tmp_path / "catalog")
    go, stop = str(tmp_path / "go"), str(tmp_path / "stop")
    procs = []
    for me in range(WRITERS):
        out = str(tmp_path / f"writer-{me}.json")
        procs.append((out, subprocess.Popen(
            [sys.executable, "-c", WRITER, path, go, str(me), str(OPS), str(NAMES),
             out],
            stderr=subprocess.PIPE, env=env,
        )))
    reader_out = str(tmp_path / "reader.json")
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, path, go, stop, reader_out],
        stderr=subprocess.PIPE, env=env,
    )
    time.sleep(0.5)  # let them import and wait at the barrier
    open(go, "w").close()
    results = []
    try:
        for out, proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err.decode(errors="replace")
            with open(out) as f:
                results.append(json.load(f))
    finally:
        open(stop, "w").close()
        _, err = reader.communicate(timeout=60)
        for _, proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert reader.returncode == 0, err.decode(errors="replace")
    with open(reader_out) as f:
        seen = json.load(f)
    assert seen["problems"] == []
    assert seen["reads"] > 0

    # One creation made the container; the others found it.
    assert sum(r["created"] for r in results) == 1

    # The newest write of every name, over all processes.
    newest = {}
    for result in results:
        for op, name, ts, size, applied in result["log"]:
            ts = Timestamp(ts)
            if name not in newest or ts > newest[name][1]:
                newest[name] = (op, ts, size, applied)

    catalog = Catalog(path)
    broker = catalog.container(ACCOUNT, CONTAINER)
    directory = broker.db.directory
    assert [n for n in os.listdir(directory) if n.endswith(".db")] == [
        os.path.basename(broker.db.find_file())]
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

    # Counts agree with the rows, in the container and in the index.
    live = [r for r in log if not r.deleted]
    info = broker.info()
    assert info.object_count == len(live)
    assert info.bytes_used == sum(r.size for r in live)
    (entry,) = catalog.list_containers(ACCOUNT)
    assert (entry.object_count, entry.bytes_used) == (
        info.object_count,
        info.bytes_used,
    )

    # The change log: strictly increasing row ids, each name once.
    ids = [r.row_id for r in log]
    assert all(a < b for a, b in itertools.pairwise(ids))
    assert len(ids) == len(set(r.name for r in log))
    assert info.max_row >= ids[-1]
    # Every applied write took a row id of its own.
    applied_count = sum(e[4] for r in results for e in r["log"])
    assert info.max_row == applied_count
    broker.check(full=True)
    broker.close()
    catalog.close()
