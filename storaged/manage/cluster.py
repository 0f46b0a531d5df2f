"""``storaged-manage cluster members|locks``: what the coordination back end sees."""

from __future__ import annotations

import os
import time
from typing import Any

from oslo_config import cfg

from storaged import exception
from storaged.manage import output

EXIT_OK = 0
EXIT_FAILED = 1


def add_parsers(subparsers: Any) -> None:
    """Declare the ``cluster`` command."""
    p = subparsers.add_parser("cluster", help="members and locks of the cluster")
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    a = sub.add_parser(
        "members",
        help="the members of the storaged group with their capabilities",
        description="List the members of the storaged group as the coordination "
        "back end sees them now. When the back end cannot be reached, the last "
        "view the node agents published to the state store is shown instead "
        "(and the exit status is 1).",
    )
    output.add_format(a)
    a = sub.add_parser("locks", help="the locks held in the coordination back end")
    output.add_format(a)


def _coordinator(conf: cfg.ConfigOpts) -> Any:
    from storaged import coordination

    # A short-lived observer: it never joins a group, so it is never a member.
    coordinator = coordination.Coordinator.from_conf(conf, "manage", os.getpid())
    coordinator.start()
    return coordinator


def members(conf: cfg.ConfigOpts) -> int:
    """``cluster members``."""
    args = conf.command
    group = conf.heartbeat.group
    source = "coordination back end"
    try:
        coordinator = _coordinator(conf)
        try:
            found = coordinator.get_members(group)
        finally:
            coordinator.stop()
        rc = EXIT_OK
    except exception.StoragedError as err:
        found, source, rc = _published(conf, err)
    data = {"group": group, "source": source, "members": found}

    def human() -> None:
        if source != "coordination back end":
            print("(%s)" % source)
        if not found:
            print("Group %s has no members." % group)
            return
        now = time.time()
        rows = [("MEMBER", "HOST", "VERSION", "DAEMONS", "BACK ENDS", "UP")]
        for member, caps in sorted(found.items()):
            started = caps.get("started_at")
            rows.append((
                member, str(caps.get("host", "-")), str(caps.get("version", "-")),
                ",".join(caps.get("daemons") or []) or "-",
                ",".join(caps.get("backends") or []) or "-",
                _span(now - started) if started else "-",
            ))
        output.table(rows)

    output.emit(args.format, data, human)
    return rc


def _published(
    conf: cfg.ConfigOpts, err: Exception
) -> tuple[dict[str, Any], str, int]:
    from storaged import kvs
    from storaged.heartbeat import agent

    store = kvs.get_store(conf)
    try:
        view = store.get(agent.VIEW_KEY)
    except exception.KVSNotFound:
        raise exception.StoragedError(
            "coordination back end unreachable (%s) and no published view" % err
        ) from err
    finally:
        store.close()
    age = time.time() - float(view.get("published_at", 0))
    source = "coordination back end unreachable (%s); view published %s ago by %s" % (
        err, _span(age), view.get("published_by"))
    return dict(view.get("members") or {}), source, EXIT_FAILED


def locks(conf: cfg.ConfigOpts) -> int:
    """``cluster locks``."""
    args = conf.command
    coordinator = _coordinator(conf)
    try:
        names = sorted(coordinator.list_locks())
    except NotImplementedError as err:
        raise exception.StoragedError(
            "this coordination back end cannot list its locks"
        ) from err
    finally:
        coordinator.stop()

    def human() -> None:
        if not names:
            print("No locks are held.")
        for name in names:
            print(name)

    output.emit(args.format, {"locks": names}, human)
    return EXIT_OK


def _span(seconds: float) -> str:
    if seconds < 120:
        return "%ds" % seconds
    if seconds < 7200:
        return "%dm" % (seconds / 60)
    return "%dh" % (seconds / 3600)


COMMANDS: dict[tuple[str, ...], Any] = {
    ("cluster", "members"): members,
    ("cluster", "locks"): locks,
}
