#!/usr/bin/env python3
"""Objects per second of ``storaged-sync`` pushing to a real ``storaged-api``.

Cases (each on a fresh source state directory; one target ``storaged-api``):

* **initial** sync of 1,000 x 1 KiB and of 10,000 x 4 KiB objects: the
  objects are stored through the object service (file back end, durable),
  then ``storaged-sync --once`` pushes them (HEAD 404 + PUT each, realm
  form, signed);
* **incremental**: one object of the container changed, then one more
  ``--once`` pass, for containers of 1,000, 10,000 and 100,000 rows.  The
  100,000-row container is built in the catalog directly (rows only: a
  real initial sync of it would take minutes) and its sync points set where
  a finished initial sync leaves them; the changed object is a real PUT
  through the object service.  The pass reads only the rows after its sync
  point and sends one HEAD and one PUT, whatever the container's size: the
  table shows rows read, requests and seconds per size.

Times: ``pass`` is the engine's own time for the container (from its report
line); ``process`` is the wall time of the ``--once`` process, start-up
included, as the Swift measurement (``swift-container-sync once``) was.
The anchor is Swift's serial container-sync measured on a 2-vCPU machine
(research notes): ~17 objects/s for 1,000 x 1 KiB.  A serial run of
storaged-sync (``concurrency = 1``) is shown beside the concurrent one.
The CPU columns say where the time goes: the target (one
``storaged-api`` process by default) is usually the one that is saturated.
Nothing is asserted.

Usage: python -m bench.sync [--quick] [--concurrency N] [--backend B]
                            [--target-workers N]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from tests.functional.api.apiserver import REALM_KEY  # noqa: E402
from tests.functional.api.apiserver import ApiServer  # noqa: E402

os.environ.setdefault("STORAGED_CONCURRENCY_BACKEND", "threading")
from storaged import concurrency  # noqa: E402

concurrency.setup("threading")

from oslo_config import cfg  # noqa: E402

from storaged.catalog import Catalog  # noqa: E402
from storaged.catalog import Timestamp  # noqa: E402
from storaged.common import config  # noqa: E402
from storaged.objects import ObjectRepository  # noqa: E402

KiB = 1024
SYNC_KEY = "bench-sync-key"
WORKER = "bench:sync"
SWIFT_OBJECTS_PER_S = 17.0
_REPORT = re.compile(
    r"Container sync report: (?P<c>\S+) .*?, (?P<secs>[0-9.]+)s, puts=(?P<puts>\d+) "
    r"deletes=(?P<deletes>\d+) skips=(?P<skips>\d+) superseded=\d+ "
    r"failures=(?P<failures>\d+) bytes=\d+ rechecked=(?P<rechecked>\d+) "
    r"new_rows=(?P<new>\d+)"
)


class Source:
    """A source node: its state directory, configuration and sync daemon."""

    def __init__(self, base: str, name: str, target: ApiServer, backend: str,
                 concurrency_: int) -> None:
        self.dir = os.path.join(base, name)
        os.makedirs(self.dir)
        self.name = name
        self.backend = backend
        self.realms = os.path.join(self.dir, "realms.conf")
        with open(self.realms, "w") as f:
            f.write("[us]\nkey = %s\ncluster_dst = %s/v1/\n" % (REALM_KEY, target.url))
        self.conf = os.path.join(self.dir, "storaged.conf")
        self.log = os.path.join(self.dir, "sync.log")
        with open(self.conf, "w") as f:
            f.write("\n".join([
                "[DEFAULT]",
                "state_path = %s" % os.path.join(self.dir, "state"),
                "node_id = bench",
                "log_file = %s" % self.log,
                "[sync]",
                "realms_conf = %s" % self.realms,
                "concurrency = %d" % concurrency_,
                "container_time = 3600",
                "request_timeout = 30",
            ]) + "\n")
        parsed = config.prepare_service(["--config-file", self.conf], prog="bench",
                                        setup_logging=False, conf=cfg.ConfigOpts())
        self.catalog_path = parsed.catalog.path
        self.service = ObjectRepository.from_conf(parsed)

    def container(self, name: str, target: ApiServer) -> None:
        target.connection().put_container(
            name, headers={"X-Container-Sync-Key": SYNC_KEY})
        self.service.create_container("AUTH_test", name, {
            "X-Container-Sync-To": "//us/dst/AUTH_test/%s" % name,
            "X-Container-Sync-Key": SYNC_KEY})

    def put(self, container: str, name: str, data: bytes) -> None:
        self.service.put_object("AUTH_test", container, name, [data], len(data))

    def run_once(self) -> dict[str, float]:
        env = dict(os.environ, STORAGED_CONCURRENCY_BACKEND=self.backend)
        env.pop("NOTIFY_SOCKET", None)
        open(self.log, "w").close()
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "storaged.cmd.sync", "--config-file", self.conf,
             "--once"], cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        with open(self.log) as f:
            log = f.read()
        if result.returncode != 0:
            raise RuntimeError("storaged-sync failed:\n%s\n%s" % (
                result.stdout + result.stderr, log[-3000:]))
        match = list(_REPORT.finditer(log))[-1]
        out = {k: float(v) for k, v in match.groupdict().items() if k != "c"}
        out["process"] = wall
        return out


def object_count(target: ApiServer, container: str) -> int:
    headers = target.connection().head_container(container)
    return int(headers["x-container-object-count"])


def initial(base: str, target: ApiServer, count: int, size: int, backend: str,
            conc: int) -> tuple[Source, str, dict[str, float]]:
    name = "init-%d-%d-c%d" % (count, size, conc)
    src = Source(base, name, target, backend, conc)
    src.container(name, target)
    data = os.urandom(size)
    for i in range(count):
        src.put(name, "obj-%06d" % i, data)
    result = src.run_once()
    got = object_count(target, name)
    if got != count or result["puts"] != count:
        raise RuntimeError("%s: %d objects on the target, %d puts" % (
            name, got, result["puts"]))
    return src, name, result


def incremental(src: Source, container: str) -> dict[str, float]:
    src.put(container, "obj-000000", b"changed at %f" % time.time())
    return src.run_once()


def synthetic(base: str, target: ApiServer, rows: int, backend: str,
              conc: int) -> tuple[Source, str]:
    """A container of ``rows`` rows, as left by a finished initial sync."""
    name = "big-%d" % rows
    src = Source(base, name, target, backend, conc)
    src.container(name, target)
    src.put(name, "obj-000000", b"first")
    # Rows only, in a catalog opened with synchronous=normal for speed.
    catalog = Catalog(src.catalog_path, synchronous="normal")
    broker = catalog.container("AUTH_test", name)
    etag = "0" * 32
    now = Timestamp.now()
    for i in range(1, rows):
        broker.put_object("obj-%06d" % i, now, 1, "application/octet-stream", etag,
                          backend="local", location="none")
    top = broker.get_max_row()
    broker.set_sync_points(WORKER, top, top)
    broker.close()
    catalog.close()
    return src, name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller containers (a smoke run)")
    parser.add_argument("--concurrency", type=int, default=32,
                        help="[sync] concurrency for the concurrent runs")
    parser.add_argument("--target-workers", type=int, default=1,
                        help="[api] workers of the target storaged-api")
    parser.add_argument("--backend", default="eventlet",
                        choices=("eventlet", "threading"))
    args = parser.parse_args()
    big = (1000, 5000, 20000) if args.quick else (1000, 10000, 100000)
    cases = [(1000, KiB), (2000 if args.quick else 10000, 4 * KiB)]
    base = tempfile.mkdtemp(prefix="bench-sync-")
    os.makedirs(os.path.join(base, "target"))
    target = ApiServer(os.path.join(base, "target"),
                       api={"workers": str(args.target_workers)}).start()
    print("storaged-sync -> storaged-api (%d worker(s)), %s backend, %d CPU(s), "
          "load average %.1f" % (args.target_workers, args.backend,
                                 os.cpu_count() or 0, os.getloadavg()[0]))
    print()
    print("Initial sync (HEAD 404 + PUT per object, signed)")
    rows = [("objects", "size", "concurrency", "pass s", "objects/s",
             "process s", "objects/s incl. start", "x Swift (17/s)",
             "CPU ms/obj sync", "CPU ms/obj target")]
    keep = None
    try:
        for count, size in cases:
            for conc in (1, args.concurrency):
                if conc == 1 and count > 1000:
                    continue  # the serial run only for the anchor's case
                sync_cpu, target_cpu = _cpu(), _proc_cpu(target)
                src, name, r = initial(base, target, count, size, args.backend, conc)
                sync_cpu, target_cpu = _cpu() - sync_cpu, _proc_cpu(target) - target_cpu
                rate = count / r["secs"]
                rows.append((str(count), "%d KiB" % (size // KiB), str(conc),
                             "%.2f" % r["secs"], "%.0f" % rate,
                             "%.2f" % r["process"], "%.0f" % (count / r["process"]),
                             "%.1f" % (count / r["process"] / SWIFT_OBJECTS_PER_S),
                             "%.2f" % (1000 * sync_cpu / count),
                             "%.2f" % (1000 * target_cpu / count)))
                if count > 1000:
                    keep = (src, name)
        _table(rows)
        print()
        print("Incremental sync: one object changed, then one pass")
        rows = [("container rows", "rows read", "requests", "puts", "pass s",
                 "process s")]
        assert keep is not None
        measured = [(object_count(target, keep[1]), "", incremental(*keep))]
        for n in big:
            src, name = synthetic(base, target, n, args.backend, args.concurrency)
            measured.append((n, " (rows only)", incremental(src, name)))
        for n, note, r in sorted(measured, key=lambda m: (m[0], m[1])):
            rows.append((
                "%d%s" % (n, note),
                "%d" % (r["new"] + r["rechecked"]),
                "%d" % (r["puts"] + r["skips"] + r["deletes"] + r["puts"]),
                "%d" % r["puts"], "%.3f" % r["secs"], "%.2f" % r["process"]))
        _table(rows)
        print()
        print("requests = HEADs + PUTs + DELETEs sent for the pass; rows read = "
              "rows after the sync points that the pass looked at.")
    finally:
        target.kill()
    return 0


def _cpu() -> float:
    """CPU seconds of the finished children (the ``--once`` processes)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _proc_cpu(server: ApiServer) -> float:
    """CPU seconds of the target's processes (its session: main and workers)."""
    assert server.proc is not None
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == server.proc.pid:  # session id: started in its own
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    sys.exit(main())
