"""Options of the ``[cache]`` group: the local object cache and its daemon.

Which back ends are read through the cache is set per back end, with
``cache = true`` in the back end's own section (see
:data:`storaged.conf.store.BACKEND_OPTS`).
"""

from __future__ import annotations

from oslo_config import cfg

from storaged.conf import metrics

GROUP = cfg.OptGroup(
    "cache",
    title="Object cache",
    help="""
A local cache of objects whose back end is slow or remote.

Reads of back ends with ``cache = true`` in their section are served from
``cache_dir`` when the object is there, and fill it when it is not.
``storaged-cache`` keeps it under ``max_size`` (prune), removes failed and
abandoned fills (clean) and fills queued objects (prefetch); the one-shot
``storaged-cache-prune`` and ``storaged-cache-clean`` do the same from cron.
""",
)

CACHE_OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        "cache_dir",
        default="$state_path/cache",
        help="""
Directory of the object cache.

Entries live directly in it; ``incomplete/`` holds fills in progress,
``invalid/`` failed fills (with the error recorded), ``queue/`` objects
waiting to be prefetched. It is created if missing. Its filesystem should
have user extended attributes (``user_xattr``); without them entry metadata
goes to an sqlite index in the same directory.

Possible values:
    * An absolute directory path

Related options:
    * ``metadata_store``, ``shared_dir``
""",
    ),
    cfg.IntOpt(
        "max_size",
        default=10 * 1024 ** 3,
        min=0,
        mutable=True,
        help="""
Largest number of bytes the cache may hold, counting ``incomplete/`` and
``invalid/``.

A fill that would go past it is not admitted (the reader is served from the
back end) unless a prune makes room first; the pruner brings the cache back
to ``low_watermark`` of it. 0 means no limit (only free space is checked).

Possible values:
    * A number of bytes, e.g. 10737418240 for 10 GiB; 0 for no limit

Related options:
    * ``low_watermark``, ``min_free_space``, ``prune_interval``
""",
    ),
    cfg.FloatOpt(
        "low_watermark",
        default=0.8,
        min=0.05,
        max=1.0,
        mutable=True,
        help="""
Fraction of ``max_size`` a prune brings the cache down to.

A prune starts only when the cache holds more than ``max_size``; it then
evicts the least recently read entries until the cache holds at most
``low_watermark * max_size`` bytes, so that the next fills do not each
trigger a prune.

Possible values:
    * A fraction from 0.05 to 1.0

Related options:
    * ``max_size``
""",
    ),
    cfg.FloatOpt(
        "min_free_space",
        default=0.05,
        min=0.0,
        max=0.9,
        mutable=True,
        help="""
Fraction of the cache filesystem that must stay free after a fill.

A fill that would leave less free space is not admitted: the reader is
served from the back end and the cache is left as it is.

Possible values:
    * A fraction from 0.0 (only the object must fit) to 0.9

Related options:
    * ``max_size``
""",
    ),
    cfg.IntOpt(
        "stall_time",
        default=86400,
        min=1,
        mutable=True,
        help="""
Seconds after its last write that a fill in ``incomplete/`` counts as
stalled.

The cleaner removes a stalled fill only when no live process holds it (the
writer's lock is free): a slow but running fill is never removed.

Related options:
    * ``clean_interval``
""",
    ),
    cfg.IntOpt(
        "invalid_grace",
        default=3600,
        min=0,
        mutable=True,
        help="""
Seconds a failed fill is kept in ``invalid/`` for inspection before the
cleaner removes it.

The error of each failed fill is recorded with it (``storaged-manage cache
stats`` shows the latest ones). The pruner may remove them sooner when the
cache must make room.

Related options:
    * ``clean_interval``
""",
    ),
    cfg.FloatOpt(
        "fill_wait_timeout",
        default=60.0,
        min=0.1,
        max=3600.0,
        mutable=True,
        help="""
Seconds a reader waiting for another process's fill of the same object
accepts to see no progress.

Readers of an object being filled stream the part already written and wait
for the rest; when nothing is added for this long they read the rest from
the back end themselves.
""",
    ),
    cfg.StrOpt(
        "metadata_store",
        default="auto",
        choices=[
            ("auto", "user extended attributes when the filesystem has them, "
                     "else the sqlite index"),
            ("xattr", "user extended attributes only: refuse to start without "
                      "them"),
            ("index", "an sqlite index in cache_dir (.index.sqlite)"),
        ],
        help="Where the metadata of each entry (hits, last access, size, "
        "digest, source) is kept.",
    ),
    cfg.BoolOpt(
        "shared_dir",
        default=False,
        help="""
Whether ``cache_dir`` is shared by several nodes (a network filesystem).

Prunes and cleans always hold a lock on ``cache_dir/.lock``; with this set
they also hold a lease in the state store, so two nodes never prune at once
even where the filesystem's locks are local to each node. Needs a state store
the nodes share (``[kvs] backend_url`` on Redis).

Related options:
    * ``[kvs] backend_url``
""",
    ),
    cfg.FloatOpt(
        "prune_interval",
        default=300.0,
        min=1.0,
        max=86400.0,
        mutable=True,
        help="Seconds between two prune passes of ``storaged-cache``.",
    ),
    cfg.FloatOpt(
        "clean_interval",
        default=3600.0,
        min=1.0,
        max=86400.0,
        mutable=True,
        help="Seconds between two clean passes of ``storaged-cache``.",
    ),
    cfg.FloatOpt(
        "prefetch_interval",
        default=60.0,
        min=1.0,
        max=86400.0,
        mutable=True,
        help="Seconds between two prefetch passes of ``storaged-cache`` "
        "(each fills the objects queued so far, in queue order).",
    ),
    metrics.port_opt("storaged-cache"),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the ``[cache]`` options on ``conf`` (safe to call twice)."""
    # A fresh group per ConfigOpts: oslo.config copies the group shallowly,
    # so a shared module-level one would carry options between instances.
    conf.register_group(
        cfg.OptGroup(GROUP.name, title=GROUP.title, help=GROUP.help)
    )
    conf.register_opts(CACHE_OPTS, group=GROUP.name)


def list_opts() -> list[tuple[str | cfg.OptGroup | None, list[cfg.Opt]]]:
    """List the options for the sample configuration."""
    return [(GROUP, CACHE_OPTS)]
