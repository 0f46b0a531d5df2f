"""Prometheus metrics of a storaged process, and their statsd twin.

* :mod:`~storaged.metrics.registry`: :class:`Metrics`, the facade every
  figure goes through (``incr``, ``observe``, ``set``): a prometheus_client
  metric and, when ``[metrics] statsd_host`` is set, a statsd event;
* :mod:`~storaged.metrics.http`: ``/metrics`` on ``[metrics] bind_host``
  and the daemon's ``metrics_port``;
* :mod:`~storaged.metrics.textfile`: the node_exporter textfile of a
  one-shot run, in ``[metrics] textfile_dir``;
* :mod:`~storaged.metrics.multiproc`: the API's workers adding up.

A process has one set of metrics (prometheus_client's model): a command
calls :func:`setup` once its configuration is parsed (binding the port, so
that a clash stops the start), the process that holds the figures calls
:func:`serve`, a one-shot run :func:`write_textfile` before it exits; code
below gets the facade from :func:`process`.  Which metrics exist is listed
in ``docs/metrics.rst``.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import prometheus_client
from prometheus_client import registry as prom_registry

from storaged.metrics import http
from storaged.metrics import multiproc
from storaged.metrics import statsd as statsd_mod
from storaged.metrics import textfile
from storaged.metrics.registry import Metrics

__all__ = [
    "Metrics", "configured", "process", "reset", "serve", "setup", "write_textfile",
]

LOG = logging.getLogger(__name__)


class _State:
    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.metrics: Metrics | None = None
        self.sock: socket.socket | None = None
        self.endpoint: http.Endpoint | None = None
        self.multiproc_dir: str | None = None
        self.textfile: str | None = None
        self.configured = False
        self.conf: Any = None


_state = _State()


def setup(
    conf: Any,
    daemon: str,
    group: str | None = None,
    *,
    once: bool = False,
    multiprocess_dir: str | None = None,
) -> Metrics:
    """Make this process's metrics from the configuration; bind the port.

    :param conf: the parsed configuration (``[metrics]`` registered).
    :param daemon: the daemon's name (statsd names, the textfile's name).
    :param group: the option group whose ``metrics_port`` applies (none
        for a command without an endpoint).
    :param once: a one-shot run: no endpoint, a textfile at the end when
        ``[metrics] textfile_dir`` is set.
    :param multiprocess_dir: with an endpoint, the directory of
        prometheus_client's multiprocess mode (emptied here): for a daemon
        whose figures live in forked workers.
    :raises storaged.metrics.http.MetricsPortInUse: the port is taken.
    """
    reset()
    # ``*_created`` series double every counter for a figure nobody graphs.
    prometheus_client.disable_created_metrics()
    opts = _options(conf)
    client = None
    if opts.statsd_host:
        client = statsd_mod.StatsdClient(
            opts.statsd_host, opts.statsd_port, opts.statsd_prefix
        )
    port = 0
    if group is not None and not once:
        port = int(getattr(conf[group], "metrics_port", 0) or 0)
    if port:
        _state.sock = http.bind(opts.bind_host, port, group or daemon)
        if multiprocess_dir:
            _state.multiproc_dir = multiproc.enable(multiprocess_dir)
    if once and opts.textfile_dir:
        _state.textfile = textfile.path_for(
            opts.textfile_dir, daemon, getattr(conf, "node_id", "")
        )
    _state.metrics = Metrics(daemon, statsd=client)
    _state.configured = True
    _state.conf = conf
    return _state.metrics


class _Defaults:
    """``[metrics]``'s defaults, for a configuration without the group."""

    bind_host = "127.0.0.1"
    textfile_dir = ""
    statsd_host = ""
    statsd_port = 8125
    statsd_prefix = "storaged"


def _options(conf: Any) -> Any:
    try:
        return conf.metrics
    except (AttributeError, LookupError):
        # oslo.config's NoSuchOptError is an AttributeError and a KeyError.
        return _Defaults()


def configured(conf: Any = None) -> bool:
    """Tell whether :func:`setup` made this process's metrics (from ``conf``)."""
    return _state.configured and (conf is None or _state.conf is conf)


def process() -> Metrics:
    """Return this process's metrics (in-memory ones if :func:`setup` was not run)."""
    if _state.metrics is None:
        _state.metrics = Metrics("storaged")
    return _state.metrics


def exposed_registry() -> prom_registry.CollectorRegistry:
    """Return what ``/metrics`` shows: this process's, or every worker's."""
    if _state.multiproc_dir:
        return multiproc.collector_registry(_state.multiproc_dir)
    return process().registry


def serve() -> http.Endpoint | None:
    """Serve ``/metrics`` from this process, once (None without a port).

    A forked child that calls it serves the socket its parent bound; a
    process that serves already (a service restarted by SIGHUP) goes on.
    """
    sock = _state.sock
    if sock is None:
        return None
    if _state.endpoint is not None and _state.endpoint.pid == os.getpid():
        return _state.endpoint
    _state.endpoint = http.serve(sock, exposed_registry())
    return _state.endpoint


def write_textfile() -> str | None:
    """Write the textfile of a one-shot run (None: not configured).

    An unwritable directory is logged, not raised: the run's own outcome
    decides the exit status.
    """
    if _state.textfile is None:
        return None
    try:
        return textfile.write(_state.textfile, process().registry)
    except OSError as err:
        LOG.warning("Cannot write the metrics textfile %s: %s", _state.textfile, err)
        return None


def mark_worker_dead(pid: int | None = None) -> None:
    """In a forked worker that exits: its live gauges stop counting."""
    if _state.multiproc_dir:
        multiproc.mark_dead(pid or os.getpid(), _state.multiproc_dir)


def reset() -> None:
    """Forget this process's metrics, endpoint and mode (tests, setup)."""
    endpoint, sock = _state.endpoint, _state.sock
    if endpoint is not None and endpoint.pid == os.getpid():
        endpoint.close()
    elif sock is not None:
        sock.close()
    if _state.multiproc_dir:
        multiproc.disable()
    if _state.metrics is not None and _state.metrics.statsd is not None:
        _state.metrics.statsd.close()
    _state.clear()
