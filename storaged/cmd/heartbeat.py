"""``storaged-heartbeat``: the node's coordination agent (a systemd service).

It joins the ``storaged`` group with this node's capabilities, heartbeats
from a native thread, watches joins and leaves, publishes the cluster view to
the state store, re-joins after an eviction or an outage, feeds the systemd
watchdog, and leaves the group on SIGTERM.  ``--once`` joins, publishes one
view and leaves.
"""

from __future__ import annotations

import sys

from storaged import concurrency
from storaged.common import config

PROG = "storaged-heartbeat"


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``storaged-heartbeat``."""
    args = sys.argv[1:] if argv is None else argv
    concurrency.setup(argv=args)

    def body() -> int:
        from storaged import coordination
        from storaged import kvs
        from storaged.common import daemon
        from storaged.common import status
        from storaged.common import systemd
        from storaged.heartbeat import agent

        notifier = systemd.Notifier.from_environ()
        conf = config.prepare_service(
            args,
            prog=PROG,
            description="The node's coordination agent: group membership, "
            "cluster view, liveness.",
            cli_opts=[daemon.ONCE_OPT],
        )
        store = kvs.get_store(conf)
        worker = agent.HeartbeatAgent(
            coordination.Coordinator.from_conf(conf, "heartbeat"),
            store,
            conf.heartbeat.group,
            agent.node_capabilities(conf, store),
            view_ttl=3 * conf.heartbeat.publish_interval + 30,
        )
        return daemon.run_daemon(
            conf, worker, lambda: conf.heartbeat.publish_interval,
            status.StatusBoard(store), notifier,
        )

    return config.run_command(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
