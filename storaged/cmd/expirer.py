"""``storaged-expirer``: the object expirer daemon (a systemd service).

Every ``[expirer] interval`` (the first pass after a random delay within
it) it deletes the objects whose ``X-Delete-At`` has passed, as Swift's
object-expirer does.  Several expirers -- processes of one node
(``--worker N``) or daemons of several nodes -- split the work through the
``[expirer] group`` coordination group.  ``--once`` makes one pass and
exits 0 if every due object was handled, 1 if not, 2 for a configuration
error (for cron or ``storaged-once@expirer.timer``).  From a source tree:
``python -m storaged.cmd.expirer --config-file ...``.
"""

from __future__ import annotations

import sys
from typing import Any

from oslo_config import cfg

from storaged import concurrency
from storaged.common import config

PROG = "storaged-expirer"

WORKER_OPT = cfg.IntOpt(
    "worker",
    min=0,
    max=9999,
    help="Number of this expirer among the expirers of this node (its "
    "coordination member id is <node_id>:expirer:<worker>). Leave unset when "
    "a node runs one expirer.",
)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``storaged-expirer``."""
    args = sys.argv[1:] if argv is None else argv
    concurrency.setup(argv=args)

    def body() -> int:
        from storaged import coordination
        from storaged import kvs
        from storaged.common import daemon
        from storaged.common import status
        from storaged.common import systemd
        from storaged.expirer import daemon as expirer_daemon
        from storaged.objects import expiry
        from storaged.objects.repository import ObjectRepository

        notifier = systemd.Notifier.from_environ()
        conf = config.prepare_service(
            args,
            prog=PROG,
            description="The object expirer: deletes objects whose X-Delete-At "
            "has passed.",
            cli_opts=[daemon.ONCE_OPT, WORKER_OPT],
        )
        group = conf.expirer
        coordinator = coordination.Coordinator.from_conf(conf, "expirer", conf.worker)
        objects = ObjectRepository.from_conf(conf)
        worker = expirer_daemon.ExpirerWorker(
            objects, expiry.ExpiryQueue.beside(objects.catalog), coordinator,
            group.group, group.concurrency, group.batch_size,
        )

        def mutated(conf: cfg.ConfigOpts, changed: dict[Any, Any]) -> None:
            daemon.apply_changes(changed, "expirer", (worker,))

        conf.register_mutate_hook(mutated)
        return daemon.run_daemon(
            conf, worker, lambda: conf.expirer.interval,
            status.StatusBoard(kvs.get_store(conf)), notifier,
        )

    return config.run_command(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
