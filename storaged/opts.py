"""Every storaged option: registration and the sample configuration listing.

The option groups of :mod:`storaged.conf`, in one ordered tuple:
:func:`list_opts` is the ``oslo.config.opts`` entry point, and
:func:`storaged.common.config.prepare_service` registers through
:func:`register_opts` and :func:`register_dynamic_opts`.  The sections of
the enabled object store back ends hold their drivers' options: the back
end loader (:mod:`storaged.objectstore.backend`) registers and lists them,
imported only then, so that parsing a command line alone (``--help``)
loads no driver.
"""

from __future__ import annotations

import copy

from oslo_config import cfg

from storaged.conf import api
from storaged.conf import cache
from storaged.conf import catalog
from storaged.conf import coordination
from storaged.conf import daemon
from storaged.conf import default
from storaged.conf import expirer
from storaged.conf import heartbeat
from storaged.conf import kvs
from storaged.conf import metrics
from storaged.conf import store
from storaged.conf import sync

#: every option module, in the order of the sample configuration.
MODULES = (default, daemon, kvs, catalog, store, cache, coordination,
           heartbeat, api, sync, expirer, metrics)


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
    from storaged.objectstore import backend

    for module in MODULES:
        hook = getattr(module, "register_dynamic_opts", None)
        if hook is not None:
            hook(conf)
        if module is store:
            backend.register_dynamic_opts(conf)


def list_opts() -> list[tuple[str | cfg.OptGroup | None, list[cfg.Opt]]]:
    """Return every storaged option, grouped, groups in a stable order."""
    from storaged.objectstore import backend

    result: list[tuple[str | cfg.OptGroup | None, list[cfg.Opt]]] = []
    for module in MODULES:
        listed = backend.list_opts() if module is store else module.list_opts()
        for group, opts in listed:
            result.append((group, copy.deepcopy(opts)))
    return result
