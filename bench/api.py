#!/usr/bin/env python3
"""Requests per second and latency of a real storaged-api: PUT and GET.

Starts ``storaged-api`` (the functional tests' harness: a private state
directory and port, ready on READY=1), then for 1 KiB and 1 MiB objects and
1 and 16 concurrent clients: PUTs ``--count`` objects, then GETs them back.
Each client is a thread with its own kept-alive HTTP/1.1 connection.  Every
combination runs ``--reps`` times; the table shows the median of the
repetitions' requests/s, p50 and p99 latency.

The clients run in this process, on the same machine: on a small machine
they compete with the server for CPU, so the figures are a floor, not the
server's ceiling.  Nothing is asserted.

Usage: python -m bench.api [--quick] [--backend eventlet|threading|both]
                           [--workers N] [--reps N]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import os
import statistics
import sys
import tempfile
import threading
import time
from urllib import parse as urlparse

from tests.functional.api.apiserver import ApiServer

KiB = 1024
MiB = 1024 * KiB
SIZES = (KiB, MiB)
CONCURRENCY = (1, 16)


class Client:
    """One kept-alive connection with a token."""

    def __init__(self, port: int, token: str, path: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.token = token
        self.path = path

    def put(self, name: str, body: bytes) -> float:
        started = time.perf_counter()
        self.conn.request("PUT", self.path + name, body=body,
                          headers={"X-Auth-Token": self.token})
        resp = self.conn.getresponse()
        resp.read()
        if resp.status != 201:
            raise RuntimeError("PUT %s: %d" % (name, resp.status))
        return time.perf_counter() - started

    def get(self, name: str, size: int) -> float:
        started = time.perf_counter()
        self.conn.request("GET", self.path + name,
                          headers={"X-Auth-Token": self.token})
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status != 200 or len(data) != size:
            raise RuntimeError("GET %s: %d" % (name, resp.status))
        return time.perf_counter() - started

    def close(self) -> None:
        self.conn.close()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


def run_phase(server: ApiServer, token: str, container: str, op: str, size: int,
              clients: int, count: int, tag: str) -> dict[str, float]:
    body = os.urandom(size)
    names = ["%s-%06d" % (tag, i) for i in range(count)]
    path = "/v1/AUTH_test/%s/" % urlparse.quote(container)
    pool = [Client(server.port, token, path) for _ in range(clients)]
    latencies: list[float] = []
    lock = threading.Lock()

    def work(index: int) -> None:
        client = pool[index]
        mine = []
        for name in names[index::clients]:
            if op == "PUT":
                mine.append(client.put(name, body))
            else:
                mine.append(client.get(name, size))
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as executor:
        for future in [executor.submit(work, i) for i in range(clients)]:
            future.result()
    elapsed = time.perf_counter() - started
    for client in pool:
        client.close()
    return {
        "rps": count / elapsed,
        "p50": percentile(latencies, 0.50) * 1000,
        "p99": percentile(latencies, 0.99) * 1000,
        "mbps": count * size / elapsed / MiB,
    }


def bench_backend(args: argparse.Namespace, backend: str) -> list[tuple]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="storaged-bench-api-") as tmp:
        api = {"workers": str(args.workers)}
        server = ApiServer(tmp, backend=backend, api=api,
                           default={"debug": "false"})
        with server:
            conn = server.connection()
            _url, token = conn.get_auth()
            for size in SIZES:
                for clients in CONCURRENCY:
                    count = args.count_small if size == KiB else args.count_large
                    results: dict[str, list[dict[str, float]]] = {"PUT": [], "GET": []}
                    for rep in range(args.reps):
                        container = "b-%d-%d-%d" % (size, clients, rep)
                        conn.put_container(container)
                        tag = "o"
                        for op in ("PUT", "GET"):
                            results[op].append(run_phase(
                                server, token, container, op, size, clients, count,
                                tag))
                    for op in ("PUT", "GET"):
                        reps = results[op]
                        rows.append((
                            backend, op, size, clients, count,
                            statistics.median(r["rps"] for r in reps),
                            statistics.median(r["p50"] for r in reps),
                            statistics.median(r["p99"] for r in reps),
                            statistics.median(r["mbps"] for r in reps),
                        ))
                        print("  %-9s %-3s %7s x%-2d %8.0f req/s  p50 %7.2f ms  "
                              "p99 %7.2f ms" % (backend, op, _size(size), clients,
                                                 *rows[-1][5:8]), flush=True)
            conn.close()
            status = server.stop()
            if status != 0:
                print("storaged-api exited with %d" % status, file=sys.stderr)
    return rows


def _size(n: int) -> str:
    return "1 MiB" if n == MiB else "1 KiB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--backend", choices=("eventlet", "threading", "both"),
                        default="eventlet")
    parser.add_argument("--workers", type=int, default=1,
                        help="[api] workers (default 1)")
    parser.add_argument("--reps", type=int, help="repetitions (default 3, quick 1)")
    parser.add_argument("--count-small", type=int,
                        help="1 KiB objects per phase (default 2000, quick 200)")
    parser.add_argument("--count-large", type=int,
                        help="1 MiB objects per phase (default 200, quick 32)")
    args = parser.parse_args()
    args.reps = args.reps or (1 if args.quick else 3)
    args.count_small = args.count_small or (200 if args.quick else 2000)
    args.count_large = args.count_large or (32 if args.quick else 200)
    backends = ["eventlet", "threading"] if args.backend == "both" else [args.backend]
    print("storaged-api bench: %d rep(s), %d x 1 KiB and %d x 1 MiB per phase, "
          "%d worker(s), %d CPUs" % (args.reps, args.count_small, args.count_large,
                                     args.workers, os.cpu_count() or 0))
    rows = []
    for backend in backends:
        rows += bench_backend(args, backend)
    print()
    print("| backend | op | size | clients | req/s | p50 ms | p99 ms | MiB/s |")
    print("|---|---|---|---|---|---|---|---|")
    for backend, op, size, clients, _count, rps, p50, p99, mbps in rows:
        print("| %s | %s | %s | %d | %.0f | %.2f | %.2f | %.1f |" % (
            backend, op, _size(size), clients, rps, p50, p99, mbps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
