#!/usr/bin/env python3
"""Memory and CPU of an idle periodic daemon, on both concurrency backends.

Starts the functional tests' demo daemon (the real daemon code path:
bootstrap, prepare_service, PeriodicService, status in the sqlite state store)
with a long interval, lets it settle, then samples resident memory and CPU
time of the daemon and its children from /proc over a window.

Targets (SPEC §12): <= 60 MB RSS per daemon, ~0 % CPU.

Usage: python -m bench.idle [--window SECONDS]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICKS = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            found.append(int(entry))
    return found


def _rss_kib(pid: int) -> int:
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _cpu_ticks(pid: int) -> int:
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def measure(backend: str, window: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        conf = os.path.join(tmp, "storaged.conf")
        with open(conf, "w") as f:
            f.write(
                "[DEFAULT]\nstate_path = %s\nlog_file = %s\n"
                "[demo]\ninterval = 3600\ncount = 1\nitem_time = 0\n"
                % (tmp, os.path.join(tmp, "demo.log"))
            )
        env = dict(os.environ, STORAGED_CONCURRENCY_BACKEND=backend)
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.functional.demo_daemon",
             "--config-file", conf],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(5)  # start-up and imports settle
            pids = [proc.pid, *_children(proc.pid)]
            cpu0 = {p: _cpu_ticks(p) for p in pids}
            t0 = time.monotonic()
            time.sleep(window)
            elapsed = time.monotonic() - t0
            cpu = sum(_cpu_ticks(p) - cpu0[p] for p in pids) / TICKS
            rss = {p: _rss_kib(p) / 1024 for p in pids}
        finally:
            proc.terminate()
            proc.wait(30)
    return {
        "processes": len(pids),
        "max_rss_mib": max(rss.values()),
        "total_rss_mib": sum(rss.values()),
        "cpu_percent": 100.0 * cpu / elapsed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--window", type=float, default=20.0)
    args = parser.parse_args()
    print("idle daemon, %.0f s window (target: <= 60 MB RSS each, ~0%% CPU)"
          % args.window)
    for backend in ("eventlet", "threading"):
        r = measure(backend, args.window)
        print(
            "%-9s processes=%d  max RSS %.1f MiB (%s)  total RSS %.1f MiB  "
            "CPU %.2f%%"
            % (backend, r["processes"], r["max_rss_mib"],
               "met" if r["max_rss_mib"] <= 60 else "NOT met",
               r["total_rss_mib"], r["cpu_percent"])
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
