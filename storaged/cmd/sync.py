"""``storaged-sync``: the container sync daemon (a systemd service).

Every ``[sync] interval`` (the first pass after a random delay within it)
it pushes the changes of every container that has ``X-Container-Sync-To``
and ``X-Container-Sync-Key`` to its target, on the wire as Swift's
container-sync does.  Several workers -- processes of one node
(``--worker N``) or daemons of several nodes -- split the rows through the
``[sync] group`` coordination group and take over a dead one's share.
``--once`` makes one pass and exits 0 if every container synced, 1 if not,
2 for a configuration error.  From a source tree: ``python -m
storaged.cmd.sync --config-file ...``.
"""

from __future__ import annotations

import sys
from typing import Any

from oslo_config import cfg

from storaged import concurrency
from storaged.common import config

PROG = "storaged-sync"

WORKER_OPT = cfg.IntOpt(
    "worker",
    min=0,
    max=9999,
    help="Number of this worker among the sync workers of this node (its "
    "coordination member id is <node_id>:sync:<worker>). Leave unset when a "
    "node runs one sync daemon.",
)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``storaged-sync``."""
    args = sys.argv[1:] if argv is None else argv
    concurrency.setup(argv=args)

    def body() -> int:
        from storaged import coordination
        from storaged import kvs
        from storaged import metrics
        from storaged.common import daemon
        from storaged.common import status
        from storaged.common import systemd
        from storaged.objects.repository import ObjectRepository
        from storaged.sync import client
        from storaged.sync import daemon as sync_daemon
        from storaged.sync import engine

        notifier = systemd.Notifier.from_environ()
        conf = config.prepare_service(
            args,
            prog=PROG,
            description="The container sync daemon: pushes containers' changes "
            "to their X-Container-Sync-To targets.",
            cli_opts=[daemon.ONCE_OPT, WORKER_OPT],
        )
        group = conf.sync
        # Bound first: a port in use stops the start before any connection.
        metrics.setup(conf, "sync", "sync", once=conf.once)
        realms = sync_daemon.check_realms(group.realms_conf)
        try:
            http = client.HttpClient(group.request_timeout, group.sync_proxy)
        except ValueError as err:
            from storaged import exception

            raise exception.ConfigError(
                str(err), group="sync", option="sync_proxy"
            ) from err
        coordinator = coordination.Coordinator.from_conf(conf, "sync", conf.worker)
        settings = engine.SyncSettings(
            concurrency=group.concurrency,
            container_time=group.container_time,
            batch_size=group.batch_size,
            max_failures=group.max_failures,
        )
        objects = ObjectRepository.from_conf(conf)
        sync_engine = engine.SyncEngine(
            objects.catalog, objects, realms, http, coordinator.member_id,
            settings, group.allowed_sync_hosts,
        )
        store = kvs.get_store(conf)
        worker = sync_daemon.SyncWorker(
            sync_engine, coordinator, store, group.group,
            group.report_interval, group.metrics_file,
            interval=None if conf.once else group.interval,
            metrics=metrics.process(),
        )

        def mutated(conf: cfg.ConfigOpts, changed: dict[Any, Any]) -> None:
            # SIGHUP: conf.mutate_config_files() found these mutable
            # options changed; each goes to the object that uses it.
            daemon.apply_changes(
                changed, "sync", (settings, worker, http),
                renames={"request_timeout": "timeout"},
            )

        conf.register_mutate_hook(mutated)

        def reload(conf: cfg.ConfigOpts) -> None:
            realms.reload()  # a file of its own, re-read at every SIGHUP

        return daemon.run_daemon(
            conf, worker, lambda: conf.sync.interval,
            status.StatusBoard(store), notifier, reload,
        )

    return config.run_command(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
