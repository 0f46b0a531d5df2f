"""Options of the ``[coordination]`` group: groups, locks and heartbeats."""

from __future__ import annotations

from oslo_config import cfg

GROUP = cfg.OptGroup(
    "coordination",
    title="Coordination",
    help="""
Group membership, distributed locks and work division between the daemons of
all nodes, over tooz. See ``docs/coordination.rst`` for the guarantees of
each back end.
""",
)

COORDINATION_OPTS = [
    cfg.StrOpt(
        "backend_url",
        default="file://$state_path/coordination",
        secret=True,
        help="""
Where the daemons coordinate; the URL scheme picks the back end.

Possible values:
    * ``file:///ABSOLUTE/DIR`` (the embedded default): this host only; locks
      are kernel file locks, released at once when a holder dies
    * ``redis://[:PASSWORD@]HOST[:PORT][?db=N]``: fast, shared by every
      node; not linearizable (use the fencing tokens)
    * ``etcd3+http://HOST[:PORT]`` or ``etcd3+https://...``: linearizable
      and durable, about a hundred lock operations per second per client
    * ``zookeeper://HOST[:PORT][,HOST:PORT...]``: linearizable; needs
      ``[DEFAULT] concurrency_backend = threading``

``ipc``, ``memcached``, ``mysql``, ``postgresql`` and ``kubernetes`` are
refused (no usable membership, no try-lock, or locks that can vanish). Lock
and membership lifetimes come from ``lock_ttl`` and ``membership_ttl``, not
from the URL. The URL is treated as a secret: a password in it is masked.

Related options:
    * ``lock_ttl``, ``membership_ttl``, ``heartbeat_interval``
""",
    ),
    cfg.FloatOpt(
        "heartbeat_interval",
        default=1.0,
        min=0.05,
        max=60.0,
        help="""
Seconds between two heartbeats.

Each heartbeat, sent from a native thread that blocked green threads cannot
starve, keeps this member in its groups, refreshes the locks it holds,
checks that it was not evicted (and re-joins if it was), refreshes the
partition tables and runs the join and leave callbacks.

Possible values:
    * 0.05 to 60, at most a third of the smaller of ``lock_ttl`` and
      ``membership_ttl``

Related options:
    * ``lock_ttl``, ``membership_ttl``
""",
    ),
    cfg.IntOpt(
        "lock_ttl",
        default=10,
        min=2,
        max=3600,
        help="""
Seconds a lock survives its holder going silent.

A holder that cannot refresh its locks for this long loses them; it notices
itself (``Lock.lost`` turns true a little before the back end lets another
process take the lock) and must stop acting under them. This is also the
time another process waits for the lock of a crashed holder on redis and
etcd (on ZooKeeper, the session timeout; on ``file://`` a crashed holder's
locks are free at once and a live holder's locks never expire).

Possible values:
    * 2 to 3600 (whole seconds: etcd leases and ZooKeeper sessions count
      whole seconds)

Related options:
    * ``heartbeat_interval`` (at most a third of this)
""",
    ),
    cfg.IntOpt(
        "membership_ttl",
        default=10,
        min=2,
        max=3600,
        help="""
Seconds a silent member stays in its groups.

After this long without a heartbeat, a member is dropped from its groups and
the others take over its share of the work. On ZooKeeper, one session
carries both locks and membership: its timeout is the smaller of this and
``lock_ttl``.

Possible values:
    * 2 to 3600

Related options:
    * ``heartbeat_interval`` (at most a third of this), ``settle_time``
""",
    ),
    cfg.FloatOpt(
        "initial_reconnect_backoff",
        default=0.5,
        min=0.01,
        max=60.0,
        help="""
Seconds before the first reconnection attempt after the back end failed.

While disconnected, every lock this process held is reported lost, and lock
and group calls fail at once with ``CoordinationUnavailable``; the
heartbeat thread reconnects in the background, doubling the delay (with
random jitter) up to ``max_reconnect_backoff``, then re-joins every group.

Related options:
    * ``max_reconnect_backoff``
""",
    ),
    cfg.FloatOpt(
        "max_reconnect_backoff",
        default=5.0,
        min=0.05,
        max=300.0,
        help="""
Largest delay, in seconds, between two reconnection attempts.

Once the back end is back, this process is reconnected and re-joined within
about this delay plus two heartbeats.

Related options:
    * ``initial_reconnect_backoff`` (must not be larger)
""",
    ),
    cfg.FloatOpt(
        "outage_log_interval",
        default=300.0,
        min=1.0,
        max=86400.0,
        help="""
Seconds between two "still down" lines while the back end cannot be reached.

An outage is logged as one warning when the back end is lost (or cannot be
reached at start), one reminder this often while it stays down, and one
line when it is back; the reconnection attempts in between, and the calls
that fail meanwhile, are logged at debug level only.

Related options:
    * ``max_reconnect_backoff``
""",
    ),
    cfg.FloatOpt(
        "lock_timeout",
        default=30.0,
        min=0.0,
        max=86400.0,
        help="""
Seconds a blocking lock acquisition waits before giving up.

There is no wait-forever default: a caller that does not get its lock in
time gets ``LockAcquireTimeout`` (retryable). A caller may pass its own
timeout.

Possible values:
    * 0 to 86400
""",
    ),
    cfg.IntOpt(
        "partitions",
        default=256,
        min=16,
        max=4096,
        help="""
Number of partitions a group's work is divided into.

Each key (a container, say) hashes to a partition, and each partition goes
to one member by rendezvous hashing. With 256 partitions no member gets much
more than its share, and a member that leaves hands its partitions to the
others evenly.

Possible values:
    * 16 to 4096; every member of a group must use the same value
""",
    ),
    cfg.FloatOpt(
        "settle_time",
        min=0.0,
        max=3600.0,
        sample_default="<the larger of lock_ttl and membership_ttl>",
        help="""
Seconds a member waits before acting on a partition that moved to it.

The previous owner may still be finishing work on it until it notices that
it was dropped, which takes up to the TTLs. A member that just joined, or
re-joined, or reconnected, also waits this long before it owns anything.

Possible values:
    * 0 to 3600; unset means the larger of ``lock_ttl`` and
      ``membership_ttl``
""",
    ),
    cfg.BoolOpt(
        "file_single_host",
        default=True,
        help="""
Refuse a ``file://`` back end shared by members on several hosts.

Every member records its host name in its group capabilities. With this
option on (the default), a ``file://`` member that sees a member of another
host refuses to join, or, if that member shows up later, reports every lock
lost and refuses new locks, and logs why: file locks on a network
filesystem do not exclude each other reliably. Turn it off only when
several containers of one machine, with different host names, share the
directory on a local filesystem.
""",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the ``[coordination]`` options on ``conf``."""
    # A fresh group object: oslo.config copies a registered group shallowly,
    # so registering the module's GROUP on two ConfigOpts would share their
    # values (an override on one would show on the other).
    group = cfg.OptGroup(GROUP.name, title=GROUP.title, help=GROUP.help)
    conf.register_group(group)
    conf.register_opts(COORDINATION_OPTS, group=group)


def list_opts() -> list[tuple[str | cfg.OptGroup | None, list[cfg.Opt]]]:
    """List the options for the sample configuration."""
    return [(GROUP, COORDINATION_OPTS)]
