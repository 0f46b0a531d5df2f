"""Option groups of storaged: one module per group.

Each module has ``register_opts(conf)`` and ``list_opts()``.  Nothing here
touches a global ``ConfigOpts``: :func:`register_opts` is called by
:func:`storaged.common.config.prepare_service` on the one it builds.
"""

from __future__ import annotations

from oslo_config import cfg

from storaged.conf import api
from storaged.conf import cache
from storaged.conf import catalog
from storaged.conf import coordination
from storaged.conf import daemon
from storaged.conf import default
from storaged.conf import heartbeat
from storaged.conf import kvs
from storaged.conf import store
from storaged.conf import sync

MODULES = (default, daemon, kvs, catalog, store, cache, coordination,
           heartbeat, api, sync)


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register every storaged option group on ``conf``."""
    for module in MODULES:
        module.register_opts(conf)


def register_dynamic_opts(conf: cfg.ConfigOpts) -> None:
    """Register the groups that depend on parsed values (after parsing).

    A module may define ``register_dynamic_opts(conf)``; it raises
    :class:`storaged.exception.ConfigError` (group and option set, location
    left empty) for a value it cannot use.
    """
    for module in MODULES:
        hook = getattr(module, "register_dynamic_opts", None)
        if hook is not None:
            hook(conf)
