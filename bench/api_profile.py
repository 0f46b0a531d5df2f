#!/usr/bin/env python3
"""Where storaged-api's time goes: a sampling profile under a PUT load.

Starts ``storaged-api`` (the tests' harness, one worker, eventlet unless
``--backend``), drives ``--clients`` kept-alive clients PUTting ``--size``
byte objects for ``--seconds``, and samples the server with py-spy (every
thread, native threads of the pool included; only time on a CPU or in a
system call counts, unless ``--idle``).  Prints the share of samples per function
(own time) and per storaged or library frame on the stack (inclusive time),
the request rate reached meanwhile, and leaves py-spy's raw collapsed
stacks beside (``--out``) for a flame graph.

py-spy is a profiling tool, not a dependency: ``pip install py-spy``.

Usage: python -m bench.api_profile [--clients 16] [--size 1024]
                                   [--seconds 20] [--backend eventlet]
                                   [--out api-put.folded] [--idle]
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from bench.api import Client
from bench.api import Target
from tests.functional.api.apiserver import ApiServer


def _load(target: Target, container: str, clients: int, size: int,
          stop: threading.Event, counts: list[int]) -> list[threading.Thread]:
    body = os.urandom(size)
    path = "%s/%s/" % (target.account_path, container)

    def work(index: int) -> None:
        client = Client(target.port, target.token, path)
        n = 0
        while not stop.is_set():
            client.put("c%02d-%07d" % (index, n), body)
            n += 1
        counts[index] = n
        client.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    return threads


def _summarise(folded: str, top: int) -> None:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    with open(folded) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            n = int(count)
            total += n
            frames = stack.split(";")
            own[_short(frames[-1])] += n
            for frame in set(map(_short, frames[1:])):
                inclusive[frame] += n
    print(f"{total} samples")
    print("own time (the frame on top of the stack):")
    for frame, n in own.most_common(top):
        print(f"  {100.0 * n / total:5.1f}%  {frame}")
    print("inclusive time (the frame anywhere on the stack):")
    for frame, n in inclusive.most_common(top * 2):
        print(f"  {100.0 * n / total:5.1f}%  {frame}")


def _short(frame: str) -> str:
    # py-spy: "function (path/to/module.py:line)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/storaged/", "/lib/python3"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{name} ({where})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--backend", default="eventlet")
    parser.add_argument("--out", default="api-put.folded")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--idle", action="store_true",
                        help="sample waiting threads too (where wall time goes)")
    args = parser.parse_args()
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable),
                                                 "py-spy")
    if not os.path.exists(spy):
        print("py-spy is not installed (pip install py-spy)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="storaged-bench-profile-") as tmp:
        server = ApiServer(tmp, backend=args.backend, api={"workers": "1"},
                           default={"debug": "false"})
        server.start()
        try:
            target = Target.of(server.connection())
            target.conn.put_container("profile")
            stop = threading.Event()
            counts = [0] * args.clients
            threads = _load(target, "profile", args.clients, args.size, stop,
                            counts)
            time.sleep(2)  # warm up before sampling
            started = time.monotonic()
            subprocess.run(
                [spy, "record", "--pid", str(server.proc.pid), "--duration",
                 str(int(args.seconds)), "--rate", "200", "--format", "raw",
                 "--threads", "--nonblocking", *(["--idle"] if args.idle else []),
                 "--output", args.out],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            elapsed = time.monotonic() - started
            stop.set()
            for thread in threads:
                thread.join()
            print(f"{sum(counts) / (elapsed + 2):.0f} PUT/s over the run "
                  f"({args.clients} clients, {args.size} bytes, {args.backend})")
            target.conn.close()
        finally:
            server.stop()
    _summarise(args.out, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
