#!/usr/bin/env python3
"""Coordination: lock throughput, crash takeover and member drop, beside tooz.

For each back end (``file://``, Redis, etcd, ZooKeeper; each server private,
started for the run and stopped by pid), in one run on one machine:

lock rate
    acquire + release per second from one thread, on one name over and
    over ("same") and on a new name each time ("unique", what a
    per-container lock does), with storaged's ``Coordinator`` and with a
    bare tooz coordinator (``get_lock(name).acquire(); release()``, tooz's
    own heart), in rotating order.  The ratio is storaged / tooz.  After the
    unique run, what each left behind (counted 2.5 s later): lock files,
    keys, live etcd leases, znodes.
takeover
    a holder process is SIGKILLed; how long until a waiting process gets
    its lock, and until an observer no longer sees it in its group.  The
    holder is a storaged victim (``tests/functional/coordination/victim.py``)
    or a bare tooz process with the same TTL.  The budget is the TTL plus
    one poll of a waiter (0.1 s).
starvation (Redis, etcd)
    a holder under eventlet makes an 8 s call that blocks the hub (an
    unpatched ``time.sleep``) while a contender polls its lock: the
    holder's largest heartbeat gap and when, if ever, the contender got the
    lock.  The bare tooz holder's heart is tooz's own (a green thread, as
    manila's heartbeat is).

TTL is 4 s everywhere (lock and membership), the heartbeat 1 s, as in the
study of tooz this is compared with.  ZooKeeper runs with ``tickTime`` 500
ms and fsync on; etcd is the Debian build with its defaults.  Medians of
``--reps`` repetitions; machines here are shared and noisy, so only medians
and same-run ratios mean much.  Nothing is asserted.

Usage: python -m bench.coordination [--quick] [--reps N] [--backends LIST]
                                   [--no-starvation]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

os.environ.setdefault("STORAGED_CONCURRENCY_BACKEND", "threading")

from storaged import concurrency  # noqa: E402

concurrency.setup("threading")

import tooz.coordination as tooz_coordination  # noqa: E402

from storaged.coordination import Coordinator  # noqa: E402
from tests.functional.coordination import helpers  # noqa: E402
from tests.servers import EtcdServer  # noqa: E402
from tests.servers import RedisServer  # noqa: E402
from tests.servers import ServerMissing  # noqa: E402
from tests.servers import ZooKeeperServer  # noqa: E402

TTL = 4
HEARTBEAT = 1.0
POLL = 0.1
BACKENDS = ("file", "redis", "etcd", "zookeeper")

TOOZ_VICTIM = r"""
import sys, time
import tooz.coordination as tc
url, member, group, name, ttl = sys.argv[1:6]
opts = {"timeout": ttl} if url.startswith(("file", "zookeeper")) else {
    "lock_timeout": ttl, "membership_timeout": ttl}
d = tc.get_coordinator(url, member.encode(), **opts)
d.start(start_heart=True)
try:
    d.create_group(group.encode()).get()
except tc.GroupAlreadyExist:
    pass
d.join_group(group.encode(), {}).get()
lock = d.get_lock(name.encode())
lock.acquire()
print("ready", flush=True)
time.sleep(3600)
"""

# A bare tooz holder under eventlet, its heart a green thread (as manila's
# heartbeat is): it records when each heartbeat ran, then blocks the hub.
TOOZ_STARVE = r"""
import json, sys, time
from storaged import concurrency
concurrency.setup("eventlet")
import tooz.coordination as tc
url, member, group, name, ttl, block = sys.argv[1:7]
opts = {"timeout": ttl} if url.startswith(("file", "zookeeper")) else {
    "lock_timeout": ttl, "membership_timeout": ttl}
d = tc.get_coordinator(url, member.encode(), **opts)
beats = []
beat = d.heartbeat
def recorded():
    beats.append(time.monotonic())
    return beat()
d.heartbeat = recorded
d.start(start_heart=True)
try:
    d.create_group(group.encode()).get()
except tc.GroupAlreadyExist:
    pass
