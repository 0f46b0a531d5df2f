"""``storaged-manage``: the operator's command line.

Each sub-command is a small function taking the parsed configuration and
returning an exit status; human output by default, ``--format json`` for
scripts.  Errors are one line on stderr and a non-zero exit status.

Sub-commands::

    storaged-manage [--config-file F] config check [--changed] [--format json]
    storaged-manage [--config-file F] status [--format json]
    storaged-manage [--config-file F] container create|list|show|set|delete ...
    storaged-manage [--config-file F] object put|get|head|delete|list ...
    storaged-manage [--config-file F] store verify|scrub ...
    storaged-manage [--config-file F] cache list|stats|queue|delete|prune|clean ...
    storaged-manage [--config-file F] cluster members|locks [--format json]
    storaged-manage [--config-file F] sync status [--container A/C] [--format json]

(see :mod:`storaged.manage.data`, :mod:`storaged.manage.cache`,
:mod:`storaged.manage.cluster` and :mod:`storaged.manage.sync` for their
arguments).
"""

from __future__ import annotations

from collections.abc import Callable
import sys
import time
from typing import Any

from oslo_config import cfg

from storaged import concurrency
from storaged import exception
from storaged.common import config
from storaged.common import status as status_mod
from storaged.manage import cache as cache_cmds
from storaged.manage import cluster
from storaged.manage import data
from storaged.manage import output
from storaged.manage import sync as sync_cmds

PROG = "storaged-manage"

EXIT_OK = 0
EXIT_FAILED = 1

def _add_commands(subparsers: Any) -> None:
    p_config = subparsers.add_parser(
        "config", help="inspect the configuration"
    )
    config_sub = p_config.add_subparsers(dest="action", metavar="ACTION")
    config_sub.required = True
    p_check = config_sub.add_parser(
        "check",
        help="validate the configuration files and print the effective "
        "configuration, secrets masked",
        description="Validate every option of the configuration files (the same "
        "checks a daemon makes at start-up) and print the effective value of "
        "every option, with passwords and keys masked. Exit status 0 when the "
        "configuration is valid, 2 with one line naming the file, section, "
        "option and problem when it is not.",
    )
    p_check.add_argument(
        "--changed",
        action="store_true",
        help="print only the options whose value differs from the default "
        "(what the files change), secrets masked",
    )
    output.add_format(p_check)

    p_status = subparsers.add_parser(
        "status",
        help="show every daemon of every node, from the state store",
        description="Show the last pass of every storaged daemon on every node "
        "that shares this state store: state, when the last pass ran, whether "
        "it succeeded, its counters, and when the next one is due. Exit status "
        "1 when a daemon's last pass failed or it is overdue.",
    )
    output.add_format(p_status)
    data.add_parsers(subparsers)
    cache_cmds.add_parsers(subparsers)
    cluster.add_parsers(subparsers)
    sync_cmds.add_parsers(subparsers)


COMMAND_OPT = cfg.SubCommandOpt(
    "command",
    title="commands",
    description="Run '%s COMMAND --help' for the options of each." % PROG,
    handler=_add_commands,
)


# -- config check ------------------------------------------------------------


def config_check(conf: cfg.ConfigOpts) -> int:
    """Print the effective configuration (validation already passed).

    With ``--changed``, only the options that differ from their defaults.
    """
    files = config.config_files(conf)
    changed_only = conf.command.changed
    effective = (config.changed_config(conf) if changed_only
                 else config.effective_config(conf))

    def human() -> None:
        print("Configuration is valid.")
        print("Files read: %s" % (", ".join(files) or "none (defaults only)"))
        if changed_only and not effective:
            print("No change: every option has its default value.")
        for section in sorted(effective, key=lambda s: (s != "DEFAULT", s)):
            print()
            print("[%s]" % section)
            for name, value in sorted(effective[section].items()):
                if isinstance(value, bool):
                    value = "true" if value else "false"  # as written in a file
                elif isinstance(value, list):
                    value = ",".join(str(v) for v in value)
                print("%s = %s" % (name, "" if value is None else value))

    output.emit(
        conf.command.format,
        {"valid": True, "files": files, "changed_only": changed_only,
         "config": effective},
        human,
    )
    return EXIT_OK


# -- status ------------------------------------------------------------------


def _ago(ts: float | None, now: float) -> str:
    if not ts:
        return "never"
    delta = now - ts
    if delta < 0:
        return "in %s" % _span(-delta)
    return "%s ago" % _span(delta)


