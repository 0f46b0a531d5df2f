"""One code path for every figure: a Prometheus metric and a statsd event.

A daemon declares its metrics once on a :class:`Metrics` and updates them
by name::

    m = Metrics("sync")
    m.counter("sync_objects_sent", "Objects put or deleted on targets.", ["op"])
    m.incr("sync_objects_sent", 3, op="put")

updates ``storaged_sync_objects_sent_total{op="put"}`` and, with a statsd
client, sends ``<prefix>.sync.sync_objects_sent.put:3|c``: the statsd name
is the daemon, the metric's name without ``storaged_``, ``_total`` or
``_seconds``, then the label values, as Swift names its events
(``proxy-server.object.GET.200.timing``).  A histogram in seconds is a
statsd timing in milliseconds.

Label values must come from small fixed sets (a method, a status class, a
reason): never an account, a container or an object name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import prometheus_client
from prometheus_client import registry as prom_registry

from storaged import concurrency
from storaged.metrics import locks  # noqa: F401  (native locks, first)
from storaged.metrics import statsd as statsd_mod

#: the namespace of every storaged metric
NAMESPACE = "storaged"

#: seconds: from a fast request to a long pass
DEFAULT_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0, 900.0, 3600.0,
)


class Metrics:
    """A daemon's metrics, and the statsd client they feed too.

    :param daemon: the daemon's name (``api``, ``sync``, ...): the statsd
        name's first part.
    :param registry: where the metrics are registered (a new one if None).
        Under prometheus_client's multiprocess mode the figures are read
        from its directory instead (:mod:`storaged.metrics.multiproc`).
    :param statsd: where statsd events go, or None.
    """

    def __init__(
        self,
        daemon: str,
        registry: prom_registry.CollectorRegistry | None = None,
        statsd: statsd_mod.StatsdClient | None = None,
    ) -> None:
        self.daemon = daemon
        self.registry = registry or prom_registry.CollectorRegistry()
        self.statsd = statsd
        self._metrics: dict[str, Any] = {}
        self._labels: dict[str, tuple[str, ...]] = {}
        self._collectors: dict[str, Any] = {}
        self._gauges: dict[str, bool] = {}
        # (name, label items) -> child: prometheus_client's labels() checks
        # and sorts on every call, on the path of every request.
        self._children: dict[tuple[Any, ...], Any] = {}
        # Native: figures are updated from the pool's threads too (.locks).
        self._lock = concurrency.native_lock()

    # -- declaring ----------------------------------------------------------

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> None:
        """Declare a counter (``storaged_<name>_total``); again: nothing."""
        self._declare(prometheus_client.Counter, name, doc, labels)

    def gauge(
        self,
        name: str,
        doc: str,
        labels: Sequence[str] = (),
        multiprocess_mode: str = "livesum",
    ) -> None:
        """Declare a gauge (``storaged_<name>``).

        :param multiprocess_mode: how the values of several processes
            combine under multiprocess mode (prometheus_client's modes:
            ``livesum`` adds the live processes' values, ``max``,
            ``mostrecent``...).
        """
        self._declare(prometheus_client.Gauge, name, doc, labels,
                      multiprocess_mode=multiprocess_mode)

    def histogram(
        self,
        name: str,
        doc: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> None:
        """Declare a histogram (``storaged_<name>``, in seconds or bytes)."""
        self._declare(prometheus_client.Histogram, name, doc, labels,
                      buckets=tuple(buckets))

    def _declare(
        self, kind: type[Any], name: str, doc: str, labels: Sequence[str], **kw: Any
    ) -> None:
        with self._lock:
            if name in self._metrics:
                return
            self._metrics[name] = kind(
                name, doc, labelnames=tuple(labels), namespace=NAMESPACE,
                registry=self.registry, **kw,
            )
            self._labels[name] = tuple(labels)
            self._gauges[name] = kind is prometheus_client.Gauge

    def collector(self, key: str, collector: Any) -> None:
        """Register a custom collector under ``key``, replacing the previous one.

        For figures computed at scrape time from a daemon's own records (a
        worst-N table); they exist in this process only (not under
        multiprocess mode) and are not sent to statsd.
        """
        with self._lock:
            old = self._collectors.pop(key, None)
            if old is not None:
                self.registry.unregister(old)
            self.registry.register(collector)
            self._collectors[key] = collector

    def __contains__(self, name: str) -> bool:
        return name in self._metrics

    def metric(self, name: str, **labels: str) -> Any:
        """Return the prometheus_client metric (the child of ``labels``)."""
        if not labels:
            return self._metrics[name]
        key = (name, *labels.items())
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._metrics[name].labels(**labels)
        return child

    # -- updating -----------------------------------------------------------

    def incr(self, name: str, n: float = 1, **labels: str) -> None:
        """Add ``n`` to a counter (or a gauge); statsd: a counter (a gauge delta)."""
        gauge = self._gauges[name]
        if n < 0 and not gauge:
            raise ValueError("a counter cannot go down: %s" % name)
        self.metric(name, **labels).inc(n)
        if self.statsd is not None:
            # A gauge's change is statsd's gauge delta: a signed value.
            self._statsd(name, n, statsd_mod.GAUGE_DELTA if gauge
                         else statsd_mod.COUNTER, labels)

    def observe(self, name: str, value: float, **labels: str) -> None:
        """Record one value in a histogram; statsd: a timing in ms."""
        self.metric(name, **labels).observe(value)
        if self.statsd is not None:
            if name.endswith("_seconds"):
                value *= 1000.0
            self._statsd(name, value, statsd_mod.TIMING, labels)

    def set(self, name: str, value: float, **labels: str) -> None:
        """Set a gauge; statsd: a gauge event."""
        self.metric(name, **labels).set(value)
        if self.statsd is not None:
            self._statsd(name, value, statsd_mod.GAUGE, labels)

    def _statsd(
        self, name: str, value: float, kind: str, labels: dict[str, str]
    ) -> None:
        if self.statsd is None:
            return
        self.statsd.send(statsd_name(self.daemon, name, [
            labels[label] for label in self._labels.get(name, ()) if label in labels
        ]), value, kind)


def statsd_name(daemon: str, name: str, values: Sequence[str] = ()) -> str:
    """Return the Swift-style statsd name of a metric and its label values.

    >>> statsd_name("api", "api_request_duration_seconds", ["GET", "2xx"])
    'api.api_request_duration.GET.2xx'
    """
    for suffix in ("_total", "_seconds"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    parts = [daemon, name]
    parts.extend(str(v).replace(".", "_").replace(":", "_") for v in values)
    return ".".join(parts)