d.join_group(group.encode(), {}).get()
lock = d.get_lock(name.encode())
lock.acquire()
print("ready", flush=True)
time.sleep(2)
print("blocking", flush=True)
start = time.monotonic()
concurrency.native_module("time").sleep(float(block))
time.sleep(0.1)
times = [start] + [b for b in beats if b >= start] + [time.monotonic()]
gap = max(b - a for a, b in zip(times, times[1:]))
print(json.dumps({"gap": gap}), flush=True)
time.sleep(3600)
"""
BLOCK = 8.0


def tooz_options(url: str) -> dict[str, Any]:
    if url.startswith(("file", "zookeeper")):
        return {"timeout": TTL}
    return {"lock_timeout": TTL, "membership_timeout": TTL}


def storaged_coordinator(url: str, state: str, member: str) -> Coordinator:
    conf = helpers.make_conf(
        state, lock_ttl=TTL, membership_ttl=TTL, heartbeat_interval=HEARTBEAT,
        settle_time=0.0, lock_timeout=60.0,
    )
    coordinator = Coordinator(conf, member, backend_url=url)
    coordinator.start()
    return coordinator


# -- lock rate -------------------------------------------------------------------


def rate(run: Callable[[int], None], count: int) -> float:
    started = time.perf_counter()
    run(count)
    return count / (time.perf_counter() - started)


def artifacts(kind: str, url: str, directory: str | None) -> set[str]:
    """What a back end holds now: lock files, keys, live leases or znodes.

    ``directory`` is the ``file://`` directory.  Comparing two snapshots
    (taken before and after a run) shows what the run left behind.
    """
    if kind == "file":
        assert directory is not None
        found: set[str] = set()
        for root, dirs, files in os.walk(directory):
            dirs[:] = [d for d in dirs if d not in ("groups", "tmp")]
            found.update(os.path.join(root, f) for f in files)
        return found
    if kind == "redis":
        return {k.decode() for k in helpers.redis_client(url).keys("*")}
    if kind == "etcd":
        return {str(lease) for lease in helpers.etcd_leases(url)}
    return helpers.zk_tree(url)


UNITS = {"file": "files", "redis": "keys", "etcd": "leases", "zookeeper": "znodes"}


def lock_rates(kind: str, url: str, tooz_url: str, state: str, count: int,
               reps: int) -> dict[str, Any]:
    ours = storaged_coordinator(url, state, "bench:storaged")
    theirs = tooz_coordination.get_coordinator(
        tooz_url, b"bench:tooz", **tooz_options(tooz_url)
    )
    theirs.start(start_heart=True)
    results: dict[str, list[float]] = {
        "storaged same": [], "tooz same": [], "storaged unique": [],
        "tooz unique": [],
    }
    leftover: dict[str, str] = {}
    try:
        for rep in range(reps):
            tag = uuid.uuid4().hex[:6]
            run_lock_rates(ours, theirs, kind, url, tooz_url, tag, count, rep,
                           results, leftover)
    finally:
        ours.stop()
        with contextlib.suppress(Exception):
            theirs.stop()
    medians = {k: statistics.median(v) for k, v in results.items()}
    return {"rates": medians, "leftovers": leftover}


def run_lock_rates(ours: Coordinator, theirs: Any, kind: str, url: str,
                   tooz_url: str, tag: str, count: int, rep: int,
                   results: dict[str, list[float]], leftover: dict[str, str]) -> None:
    """One repetition of the four lock rate runs, in rotating order."""
    def ours_same(n: int) -> None:
        for _ in range(n):
            with ours.lock("bench-same"):
                pass

    def tooz_same(n: int) -> None:
        lock = theirs.get_lock(b"bench-same")
        for _ in range(n):
            lock.acquire()
            lock.release()

    def ours_unique(n: int) -> None:
        for i in range(n):
            with ours.lock("bench-%s-s-%d" % (tag, i)):
                pass

    def tooz_unique(n: int) -> None:
        for i in range(n):
            lock = theirs.get_lock(b"bench-%s-t-%d" % (tag.encode(), i))
            lock.acquire()
            lock.release()

    runs = [("storaged same", ours_same), ("tooz same", tooz_same),
            ("storaged unique", ours_unique), ("tooz unique", tooz_unique)]
    shift = rep % len(runs)
    for label, fn in runs[shift:] + runs[:shift]:
        where = url if label.startswith("storaged") else tooz_url
        directory = where[len("file://"):] if kind == "file" else None
        before = artifacts(kind, where, directory)
        results[label].append(rate(fn, count))
        if rep == 0 and "unique" in label:
            # What is still there two heartbeats later (storaged keeps a few
            # released lock files for reuse until the next heartbeat).
            time.sleep(2.5 * HEARTBEAT)
            left = artifacts(kind, where, directory) - before
            leftover[label] = "%d %s" % (len(left), UNITS[kind])


# -- takeover ----------------------------------------------------------------------


def start_tooz_victim(url: str, member: str, group: str, name: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen(
        [sys.executable, "-W", "ignore", "-c", TOOZ_VICTIM, url, member, group, name,
         str(TTL)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise RuntimeError("tooz victim did not start")
    return proc


def takeover_once(kind: str, url: str, tooz_url: str, state: str,
                  flavour: str) -> tuple[float, float]:
    tag = uuid.uuid4().hex[:8]
    group, name, member = "bench-" + tag, "bench-lock-" + tag, "node1:victim-" + tag
    observer = storaged_coordinator(url, state, "bench:observer-" + tag) \
        if flavour == "storaged" else None
    tooz_observer = None
    victim: Any
    try:
        if flavour == "storaged":
            victim = helpers.Victim(url, member, state, group=group, lock=name,
                                    lock_ttl=TTL, membership_ttl=TTL,
                                    heartbeat=HEARTBEAT).start()
            victim.expect("ready")
            pid = victim.pid

            def members() -> set[str]:
                assert observer is not None
                return set(observer.get_members(group))

            def acquire() -> bool:
                assert observer is not None
                return observer.lock(name, timeout=60).acquire()
        else:
            victim = start_tooz_victim(tooz_url, member, group, name)
            pid = victim.pid
            tooz_observer = tooz_coordination.get_coordinator(
                tooz_url, ("bench:observer-" + tag).encode(), **tooz_options(tooz_url)
            )
            tooz_observer.start(start_heart=True)

            def members() -> set[str]:
                assert tooz_observer is not None
                found = tooz_observer.get_members(group.encode()).get()
                return {m.decode() if isinstance(m, bytes) else m for m in found}

            def acquire() -> bool:
                assert tooz_observer is not None
                return bool(tooz_observer.get_lock(name.encode()).acquire(
                    blocking=True, timeout=60))

        got: dict[str, float] = {}

        def waiter() -> None:
            if acquire():
                got["at"] = time.monotonic()

        thread = threading.Thread(target=waiter, daemon=True)
        thread.start()
        time.sleep(0.5)
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        dropped = None
        while time.monotonic() - killed < 60:
            if member not in members():
                dropped = time.monotonic() - killed
                break
            time.sleep(0.05)
        thread.join(60)
        takeover = got["at"] - killed if "at" in got else float("nan")
        return takeover, dropped if dropped is not None else float("nan")
    finally:
        if flavour == "storaged":
            victim.kill()
        else:
            with contextlib.suppress(ProcessLookupError):
                victim.kill()
            victim.wait()
        if observer is not None:
            observer.stop()
        if tooz_observer is not None:
            with contextlib.suppress(Exception):
                tooz_observer.stop()


def starvation_once(url: str, state: str, flavour: str) -> dict[str, Any]:
    """An 8 s hub-blocking call in a holder under eventlet; a contender polls.

    :returns: the holder's largest heartbeat gap, when (after the call
        began) the contender got the lock (``None``: never), and whether
        the holder knew.
    """
    tag = uuid.uuid4().hex[:8]
    group, name, member = "starve-" + tag, "starve-lock-" + tag, "node1:v-" + tag
    stolen_at: float | None = None
    if flavour == "storaged":
        victim = helpers.Victim(url, member, state, concurrency="eventlet",
                                group=group, lock=name, block=BLOCK, lock_ttl=TTL,
                                membership_ttl=TTL, heartbeat=HEARTBEAT).start()
        contender = storaged_coordinator(url, state, "bench:contender-" + tag)
        try:
            victim.expect("ready")
            victim.expect("blocking")
            began = time.monotonic()
            done = None
            while done is None and time.monotonic() - began < BLOCK + 30:
                lock = contender.lock(name, blocking=False)
                if lock.acquire():
                    if stolen_at is None:
                        stolen_at = time.monotonic() - began
                    lock.release()
                with contextlib.suppress(Exception):
                    event = victim.events.get(timeout=POLL)
                    if event["event"] == "unblocked":
                        done = event
            assert done is not None
            return {"gap": done["stats"]["max_beat_gap"], "stolen": stolen_at}
        finally:
            victim.kill()
            contender.stop()
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("STORAGED_CONCURRENCY_BACKEND", None)
    proc = subprocess.Popen(
        [sys.executable, "-W", "ignore", "-c", TOOZ_STARVE, url, member, group,
         name, str(TTL), str(BLOCK)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )
    contender_tooz = tooz_coordination.get_coordinator(
        url, ("bench:contender-" + tag).encode(), **tooz_options(url))
    contender_tooz.start(start_heart=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        assert proc.stdout.readline().strip() == "blocking"
        began = time.monotonic()
        result: dict[str, Any] = {}

        def read() -> None:
            assert proc.stdout is not None
            import json

            result.update(json.loads(proc.stdout.readline()))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        lock = contender_tooz.get_lock(name.encode())
        while reader.is_alive() and time.monotonic() - began < BLOCK + 30:
            if stolen_at is None and lock.acquire(blocking=False):
                stolen_at = time.monotonic() - began
                lock.release()
            time.sleep(POLL)
        reader.join(30)
        return {"gap": result.get("gap", float("nan")), "stolen": stolen_at}
    finally:
        proc.kill()
        proc.wait()
        with contextlib.suppress(Exception):
            contender_tooz.stop()


# -- servers -------------------------------------------------------------------------


@contextlib.contextmanager
def backend(kind: str, state: str):  # type: ignore[no-untyped-def]
    """Yield (storaged URL, tooz URL) of a fresh back end, or None."""
    if kind == "file":
        ours = os.path.join(state, "coord-storaged")
        theirs = os.path.join(state, "coord-tooz")
        yield "file://" + ours, "file://" + theirs
        return
    server: Any = {"redis": RedisServer, "etcd": EtcdServer,
                   "zookeeper": lambda: ZooKeeperServer(force_sync=True)}[kind]()
    try:
        server.start()
    except (ServerMissing, RuntimeError) as err:
        print("  %s skipped: %s" % (kind, err))
        yield None
        return
    try:
        yield server.url, server.url
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer operations and one repetition")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--no-starvation", action="store_true",
                        help="skip the 8 s blocked-holder runs")
    args = parser.parse_args()
    reps = args.reps or (1 if args.quick else 5)
    kinds = [k for k in args.backends.split(",") if k]
    counts = {"file": 2000, "redis": 2000, "etcd": 300, "zookeeper": 300}
    if args.quick:
        counts = {k: max(100, v // 4) for k, v in counts.items()}

    import importlib.metadata

    print("storaged coordination vs tooz %s; TTL %ss, heartbeat %ss, %d rep(s)"
          % (importlib.metadata.version("tooz"), TTL, HEARTBEAT, reps))
    rates: dict[str, dict[str, Any]] = {}
    takeovers: dict[str, dict[str, list[tuple[float, float]]]] = {}
    starvation: dict[str, dict[str, dict[str, Any]]] = {}
    for kind in kinds:
        state = tempfile.mkdtemp(prefix="storaged-bench-coord-")
        try:
            with backend(kind, state) as urls:
                if urls is None:
                    continue
                url, tooz_url = urls
                print("%s: lock rate (%d operations)..." % (kind, counts[kind]),
                      flush=True)
                rates[kind] = lock_rates(kind, url, tooz_url, state, counts[kind],
                                         reps)
                takeovers[kind] = {"storaged": [], "tooz": []}
                for rep in range(reps):
                    for flavour in (("storaged", "tooz") if rep % 2 == 0
                                    else ("tooz", "storaged")):
                        print("%s: takeover %s #%d..." % (kind, flavour, rep + 1),
                              flush=True)
                        takeovers[kind][flavour].append(
                            takeover_once(kind, url, tooz_url, state, flavour))
                if kind in ("redis", "etcd") and not args.no_starvation:
                    starvation[kind] = {}
                    for flavour in ("storaged", "tooz"):
                        print("%s: starvation %s..." % (kind, flavour), flush=True)
                        starvation[kind][flavour] = starvation_once(
                            url if flavour == "storaged" else tooz_url, state,
                            flavour)
        finally:
            shutil.rmtree(state, ignore_errors=True)

    print()
    print("Lock acquire+release per second (median), storaged / tooz")
    print("%-10s %10s %10s %6s   %10s %10s %6s   %-12s %-12s" % (
        "back end", "same", "tooz", "ratio", "unique", "tooz", "ratio",
        "left:ours", "left:tooz"))
    for kind, found in rates.items():
        r = found["rates"]
        left = found["leftovers"]
        print("%-10s %10.0f %10.0f %6.2f   %10.0f %10.0f %6.2f   %-12s %-12s" % (
            kind, r["storaged same"], r["tooz same"],
            r["storaged same"] / r["tooz same"],
            r["storaged unique"], r["tooz unique"],
            r["storaged unique"] / r["tooz unique"],
            left.get("storaged unique", "?"), left.get("tooz unique", "?")))
    print()
    print("After SIGKILL of a holder (median seconds; budget = TTL + %.1fs poll)"
          % POLL)
    print("%-10s %12s %12s %12s %12s %8s" % (
        "back end", "lock:ours", "lock:tooz", "member:ours", "member:tooz", "budget"))
    for kind, found in takeovers.items():
        def med(flavour: str, index: int, found: Any = found) -> float:
            values = [t[index] for t in found[flavour]]
            return statistics.median(values) if values else float("nan")

        budget = (0.0 if kind == "file" else TTL) + POLL
        print("%-10s %12.2f %12.2f %12.2f %12.2f %8.1f" % (
            kind, med("storaged", 0), med("tooz", 0), med("storaged", 1),
            med("tooz", 1), budget))
    if starvation:
        print()
        print("Holder under eventlet blocked in an 8 s call (TTL %ss, heartbeat %ss)"
              % (TTL, HEARTBEAT))
        print("%-10s %-9s %16s %18s" % (
            "back end", "holder", "max beat gap (s)", "lock taken at (s)"))
        for kind, found in starvation.items():
            for flavour, res in found.items():
                stolen = "never" if res["stolen"] is None else "%.2f" % res["stolen"]
                print("%-10s %-9s %16.2f %18s" % (kind, flavour, res["gap"], stolen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
