"""Options of the ``[metrics]`` group, and each daemon's ``metrics_port``.

The daemons of a node share one configuration file, so the address they
serve ``/metrics`` on is split: ``[metrics] bind_host`` for all of them,
``metrics_port`` in each daemon's own group (``[api]``, ``[sync]``,
``[cache]``, ``[heartbeat]``, ``[expirer]``); :func:`port_opt` makes that
option for each group.
"""

from __future__ import annotations

from oslo_config import cfg

GROUP = cfg.OptGroup(
    "metrics",
    title="Metrics",
    help="Prometheus metrics (an HTTP /metrics endpoint per daemon, "
    "node_exporter textfiles for one-shot runs) and an optional statsd feed.",
)

METRICS_OPTS = [
    cfg.HostAddressOpt(
        "bind_host",
        default="127.0.0.1",
        help="""
Address every daemon of this node serves ``/metrics`` on (each on the
``metrics_port`` of its own group).

The endpoint has no authentication and shows no secrets, but it tells
anyone who can reach it what the node is doing: keep it on a management
network, or on the loopback address (the default) behind a local
Prometheus agent.

Related options:
    * ``metrics_port`` in ``[api]``, ``[sync]``, ``[cache]``,
      ``[heartbeat]`` and ``[expirer]``
""",
    ),
    cfg.StrOpt(
        "textfile_dir",
        default="",
        help="""
Directory of node_exporter's textfile collector
(``--collector.textfile.directory``). A one-shot run (``--once``, a cron job
or a systemd timer) writes its figures there when it ends, as
``<daemon>-<node_id>.prom``, atomically (temporary file, rename), so that a
cron prune is as visible as a long-running daemon. The directory must exist
and be writable by the daemons' user.

Empty (the default): one-shot runs write no file.
""",
    ),
    cfg.StrOpt(
        "statsd_host",
        default="",
        help="""
Host of a statsd server to send every metric event to as well, with
Swift-style names (``<statsd_prefix>.<daemon>.<metric>[.<label>...]``): the
same events that feed ``/metrics``, for operators who run Swift's statsd
pipeline. Packets are UDP, sent without waiting: a statsd server that is
down loses figures, it never slows a daemon.

Empty (the default): no statsd.

Related options:
    * ``statsd_port``, ``statsd_prefix``
""",
    ),
    cfg.PortOpt(
        "statsd_port",
        default=8125,
        help="UDP port of the statsd server named by ``statsd_host``.",
    ),
    cfg.StrOpt(
        "statsd_prefix",
        default="storaged",
        regex=r"^[A-Za-z0-9_.-]*$",
        help="""
Prefix of every statsd name (``<prefix>.<daemon>.<metric>``), e.g. the
node's name to tell nodes apart (``storaged.node1``). Letters, digits,
``_``, ``-`` and ``.``; empty for no prefix.
""",
    ),
]


def port_opt(daemon: str) -> cfg.PortOpt:
    """Return the ``metrics_port`` option of a daemon's group.

    :param daemon: the command, e.g. ``storaged-sync``, named in the help.
    """
    return cfg.PortOpt(
        "metrics_port",
        default=0,
        help="""
TCP port %(daemon)s serves Prometheus metrics on (``http://<[metrics]
bind_host>:<port>/metrics``). Each daemon of a node needs a port of its own;
a port already in use stops the daemon at start with one line naming it.
Never the port of the object API.

0 (the default): no ``/metrics`` endpoint.

Related options:
    * ``[metrics] bind_host``, ``[metrics] textfile_dir``
""" % {"daemon": daemon},
    )


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the ``[metrics]`` options on ``conf``."""
    # A fresh group per ConfigOpts: oslo.config copies the group shallowly,
    # so a shared module-level one would carry options between instances.
    conf.register_group(
        cfg.OptGroup(GROUP.name, title=GROUP.title, help=GROUP.help)
    )
    conf.register_opts(METRICS_OPTS, group=GROUP.name)


def list_opts() -> list[tuple[str | cfg.OptGroup | None, list[cfg.Opt]]]:
    """List the options for the sample configuration."""
    return [(GROUP, METRICS_OPTS)]
