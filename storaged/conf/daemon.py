"""Options of the ``[daemon]`` group: how every periodic daemon behaves."""

from __future__ import annotations

from oslo_config import cfg

GROUP = cfg.OptGroup(
    "daemon",
    title="Periodic daemons",
    help="Behaviour shared by every periodic storaged daemon.",
)

DAEMON_OPTS = [
    cfg.FloatOpt(
        "stop_timeout",
        default=30.0,
        min=1.0,
        max=3600.0,
        mutable=True,
        help="""
Seconds a daemon waits for the item in progress to finish after SIGTERM.

The daemon stops taking new items as soon as it is asked to stop, then exits
with status 0 once the current item is done. An item still running after this
many seconds is abandoned (it is safe to abandon: every item's writes are
atomic) and the daemon exits with status 0 all the same.

Possible values:
    * 1 to 3600

Related options:
    * ``[DEFAULT] graceful_shutdown_timeout`` must be larger
""",
    ),
    cfg.BoolOpt(
        "publish_status",
        default=True,
        mutable=True,
        help="""
Write each pass's counters and state to the state store.

``storaged-manage status`` reads them back for every daemon of every node.

Related options:
    * ``[kvs] backend_url``
""",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the ``[daemon]`` options on ``conf``."""
    # A fresh group per ConfigOpts: oslo.config copies the group shallowly,
    # so a shared module-level one would carry options between instances.
    conf.register_group(
        cfg.OptGroup(GROUP.name, title=GROUP.title, help=GROUP.help)
    )
    conf.register_opts(DAEMON_OPTS, group=GROUP.name)


def list_opts() -> list[tuple[str | cfg.OptGroup | None, list[cfg.Opt]]]:
    """List the options for the sample configuration."""
    return [(GROUP, DAEMON_OPTS)]
