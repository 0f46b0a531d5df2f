"""The object store's static options: back ends enabled, default, reserved.

``[DEFAULT] enabled_backends``, ``[store] default_backend`` and
``reserved_backends``, and :data:`BACKEND_OPTS`, the options every back
end's section has.  The section of each enabled back end, with its driver's
own options, is registered once the files are parsed, by the loader
(:func:`storaged.objectstore.backend.register_dynamic_opts`): that needs
the drivers, this module only oslo.config, so that a command's ``--help``
does not load them.
"""

from __future__ import annotations

from oslo_config import cfg

GROUP = cfg.OptGroup(
    "store",
    title="Object store",
    help="""
The object store: back ends that keep object data.

Each back end listed in ``[DEFAULT] enabled_backends`` has its own section,
named after its id, with the options of its type (see the ``[file]``,
``[http]``, ``[swift]`` and ``[s3]`` sections of this sample for what each
type accepts).
""",
)

DEFAULT_OPTS: list[cfg.Opt] = [
    cfg.ListOpt(
        "enabled_backends",
        default=["local:file"],
        help="""
Object store back ends of this node, as a comma-separated list of ``ID:TYPE``.

The ID names the back end in locations, in the catalog and in the section
that holds its options (``[ID]``); the TYPE picks its driver. The default,
``local:file``, keeps objects under ``$state_path/objects`` and needs no
other setting.

Possible values:
    * ``ID:TYPE`` pairs, e.g. ``local:file, fast:file, mirror:http``
    * ID: a letter, then up to 63 letters, digits, ``_`` or ``-``; unique,
      and not the name of another section (``store``, ``kvs``, ...)
    * TYPE: ``file`` (local or mounted directories, read-write),
      ``http`` (read-only HTTP(S) URLs), ``swift`` (a container of an
      OpenStack Swift account, read-write) or ``s3`` (an S3 bucket, through
      boto3: install storaged's ``s3`` extra)

Related options:
    * ``[store] default_backend``, ``[store] reserved_backends``
    * ``[ID] weight`` and the options of each TYPE
""",
    ),
]

STORE_OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        "default_backend",
        help="""
Back end that receives new objects when the caller names none.

When unset and exactly one back end that is not reserved is enabled, that
one is the default; with several, it must be set.

Possible values:
    * An ID from ``[DEFAULT] enabled_backends`` that is not reserved

Related options:
    * ``[DEFAULT] enabled_backends``, ``[store] reserved_backends``
""",
    ),
    cfg.ListOpt(
        "reserved_backends",
        default=[],
        help="""
Back ends kept for storaged's internal use.

A reserved back end is configured like any other (it must be listed in
``[DEFAULT] enabled_backends`` and has its own section), but it is never the
default, and it is left out of the back ends offered to clients and of
weight ordering; storaged components ask for it by id.

Possible values:
    * A comma-separated list of IDs from ``[DEFAULT] enabled_backends``

Related options:
    * ``[DEFAULT] enabled_backends``, ``[store] default_backend``
""",
    ),
]

#: options every back end group has, whatever its type.
BACKEND_OPTS: list[cfg.Opt] = [
    cfg.IntOpt(
        "weight",
        default=0,
        min=-1000000,
        max=1000000,
        mutable=True,
        help="""
Preference of this back end when an object has locations on several.

Locations are ordered by weight, highest first; equal weights keep their
order. Only the order matters, not the size of the gaps. Read from memory:
looking it up never touches the back end.

Possible values:
    * An integer; 0 (the default) for no preference
""",
    ),
    cfg.StrOpt(
        "description",
        default="",
        mutable=True,
        help="A short description of the back end, shown to operators.",
    ),
    cfg.BoolOpt(
        "cache",
        default=False,
        help="""
Read this back end's objects through the local object cache.

For slow or remote back ends: a read is served from ``[cache] cache_dir``
when the object is there; otherwise it streams from the back end while the
cache is filled.

Related options:
    * ``[cache] cache_dir``, ``[cache] max_size``
""",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the static object store options on ``conf``."""
    conf.register_opts(DEFAULT_OPTS)
    # A fresh group per ConfigOpts: oslo.config copies the group shallowly,
    # so a shared module-level one would carry options between instances.
    conf.register_group(
        cfg.OptGroup(GROUP.name, title=GROUP.title, help=GROUP.help)
    )
    conf.register_opts(STORE_OPTS, group=GROUP.name)
