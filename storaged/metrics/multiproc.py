"""prometheus_client's multiprocess mode: the figures of forked workers add up.

``storaged-api`` with ``[api] workers > 1`` serves requests in several
processes; each keeps its figures in memory-mapped files of one directory
and the parent's ``/metrics`` adds them up (``MultiProcessCollector``).
:func:`enable` must run in the parent before any metric is made and before
the workers are forked: it empties the directory (files of a previous run
would be added in), sets ``PROMETHEUS_MULTIPROC_DIR`` (inherited by the
workers) and switches prometheus_client's value class, which it otherwise
picks once, when first imported.  A worker that exits calls
:func:`mark_dead`, so that its ``live*`` gauges (open connections) stop
counting.
"""

from __future__ import annotations

import os
import shutil

from prometheus_client import multiprocess
from prometheus_client import registry as prom_registry
from prometheus_client import values

from storaged.metrics import locks  # noqa: F401  (native locks, first)

ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"


def enable(directory: str) -> str:
    """Empty (or make) ``directory`` and switch this process to multiprocess mode.

    :returns: ``directory``.
    """
    if os.path.isdir(directory):
        shutil.rmtree(directory)
    os.makedirs(directory, mode=0o750, exist_ok=True)
    os.environ[ENV_VAR] = directory
    values.ValueClass = values.get_value_class()
    return directory


def disable() -> None:
    """Go back to in-memory values (tests)."""
    os.environ.pop(ENV_VAR, None)
    values.ValueClass = values.get_value_class()


def enabled() -> str | None:
    """Return the directory in use, or None."""
    return os.environ.get(ENV_VAR) or None


def collector_registry(directory: str) -> prom_registry.CollectorRegistry:
    """Return a registry that reads the figures of every process of ``directory``."""
    registry = prom_registry.CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    return registry


def mark_dead(pid: int, directory: str | None = None) -> None:
    """Drop the live gauges of process ``pid`` (it exited)."""
    directory = directory or enabled()
    if directory:
        multiprocess.mark_process_dead(pid, directory)
