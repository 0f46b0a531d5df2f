"""node_exporter's textfile collector: the figures of a one-shot run.

A ``--once`` run (cron, a systemd timer) is gone before any scrape; it
leaves its figures in ``[metrics] textfile_dir/<daemon>-<node_id>.prom``,
which node_exporter's textfile collector reads.  prometheus_client writes
the file (``write_to_textfile``: a temporary file beside it, renamed), so a
scrape never sees half of one.
"""

from __future__ import annotations

import contextlib
import os
import re

import prometheus_client
from prometheus_client import registry as prom_registry

from storaged import concurrency

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def path_for(directory: str, daemon: str, node_id: str) -> str:
    """Return the textfile of ``daemon`` on ``node_id`` in ``directory``."""
    name = "%s-%s" % (daemon, node_id) if node_id else daemon
    return os.path.join(directory, _UNSAFE.sub("_", name) + ".prom")


def write(path: str, registry: prom_registry.CollectorRegistry) -> str:
    """Write ``registry`` to ``path`` atomically; return ``path``.

    The figures are read in the caller's thread (under eventlet their locks
    are green: the hub's thread must take them), the file is written in the
    native thread pool: a temporary file beside it, renamed over it.

    :raises OSError: the directory is missing or not writable.
    """
    text = prometheus_client.generate_latest(registry)
    concurrency.run_blocking(_replace, path, text)
    return path


def _replace(path: str, text: bytes) -> None:
    tmp = "%s.%d.tmp" % (path, os.getpid())
    try:
        with open(tmp, "wb") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
