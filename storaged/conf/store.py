"""Options of the object store: which back ends exist, and each one's group.

Static options: ``[DEFAULT] enabled_backends``, ``[store] default_backend``
and ``[store] reserved_backends``.  Dynamic ones: one group per enabled back
end id, holding the common :data:`BACKEND_OPTS` (``weight``,
``description``, ``cache``) and the ``OPTIONS`` of the back end's driver;
they are registered by :func:`register_dynamic_opts` once the files are
parsed.
"""

from __future__ import annotations

from oslo_config import cfg

GROUP = cfg.OptGroup(
    "store",
    title="Object store",
    help="""
The object store: back ends that keep object data.

Each back end listed in ``[DEFAULT] enabled_backends`` has its own section,
named after its id, with the options of its type (see the ``[file]`` and
``[http]`` sections of this sample for what each type accepts).
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
    * TYPE: ``file`` (local or mounted directories, read-write) or
      ``http`` (read-only HTTP(S) URLs)

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


def register_dynamic_opts(conf: cfg.ConfigOpts) -> None:
    """Register one group per enabled back end (after parsing).

    :raises storaged.exception.ConfigError: malformed ``enabled_backends``,
        a duplicate or clashing id, an unknown type.
    """
    from storaged.objectstore import backend

    backend.register_backend_opts(conf)


def _type_group(name: str) -> cfg.OptGroup:
    return cfg.OptGroup(
        name,
        title=f"Options of {name} back ends",
        help=f"""
Options of back ends of type ``{name}``.

There is no ``[{name}]`` section: put these in the section named after the
back end id, e.g. ``[fast]`` for ``enabled_backends = fast:{name}``.
""",
    )


def list_opts() -> list[tuple[str | cfg.OptGroup | None, list[cfg.Opt]]]:
    """List the options for the sample configuration.

    The static options, then one group per driver type (sorted by name) with
    the common back end options and the driver's own ``OPTIONS``.
    """
    from storaged.objectstore import backend

    result: list[tuple[str | cfg.OptGroup | None, list[cfg.Opt]]] = [
        (None, DEFAULT_OPTS),
        (GROUP, STORE_OPTS),
    ]
    for name in backend.known_types():
        driver = backend.driver_class(name)
        result.append((_type_group(name), BACKEND_OPTS + list(driver.OPTIONS)))
    return result
