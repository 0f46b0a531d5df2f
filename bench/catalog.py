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

A second table measures group commit: ``--threads`` threads (16 by
default here) each with a broker of its own put ``--ops`` objects in all into
one container, with group commit (concurrent changes share a transaction
and a commit) and without it (``Catalog(group_commit=1)``), alternating
which goes first; and one thread alone, for the scaling ratio.

Usage: python -m bench.catalog [--ops N] [--reps N] [--synchronous full|normal]
                               [--threads N]

With ``--postgresql URL`` it compares the two catalog drivers instead, on
the same work through the same interface (:mod:`storaged.catalog.interface`):

==================  ==========================================================
put (1 thread)      ``put_object`` of new names, one after the other
put (N threads)     ``put_object`` from ``--threads`` threads, each its own
                    container (a node serving many clients)
put (N, one cont.)  the same, all into one container (writers of a container
                    take turns: the row ids' commit order)
                    (both also on PostgreSQL without group commit, for its
                    share)
get                 ``get_object`` of random names of a 100,000-row container
list (rows)         ``list_objects(limit=1000, marker=random)`` on it
changes (rows)      ``get_items_since`` over all of it, 1,000 rows a call
==================  ==========================================================

The 100,000 rows are written straight into each driver's tables (a bulk
insert), which takes seconds instead of minutes; the measured calls go
through the brokers.  The PostgreSQL schema is made for the run and dropped
after it.  ``python -m bench.catalog --postgresql postgresql://postgres@127.0.0.1/test``
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from typing import Any
import uuid

from storaged.catalog import Catalog
from storaged.catalog import ContainerBroker
from storaged.catalog import Timestamp
from storaged.catalog.interface import CatalogAPI
from storaged.catalog.interface import ContainerBrokerAPI
from storaged.catalog.postgresql import PostgresCatalog

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


def changes_storaged(broker: ContainerBrokerAPI) -> int:
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
    parser.add_argument("--postgresql", metavar="URL",
                        help="compare the sqlite and postgresql drivers")
    parser.add_argument("--threads", type=int,
                        help="writer threads (default 16; 8 with --postgresql)")
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    if args.postgresql:
        args.threads = args.threads or 8
        return compare_drivers(args)
    args.threads = args.threads or 16
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
    group_commit(args)
    return 0


