"""Options of the ``[kvs]`` group: the state store."""

from __future__ import annotations

from oslo_config import cfg

GROUP = cfg.OptGroup(
    "kvs",
    title="State store",
    help="The key-value store with fenced locks that the daemons share.",
)

KVS_OPTS = [
    cfg.StrOpt(
        "backend_url",
        default="sqlite:///$state_path/state.sqlite",
        secret=True,
        help="""
Where the state store lives; the URL scheme picks the driver.

Possible values:
    * ``sqlite:///`` followed by an absolute path, e.g.
      ``sqlite:////var/lib/storaged/state.sqlite`` (the embedded default):
      one file on this node, WAL mode, safe for several processes of one host
    * ``redis://[:PASSWORD@]HOST[:PORT][/DB]`` (or ``rediss://`` for TLS):
      shared by every node that points at the same server
    * ``postgresql://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE[?schema=NAME]``
      (``postgres://`` alike; also ``sslmode``, ``sslrootcert``, ``sslcert``,
      ``sslkey``): shared by every node, in the schema NAME (default
      ``storaged``) made on first use; expiry and leases by the database
      server's clock

The URL is treated as a secret: passwords in it are masked in logs and in
``storaged-manage config check``.

Related options:
    * ``[DEFAULT] state_path``
""",
    ),
    cfg.StrOpt(
        "sqlite_synchronous",
        default="normal",
        choices=[
            ("normal", "a committed write survives a crash of the process "
                       "(SIGKILL) but the last commits may be lost on power loss"),
            ("full", "every commit is fsynced: survives power loss, "
                     "about 5x slower writes"),
        ],
        help="How durable each sqlite commit is (sqlite's ``synchronous``).",
    ),
    cfg.FloatOpt(
        "timeout",
        default=10.0,
        min=0.1,
        max=300.0,
        help="""
Seconds to wait for the back end: sqlite's busy timeout when another process
holds the write lock, the Redis socket connect and read timeout, or
PostgreSQL's connect timeout (whole seconds, at least 2), statement timeout
and idle-in-transaction session timeout.
""",
    ),
    cfg.FloatOpt(
        "default_lock_ttl",
        default=30.0,
        min=0.1,
        max=86400.0,
        help="""
Lease length, in seconds, of a lock taken without an explicit TTL.

A holder that does not refresh its lease within this time loses it; its
later writes under that lease are rejected (fencing).
""",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the ``[kvs]`` options on ``conf``."""
    # A fresh group per ConfigOpts: oslo.config copies the group shallowly,
    # so a shared module-level one would carry options between instances.
    conf.register_group(
        cfg.OptGroup(GROUP.name, title=GROUP.title, help=GROUP.help)
    )
    conf.register_opts(KVS_OPTS, group=GROUP.name)


def list_opts() -> list[tuple[str | cfg.OptGroup | None, list[cfg.Opt]]]:
    """List the options for the sample configuration."""
    return [(GROUP, KVS_OPTS)]
