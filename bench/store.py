#!/usr/bin/env python3
"""Object store throughput: storaged's file driver beside glance_store's.

Three workloads, each run with storaged's ``file`` driver and with
glance_store's filesystem driver (multi-backend, configured in this process
on its own ``ConfigOpts``), on the same filesystem, in one run, the order of
the two rotating on every repetition:

==========================  ================================  ===================
workload                    storaged                          glance_store
==========================  ================================  ===================
large add (512 MiB, sha256) ``add``: durable (fsync of file   ``add_with_multihash``
                            and directory, atomic publish)    (md5 + sha256, no
                                                              fsync, final path)
small adds (1,000 x 64 KiB) durable ``add``, serial and from  ``add_with_multihash``
                            a pool of ``--threads`` threads   serial
                            (whole adds in parallel)
small reads (64 KiB)        ``get(verify=True)``: XXH3-64     ``multi_backend.get``
                            checked against the recorded one  (not verified)
==========================  ================================  ===================

Targets (SPEC section 12): large add >= 2x glance_store; small durable adds
>= 1,000 objects/s; verified reads >= 1x glance_store's unverified reads.
Medians with [min-max] over the repetitions are printed, with the ratios
and whether each target is met.  Nothing is asserted: the machines this runs
on are shared and noisy, so only medians and same-run ratios mean much.

glance_store is a benchmark-only dependency, not one of storaged's::

    pip install glance_store==5.7.0

Without it, the storaged figures are still measured and printed.

The remote drivers (``swift``, ``s3``) are measured by ``bench/store_remote.py``.

Usage: python -m bench.store [--quick] [--reps N] [--dir DIR]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import concurrent.futures
import io
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

os.environ.setdefault("STORAGED_CONCURRENCY_BACKEND", "threading")

from oslo_config import cfg

from storaged import concurrency

concurrency.setup("threading")

from storaged.conf import default as default_conf  # noqa: E402
from storaged.objectstore import backend as store_conf  # noqa: E402
from storaged.objectstore.drivers.file import FileStore  # noqa: E402

MiB = 1024 * 1024


# -- storaged -------------------------------------------------------------------


def storaged_store(root: str) -> FileStore:
    conf = cfg.ConfigOpts()
    default_conf.register_opts(conf)
    store_conf.register_opts(conf)
    conf([], project="storaged-bench")
    conf.set_override("state_path", root)
    conf.set_override("enabled_backends", ["bench:file"])
    store_conf.register_dynamic_opts(conf)
    conf.set_override("data_dirs", [os.path.join(root, "storaged")], group="bench")
    return FileStore(conf, "bench")


# -- glance_store -----------------------------------------------------------------


class Glance:
    """glance_store's filesystem driver, multi-backend, one store ``fs``."""

    def __init__(self, root: str) -> None:
        import glance_store
        from glance_store import multi_backend

        self.version = getattr(glance_store, "__version__", "")
        if not self.version:
            from importlib import metadata

            self.version = metadata.version("glance_store")
        self.mb = multi_backend
        # glance_store's multi-backend module reads the global ConfigOpts
        # (cfg.CONF); storaged never uses that object, so it is glance's own.
        conf = cfg.CONF
        conf.register_opt(cfg.DictOpt("enabled_backends"))
        conf([], project="glance-store-bench", default_config_files=[])
        conf.set_override("enabled_backends", {"fs": "file"})
        multi_backend.register_store_opts(conf)
        self.datadir = os.path.join(root, "glance")
        os.makedirs(self.datadir, exist_ok=True)
        conf.set_override("default_backend", "fs", group="glance_store")
        conf.set_override("filesystem_store_datadir", self.datadir, group="fs")
        multi_backend.create_multi_stores(conf)
        multi_backend.verify_store()
        self.conf = conf

    def add(self, object_id: str, data: bytes) -> str:
        location, _size, _checksum, _multihash, _meta = self.mb.add_with_multihash(
            self.conf, object_id, io.BytesIO(data), len(data), "fs", "sha256"
        )
        return str(location)

    def get(self, location: str) -> int:
        chunks, _size = self.mb.get(location, "fs")
        n = 0
        for chunk in chunks:
            n += len(chunk)
        return n

    def clear(self) -> None:
        shutil.rmtree(self.datadir)
        os.makedirs(self.datadir)


def load_glance(root: str) -> tuple[Glance | None, str]:
    try:
        return Glance(root), ""
    except ImportError as err:
        return None, f"glance_store is not installed ({err})"
    except Exception as err:  # any set-up failure: report, go on without it
        return None, f"glance_store could not be set up: {err!r}"


# -- measuring --------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> float:
    """Seconds ``fn`` takes, after flushing what earlier phases left dirty.

    Nobody pays for the writeback of another phase (glance_store's adds
    leave all of theirs to the kernel): it is flushed first, untimed.
    """
    os.sync()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def fmt(values: list[float], unit: str) -> str:
    if not values:
        return "n/a"
    med = statistics.median(values)
    return f"{med:,.0f} {unit} [{min(values):,.0f}-{max(values):,.0f}]"


