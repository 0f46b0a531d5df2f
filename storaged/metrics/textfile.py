"""node_exporter's textfile collector: the figures of a one-shot run.

A ``--once`` run (cron, a systemd timer) is gone before any scrape; it
leaves its figures in ``[metrics] textfile_dir/<daemon>-<node_id>.prom``,
which node_exporter's textfile collector reads.  prometheus_client writes
the file (``write_to_textfile``: a temporary file beside it, renamed), so a
scrape never sees half of one.
"""

from __future__ import annotations

import os
import re

import prometheus_client
from prometheus_client import registry as prom_registry

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def path_for(directory: str, daemon: str, node_id: str) -> str:
    """Return the textfile of ``daemon`` on ``node_id`` in ``directory``."""
    name = "%s-%s" % (daemon, node_id) if node_id else daemon
    return os.path.join(directory, _UNSAFE.sub("_", name) + ".prom")


def write(path: str, registry: prom_registry.CollectorRegistry) -> str:
    """Write ``registry`` to ``path`` atomically; return ``path``.

    :raises OSError: the directory is missing or not writable.
    """
    prometheus_client.write_to_textfile(path, registry)
    return path
