#!/usr/bin/env python3
"""Catalog throughput, side by side with bare sqlite3 in the same process.

==========  ===========================================  ==========================
operation   storaged                                     anchor (bare sqlite3)
==========  ===========================================  ==========================
put         ``broker.put_object`` (last-writer-wins      ``BEGIN IMMEDIATE``,
            check, replace, count triggers, account      ``INSERT OR REPLACE`` one
            index report)                                row, ``COMMIT``
get         ``broker.get_object(name)``                  ``SELECT`` by name
list        ``broker.list_objects(limit=1000)``          ``SELECT ... ORDER BY name
                                                         LIMIT 1000``
changes     ``broker.get_items_since(p, 1000)``          ``SELECT ... WHERE ROWID >
                                                         ? LIMIT 1000``
==========  ===========================================  ==========================

Both use WAL with the same ``synchronous`` (``full`` by default, as the
catalog).  Listing figures are in rows/s.  The host is shared and noisy: only
medians and same-run ratios mean much.  Nothing is asserted: this prints, it
does not judge.

Usage: python -m bench.catalog [--ops N] [--reps N] [--synchronous full|normal]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial
import os
import sqlite3
import statistics
import sys
import tempfile
import time

from storaged.catalog import Catalog
from storaged.catalog import ContainerBroker
from storaged.catalog import Timestamp

BARE_SCHEMA = """
CREATE TABLE objects (
    ROWID INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL, size INTEGER, content_type TEXT, etag TEXT,
    deleted INTEGER DEFAULT 0, backend TEXT, location TEXT, metadata TEXT)
"""


ETAG = "d41d8cd98f00b204e9800998ecf8427e"


def rate(fn: Callable[[], int]) -> float:
    start = time.perf_counter()
    count = fn()
    return count / (time.perf_counter() - start)


def put_storaged(broker: ContainerBroker, names: list[str], base: float) -> int:
    for i, name in enumerate(names):
        broker.put_object(name, Timestamp(base + i), 1024, "text/plain", ETAG,
                          backend="file1", location="file:///x/" + name)
    return len(names)


def put_bare(bare: sqlite3.Connection, names: list[str], base: float) -> int:
    for i, name in enumerate(names):
        bare.execute("BEGIN IMMEDIATE")
        bare.execute(
            "INSERT OR REPLACE INTO objects (name, created_at, size, content_type, "
            "etag, backend, location, metadata) "
            "VALUES (?, ?, 1024, 'text/plain', ?, 'file1', ?, '{}')",
            (name, Timestamp(base + i).internal, ETAG, "file:///x/" + name))
        bare.execute("COMMIT")
    return len(names)


def get_storaged(broker: ContainerBroker, names: list[str]) -> int:
    for name in names:
        broker.get_object(name)
    return len(names)


def get_bare(bare: sqlite3.Connection, names: list[str]) -> int:
    for name in names:
        bare.execute("SELECT * FROM objects WHERE name = ?", (name,)).fetchone()
    return len(names)


def list_storaged(broker: ContainerBroker) -> int:
    return sum(len(broker.list_objects(limit=1000)) for _ in range(20))


def list_bare(bare: sqlite3.Connection) -> int:
    query = "SELECT * FROM objects WHERE deleted = 0 ORDER BY name LIMIT 1000"
    return sum(len(bare.execute(query).fetchall()) for _ in range(20))


def changes_storaged(broker: ContainerBroker) -> int:
    rows, point = 0, -1
    while batch := broker.get_items_since(point, 1000):
        rows += len(batch)
        point = batch[-1].row_id
    return rows


def changes_bare(bare: sqlite3.Connection) -> int:
    rows, point = 0, -1
    query = "SELECT ROWID, * FROM objects WHERE ROWID > ? ORDER BY ROWID LIMIT 1000"
    while batch := bare.execute(query, (point,)).fetchall():
        rows += len(batch)
        point = batch[-1][0]
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--synchronous", choices=("full", "normal"), default="full")
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float]]] = {}
    names = [f"dir{i % 50}/object-{i:08d}" for i in range(args.ops)]
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            catalog = Catalog(os.path.join(tmp, f"cat{rep}"),
                              synchronous=args.synchronous)
            broker = catalog.container("AUTH_bench", "c")
            broker.create()
            bare = sqlite3.connect(os.path.join(tmp, f"bare{rep}.db"),
                                   isolation_level=None)
            bare.execute("PRAGMA journal_mode = WAL")
            bare.execute(f"PRAGMA synchronous = {args.synchronous.upper()}")
            bare.execute(BARE_SCHEMA)
            base = time.time()
            pairs = {
                "put": (partial(put_storaged, broker, names, base),
                        partial(put_bare, bare, names, base)),
                "get": (partial(get_storaged, broker, names),
                        partial(get_bare, bare, names)),
                "list (rows)": (partial(list_storaged, broker),
                                partial(list_bare, bare)),
                "changes (rows)": (partial(changes_storaged, broker),
                                   partial(changes_bare, bare)),
            }
            for label, (ours, anchor) in pairs.items():
                # Alternate which goes first, to spread the host's noise.
                if rep % 2:
                    a = rate(anchor)
                    o = rate(ours)
                else:
                    o = rate(ours)
                    a = rate(anchor)
                results.setdefault(label, []).append((o, a))
            broker.close()
            catalog.close()
            bare.close()
    print(f"catalog vs bare sqlite3, {args.ops} objects, synchronous="
          f"{args.synchronous}, median of {args.reps}")
    print(f"{'operation':<16}{'storaged/s':>14}{'sqlite3/s':>14}{'ratio':>8}")
    for label, runs in results.items():
        ours = statistics.median(r[0] for r in runs)
        anchor = statistics.median(r[1] for r in runs)
        print(f"{label:<16}{ours:>14,.0f}{anchor:>14,.0f}{ours / anchor:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