def verdict(ratio: float | None, target: float) -> str:
    if ratio is None:
        return "n/a"
    met = "met" if ratio >= target else "NOT met"
    return f"{ratio:.2f}x (target >= {target:g}x: {met})"


def rotate(items: list[Any], n: int) -> list[Any]:
    n %= len(items)
    return items[n:] + items[:n]


class Bench:
    """The workloads, one repetition at a time."""

    def __init__(
        self, args: argparse.Namespace, store: FileStore, glance: Glance | None
    ):
        self.args = args
        self.store = store
        self.glance = glance
        self.large = os.urandom(args.large_mib * MiB)
        self.small = [
            os.urandom(args.small_kib * 1024) for _ in range(args.small_count)
        ]
        self.results: dict[str, list[float]] = {}

    def note(self, key: str, value: float) -> None:
        self.results.setdefault(key, []).append(value)

    # -- large add ----------------------------------------------------------

    def large_storaged(self, rep: int) -> None:
        data = self.large
        result = self.store.add(f"large-{rep}", io.BytesIO(data), len(data))
        assert result.size == len(data)

    def large_glance(self, rep: int) -> None:
        assert self.glance is not None
        self.glance.add(f"large-{rep}", self.large)

    def run_large(self, rep: int) -> None:
        variants = [("large_storaged", self.large_storaged)]
        if self.glance is not None:
            variants.append(("large_glance", self.large_glance))
        for key, fn in rotate(variants, rep):
            self.note(key, len(self.large) / MiB / timed(lambda fn=fn: fn(rep)))
        self.cleanup()

    # -- small adds and reads ---------------------------------------------------

    def small_serial(self, prefix: str) -> list[str]:
        return [
            self.store.add(f"{prefix}-{i}", io.BytesIO(d), len(d)).location
            for i, d in enumerate(self.small)
        ]

    def small_pool(self, prefix: str) -> list[str]:
        def one(i: int) -> str:
            data = self.small[i]
            return self.store.add(f"{prefix}-{i}", io.BytesIO(data), len(data)).location

        with concurrent.futures.ThreadPoolExecutor(self.args.threads) as pool:
            return list(pool.map(one, range(len(self.small))))

    def glance_serial(self, prefix: str) -> list[str]:
        assert self.glance is not None
        return [self.glance.add(f"{prefix}-{i}", d) for i, d in enumerate(self.small)]

    def glance_pool(self, prefix: str) -> list[str]:
        assert self.glance is not None
        ids = [f"{prefix}-{i}" for i in range(len(self.small))]
        with concurrent.futures.ThreadPoolExecutor(self.args.threads) as pool:
            return list(pool.map(self.glance.add, ids, self.small))

    def read_one(self, location: str, verify: bool = True) -> None:
        chunks, n = self.store.get(location, verify=verify)
        got = 0
        for chunk in chunks:
            got += len(chunk)
        assert got == n

    def run_small(self, rep: int) -> None:
        n = len(self.small)
        made: dict[str, list[str]] = {}
        adds = [
            ("small_add_storaged_serial", self.small_serial),
            ("small_add_storaged_pool", self.small_pool),
        ]
        if self.glance is not None:
            adds += [
                ("small_add_glance", self.glance_serial),
                ("small_add_glance_pool", self.glance_pool),
            ]
        for key, fn in rotate(adds, rep):
            prefix = f"{key}-{rep}"
            seconds = timed(
                lambda fn=fn, key=key, prefix=prefix: made.__setitem__(key, fn(prefix))
            )
            self.note(key, n / seconds)

        ours = made["small_add_storaged_serial"]
        threads = self.args.read_threads

        def verified() -> None:
            for location in ours:
                self.read_one(location)

        def unverified() -> None:
            for location in ours:
                self.read_one(location, False)

        def verified_pool() -> None:
            with concurrent.futures.ThreadPoolExecutor(threads) as pool:
                list(pool.map(self.read_one, ours))

        reads: list[tuple[str, Callable[[], None]]] = [
            ("read_storaged", verified),
            ("read_storaged_pool", verified_pool),
            ("read_storaged_unverified", unverified),
        ]
        glance = self.glance
        if glance is not None:
            theirs = made["small_add_glance"]

            def glance_read() -> None:
                for location in theirs:
                    glance.get(location)

            def glance_read_pool() -> None:
                with concurrent.futures.ThreadPoolExecutor(threads) as pool:
                    list(pool.map(glance.get, theirs))

            reads += [
                ("read_glance", glance_read),
                ("read_glance_pool", glance_read_pool),
            ]
        for key, fn in rotate(reads, rep):
            self.note(key, n / timed(fn))
        self.cleanup()

    def cleanup(self) -> None:
        """Remove every object (untimed): each repetition starts empty."""
        report = self.store.scrub()  # lists every object (and checks it)
        for finding in report.corrupt:
            print(f"corrupt object found: {finding}")
        for location in _all_locations(self.store):
            self.store.delete(location)
        if self.glance is not None:
            self.glance.clear()


