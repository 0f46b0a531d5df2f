"""``storaged-manage sync status``: the progress of container sync.

Reads the per-container records the sync workers write to the state store
(``sync/<account>/<container>/<worker>``) and, when this node's catalog has
the container, its change log's end and the worker's sync points now, so
that "rows behind" is current even between passes.
"""

from __future__ import annotations

import time
from typing import Any

from oslo_config import cfg

from storaged import exception
from storaged.common import status as status_mod
from storaged.manage import output
from storaged.manage.data import split_target

EXIT_OK = 0
EXIT_FAILED = 1


def add_parsers(subparsers: Any) -> None:
    """Declare the ``sync`` command."""
    p = subparsers.add_parser("sync", help="progress of container sync")
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    a = sub.add_parser(
        "status",
        help="per container and sync worker: rows behind, last success, last "
        "error, rate",
        description="Show, for every container that syncs and every sync worker, "
        "the target, the rows of the change log not yet pushed, the sync "
        "points, when a pass last succeeded, the last error and the rate of the "
        "last pass. Exit status 1 when a container's last pass failed, or "
        "when a record is late: its worker has not written it again within "
        "its interval and a margin (it was killed, is stuck, or its node is "
        "down).",
    )
    a.add_argument("--container", default="", metavar="ACCOUNT/CONTAINER",
                    help="only this container")
    output.add_format(a)


def _live(conf: cfg.ConfigOpts, records: list[dict[str, Any]]) -> None:
    """Refresh rows behind and sync points from this node's catalog."""
    from storaged.catalog.factory import open_catalog

    try:
        catalog = open_catalog(conf)
    except exception.StoragedError:
        return
    try:
        for rec in records:
            try:
                broker = catalog.container(rec["account"], rec["container"])
                try:
                    max_row = broker.get_max_row()
                    point1, point2 = broker.get_sync_points(rec["worker"])
                finally:
                    broker.close()
            except (exception.StoragedError, KeyError, ValueError):
                continue
            rec.update(max_row=max_row, point1=point1, point2=point2,
                       rows_behind=max(0, max_row - point1))
    finally:
        catalog.close()


def _failing(rec: dict[str, Any]) -> bool:
    error_at = rec.get("last_error_at") or 0
    return bool(error_at) and error_at >= (rec.get("last_success_at") or 0)


def _health(rec: dict[str, Any], now: float, interval: float) -> str:
    """Classify a progress record: late, failing or ok.

    Late first: a record its worker stopped writing (killed, hung, the node
    down) says nothing current, whatever it says.  It is judged as
    ``storaged-manage status`` judges a daemon's record; a record without
    ``due_at`` (written before records carried it) is given this node's
    ``[sync] interval``, one whose ``due_at`` is empty (``--once``) is
    never late.
    """
    written = rec.get("updated_at")
    due = rec["due_at"] if "due_at" in rec else (
        written + interval if written else None)
    if status_mod.is_late(due, written, now):
        return "late"
    return "failing" if _failing(rec) else "ok"


def _ago(ts: float | None, now: float) -> str:
    if not ts:
        return "never"
    delta = max(0.0, now - ts)
    if delta < 120:
        return "%ds ago" % delta
    if delta < 7200:
        return "%dm ago" % (delta / 60)
    return "%dh ago" % (delta / 3600)


def status(conf: cfg.ConfigOpts) -> int:
    """``sync status``."""
    from storaged import kvs
    from storaged.sync import daemon

    args = conf.command
    prefix = daemon.PROGRESS_PREFIX
    if args.container:
        account, container = split_target(args.container)
        prefix += "%s/%s/" % (account, container)
    store = kvs.get_store(conf)
    try:
        records = [dict(value) for _key, value in store.scan(prefix)
                   if isinstance(value, dict)]
    finally:
        store.close()
    _live(conf, records)
    records.sort(key=lambda r: (str(r.get("account")), str(r.get("container")),
                                str(r.get("worker"))))
    now = time.time()
    for rec in records:
        rec["health"] = _health(rec, now, conf.sync.interval)

    def human() -> None:
        if not records:
            print("No container sync progress recorded yet.")
            return
        rows = [("CONTAINER", "WORKER", "TARGET", "BEHIND", "POINTS", "LAST SUCCESS",
                 "RATE", "HEALTH")]
        for rec in records:
            rows.append((
                "%s/%s" % (rec.get("account"), rec.get("container")),
                str(rec.get("worker", "-")),
                str(rec.get("target") or "-"),
                str(rec.get("rows_behind", "-")),
                "%s/%s" % (rec.get("point1", "-"), rec.get("point2", "-")),
                _ago(rec.get("last_success_at"), now),
                "%.1f/s" % float(rec.get("rate") or 0.0),
                rec["health"],
            ))
        output.table(rows)
        for rec in records:
            if rec["health"] == "late":
                print("%s/%s (%s): late: last written %s, by a worker that "
                      "has stopped writing" % (
                          rec.get("account"), rec.get("container"),
                          rec.get("worker"), _ago(rec.get("updated_at"), now)))
            if rec.get("last_error"):
                print("%s/%s (%s): last error %s: %s" % (
                    rec.get("account"), rec.get("container"), rec.get("worker"),
                    _ago(rec.get("last_error_at"), now), rec["last_error"]))

    output.emit(args.format, {"containers": records}, human)
    bad = [r for r in records if r["health"] in ("failing", "late")]
    return EXIT_FAILED if bad else EXIT_OK


COMMANDS: dict[tuple[str, ...], Any] = {
    ("sync", "status"): status,
}
