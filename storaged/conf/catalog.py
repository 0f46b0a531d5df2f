"""Options of the ``[catalog]`` group: the container catalog."""

from __future__ import annotations

from oslo_config import cfg

from storaged.common import freespace

GROUP = cfg.OptGroup(
    "catalog",
    title="Container catalog",
    help="""
The sqlite databases that list the objects of each container on this node,
with their metadata, change log (followed by container sync) and sync points.
""",
)

CATALOG_OPTS = [
    cfg.StrOpt(
        "backend_url",
        default="",
        secret=True,
        help="""
Where the container catalog lives.

Empty (the default) keeps it in sqlite databases under ``[catalog] path`` on
this node, as ``sqlite://`` with that path does. A ``postgresql://`` URL puts
it in a PostgreSQL database that every storaged node of a cluster points at,
so that any node serves any account; the semantics (change log, last writer
wins, tombstones, sync points, listings, account index) are the same. The
database must exist; the catalog's tables are made in the URL's schema on
first use. ``[catalog] path`` is still used on every node for local work
files (name locks).

Possible values:
    * empty: sqlite under ``[catalog] path``
    * ``sqlite:///ABSOLUTE/PATH``: sqlite under that directory
    * ``postgresql://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE[?schema=NAME]``
      (``postgres://`` is the same): ``schema`` defaults to
      ``storaged_catalog``; ``sslmode``, ``sslrootcert``, ``sslcert`` and
      ``sslkey`` are passed to libpq. Percent-encode ``@ / : #`` in a
      password. Give each cluster a schema of its own.

Related options:
    * ``[catalog] path``, ``[catalog] timeout`` (also PostgreSQL's statement
      timeout), ``[catalog] synchronous`` (``normal`` turns PostgreSQL's
      ``synchronous_commit`` off for catalog writes)
    * ``[kvs] backend_url``: the state store may share the same database
      (it uses another schema)
""",
    ),
    cfg.StrOpt(
        "path",
        default="$state_path/catalog",
        help="""
Directory of the container catalog.

It holds one database per container (``containers/``), one per account
with metadata (``accounts/``), the account index (``index/``), damaged
databases moved aside (``quarantined/``) and work files (``tmp/``). It must
be on a local filesystem (sqlite's WAL mode needs shared memory between the
processes of one host; never NFS), writable by the ``storaged`` user, and
the same for every storaged process of the node.

Possible values:
    * An absolute directory path

Related options:
    * ``[DEFAULT] state_path``
""",
    ),
    cfg.IntOpt(
        "reclaim_age",
        default=604800,
        min=0,
        help="""
Seconds that deletion records are kept before they are removed for good.

A deleted object leaves a tombstone row so that the delete reaches container
sync targets and an older write arriving late cannot bring the object back;
a deleted container keeps its database for as long. Once older than this they
are removed by the reclaim pass. This must be longer than the longest time a
container sync may lag behind (an outage of the target included): a delete
removed before it was pushed is never pushed.

Possible values:
    * 0 or more seconds; the default is one week, as in Swift

Related options:
    * none
""",
    ),
    cfg.FloatOpt(
        "timeout",
        default=10.0,
        min=0.1,
        max=300.0,
        help="""
Seconds to wait when another process is writing the same database.

Past this, the operation fails with a "catalog busy" error (the API answers
503, daemons retry on their next pass).

Possible values:
    * 0.1 to 300 seconds

Related options:
    * none
""",
    ),
    cfg.StrOpt(
        "synchronous",
        default="full",
        choices=[
            ("full", "every commit is flushed to disk: an acknowledged write "
                     "survives power loss, as the object data does"),
            ("normal", "a committed write survives a crash of the process "
                       "(SIGKILL) but the last commits may be lost on power "
                       "loss; faster writes"),
        ],
        help="""
How durable each commit of a container database is (sqlite's ``synchronous``
in WAL mode).

The account index is always written with ``normal``: it is rebuilt from the
container databases when needed.

Related options:
    * none
""",
    ),
    cfg.StrOpt(
        "fallocate_reserve",
        default="1%",
        regex=freespace.PATTERN,
        help="""
Free space kept on the catalog's filesystem for deletes, as Swift's
``fallocate_reserve``.

Below it, writes that add to the catalog are refused with 507 Insufficient
Storage: new objects, new containers (and container PUT of an existing one,
as Swift answers), container and object POST. Deletes of objects and
containers are always accepted, so that clients who filled the disk can
free space through the API: a delete records a tombstone (a few database
pages) before the object's data is removed. Reads are unaffected.

Possible values:
    * A number of bytes (``10485760``) or a percentage of the filesystem's
      size (``1%``, ``0.5%``); ``0`` turns the check off (sqlite's own "disk
      full" still answers 507, but deletes may then fail too)

Related options:
    * ``[catalog] path``
    * ``fallocate_reserve`` of each ``file`` back end, for object data
""",
    ),
    cfg.IntOpt(
        "max_account_name_length",
        default=256,
        min=1,
        max=4096,
        help="""
Longest account name accepted, in bytes of UTF-8 (Swift's default is 256).

Possible values:
    * 1 to 4096

Related options:
    * ``max_container_name_length``, ``max_object_name_length``
""",
    ),
    cfg.IntOpt(
        "max_container_name_length",
        default=256,
        min=1,
        max=4096,
        help="""
Longest container name accepted, in bytes of UTF-8 (Swift's default is 256).

Keep it equal to the sync targets' limit, or containers with longer names
cannot be synced to them.

Possible values:
    * 1 to 4096

Related options:
    * ``max_account_name_length``, ``max_object_name_length``
""",
    ),
    cfg.IntOpt(
        "max_object_name_length",
        default=1024,
        min=1,
        max=65536,
        help="""
Longest object name accepted, in bytes of UTF-8 (Swift's default is 1024).

Keep it equal to the sync targets' limit, or objects with longer names cannot
be synced to them.

Possible values:
    * 1 to 65536

Related options:
    * ``max_container_name_length``
""",
    ),
    cfg.IntOpt(
        "max_meta_name_length",
        default=128,
        min=1,
        max=4096,
        help="""
Longest user metadata name (after ``X-Container-Meta-`` or
``X-Object-Meta-``), in bytes (Swift's default is 128).

Possible values:
    * 1 to 4096

Related options:
    * ``max_meta_value_length``, ``max_meta_count``, ``max_meta_overall_size``
""",
    ),
    cfg.IntOpt(
        "max_meta_value_length",
        default=256,
        min=1,
        max=8192,
        help="""
Longest user metadata value, in bytes (Swift's default is 256).

Possible values:
    * 1 to 8192

Related options:
    * ``max_meta_name_length``, ``max_meta_overall_size``
""",
    ),
    cfg.IntOpt(
        "max_meta_count",
        default=90,
        min=0,
        max=10000,
        help="""
Most user metadata items on one container or object (Swift's default is 90).

Possible values:
    * 0 to 10000

Related options:
    * ``max_meta_overall_size``
""",
    ),
    cfg.IntOpt(
        "max_meta_overall_size",
        default=4096,
        min=1,
        max=1048576,
        help="""
Most bytes of user metadata names and values together on one container or
object (Swift's default is 4096).

Possible values:
    * 1 to 1048576

Related options:
    * ``max_meta_count``, ``max_meta_name_length``, ``max_meta_value_length``
""",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the ``[catalog]`` options on ``conf``."""
    # A fresh group per ConfigOpts: oslo.config copies the group shallowly,
    # so a shared module-level one would carry options between instances.
    conf.register_group(
        cfg.OptGroup(GROUP.name, title=GROUP.title, help=GROUP.help)
    )
    conf.register_opts(CATALOG_OPTS, group=GROUP.name)


def list_opts() -> list[tuple[str | cfg.OptGroup | None, list[cfg.Opt]]]:
    """List the options for the sample configuration."""
    return [(GROUP, CATALOG_OPTS)]