def _all_locations(store: FileStore) -> list[str]:
    out = []
    for data_dir in store.data_dirs:
        for fan in sorted(os.listdir(data_dir)):
            if fan.startswith("."):
                continue
            for name in os.listdir(os.path.join(data_dir, fan)):
                if not name.startswith("."):
                    out.append(f"file://{data_dir}/{fan}/{name}")
    return out


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING)
    # glance_store tries every driver it ships; those whose libraries are
    # missing (cinder's os_brick, ...) are irrelevant here.
    logging.getLogger("stevedore").setLevel(logging.CRITICAL)
    base = args.dir or tempfile.gettempdir()
    root = tempfile.mkdtemp(prefix="storaged-bench-store-", dir=base)
    print(
        f"storaged object store benchmark: {args.reps} repetitions, "
        f"{'quick' if args.quick else 'full'} run, in {root}"
    )
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    try:
        store = storaged_store(root)
        glance, why = load_glance(root)
        print(f"glance_store: {glance.version if glance else why}")
        print("generating data...", flush=True)
        bench = Bench(args, store, glance)
        for rep in range(args.reps):
            print(f"repetition {rep + 1}/{args.reps}", flush=True)
            bench.run_large(rep)
            bench.run_small(rep)
        report(args, bench.results, glance is not None)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def report(args: argparse.Namespace, res: dict[str, list[float]], glance: bool) -> None:
    def med(key: str) -> float | None:
        return statistics.median(res[key]) if res.get(key) else None

    def ratio(a: str, b: str) -> float | None:
        x, y = med(a), med(b)
        return x / y if x is not None and y else None

    def line(label: str, text: str) -> None:
        print(f"  {label:<38} {text}")

    n, kib, mib = args.small_count, args.small_kib, args.large_mib
    threads, rthreads = args.threads, args.read_threads
    print()
    print(f"large add, {mib} MiB, sha256:")
    line("storaged, durable", fmt(res["large_storaged"], "MiB/s"))
    if glance:
        line("glance_store, not durable", fmt(res["large_glance"], "MiB/s"))
        line("ratio", verdict(ratio("large_storaged", "large_glance"), 2))
    print(f"{n} x {kib} KiB adds:")
    line(
        "storaged, durable, serial", fmt(res["small_add_storaged_serial"], "objects/s")
    )
    line(
        f"storaged, durable, {threads} threads",
        fmt(res["small_add_storaged_pool"], "objects/s"),
    )
    best = max(
        med("small_add_storaged_serial") or 0, med("small_add_storaged_pool") or 0
    )
    line(
        "target >= 1,000 objects/s durable",
        f"{'met' if best >= 1000 else 'NOT met'} ({best:,.0f}/s)",
    )
    if glance:
        line(
            "glance_store, not durable, serial",
            fmt(res["small_add_glance"], "objects/s"),
        )
        line(
            f"glance_store, not durable, {threads} threads",
            fmt(res["small_add_glance_pool"], "objects/s"),
        )
        pool_ratio = ratio("small_add_storaged_pool", "small_add_glance_pool") or 0
        line(f"ratio, {threads} threads each", f"{pool_ratio:.2f}x")
    print(f"{kib} KiB reads (warm page cache):")
    line("storaged, verified, serial", fmt(res["read_storaged"], "objects/s"))
    line(
        f"storaged, verified, {rthreads} threads",
        fmt(res["read_storaged_pool"], "objects/s"),
    )
    line(
        "storaged, not verified, serial",
        fmt(res["read_storaged_unverified"], "objects/s"),
    )
    if glance:
        line("glance_store, not verified, serial", fmt(res["read_glance"], "objects/s"))
        line(
            f"glance_store, not verified, {rthreads} threads",
            fmt(res["read_glance_pool"], "objects/s"),
        )
        line(
            "ratio verified / glance, serial",
            verdict(ratio("read_storaged", "read_glance"), 1),
        )
        line(
            f"ratio verified / glance, {rthreads} threads",
            verdict(ratio("read_storaged_pool", "read_glance_pool"), 1),
        )
        unverified = ratio("read_storaged_unverified", "read_glance") or 0
        line("ratio not verified / glance, serial", f"{unverified:.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--reps", type=int, help="repetitions (default 5, quick 2)")
    parser.add_argument("--dir", help="where to write (default: the system temp dir)")
    parser.add_argument(
        "--threads",
        type=int,
        default=16,
        help="threads of the concurrent small adds (default 16)",
    )
    parser.add_argument(
        "--read-threads",
        type=int,
        default=os.cpu_count() or 2,
        help="threads of the concurrent reads (default: CPUs)",
    )
    args = parser.parse_args()
    args.large_mib = 64 if args.quick else 512
    args.small_count = 200 if args.quick else 1000
    args.small_kib = 64
    if args.reps is None:
        args.reps = 2 if args.quick else 5
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
