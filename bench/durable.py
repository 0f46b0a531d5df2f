"""The disk's limit for durable object writes: a bare loop, no server, no catalog.

What the ``file`` driver does for one object, and nothing else: create a
file in one temporary directory, write the data, ``fsync`` it, rename it
into a fan-out directory (256 of them, chosen by the name), ``fsync`` that
directory.  ``threads`` writers at once, ``count`` objects in all.  The
benchmarks print it beside the server's PUT rate (issue 17's goal for 1 MiB
PUTs: at least 60 % of this loop).

Usage: python -m bench.durable [--size BYTES] [--threads N] [--count N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time


def rate(directory: str, size: int, threads: int, count: int) -> float:
    """Durable writes per second of ``size`` bytes from ``threads`` writers."""
    work = tempfile.mkdtemp(prefix="durable-", dir=directory)
    try:
        tmp = os.path.join(work, "tmp")
        os.mkdir(tmp)
        for i in range(256):
            os.mkdir(os.path.join(work, "%02x" % i))
        body = os.urandom(size)
        per = max(1, count // threads)

        def writer(t: int) -> None:
            for i in range(per):
                name = "%d-%d" % (t, i)
                path = os.path.join(tmp, name)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    view = memoryview(body)
                    while view:
                        view = view[os.write(fd, view):]
                    os.fsync(fd)
                finally:
                    os.close(fd)
                sub = os.path.join(work, "%02x" % ((t * 131 + i) % 256))
                os.rename(path, os.path.join(sub, name))
                dfd = os.open(sub, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)

        started = time.perf_counter()
        workers = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return per * threads / (time.perf_counter() - started)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    args = parser.parse_args()
    writes = rate(args.dir, args.size, args.threads, args.count)
    print("%d bytes x %d threads: %.0f durable writes/s (%.1f MiB/s)" % (
        args.size, args.threads, writes, writes * args.size / 2**20))
    return 0


if __name__ == "__main__":
    sys.exit(main())
