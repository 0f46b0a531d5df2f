#!/usr/bin/env python3
"""What the metrics cost a request of storaged-api, measured in-process.

The end-to-end figure (``python -m bench.api --metrics both``) is the
ratio of two request rates, each noisy by tens of percent on a shared
machine: it cannot tell a 3% cost from none.  This measures the cost
itself: the metric updates one request makes (in progress up and down, the
request counter, the latency histogram, bytes sent and received), with
prometheus_client's values in memory (``[api] metrics_port`` unset) and in
multiprocess mode (the API with a metrics port: memory-mapped files), in
the same process, alternating, median of ``--reps``; and what one scrape
of ``/metrics`` (every memory-mapped file read and added up) takes.  The difference is
then put against the time of a request served at ``--rate`` requests per
second (default 650, the best 1 KiB GET rate ``bench.api`` measured on
this machine, so the share is the largest any request pays).

Usage: python -m bench.metrics_cost [--requests N] [--reps N] [--rate R]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import prometheus_client

from storaged.metrics import multiproc
from storaged.metrics.registry import Metrics


def _declare(metrics: Metrics) -> Metrics:
    metrics.gauge("api_requests_in_progress", "Requests being served.")
    metrics.counter("api_requests", "Requests.", ("method", "status"))
    metrics.histogram("api_request_duration_seconds", "Latency.", ("method",))
    metrics.counter("api_received_bytes", "Bytes in.", ("method",))
    metrics.counter("api_sent_bytes", "Bytes out.", ("method",))
    return metrics


def one_request(m: Metrics) -> None:
    """The updates of one served GET (storaged.api.app's, in order)."""
    m.incr("api_requests_in_progress")
    m.incr("api_requests_in_progress", -1)
    m.incr("api_requests", method="GET", status="2xx")
    m.observe("api_request_duration_seconds", 0.0012, method="GET")
    m.incr("api_sent_bytes", 1024, method="GET")


def per_request(m: Metrics, count: int) -> float:
    """Seconds the updates of one request take (mean over ``count``)."""
    started = time.perf_counter()
    for _ in range(count):
        one_request(m)
    return (time.perf_counter() - started) / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--rate", type=float, default=650.0,
                        help="requests/s of the request to compare with")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="storaged-bench-metrics-") as tmp:
        off = _declare(Metrics("api"))
        one_request(off)  # its labelled values made in memory
        multiproc.enable(tmp)
        try:
            on = _declare(Metrics("api"))
            one_request(on)  # made now: memory-mapped
            runs: dict[str, list[float]] = {"off": [], "on": []}
            for rep in range(args.reps):
                for mode in ("off", "on") if rep % 2 == 0 else ("on", "off"):
                    runs[mode].append(per_request(off if mode == "off" else on,
                                                  args.requests))
            # A scrape of /metrics, as Prometheus makes every few seconds
            # (bench.api's scraper: once a second): every file read, added up.
            scrapes = []
            for _ in range(args.reps):
                started = time.perf_counter()
                prometheus_client.generate_latest(multiproc.collector_registry(tmp))
                scrapes.append(time.perf_counter() - started)
        finally:
            multiproc.disable()
    cost_off = statistics.median(runs["off"]) * 1e6
    cost_on = statistics.median(runs["on"]) * 1e6
    request = 1e6 / args.rate
    print(f"metric updates of one request, median of {args.reps} x {args.requests:,}")
    print(f"  in memory (no metrics port)      {cost_off:7.2f} us "
          f"({100 * cost_off / request:.2f}% of a request at {args.rate:.0f}/s)")
    print(f"  multiprocess (metrics port set)  {cost_on:7.2f} us "
          f"({100 * cost_on / request:.2f}%)")
    scrape = statistics.median(scrapes) * 1e3
    print(f"  one scrape of /metrics           {scrape:7.2f} ms "
          f"({scrape / 10:.2f}% of a second: at one scrape a second)")
    extra = cost_on - cost_off
    print(f"  cost of turning metrics on       {extra:7.2f} us "
          f"({100 * extra / request:.2f}% of a {request:.0f} us request)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
