"""Options of the ``[sync]`` group: the container sync daemon."""

from __future__ import annotations

from oslo_config import cfg

from storaged.conf import metrics

GROUP = cfg.OptGroup(
    "sync",
    title="Container sync",
    help="storaged-sync: pushes the changes of containers that have "
    "X-Container-Sync-To and X-Container-Sync-Key to their targets, on the "
    "wire as Swift's container-sync does.",
)

SYNC_OPTS = [
    cfg.StrOpt(
        "realms_conf",
        default="/etc/storaged/container-sync-realms.conf",
        # The API once had its own option for the same file; both had to
        # be set alike. Old files keep working.
        deprecated_opts=[cfg.DeprecatedOpt("realms_file", group="api")],
        help="""
Path of ``container-sync-realms.conf``, in Swift's format: the realms, their
keys (``key``, ``key2``) and their clusters' endpoints (``cluster_<name> =
https://host/v1/``).

Every command reads this one file: storaged-sync resolves and signs targets
of the form ``//realm/cluster/account/container`` with it; storaged-api
accepts such a ``X-Container-Sync-To`` only for a realm and cluster it lists,
and verifies signed container-sync requests with its keys. The file is re-read when its
modification time changes, checked at most every ``mtime_check_interval``
seconds (its own ``[DEFAULT]`` option, 300 by default, as in Swift). A
missing file means no realm: only full-URL targets can be used.

Related options:
    * ``allowed_sync_hosts``
""",
    ),
    cfg.ListOpt(
        "allowed_sync_hosts",
        default=["127.0.0.1"],
        # The API once had its own option for the same list: a target one
        # accepted, the other could refuse on every pass.
        deprecated_opts=[cfg.DeprecatedOpt("allowed_sync_hosts", group="api")],
        help="""
Host names allowed in a full-URL ``X-Container-Sync-To``
(``https://host/v1/AUTH_b/c``), as Swift's ``allowed_sync_hosts``.

One list for every command: storaged-api and ``storaged-manage container
set`` accept a full-URL target only for a host listed here, and
storaged-sync sends only to those.

Requests to such targets carry the container's key in clear in
``X-Container-Sync-Key`` (Swift's legacy mode); prefer realms. A container
whose target's host is not listed is counted as failed and skipped.

Related options:
    * ``realms_conf``
""",
    ),
    cfg.FloatOpt(
        "interval",
        default=300.0,
        min=0.1,
        max=86400.0,
        mutable=True,
        help="""
Seconds between the starts of two passes over the containers that sync.

The first pass starts after a random delay within the interval, so that
nodes restarted together do not start together; then each pass starts this
long after the previous one started (at once if the previous one took
longer). Swift's default is 300 seconds.

Related options:
    * ``container_time``
""",
    ),
    cfg.FloatOpt(
        "container_time",
        default=60.0,
        min=0.1,
        max=86400.0,
        mutable=True,
        help="""
Time budget, in seconds, for one container in one pass.

When it is used up, no new row of that container is started; the rows in
flight finish, the sync points are recorded and the next container is
served. The rest waits for the next pass. Swift's default is 60 seconds.

Related options:
    * ``interval``, ``concurrency``
""",
    ),
    cfg.IntOpt(
        "concurrency",
        default=32,
        min=1,
        max=1024,
        mutable=True,
        help="""
Rows of one container in flight at once (requests to the target running
concurrently, each on a green thread, over persistent connections).

The recorded sync point only advances over a contiguous run of finished
rows, so a crash never skips a row that was in flight. Swift sends one row
at a time (``sync_row_concurrency = 8`` in its newest release, for new rows
only).

Possible values:
    * 1 (serial, as Swift) to 1024

Related options:
    * ``request_timeout``, ``batch_size``
""",
    ),
    cfg.IntOpt(
        "batch_size",
        default=1000,
        min=1,
        max=100000,
        help="""
Rows read from a container's change log per catalog query.
""",
    ),
    cfg.FloatOpt(
        "request_timeout",
        default=10.0,
        min=0.1,
        max=3600.0,
        mutable=True,
        help="""
Seconds to wait for the target: to connect, and between two reads or
writes of a request's socket. A request that times out fails its row, which
is retried on a later pass. Swift's ``conn_timeout`` is 5 seconds.
""",
    ),
    cfg.IntOpt(
        "max_failures",
        default=100,
        min=1,
        max=1000000,
        mutable=True,
        help="""
Failed rows after which a container's pass stops early.

A target that is down fails every row; there is no use in trying the rest
of the change log before the next pass. The sync points never pass a failed
row, so nothing is skipped.
""",
    ),
    cfg.ListOpt(
        "sync_proxy",
        default=[],
        help="""
HTTP proxies for the requests to the targets, as Swift's ``sync_proxy``:
a comma-separated list of ``http://host:port`` URLs, one chosen at random
per connection. Requests to ``https`` targets are tunnelled with CONNECT.
Empty (the default): connect to the targets directly.
""",
    ),
    cfg.StrOpt(
        "group",
        default="storaged-sync",
        regex=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        help="""
Coordination group the sync workers join.

New rows of a container are split between the group's members by a hash
of the object's name (each member pushes the rows whose hash, modulo the
number of members, is its ordinal), and each member re-checks the rows the
others were to push, so that a dead member's share is taken over. All the
sync workers of one cluster must use the same group.

Related options:
    * ``[coordination] backend_url``, ``[coordination] membership_ttl``
""",
    ),
    cfg.FloatOpt(
        "report_interval",
        default=3600.0,
        min=1.0,
        max=86400.0,
        mutable=True,
        help="""
Seconds between two summary lines of what was synced since the previous
one (objects put, deleted, skipped, failed, bytes), as Swift's hourly
report. Each pass also logs its own summary line and each container a
report line.
""",
    ),
    cfg.StrOpt(
        "metrics_file",
        default="",
        help="""
Path of a Prometheus node-exporter textfile written after every pass (for
the textfile collector): per container, rows behind, last success, last
error, rate and counters. Written atomically (temporary file, rename).
Empty (the default): no file.
""",
    ),
    metrics.port_opt("storaged-sync"),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the ``[sync]`` options on ``conf``."""
    # A fresh group per ConfigOpts: oslo.config copies the group shallowly,
    # so a shared module-level one would carry options between instances.
    conf.register_group(
        cfg.OptGroup(GROUP.name, title=GROUP.title, help=GROUP.help)
    )
    conf.register_opts(SYNC_OPTS, group=GROUP.name)


def list_opts() -> list[tuple[str | cfg.OptGroup | None, list[cfg.Opt]]]:
    """List the options for the sample configuration."""
    return [(GROUP, SYNC_OPTS)]
