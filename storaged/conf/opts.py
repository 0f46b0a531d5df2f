"""The option list for ``oslo-config-generator`` (``oslo.config.opts``)."""

from __future__ import annotations

import copy

from oslo_config import cfg

from storaged import conf as storaged_conf


def list_opts() -> list[tuple[str | cfg.OptGroup | None, list[cfg.Opt]]]:
    """Return every storaged option, grouped, groups in a stable order."""
    result: list[tuple[str | cfg.OptGroup | None, list[cfg.Opt]]] = []
    for module in storaged_conf.MODULES:
        for group, opts in module.list_opts():
            result.append((group, copy.deepcopy(opts)))
    return result
