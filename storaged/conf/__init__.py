"""Option groups of storaged: one module per group.

Each module has ``register_opts(conf)`` and ``list_opts()``, and may have
``register_dynamic_opts(conf)`` for options that depend on parsed values.
Nothing here touches a global ``ConfigOpts``.

The object store's options are not here: the back end loader owns them
(:mod:`storaged.objectstore.backend`), as they depend on the installed
drivers, and an option module imports nothing above itself.
:mod:`storaged.opts` gathers both, in the order of the sample configuration,
for :func:`storaged.common.config.prepare_service` and
``oslo-config-generator``.
"""
