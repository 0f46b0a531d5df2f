"""Options of the ``[expirer]`` group: the object expirer daemon."""

from __future__ import annotations

from oslo_config import cfg

from storaged.conf import metrics

GROUP = cfg.OptGroup(
    "expirer",
    title="Object expirer",
    help="""
storaged-expirer: deletes objects whose ``X-Delete-At`` has passed, as
Swift's object-expirer. An expired object is 404 for clients at once; the
expirer removes its row (a tombstone at the expiry's timestamp, which
container sync carries like any delete) and its data. Several expirers
(nodes, or processes with ``--worker``) split the pending expiries through
the coordination group ``group``.
""",
)

EXPIRER_OPTS: list[cfg.Opt] = [
    cfg.FloatOpt(
        "interval",
        default=300.0,
        min=0.1,
        max=86400.0,
        mutable=True,
        help="""
Seconds between the starts of two passes over the pending expiries.

The first pass starts after a random delay within the interval; each pass
reaps every expiry due when it starts. Expired objects are already 404 in
between: the interval only decides how long their rows stay listed and
their data stored. Swift's default is 300 seconds.
""",
    ),
    cfg.IntOpt(
        "concurrency",
        default=8,
        min=1,
        max=256,
        mutable=True,
        help="""
Objects deleted at once by one expirer (green threads), as Swift's
``concurrency``.

Related options:
    * ``batch_size``
""",
    ),
    cfg.IntOpt(
        "batch_size",
        default=1000,
        min=1,
        max=10000,
        mutable=True,
        help="""
Pending expiries read from the queue per catalog query.
""",
    ),
    cfg.StrOpt(
        "group",
        default="storaged-expirer",
        help="""
Coordination group of the expirers. Each member reaps the expiries whose
object hashes to it among the members (as storaged-sync splits rows); an
expirer that cannot read the group reaps everything due, which is safe: a
delete applies once, the others find it done.
""",
    ),
    metrics.port_opt("storaged-expirer"),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the ``[expirer]`` options on ``conf``."""
    conf.register_group(
        cfg.OptGroup(GROUP.name, title=GROUP.title, help=GROUP.help)
    )
    conf.register_opts(EXPIRER_OPTS, group=GROUP.name)


def list_opts() -> list[tuple[str | cfg.OptGroup | None, list[cfg.Opt]]]:
    """List the options for the sample configuration."""
    return [(GROUP, EXPIRER_OPTS)]
