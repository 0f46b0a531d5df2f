#!/usr/bin/env python3
"""A 1 GiB static large object through a real storaged-api: MiB/s and peak RSS.

Starts ``storaged-api`` (the functional tests' harness), then, in one run:

* the anchor: one plain object of the same size, PUT streamed (chunked)
  and GET streamed, by one client;
* the SLO: its segments PUT by ``--clients`` kept-alive connections, the
  manifest PUT with ``?multipart-manifest=put`` (every segment checked by
  the server), then the whole object GET streamed by one client (the
  server reads the segments one after another).

Each figure is the median of ``--reps`` repetitions; the table shows MiB/s
of each phase, the SLO's as a ratio of the plain object's, and the peak RSS
(``VmHWM``) of the serving process(es) at start and after each phase,
which shows the memory a large object costs the server: a segment at a
time, never the object.  Every GET's MD5 is checked against what was sent.  Nothing is
asserted.

Usage: python -m bench.api_slo [--quick] [--size-mib N] [--segment-mib N]
                               [--clients N] [--reps N] [--backend B]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import http.client
import json
import os
import statistics
import sys
import tempfile
import time

from tests.functional.api.apiserver import ApiServer

MiB = 1024 * 1024
PATH = "/v1/AUTH_test/"


def peak_rss_mib(pids: list[int]) -> float:
    """The largest peak resident set (VmHWM) of the processes, in MiB."""
    peak = 0
    for pid in pids:
        try:
            with open("/proc/%d/status" % pid) as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        except OSError:
            continue
    return peak / 1024


class Client:
    """One kept-alive connection with a token."""

    def __init__(self, port: int, token: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        self.token = token

    def put(self, path: str, body, headers: dict[str, str] | None = None,
            expect: int = 201) -> str:
        sent = {"X-Auth-Token": self.token, **(headers or {})}
        if not isinstance(body, bytes):
            sent["Transfer-Encoding"] = "chunked"
        self.conn.request("PUT", PATH + path, body=body, headers=sent,
                          encode_chunked=not isinstance(body, bytes))
        resp = self.conn.getresponse()
        text = resp.read()
        if resp.status != expect:
            raise RuntimeError("PUT %s: %d %r" % (path, resp.status, text[:300]))
        return resp.getheader("Etag", "")

    def get_md5(self, path: str) -> tuple[str, int]:
        self.conn.request("GET", PATH + path, headers={"X-Auth-Token": self.token})
        resp = self.conn.getresponse()
        if resp.status != 200:
            raise RuntimeError("GET %s: %d %r" % (path, resp.status, resp.read()[:300]))
        digest = hashlib.md5()
        total = 0
        while True:
            chunk = resp.read(MiB)
            if not chunk:
                break
            digest.update(chunk)
            total += len(chunk)
        return digest.hexdigest(), total

    def close(self) -> None:
        self.conn.close()


def _note_peak(server: ApiServer, peaks: dict[str, float], phase: str) -> None:
    peaks[phase] = max(peaks.get(phase, 0.0), peak_rss_mib(server.serving_pids()))


def _repeat(block: bytes, times: int):
    for _ in range(times):
        yield block


def run_once(server: ApiServer, token: str, args: argparse.Namespace,
             rep: int, peaks: dict[str, float]) -> dict[str, float]:
    block = os.urandom(MiB)
    segment = block * args.segment_mib
    segments = args.size_mib // args.segment_mib
    size = segments * len(segment)
    expected = hashlib.md5()
    for _ in range(segments):
        expected.update(segment)
    container = "slo-%d" % rep
    client = Client(server.port, token)
    client.put(container, b"")
    client.put(container + "_segments", b"")

    started = time.perf_counter()
    client.put("%s/plain" % container, _repeat(block, size // MiB))
    plain_put = size / MiB / (time.perf_counter() - started)
    _note_peak(server, peaks, "plain PUT")
    started = time.perf_counter()
    digest, n = client.get_md5("%s/plain" % container)
    plain_get = size / MiB / (time.perf_counter() - started)
    _note_peak(server, peaks, "plain GET")
    assert (digest, n) == (expected.hexdigest(), size), "plain object differs"

    pool = [Client(server.port, token) for _ in range(args.clients)]

    manifest: list[dict[str, object]] = [{} for _ in range(segments)]

    def put_segments(worker: int) -> None:
        # Each connection is used by one thread only.
        for index in range(worker, segments, args.clients):
            name = "%s_segments/big/%08d" % (container, index)
            etag = pool[worker].put(name, segment)
            manifest[index] = {"path": "/" + name, "etag": etag.strip('"'),
                               "size_bytes": len(segment)}

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(args.clients) as executor:
        for future in [executor.submit(put_segments, w) for w in range(args.clients)]:
            future.result()
    client.put("%s/big?multipart-manifest=put" % container,
               json.dumps(manifest).encode())
    slo_put = size / MiB / (time.perf_counter() - started)
    _note_peak(server, peaks, "SLO PUT")
    for other in pool:
        other.close()
    started = time.perf_counter()
    digest, n = client.get_md5("%s/big" % container)
    slo_get = size / MiB / (time.perf_counter() - started)
    _note_peak(server, peaks, "SLO GET")
    assert (digest, n) == (expected.hexdigest(), size), "SLO content differs"
    client.close()
    return {"plain_put": plain_put, "plain_get": plain_get,
            "slo_put": slo_put, "slo_get": slo_get}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 MiB, one rep")
    parser.add_argument("--size-mib", type=int, help="object size (default 1024)")
    parser.add_argument("--segment-mib", type=int, default=64,
                        help="SLO segment size (default 64)")
    parser.add_argument("--clients", type=int, default=4,
                        help="connections uploading segments (default 4)")
    parser.add_argument("--reps", type=int, help="repetitions (default 3)")
    parser.add_argument("--backend", choices=("eventlet", "threading"),
                        default="eventlet")
    args = parser.parse_args()
    args.size_mib = args.size_mib or (64 if args.quick else 1024)
    args.segment_mib = min(args.segment_mib, args.size_mib)
    args.reps = args.reps or (1 if args.quick else 3)
    print("storaged-api SLO bench: %d MiB in %d MiB segments, %d rep(s), %s backend"
          % (args.size_mib, args.segment_mib, args.reps, args.backend), flush=True)
    runs = []
    with tempfile.TemporaryDirectory(prefix="storaged-bench-slo-") as tmp:
        server = ApiServer(tmp, backend=args.backend, default={"debug": "false"})
        with server:
            conn = server.connection()
            _url, token = conn.get_auth()
            conn.close()
            rss_before = peak_rss_mib(server.serving_pids())
            peaks: dict[str, float] = {}
            for rep in range(args.reps):
                runs.append(run_once(server, token, args, rep, peaks))
                print("  rep %d: %s" % (rep, ", ".join(
                    "%s %.0f MiB/s" % item for item in runs[-1].items())), flush=True)
            status = server.stop()
            if status != 0:
                print("storaged-api exited with %d" % status, file=sys.stderr)
    med = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    print()
    print("| phase | plain object MiB/s | SLO MiB/s | SLO / plain |")
    print("|---|---|---|---|")
    for op in ("put", "get"):
        plain, slo = med["plain_" + op], med["slo_" + op]
        print("| %s | %.0f | %.0f | %.2f |" % (op.upper(), plain, slo, slo / plain))
    print()
    print("server peak RSS (VmHWM, MiB): %.0f at start; after %s"
          % (rss_before, ", ".join("%s %.0f" % item for item in peaks.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
