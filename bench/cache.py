#!/usr/bin/env python3
"""Object cache: prune time against a bare scan, fill and hit throughput.

Prune
    N entries of 4 KiB, each with its recorded last access (distinct, in a
    random order unrelated to creation), pruned to N/2.  Beside it, in the
    same process and alternating the order between repetitions, the anchor
    on an identical directory (same files with the same xattrs, atimes set
    in the same order): one ``os.scandir``, one ``DirEntry.stat()`` per
    entry, a sort by atime, ``unlink`` of the oldest until half are gone --
    the least any pruner must do.  Both survivor sets are checked to be the
    same LRU half.  A third column runs the anchor on files without xattrs:
    on ext4 an entry's metadata does not fit in the inode, and the extra
    block makes each unlink dearer whoever does it.
    ``storaged`` is :meth:`storaged.cache.Pruner.prune`: the maintenance
    lock, one snapshot (``scandir`` + ``stat`` + the recorded last access
    from a user xattr), a heap, the unlinks.  Glance 33's xattr pruner took
    about 2,800x the anchor at 10,000 entries (research/glance.md).

Fill and hit
    ``ObjectCache.read`` of objects from an in-memory back end: a miss
    (fill: write, fsync, re-read and hash the file, compare with the md5,
    metadata, rename) and hits (open, checks, counted hit, read), plain and
    verified, in objects/s and MiB/s.  Beside them, bare anchors: for a
    fill, ``open(O_EXCL)`` + write + fsync + rename; for a hit, open + read
    + close.

The host is shared and noisy: only medians and same-run ratios mean much.
Nothing is asserted: this prints, it does not judge.

Usage: python -m bench.cache [--quick] [--reps N] [--dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import statistics
import sys
import tempfile
import time

from storaged import concurrency

concurrency.setup("threading")

from storaged.cache import CacheRef  # noqa: E402
from storaged.cache import EntryMeta  # noqa: E402
from storaged.cache import ObjectCache  # noqa: E402
from storaged.cache import Pruner  # noqa: E402

KiB = 1024
MiB = 1024 * KiB
ENTRY = 4 * KiB


def entry_id(i: int) -> str:
    return hashlib.sha256(b"bench-%d" % i).hexdigest()


def make_dirs(
    base: str, n: int, seed: int
) -> tuple[ObjectCache, str, str, list[int]]:
    """Identical directories of n entries: the cache's, a copy, and a copy
    without xattrs; return the cache, the two copies, each entry's rank."""
    rng = random.Random(seed)
    ranks = list(range(n))
    rng.shuffle(ranks)
    cache_dir = os.path.join(base, "cache")
    bare_dir = os.path.join(base, "bare")
    plain_dir = os.path.join(base, "plain")
    cache = ObjectCache(cache_dir, max_size=n * ENTRY - 1)
    cache.low_watermark = (n // 2 * ENTRY + 0.5) / cache.max_size
    os.makedirs(bare_dir)
    os.makedirs(plain_dir)
    data = b"c" * ENTRY
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = time.time_ns() - 10 ** 15
    for i in range(n):
        name = entry_id(i)
        last = start + ranks[i] * 10 ** 9
        fd = os.open(os.path.join(cache_dir, name), os.O_WRONLY | os.O_CREAT, 0o640)
        os.write(fd, data)
        cache.meta.write(fd, name, EntryMeta(ENTRY, digest, "bench", last, {}, 0, last))
        os.close(fd)
        src = os.path.join(cache_dir, name)
        for directory in (bare_dir, plain_dir):
            path = os.path.join(directory, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o640)
            os.write(fd, data)
            if directory == bare_dir:
                for attr in os.listxattr(src):
                    os.setxattr(fd, attr, os.getxattr(src, attr))
            os.close(fd)
            os.utime(path, ns=(last, last))
    return cache, bare_dir, plain_dir, ranks


def bare_prune(directory: str, target: int) -> int:
    """The anchor: one scandir, one stat each, sort by atime, unlink the oldest."""
    entries = []
    total = 0
    with os.scandir(directory) as it:
        for de in it:
            st = de.stat(follow_symlinks=False)
            entries.append((st.st_atime_ns, de.path, st.st_size))
            total += st.st_size
    entries.sort()
    removed = 0
    for _atime, path, size in entries:
        if total <= target:
            break
        os.unlink(path)
        total -= size
        removed += 1
    return removed


def survivors(directory: str) -> set[str]:
    return {n for n in os.listdir(directory) if len(n) == 64}


def bench_prune(base: str, n: int, reps: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"storaged": [], "bare": [], "plain": []}
    for rep in range(reps):
        work = os.path.join(base, "prune-%d-%d" % (n, rep))
        cache, bare_dir, plain_dir, ranks = make_dirs(work, n, seed=rep)
        target = n // 2 * ENTRY
        order = ["storaged", "bare", "plain"]
        if rep % 2:
            order.reverse()
        for which in order:
            os.sync()
            start = time.perf_counter()
            if which == "storaged":
                result = Pruner(cache).prune()
                assert result.pruned == n // 2, result.summary()
            else:
                directory = bare_dir if which == "bare" else plain_dir
                assert bare_prune(directory, target) == n // 2
            times[which].append(time.perf_counter() - start)
        newest = {entry_id(i) for i in range(n) if ranks[i] >= n - n // 2}
        assert survivors(cache.cache_dir) == newest == survivors(bare_dir)
        assert survivors(plain_dir) == newest
        cache.close()
        shutil.rmtree(work)
    return times


class MemoryBackend:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def ref(self, name: str) -> CacheRef:
        data = self.objects[name]
        return CacheRef("mem", name, len(data), {"md5": hashlib.md5(data).hexdigest()})

    def fetch(self, name: str):
        data = self.objects[name]

        def fetch(offset, length, verify):
            view = memoryview(data)
            return (bytes(view[i:i + MiB]) for i in range(0, len(data), MiB)), len(data)

        return fetch


def drain(cache: ObjectCache, ref: CacheRef, fetch, verify: bool = False) -> int:
    chunks, n = cache.read(ref, fetch, verify=verify)
    got = sum(len(c) for c in chunks)
    assert got == n
    return got


def bare_fill(directory: str, names: list[str], data: bytes) -> None:
    for name in names:
        tmp = os.path.join(directory, "incomplete", name)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
        os.close(fd)
        os.rename(tmp, os.path.join(directory, name))


def bare_hit(directory: str, names: list[str]) -> None:
    for name in names:
        fd = os.open(os.path.join(directory, name), os.O_RDONLY)
        while os.read(fd, MiB):
            pass
        os.close(fd)


def bench_io(base: str, size: int, count: int, reps: int) -> dict[str, list[float]]:
    """Seconds per operation (median of reps) of fills and hits, and anchors."""
    times: dict[str, list[float]] = {k: [] for k in
                                     ("fill", "hit", "verified hit", "bare fill",
                                      "bare hit")}
    data = os.urandom(size)
    for rep in range(reps):
        work = os.path.join(base, "io-%d-%d" % (size, rep))
        cache = ObjectCache(os.path.join(work, "cache"), backends=["mem"])
        backend = MemoryBackend()
        names = ["obj-%d-%d" % (rep, i) for i in range(count)]
        for i, name in enumerate(names):
            # distinct contents, cheaply: the first bytes differ
            backend.objects[name] = i.to_bytes(8, "big") + data[8:]
        refs = [backend.ref(n) for n in names]
        fetches = [backend.fetch(n) for n in names]
        start = time.perf_counter()
        for ref, fetch in zip(refs, fetches, strict=True):
            drain(cache, ref, fetch)
        times["fill"].append((time.perf_counter() - start) / count)
        assert cache.counters.get("fills") == count, cache.counters
        for label, verify in (("hit", False), ("verified hit", True)):
            start = time.perf_counter()
            for ref, fetch in zip(refs, fetches, strict=True):
                drain(cache, ref, fetch, verify)
            times[label].append((time.perf_counter() - start) / count)
        bare = os.path.join(work, "bare")
        os.makedirs(os.path.join(bare, "incomplete"))
        start = time.perf_counter()
        bare_fill(bare, names, data)
        times["bare fill"].append((time.perf_counter() - start) / count)
        start = time.perf_counter()
        bare_hit(bare, names)
        times["bare hit"].append((time.perf_counter() - start) / count)
        cache.close()
        shutil.rmtree(work)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="10,000 entries only, fewer objects (< 20 s)")
    parser.add_argument("--reps", type=int, default=None,
                        help="repetitions (default 3, 1 with --quick)")
    parser.add_argument("--dir", default=None,
                        help="where to work (default: a temporary directory)")
    args = parser.parse_args()
    reps = args.reps or (1 if args.quick else 3)
    prune_reps = reps
    sizes = [10_000] if args.quick else [10_000, 50_000]
    base = tempfile.mkdtemp(prefix="storaged-bench-cache-", dir=args.dir)
    try:
        print("Prune N entries of 4 KiB to N/2 (median of %d, seconds)" % prune_reps)
        print("%-8s %10s %10s %7s   %s" % ("N", "storaged", "bare scan", "ratio",
                                          "(bare scan, files without xattrs)"))
        for n in sizes:
            t = bench_prune(base, n, prune_reps)
            ours, bare = statistics.median(t["storaged"]), statistics.median(t["bare"])
            plain = statistics.median(t["plain"])
            print("%-8d %10.3f %10.3f %6.2fx   (%.3f)" % (n, ours, bare, ours / bare,
                                                        plain))
        print()
        print("Fill and hit (median of %d)" % reps)
        print("%-22s %14s %12s" % ("", "objects/s", "MiB/s"))
        plan = [(4 * KiB, 500 if args.quick else 2000),
                (64 * MiB, 2 if args.quick else 4)]
        for size, count in plan:
            t = bench_io(base, size, count, reps)
            label = "4 KiB" if size < MiB else "64 MiB"
            for op in ("fill", "bare fill", "hit", "verified hit", "bare hit"):
                per = statistics.median(t[op])
                print("%-22s %14.1f %12.1f" % ("%s %s" % (label, op), 1 / per,
                                               size / MiB / per))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
