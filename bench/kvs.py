#!/usr/bin/env python3
"""State store throughput, beside bare sqlite3, bare redis-py and bare psycopg.

For each back end, every repetition runs each operation with storaged and
with an anchor written straight against the client library in this same
process, in a rotating order (machines here are shared and noisy: only
medians and same-run ratios mean much):

==============  ==========================================  ==================
operation       storaged                                    anchor
==============  ==========================================  ==================
set             ``store.set(k, v)``                         sqlite: autocommit
                                                            upsert; redis: SET
get             ``store.get(k)``                            SELECT / GET, then
                                                            json.loads
get_multi(100)  ``store.get_multi(100 keys)``, in keys/s    ``IN (...)`` select
                                                            / MGET
lock+unlock     ``store.lock(name)`` then ``release()``     lease row upsert +
                                                            delete by owner /
                                                            redis-py ``Lock``
set-under-lock  lock, ``set(..., lease=)``, release         lock, plain set,
                                                            release (no fence)
cas             ``get_versioned`` + ``compare_and_set``     SELECT + UPDATE
                                                            WHERE version /
                                                            WATCH-MULTI-EXEC
==============  ==========================================  ==================

For PostgreSQL the anchor is bare psycopg on one autocommit connection: an
upsert, a select, ``key = ANY(...)``, a lease row upserted and deleted by
owner, and a versioned ``UPDATE ... WHERE version``; each write is its own
durable commit, as the driver's are.

Values are a ~330-byte token-like dict, keys 40 hex characters (as a
sha1-mangled key would be), each repetition writes fresh keys and lock
names.  The sqlite figures are also checked against the targets (SPEC §12:
set >= 6,500/s, get >= 39,000/s, lock+unlock >= 8,700/s; from the study of
keystone's KVS: get_multi >= 75,000 keys/s, a locked or CAS write >= 3,000/s).
Nothing is asserted: this prints, it does not judge.

Redis runs on a private redis-server started for the run (AOF, appendfsync
everysec) and stopped by pid; without the binary the Redis part is skipped.
PostgreSQL is the server at ``$STORAGED_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``), in schemas of the run's own
(dropped at the end); without a server the PostgreSQL part is skipped.

Usage: python -m bench.kvs [--quick] [--reps N] [--ops N]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import hashlib
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time

from storaged import kvs

VALUE = {
    "id": "f" * 32,
    "user_id": "u" * 32,
    "project_id": "p" * 32,
    "roles": ["member", "reader", "admin"],
    "issued_at": "2026-11-22T04:00:00.000000Z",
    "expires_at": "2026-11-22T05:00:00.000000Z",
    "methods": ["password"],
    "audit_ids": ["a" * 22],
    "extra": "x" * 60,
}
BATCH = 100
TARGETS = {
    "set": 6_500,
    "get": 39_000,
    "get_multi(100)": 75_000,
    "lock+unlock": 8_700,
    "set-under-lock": 3_000,
    "cas": 3_000,
}
OPERATIONS = ("set", "get", "get_multi(100)", "lock+unlock", "set-under-lock", "cas")

# A runner: (number of operations, repetition number) -> seconds taken.
Runner = Callable[[int, int], dict[str, float]]


def keys_for(rep: int, n: int, kind: str = "k") -> list[str]:
    return [
        hashlib.sha1(b"%s-%d-%d" % (kind.encode(), rep, i)).hexdigest()
        for i in range(n)
    ]


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# -- storaged ------------------------------------------------------------------


def storaged_runner(store: kvs.KeyValueStore) -> Runner:
    def run(n: int, rep: int) -> dict[str, float]:
        keys = keys_for(rep, n)
        names = keys_for(rep, n, "lock")
        guarded = keys_for(rep, n, "guarded")
        batches = [keys[i : i + BATCH] for i in range(0, n - BATCH + 1, BATCH)]

        def sets() -> None:
            for k in keys:
                store.set(k, VALUE)

        def gets() -> None:
            for k in keys:
                store.get(k)

        def multi() -> None:
            for batch in batches:
                store.get_multi(batch)

        def locks() -> None:
            for name in names:
                store.lock(name, 30).release()

        def locked_sets() -> None:
            for name, k in zip(names, guarded, strict=True):
                lease = store.lock(name, 30)
                store.set(k, VALUE, lease=lease)
                lease.release()

        def cas() -> None:
            for k in keys:
                value, version = store.get_versioned(k)
                store.compare_and_set(k, version, value)

        return {
            "set": timed(sets),
            "get": timed(gets),
            "get_multi(100)": timed(multi),
            "lock+unlock": timed(locks),
            "set-under-lock": timed(locked_sets),
            "cas": timed(cas),
        }

    return run


# -- anchors -------------------------------------------------------------------


def sqlite_anchor(path: str) -> Runner:
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(
        "CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT, version INTEGER DEFAULT 0)"
        " WITHOUT ROWID"
    )
    conn.execute(
        "CREATE TABLE lease (name TEXT PRIMARY KEY, owner TEXT, expires_at REAL)"
        " WITHOUT ROWID"
    )
    upsert = (
        "INSERT INTO kv (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    )
    select = "SELECT value FROM kv WHERE key = ?"
    select_versioned = "SELECT value, version FROM kv WHERE key = ?"
    replace = (
        "UPDATE kv SET value = ?, version = version + 1 WHERE key = ? AND version = ?"
    )
    marks = ",".join("?" * BATCH)
    select_many = f"SELECT key, value FROM kv WHERE key IN ({marks})"
    acquire = (
        "INSERT INTO lease (name, owner, expires_at) VALUES (?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
        "expires_at = excluded.expires_at WHERE lease.expires_at <= ?"
    )
    release = "DELETE FROM lease WHERE name = ? AND owner = ?"

    def lock(name: str) -> None:
        now = time.time()
        if conn.execute(acquire, (name, "me", now + 30, now)).rowcount != 1:
            raise RuntimeError("anchor lock taken")

    def run(n: int, rep: int) -> dict[str, float]:
        keys = keys_for(rep, n)
        names = keys_for(rep, n, "lock")
        guarded = keys_for(rep, n, "guarded")
        batches = [keys[i : i + BATCH] for i in range(0, n - BATCH + 1, BATCH)]

        def sets() -> None:
            for k in keys:
                conn.execute(upsert, (k, json.dumps(VALUE)))

        def gets() -> None:
            for k in keys:
                json.loads(conn.execute(select, (k,)).fetchone()[0])

        def multi() -> None:
            for batch in batches:
                {k: json.loads(v) for k, v in conn.execute(select_many, batch)}

        def locks() -> None:
            for name in names:
                lock(name)
                conn.execute(release, (name, "me"))

        def locked_sets() -> None:
            for name, k in zip(names, guarded, strict=True):
                lock(name)
                conn.execute(upsert, (k, json.dumps(VALUE)))
                conn.execute(release, (name, "me"))

        def cas() -> None:
            for k in keys:
                raw, version = conn.execute(select_versioned, (k,)).fetchone()
                value = json.loads(raw)
                if conn.execute(replace, (json.dumps(value), k, version)).rowcount != 1:
                    raise RuntimeError("anchor conflict")

        return {
            "set": timed(sets),
            "get": timed(gets),
            "get_multi(100)": timed(multi),
            "lock+unlock": timed(locks),
            "set-under-lock": timed(locked_sets),
            "cas": timed(cas),
        }

    return run


def redis_anchor(url: str) -> Runner:
    import redis

    client = redis.Redis.from_url(url)

    def run(n: int, rep: int) -> dict[str, float]:
        keys = ["anchor:" + k for k in keys_for(rep, n)]
        names = ["anchor:lock:" + k for k in keys_for(rep, n, "lock")]
        guarded = ["anchor:" + k for k in keys_for(rep, n, "guarded")]
        batches = [keys[i : i + BATCH] for i in range(0, n - BATCH + 1, BATCH)]

        def sets() -> None:
            for k in keys:
                client.set(k, json.dumps(VALUE))

        def gets() -> None:
            for k in keys:
                json.loads(client.get(k))  # type: ignore[arg-type]

        def multi() -> None:
            for batch in batches:
                [json.loads(v) for v in client.mget(batch)]  # type: ignore[union-attr]

        def locks() -> None:
            for name in names:
                lock = client.lock(name, timeout=30)
                lock.acquire(blocking=False)
                lock.release()

        def locked_sets() -> None:
            for name, k in zip(names, guarded, strict=True):
                lock = client.lock(name, timeout=30)
                lock.acquire(blocking=False)
                client.set(k, json.dumps(VALUE))
                lock.release()

        def cas() -> None:
            # Redis' own optimistic transaction: WATCH, GET, MULTI/SET/EXEC.
            for k in keys:
                with client.pipeline() as pipe:
                    pipe.watch(k)
                    value = json.loads(pipe.get(k))  # type: ignore[arg-type]
                    pipe.multi()
                    pipe.set(k, json.dumps(value))
                    pipe.execute()

        return {
            "set": timed(sets),
            "get": timed(gets),
            "get_multi(100)": timed(multi),
            "lock+unlock": timed(locks),
            "set-under-lock": timed(locked_sets),
            "cas": timed(cas),
        }

    return run


def postgres_anchor(url: str, schema: str) -> Runner:
    import psycopg

    conn = psycopg.connect(url, autocommit=True)
    conn.execute(f"CREATE SCHEMA {schema}")
    conn.execute(
        f"CREATE TABLE {schema}.kv (key text COLLATE \"C\" PRIMARY KEY, "
        "value text NOT NULL, version bigint NOT NULL DEFAULT 0)"
    )
    conn.execute(
        f"CREATE TABLE {schema}.lease (name text COLLATE \"C\" PRIMARY KEY, "
        "owner text NOT NULL, expires_at double precision NOT NULL)"
    )
    upsert = (
        f"INSERT INTO {schema}.kv (key, value) VALUES (%s, %s) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    )
    select = f"SELECT value FROM {schema}.kv WHERE key = %s"
    select_versioned = f"SELECT value, version FROM {schema}.kv WHERE key = %s"
    replace = (
        f"UPDATE {schema}.kv SET value = %s, version = version + 1 "
        "WHERE key = %s AND version = %s"
    )
    select_many = f"SELECT key, value FROM {schema}.kv WHERE key = ANY(%s)"
    acquire = (
        f"INSERT INTO {schema}.lease AS lease (name, owner, expires_at) "
        "VALUES (%s, %s, %s) ON CONFLICT (name) DO UPDATE SET "
        "owner = excluded.owner, expires_at = excluded.expires_at "
        "WHERE lease.expires_at <= %s"
    )
    release = f"DELETE FROM {schema}.lease WHERE name = %s AND owner = %s"

    def lock(name: str) -> None:
        now = time.time()
        if conn.execute(acquire, (name, "me", now + 30, now)).rowcount != 1:
            raise RuntimeError("anchor lock taken")

    def run(n: int, rep: int) -> dict[str, float]:
        keys = keys_for(rep, n)
        names = keys_for(rep, n, "lock")
        guarded = keys_for(rep, n, "guarded")
        batches = [keys[i : i + BATCH] for i in range(0, n - BATCH + 1, BATCH)]

        def sets() -> None:
            for k in keys:
                conn.execute(upsert, (k, json.dumps(VALUE)))

        def gets() -> None:
            for k in keys:
                row = conn.execute(select, (k,)).fetchone()
                json.loads(row[0])  # type: ignore[index]

        def multi() -> None:
            for batch in batches:
                {k: json.loads(v) for k, v in conn.execute(select_many, (batch,))}

        def locks() -> None:
            for name in names:
                lock(name)
                conn.execute(release, (name, "me"))

        def locked_sets() -> None:
            for name, k in zip(names, guarded, strict=True):
                lock(name)
                conn.execute(upsert, (k, json.dumps(VALUE)))
                conn.execute(release, (name, "me"))

        def cas() -> None:
            for k in keys:
                row = conn.execute(select_versioned, (k,)).fetchone()
                raw, version = row  # type: ignore[misc]
                value = json.loads(raw)
                if conn.execute(replace, (json.dumps(value), k, version)).rowcount != 1:
                    raise RuntimeError("anchor conflict")

        return {
            "set": timed(sets),
            "get": timed(gets),
            "get_multi(100)": timed(multi),
            "lock+unlock": timed(locks),
            "set-under-lock": timed(locked_sets),
            "cas": timed(cas),
        }

    return run


# -- measuring and printing ----------------------------------------------------


def rates(n: int, seconds: dict[str, float]) -> dict[str, float]:
    out = {}
    for op, took in seconds.items():
        count = (n // BATCH) * BATCH if op == "get_multi(100)" else n
        out[op] = count / took
    return out


def measure(
    variants: dict[str, Runner], n: int, reps: int
) -> dict[str, dict[str, list[float]]]:
    results: dict[str, dict[str, list[float]]] = {
        name: {op: [] for op in OPERATIONS} for name in variants
    }
    names = list(variants)
    for rep in range(reps):
        # Rotate who goes first: the machine's state drifts during a run.
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            for op, rate in rates(n, variants[name](n, rep)).items():
                results[name][op].append(rate)
    return results


def fmt(rate: float) -> str:
    return f"{rate:,.0f}"


def summary(values: list[float]) -> str:
    return f"{fmt(statistics.median(values))} [{fmt(min(values))}-{fmt(max(values))}]"


def report(
    title: str, results: dict[str, dict[str, list[float]]], mine: str, anchor: str
) -> None:
    print()
    print(title)
    print(f"  {'operation':<16} {mine + ' ops/s':<30} {anchor + ' ops/s':<30} ratio")
    for op in OPERATIONS:
        ours, theirs = results[mine][op], results[anchor][op]
        ratio = statistics.median(ours) / statistics.median(theirs)
        print(f"  {op:<16} {summary(ours):<30} {summary(theirs):<30} {ratio:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter runs")
    parser.add_argument("--reps", type=int, help="repetitions (default 7, quick 3)")
    parser.add_argument("--ops", type=int, help="operations per repetition")
    args = parser.parse_args()
    reps = args.reps or (3 if args.quick else 7)
    n = args.ops or (1_000 if args.quick else 4_000)
    print(
        f"storaged state store benchmark: {n:,} operations per repetition, "
        f"{reps} repetitions; medians [min-max]; ratio = storaged / anchor "
        "(medians; > 1 means storaged is faster)"
    )
    with tempfile.TemporaryDirectory(prefix="storaged-bench-") as tmp:
        store = kvs.open_store("sqlite:///" + os.path.join(tmp, "state.sqlite"))
        results = measure(
            {
                "storaged": storaged_runner(store),
                "sqlite3": sqlite_anchor(os.path.join(tmp, "anchor.sqlite")),
            },
            n,
            reps,
        )
        store.close()
        report(
            f"sqlite, WAL, synchronous=normal (sqlite {sqlite3.sqlite_version}), "
            "one process",
            results,
            "storaged",
            "sqlite3",
        )
        print()
        print("  targets, storaged sqlite driver (median):")
        for op, target in TARGETS.items():
            got = statistics.median(results["storaged"][op])
            verdict = "met" if got >= target else "NOT met"
            unit = "keys/s" if op == "get_multi(100)" else "ops/s"
            print(
                f"    {op:<16} {fmt(got):>9} {unit:<6}  "
                f"target {fmt(target):>6} {unit:<6}  {verdict}"
            )
    bench_redis(n, reps)
    bench_postgres(n, reps)
    return 0


def bench_redis(n: int, reps: int) -> None:
    from tests.servers import RedisServer
    from tests.servers import ServerMissing

    server = RedisServer(appendonly=True, appendfsync="everysec")
    try:
        server.start()
    except ServerMissing:
        print("\nredis: skipped (redis-server is not installed)")
        return
    try:
        store = kvs.open_store(server.url + "/0")
        results = measure(
            {
                "storaged": storaged_runner(store),
                "redis-py": redis_anchor(server.url + "/0"),
            },
            n,
            reps,
        )
        store.close()
        report(
            f"redis (private redis-server pid {server.pid}, AOF everysec, localhost)",
            results,
            "storaged",
            "redis-py",
        )
    finally:
        server.stop()


def bench_postgres(n: int, reps: int) -> None:
    import psycopg

    from tests.servers import POSTGRES_DEFAULT_URL
    from tests.servers import POSTGRES_ENV

    url = os.environ.get(POSTGRES_ENV, POSTGRES_DEFAULT_URL)
    tag = f"{os.getpid()}_{int(time.time())}"
    mine, anchor = f"bench_kvs_{tag}", f"bench_anchor_{tag}"
    try:
        admin = psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as err:
        print(f"\npostgresql: skipped (no server at {url}: {err})")
        return
    try:
        version = admin.info.server_version
        store = kvs.open_store(f"{url}?schema={mine}")
        results = measure(
            {
                "storaged": storaged_runner(store),
                "psycopg": postgres_anchor(url, anchor),
            },
            n,
            reps,
        )
        store.close()
        report(
            f"postgresql {version // 10000}.{version % 10000} (local server, "
            "one connection, each write a durable commit)",
            results,
            "storaged",
            "psycopg",
        )
    finally:
        for schema in (mine, anchor):
            admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.close()


if __name__ == "__main__":
    sys.exit(main())