def group_commit(args: argparse.Namespace) -> None:
    """Puts of concurrent writers into one container, with and without."""
    runs: dict[str, list[float]] = {"on": [], "off": [], "one": []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            order = ("on", "off", "one") if rep % 2 == 0 else ("one", "off", "on")
            for mode in order:
                catalog = Catalog(os.path.join(tmp, f"gc-{mode}-{rep}"),
                                  synchronous=args.synchronous,
                                  group_commit=1 if mode == "off" else 64)
                threads = 1 if mode == "one" else args.threads
                # Each thread a broker of its own, as the API's requests.
                runs[mode].append(rate(partial(put_threads, catalog, threads,
                                               args.ops // threads, True)))
                catalog.close()
    on, off, one = (statistics.median(runs[m]) for m in ("on", "off", "one"))
    print()
    print(f"group commit: puts into one container, {args.ops} objects, "
          f"synchronous={args.synchronous}, median of {args.reps}")
    print(f"{args.threads} threads, group commit   {on:>10,.0f}/s")
    print(f"{args.threads} threads, one by one     {off:>10,.0f}/s   "
          f"(group commit {on / off:.2f}x)")
    print(f"1 thread                  {one:>10,.0f}/s   "
          f"({args.threads} threads with group commit {on / one:.2f}x)")


# -- sqlite against PostgreSQL -------------------------------------------------


def fill(catalog: CatalogAPI, container: str, rows: int) -> None:
    """Write ``rows`` live objects straight into the driver's tables."""
    broker = catalog.container("AUTH_bench", container)
    broker.create()
    base = time.time()
    data = [(f"dir{i % 50}/object-{i:08d}", Timestamp(base + i).internal)
            for i in range(rows)]
    if isinstance(catalog, Catalog):
        assert isinstance(broker, ContainerBroker)
        with broker.db.write() as conn:
            conn.executemany(
                "INSERT INTO objects (name, created_at, size, content_type, etag, "
                "backend, location) VALUES (?, ?, 1024, 'text/plain', ?, 'file1', ?)",
                [(n, ts, ETAG, "file:///x/" + n) for n, ts in data])
        return
    assert isinstance(catalog, PostgresCatalog)

    def work(conn: Any) -> None:
        cid = conn.execute(
            "UPDATE containers SET max_row = %s, object_count = %s, "
            "bytes_used = %s WHERE account = 'AUTH_bench' AND container = %s "
            "RETURNING id", (rows, rows, rows * 1024, container)).fetchone()[0]
        with conn.cursor().copy(
            "COPY objects (container_id, name, row_id, created_at, size, "
            "content_type, etag, backend, location) FROM STDIN"
        ) as copy:
            for i, (name, ts) in enumerate(data):
                copy.write_row((cid, name, i + 1, ts, 1024, "text/plain", ETAG,
                                "file1", "file:///x/" + name))

    catalog._conns.transaction(work)


def put_threads(catalog: CatalogAPI, threads: int, per: int, one: bool) -> int:
    tag = uuid.uuid4().hex[:8]
    brokers = []
    for t in range(threads):
        broker = catalog.container("AUTH_bench", f"{tag}-{0 if one else t}")
        broker.create()
        brokers.append(broker)
    base = time.time()

    def run(t: int) -> None:
        for i in range(per):
            brokers[t].put_object(f"t{t}/o{i:07d}", Timestamp(base + i, offset=t),
                                  1024, "text/plain", ETAG, backend="file1",
                                  location=f"file:///x/{t}/{i}")

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return threads * per


def driver_ops(catalog: CatalogAPI, args: argparse.Namespace,
               big: str) -> dict[str, Callable[[], int]]:
    broker = catalog.container("AUTH_bench", big)
    rng = random.Random(7)
    names = [f"dir{i % 50}/object-{i:08d}" for i in range(args.rows)]
    sample = rng.sample(names, min(args.ops, len(names)))
    markers = rng.sample(names, 20)

    def get() -> int:
        for name in sample:
            broker.get_object(name)
        return len(sample)

    def listing() -> int:
        return sum(len(broker.list_objects(limit=1000, marker=m)) for m in markers)

    return {
        "put (1 thread)": partial(put_threads, catalog, 1, args.ops, False),
        f"put ({args.threads} threads)": partial(
            put_threads, catalog, args.threads, args.ops // args.threads, False),
        f"put ({args.threads}, one cont.)": partial(
            put_threads, catalog, args.threads, args.ops // args.threads, True),
        "get": get,
        "list (rows)": listing,
        "changes (rows)": partial(changes_storaged, broker),
    }


def put_bare_pg(url: str, synchronous: str, threads: int, per: int) -> int:
    """The server's own limit: one single-row upsert per transaction, no logic."""
    import psycopg

    def run(t: int) -> None:
        commit = "on" if synchronous == "full" else "off"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"SET synchronous_commit = {commit}")
            for i in range(per):
                conn.execute(
                    "INSERT INTO bare (name, created_at, etag) VALUES (%s, %s, %s) "
                    "ON CONFLICT (name) DO UPDATE SET created_at = excluded.created_at",
                    (f"{t}-{i}-{uuid.uuid4().hex[:6]}", "x", ETAG))

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return threads * per


def compare_drivers(args: argparse.Namespace) -> int:
    schema = "bench_" + uuid.uuid4().hex[:12]
    separator = "&" if "?" in args.postgresql else "?"
    url = f"{args.postgresql}{separator}schema={schema}"
    results: dict[str, list[tuple[float, float]]] = {}
    bare_rates: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_cat = Catalog(os.path.join(tmp, "cat"), synchronous=args.synchronous,
                             timeout=60)
        # A generous statement timeout: the bulk fill is one long COPY.
        pg_cat = PostgresCatalog(url, synchronous=args.synchronous, timeout=600)
        # The same writes committed one by one, for group commit's share.
        pg_alone = PostgresCatalog(url, synchronous=args.synchronous, timeout=600,
                                   group_commit=1)
        alone_rates: dict[str, list[float]] = {}
        try:
            for cat in (sqlite_cat, pg_cat):
                fill(cat, "big", args.rows)
            ops = (driver_ops(sqlite_cat, args, "big"), driver_ops(pg_cat, args, "big"))
            import psycopg

            with psycopg.connect(args.postgresql, autocommit=True) as conn:
                conn.execute(f'CREATE TABLE "{schema}".bare (name text PRIMARY KEY, '
                             "created_at text, etag text)")
            bare_url = f"{args.postgresql}{separator}options=-csearch_path%3D{schema}"
            bare = {
                "1 thread": partial(put_bare_pg, bare_url, args.synchronous, 1,
                                    args.ops),
                f"{args.threads} threads": partial(
                    put_bare_pg, bare_url, args.synchronous, args.threads,
                    args.ops // args.threads),
            }
            for rep in range(args.reps):
                for label, fn in bare.items():
                    bare_rates.setdefault(label, []).append(rate(fn))
                for label in ops[0]:
                    if rep % 2:
                        p = rate(ops[1][label])
                        s = rate(ops[0][label])
                    else:
                        s = rate(ops[0][label])
                        p = rate(ops[1][label])
                    results.setdefault(label, []).append((s, p))
                for one in (False, True):
                    where = ", one cont." if one else " threads"
                    label = f"put ({args.threads}{where})"
                    alone_rates.setdefault(label, []).append(rate(partial(
                        put_threads, pg_alone, args.threads,
                        args.ops // args.threads, one)))
        finally:
            sqlite_cat.close()
            pg_cat.close()
            pg_alone.close()
            import psycopg

            with psycopg.connect(args.postgresql, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    print(f"catalog drivers, {args.ops} ops, {args.rows:,} rows, "
          f"synchronous={args.synchronous}, median of {args.reps}")
    print(f"{'operation':<24}{'sqlite/s':>12}{'postgresql/s':>14}{'pg/sqlite':>11}")
    for label, runs in results.items():
        s = statistics.median(r[0] for r in runs)
        p = statistics.median(r[1] for r in runs)
        print(f"{label:<24}{s:>12,.0f}{p:>14,.0f}{p / s:>11.2f}")
    for label, rates in alone_rates.items():
        alone = statistics.median(rates)
        grouped = statistics.median(r[1] for r in results[label])
        print(f"postgresql {label} without group commit: {alone:,.0f}/s "
              f"(group commit {grouped / alone:.2f}x)")
    for label, rates in bare_rates.items():
        print(f"anchor: bare psycopg upsert, one row per commit, {label}: "
              f"{statistics.median(rates):,.0f}/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
