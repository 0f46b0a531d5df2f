"""``storaged-cache``, ``storaged-cache-prune`` and ``storaged-cache-clean``.

* ``storaged-cache``: the daemon (systemd ``storaged@cache``): prune, clean
  and prefetch on their timers; ``--once`` runs one pass of each and exits
  0 only if all three succeeded.
* ``storaged-cache-prune [--dry-run]`` and ``storaged-cache-clean
  [--dry-run]``: one pass, for cron or ``storaged-once@cache-prune.timer``;
  ``--once`` is accepted (and implied).

Exit status: 0 when the pass succeeded (a pass that found another prune or
clean running and skipped counts as success), 1 when it did not, 2 for a
configuration error (one line on stderr naming the file, section and
option).  From a source tree: ``python -m storaged.cmd.cache [prune|clean]
--config-file ...``.
"""

from __future__ import annotations

import sys
from typing import Any

from oslo_config import cfg

from storaged import concurrency
from storaged.common import config

PROG = "storaged-cache"
PRUNE_PROG = "storaged-cache-prune"
CLEAN_PROG = "storaged-cache-clean"

DRY_RUN_OPT = cfg.BoolOpt(
    "dry-run",
    default=False,
    help="Only report what the pass would remove; remove nothing.",
)


def check_cache(conf: cfg.ConfigOpts, sources: Any) -> None:
    """Validator: the cache directory can be used, the lease store fits.

    :raises storaged.exception.ConfigError: naming the option.
    """
    from storaged import exception
    from storaged.cache import daemon

    if conf.cache.shared_dir and conf.kvs.backend_url.startswith("sqlite:"):
        raise exception.ConfigError(
            "is true but [kvs] backend_url is an sqlite file of this node: the "
            "nodes sharing the directory need a shared state store (redis://)",
            group="cache",
            option="shared_dir",
        )
    daemon.open_cache(conf).close()


def _register(conf: cfg.ConfigOpts) -> None:
    from storaged.conf import cache as cache_conf

    cache_conf.register_opts(conf)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``storaged-cache`` (the daemon)."""
    args = sys.argv[1:] if argv is None else argv
    concurrency.setup(argv=args)

    def body() -> int:
        from storaged import kvs
        from storaged import metrics
        from storaged.cache import daemon as cache_daemon
        from storaged.common import daemon
        from storaged.common import status
        from storaged.common import systemd

        notifier = systemd.Notifier.from_environ()
        conf = config.prepare_service(
            args,
            prog=PROG,
            description="The object cache daemon: prune, clean and prefetch on "
            "timers.",
            cli_opts=[daemon.ONCE_OPT],
            register=_register,
            validators=[check_cache],
        )
        # Bound first: a port in use stops the start.  The three loops'
        # pass figures share this process's metrics.
        metrics.setup(conf, "cache", "cache", once=conf.once)
        board = status.StatusBoard(kvs.get_store(conf))
        runtime = cache_daemon.CacheRuntime(conf)
        result = cache_daemon.run(conf, runtime, board, notifier)
        metrics.write_textfile()
        return result

    return config.run_command(PROG, body)


def _one_pass(prog: str, kind: str, argv: list[str] | None) -> int:
    args = sys.argv[1:] if argv is None else argv
    concurrency.setup(argv=args)

    def body() -> int:
        from storaged import kvs
        from storaged.cache import daemon as cache_daemon
        from storaged.common import daemon
        from storaged.common import status

        conf = config.prepare_service(
            args,
            prog=prog,
            description="One %s pass of the object cache, then exit: 0 if it "
            "succeeded, 1 if not, 2 for a configuration error." % kind,
            cli_opts=[daemon.ONCE_OPT, DRY_RUN_OPT],
            register=_register,
            validators=[check_cache],
        )
        runtime = cache_daemon.CacheRuntime(conf)
        worker_cls = (
            cache_daemon.PruneWorker if kind == "prune" else cache_daemon.CleanWorker
        )
        worker = worker_cls(runtime, dry_run=conf.dry_run)
        # A dry run changes nothing: it does not replace the last real
        # pass's record either.
        board = None if conf.dry_run else status.StatusBoard(kvs.get_store(conf))
        return cache_daemon.run_one(conf, worker, board)

    return config.run_command(prog, body)


def prune_main(argv: list[str] | None = None) -> int:
    """Entry point of ``storaged-cache-prune``."""
    return _one_pass(PRUNE_PROG, "prune", argv)


def clean_main(argv: list[str] | None = None) -> int:
    """Entry point of ``storaged-cache-clean``."""
    return _one_pass(CLEAN_PROG, "clean", argv)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("prune", "clean"):
        _kind = sys.argv.pop(1)
        sys.exit(prune_main() if _kind == "prune" else clean_main())
    sys.exit(main())
