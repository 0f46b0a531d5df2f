"""Options of the ``[heartbeat]`` group: the node's coordination agent."""

from __future__ import annotations

from oslo_config import cfg

from storaged.conf import metrics

GROUP = cfg.OptGroup(
    "heartbeat",
    title="Node agent",
    help="storaged-heartbeat: group membership, cluster view, liveness.",
)

HEARTBEAT_OPTS = [
    cfg.FloatOpt(
        "publish_interval",
        default=10.0,
        min=0.5,
        max=3600.0,
        mutable=True,
        help="""
Seconds between two publications of the cluster view to the state store.

Each publication lists the members of the ``storaged`` group with their
capabilities (``storaged-manage cluster members`` reads it when the
coordination back end cannot be reached). Membership itself is kept alive by
the coordination heartbeat, every ``[coordination] heartbeat_interval``,
from a native thread.

Related options:
    * ``[coordination] heartbeat_interval``
""",
    ),
    cfg.StrOpt(
        "group",
        default="storaged",
        regex=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        help="""
Name of the coordination group every node agent joins.

All nodes of one cluster must use the same name; two clusters sharing one
coordination back end must not.
""",
    ),
    metrics.port_opt("storaged-heartbeat"),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the ``[heartbeat]`` options on ``conf``."""
    # A fresh group per ConfigOpts: oslo.config copies the group shallowly,
    # so a shared module-level one would carry options between instances.
    conf.register_group(
        cfg.OptGroup(GROUP.name, title=GROUP.title, help=GROUP.help)
    )
    conf.register_opts(HEARTBEAT_OPTS, group=GROUP.name)


def list_opts() -> list[tuple[str | cfg.OptGroup | None, list[cfg.Opt]]]:
    """List the options for the sample configuration."""
    return [(GROUP, HEARTBEAT_OPTS)]
