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

``--metrics both`` measures the cost of the metrics: two servers run side
by side, one with ``[api] metrics_port`` (prometheus_client's multiprocess
mode, /metrics scraped once a second meanwhile) and one without, and each
repetition runs on both, in alternating order; the table gains the
overhead of "on" against "off" (the figures of requests/s; a target is
<= 3%).

``--anchor swift`` runs the same load, in the same run and alternating
order, against a Swift all-in-one from Debian's packages (the tests' Swift
cluster, :mod:`tests.swift_cluster`: proxy, account, container and object
servers, one replica, tempauth, ``--swift-workers`` workers each) and adds
storaged's ratio to Swift for each row.

Each repetition also times the disk's own limit for the same writes
(:mod:`bench.durable`: create, write, ``fsync``, rename, ``fsync`` the
directory; as many writer threads as clients, no server), in turn with the
servers, and the last table shows each PUT row's share of it (issue 17's
goal for 1 MiB PUTs: at least 60 %).

Usage: python -m bench.api [--quick] [--backend eventlet|threading|both]
                           [--workers N|auto] [--reps N] [--metrics off|on|both]
                           [--anchor swift] [--swift-workers N]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import http.client
import os
import statistics
import sys
import tempfile
import threading
import time
from urllib import parse as urlparse

from bench import durable
from tests import swift_cluster as swift_mod
from tests.functional.api.apiserver import ApiServer
from tests.functional.api.apiserver import free_port

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


class Target:
    """A Swift API endpoint under test: its port, account path and token."""

    def __init__(self, storage_url: str, token: str, conn: object) -> None:
        url = urlparse.urlsplit(storage_url)
        self.port = int(url.port or 80)
        self.account_path = url.path
        self.token = token
        self.conn = conn  # a swiftclient Connection (containers, closing)

    @classmethod
    def of(cls, conn: object) -> Target:
        storage_url, token = conn.get_auth()  # type: ignore[attr-defined]
        return cls(storage_url, token, conn)


def run_phase(target: Target, container: str, op: str, size: int,
              clients: int, count: int, tag: str) -> dict[str, float]:
    body = os.urandom(size)
    names = ["%s-%06d" % (tag, i) for i in range(count)]
    path = "%s/%s/" % (target.account_path, urlparse.quote(container))
    token = target.token
    pool = [Client(target.port, token, path) for _ in range(clients)]
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