def _span(seconds: float) -> str:
    if seconds < 120:
        return "%ds" % seconds
    if seconds < 7200:
        return "%dm" % (seconds / 60)
    if seconds < 172800:
        return "%dh" % (seconds / 3600)
    return "%dd" % (seconds / 86400)


def assess(record: dict[str, Any], now: float) -> str:
    """Classify a daemon's record: ok, failed, late, stopped or starting."""
    state = record.get("state")
    last = record.get("last_pass") or {}
    if state == "stopped":
        return "stopped"
    due = record.get("next_pass_at")
    if state == "idle" and status_mod.is_late(due, record.get("updated_at"), now):
        return "late"
    if last and not last.get("ok", True):
        return "failed"
    if not last:
        return "starting"
    return "ok"


def status(conf: cfg.ConfigOpts) -> int:
    """Show every daemon's last pass from the state store."""
    from storaged import kvs

    now = time.time()
    try:
        store = kvs.get_store(conf)
    except exception.StoragedError as err:
        print("%s: cannot open the state store: %s" % (PROG, err), file=sys.stderr)
        return EXIT_FAILED
    try:
        records = status_mod.StatusBoard(store).read_all()
    except exception.StoragedError as err:
        print("%s: cannot read the state store: %s" % (PROG, err), file=sys.stderr)
        return EXIT_FAILED
    finally:
        store.close()
    for rec in records:
        rec["health"] = assess(rec, now)

    def human() -> None:
        where = kvs.mask_url(conf.kvs.backend_url)
        if not records:
            print("No daemon has reported to the state store (%s) yet." % where)
            return
        header = ("NODE", "DAEMON", "HEALTH", "STATE", "LAST PASS", "TOOK",
                  "ITEMS", "FAILED", "NEXT PASS")
        rows = [header]
        for rec in records:
            last = rec.get("last_pass") or {}
            counters = last.get("counters") or {}
            rows.append((
                str(rec.get("node")),
                str(rec.get("daemon")),
                rec["health"],
                str(rec.get("state")),
                _ago(last.get("ended_at"), now),
                "%.2fs" % last["duration"] if "duration" in last else "-",
                str(counters.get("items", "-")),
                str(counters.get("failed", "-")),
                _ago(rec["next_pass_at"], now)
                if rec.get("state") == "idle" and rec.get("next_pass_at")
                else "-",
            ))
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        for row in rows:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
                  .rstrip())
        for rec in records:
            last = rec.get("last_pass") or {}
            for err in last.get("errors") or []:
                print("%s/%s: %s" % (rec.get("node"), rec.get("daemon"), err))
            if last.get("fatal"):
                print("%s/%s: %s" % (rec.get("node"), rec.get("daemon"),
                                     last["fatal"]))

    output.emit(conf.command.format, records, human)
    bad = [r for r in records if r["health"] in ("failed", "late")]
    return EXIT_FAILED if bad else EXIT_OK


COMMANDS: dict[tuple[str, ...], Callable[[cfg.ConfigOpts], int]] = {
    ("config", "check"): config_check,
    ("status",): status,
    **data.COMMANDS,
    **cache_cmds.COMMANDS,
    **cluster.COMMANDS,
    **sync_cmds.COMMANDS,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``storaged-manage``."""
    args = sys.argv[1:] if argv is None else argv
    # An operator's command runs no loop of green threads: native threads,
    # never monkey-patched, whatever [DEFAULT] concurrency_backend says
    # (that option is the daemons'), and none of eventlet's import cost.
    concurrency.setup(concurrency.THREADING)
    # Object metadata may hold bytes that are not UTF-8 (Swift keeps them):
    # they are printed as they are, as names from argv come in.
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="surrogateescape")

    def body() -> int:
        conf = config.prepare_service(
            args,
            prog=PROG,
            description="Operate storaged: check the configuration, see what "
            "every daemon of every node is doing.",
            cli_opts=[COMMAND_OPT],
            setup_logging=False,
            daemon=False,
        )
        name = conf.command.name
        action = getattr(conf.command, "action", None)
        key = (name, action) if action else (name,)
        try:
            return COMMANDS[key](conf)
        except exception.ConfigError:
            raise
        except exception.StoragedError as err:
            # One line, no traceback: what failed and why (never a secret).
            print("%s: %s" % (PROG, err), file=sys.stderr)
            return EXIT_FAILED
        except BrokenPipeError:
            # e.g. "object get ... | head": the reader left, nothing to report
            return EXIT_FAILED

    return config.run_command(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