class _Scraper:
    """Scrapes ``/metrics`` once a second, as Prometheus would, until stopped."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(1.0):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", "/metrics")
                conn.getresponse().read()
                conn.close()
            except OSError:
                pass


def _swift_target(cluster: swift_mod.SwiftCluster) -> Target:
    import swiftclient

    return Target.of(swiftclient.Connection(
        authurl=cluster.auth_url, user=swift_mod.USER, key=swift_mod.KEY,
        retries=0))


def bench_backend(args: argparse.Namespace, backend: str,
                  swift: swift_mod.SwiftCluster | None) -> list[tuple]:
    rows = []
    modes: tuple[str, ...] = (
        ("off", "on") if args.metrics == "both" else (args.metrics,))
    if swift is not None:
        modes += ("swift",)
    with tempfile.TemporaryDirectory(prefix="storaged-bench-api-") as tmp:
        servers, scrapers = {}, []
        for mode in modes:
            if mode == "swift":
                continue
            api = {"workers": str(args.workers)}
            if mode == "on":
                api["metrics_port"] = str(free_port())
            os.makedirs(os.path.join(tmp, mode))
            servers[mode] = ApiServer(os.path.join(tmp, mode), backend=backend,
                                      api=api, default={"debug": "false"})
        for mode, server in servers.items():
            server.start()
            if mode == "on":
                scrapers.append(_Scraper(int(server.api["metrics_port"])))
        try:
            targets = {mode: Target.of(server.connection())
                       for mode, server in servers.items()}
            if swift is not None:
                targets["swift"] = _swift_target(swift)
            for size in SIZES:
                for clients in CONCURRENCY:
                    count = args.count_small if size == KiB else args.count_large
                    results: dict[tuple[str, str], list[dict[str, float]]] = {
                        (mode, op): [] for mode in modes for op in ("PUT", "GET")}
                    bare: list[float] = []
                    for rep in range(args.reps):
                        # The disk's own limit for the same writes, in turn
                        # with the servers (the disk's speed wanders).
                        bare.append(durable.rate(tmp, size, clients, count))
                        # Alternate which server goes first: a machine that
                        # warms up or gets busier favours neither.
                        for mode in modes if rep % 2 == 0 else modes[::-1]:
                            container = "b-%s-%d-%d-%d" % (backend, size, clients, rep)
                            targets[mode].conn.put_container(container)
                            for op in ("PUT", "GET"):
                                results[(mode, op)].append(run_phase(
                                    targets[mode], container, op,
                                    size, clients, count, "o"))
                    for op in ("PUT", "GET"):
                        rps = {}
                        for mode in modes:
                            reps = results[(mode, op)]
                            rps[mode] = statistics.median(r["rps"] for r in reps)
                            rows.append((
                                backend, mode, op, size, clients, count, rps[mode],
                                statistics.median(r["p50"] for r in reps),
                                statistics.median(r["p99"] for r in reps),
                                statistics.median(r["mbps"] for r in reps),
                            ))
                            print("  %-9s %-3s %-3s %7s x%-2d %8.0f req/s  p50 %7.2f "
                                  "ms  p99 %7.2f ms" % (
                                      backend, mode, op, _size(size), clients,
                                      *rows[-1][6:9]), flush=True)
                        if "off" in rps and "on" in rps:
                            print("  %-9s metrics overhead %s %s x%d: %+.1f%%" % (
                                backend, op, _size(size), clients,
                                100.0 * (rps["off"] - rps["on"]) / rps["off"]),
                                flush=True)
                        if "swift" in rps:
                            print("  %-9s %s %s x%d: %.2fx Swift" % (
                                backend, op, _size(size), clients,
                                rps[modes[0]] / rps["swift"]), flush=True)
                    writes = statistics.median(bare)
                    rows.append((backend, "bare", "PUT", size, clients, count, writes,
                                 0.0, 0.0, writes * size / MiB))
                    print("  %-9s bare durable writes %s x%d: %.0f/s" % (
                        backend, _size(size), clients, writes), flush=True)
            for target in targets.values():
                target.conn.close()
        finally:
            for scraper in scrapers:
                scraper.stop.set()
            for server in servers.values():
                status = server.stop()
                if status != 0:
                    print("storaged-api exited with %d" % status, file=sys.stderr)
    return rows


def modes_first(args: argparse.Namespace) -> str:
    """The server mode whose rows the summary tables show."""
    return "off" if args.metrics == "both" else args.metrics


def _size(n: int) -> str:
    return "1 MiB" if n == MiB else "1 KiB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--backend", choices=("eventlet", "threading", "both"),
                        default="eventlet")
    parser.add_argument("--workers", default="auto",
                        help="[api] workers: a number or auto (the option's "
                        "default, and this one's)")
    parser.add_argument("--reps", type=int, help="repetitions (default 3, quick 1)")
    parser.add_argument("--metrics", choices=("off", "on", "both"), default="off",
                        help="[api] metrics_port unset, set, or both side by side "
                        "to measure the overhead (default off)")
    parser.add_argument("--count-small", type=int,
                        help="1 KiB objects per phase (default 2000, quick 200)")
    parser.add_argument("--count-large", type=int,
                        help="1 MiB objects per phase (default 200, quick 32)")
    parser.add_argument("--anchor", choices=("none", "swift"), default="none",
                        help="also run the load against a Swift all-in-one from "
                        "Debian's packages, and print storaged's ratio to it")
    parser.add_argument("--swift-workers", type=int, default=1,
                        help="workers of each Swift server (default 1)")
    args = parser.parse_args()
    args.reps = args.reps or (1 if args.quick else 3)
    args.count_small = args.count_small or (200 if args.quick else 2000)
    args.count_large = args.count_large or (32 if args.quick else 200)
    backends = ["eventlet", "threading"] if args.backend == "both" else [args.backend]
    print("storaged-api bench: %d rep(s), %d x 1 KiB and %d x 1 MiB per phase, "
          "%s worker(s), %d CPUs" % (args.reps, args.count_small, args.count_large,
                                     args.workers, os.cpu_count() or 0))
    rows = []
    with contextlib.ExitStack() as stack:
        swift = None
        if args.anchor == "swift":
            problem = swift_mod.missing()
            if problem:
                print("--anchor swift: %s" % problem, file=sys.stderr)
                return 2
            tmp = stack.enter_context(
                tempfile.TemporaryDirectory(prefix="storaged-bench-swift-"))
            swift = stack.enter_context(
                swift_mod.SwiftCluster(tmp, workers=args.swift_workers))
        for backend in backends:
            rows += bench_backend(args, backend, swift)
    print()
    print("| backend | metrics | op | size | clients | req/s | p50 ms | p99 ms "
          "| MiB/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for backend, mode, op, size, clients, _count, rps, p50, p99, mbps in rows:
        print("| %s | %s | %s | %s | %d | %.0f | %.2f | %.2f | %.1f |" % (
            backend, mode, op, _size(size), clients, rps, p50, p99, mbps))
    if args.anchor == "swift":
        print()
        print("| backend | op | size | clients | storaged req/s | Swift req/s "
              "| ratio | storaged p99 ms | Swift p99 ms |")
        print("|---|---|---|---|---|---|---|---|---|")
        swift_rows = {(r[0], r[2], r[3], r[4]): r for r in rows if r[1] == "swift"}
        for r in rows:
            if r[1] in ("swift", "on", "bare") and not (
                    r[1] == "on" and args.metrics == "on"):
                continue
            s = swift_rows[(r[0], r[2], r[3], r[4])]
            print("| %s | %s | %s | %d | %.0f | %.0f | %.2fx | %.2f | %.2f |" % (
                r[0], r[2], _size(r[3]), r[4], r[6], s[6], r[6] / s[6], r[8], s[8]))
    print()
    print("| backend | size | clients | storaged PUT/s | bare durable writes/s "
          "| share |")
    print("|---|---|---|---|---|---|")
    bare_rows = {(r[0], r[3], r[4]): r[6] for r in rows if r[1] == "bare"}
    for r in rows:
        if r[2] == "PUT" and r[1] == modes_first(args):
            b = bare_rows[(r[0], r[3], r[4])]
            print("| %s | %s | %d | %.0f | %.0f | %.0f%% |" % (
                r[0], _size(r[3]), r[4], r[6], b, 100.0 * r[6] / b))
    if args.metrics == "both":
        print()
        print("| backend | op | size | clients | overhead of metrics |")
        print("|---|---|---|---|---|")
        on = {(r[0], r[2], r[3], r[4]): r[6] for r in rows if r[1] == "on"}
        for r in rows:
            if r[1] == "off" and (r[0], r[2], r[3], r[4]) in on:
                key = (r[0], r[2], r[3], r[4])
                print("| %s | %s | %s | %d | %+.1f%% |" % (
                    r[0], r[2], _size(r[3]), r[4], 100.0 * (r[6] - on[key]) / r[6]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
