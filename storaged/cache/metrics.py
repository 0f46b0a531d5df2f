"""The cache's Prometheus figures (listed in ``docs/metrics.rst``).

The engine counts its events by name (:meth:`CacheDirectory.count
<storaged.cache.directory.CacheDirectory.count>`: ``hits``, ``fills``,
``bypass_size``...); :func:`event` turns the ones an operator graphs into
metrics of this process (:func:`storaged.metrics.process`): the API's reads
count on ``storaged-api``'s ``/metrics``, prefetches on ``storaged-cache``'s.
A prune sets the size gauges and counts its evictions (:func:`pruned`), so
``storaged-cache`` and a cron prune's textfile show them.
"""

from __future__ import annotations

from typing import Any

from storaged import metrics as metrics_mod
from storaged.metrics import Metrics

#: prune durations: a small cache takes milliseconds, a big one minutes
PRUNE_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)

# engine counter -> (metric, labels)
_EVENTS: dict[str, tuple[str, dict[str, str]]] = {
    "hits": ("cache_hits", {}),
    "hits_after_wait": ("cache_hits", {}),
    "misses": ("cache_misses", {}),
    "fills": ("cache_fills", {"outcome": "ok"}),
    "fill_failures": ("cache_fills", {"outcome": "failed"}),
    "fills_abandoned": ("cache_fills", {"outcome": "abandoned"}),
}
# a reader that waited for another reader's fill: it ended in a hit, or it
# followed the fill as it was written
_WAITS = {"hits_after_wait": "hit", "followed": "followed"}


def declare_metrics(metrics: Metrics) -> None:
    """Declare the cache's metrics."""
    metrics.gauge("cache_size_bytes", "Bytes the cache directory held after the "
                  "last prune (fills in progress and failed ones included).",
                  multiprocess_mode="mostrecent")
    metrics.gauge("cache_max_size_bytes", "[cache] max_size (0: no limit).",
                  multiprocess_mode="mostrecent")
    metrics.gauge("cache_entries", "Complete entries the cache held after the "
                  "last prune.", multiprocess_mode="mostrecent")
    metrics.counter("cache_hits", "Whole-object reads served from the cache.")
    metrics.counter("cache_misses", "Reads that found no cache entry.")
    metrics.counter("cache_fills", "Cache fills ended, by outcome (ok, failed: "
                    "moved to invalid/, abandoned: the reader went away).",
                    ["outcome"])
    metrics.counter("cache_single_flight_waits", "Reads that waited for a fill "
                    "another reader was making, by how they ended (hit, "
                    "followed).", ["outcome"])
    metrics.counter("cache_evictions", "Entries removed by prunes.")
    metrics.counter("cache_evicted_bytes", "Bytes of entries removed by prunes.")
    metrics.histogram("cache_prune_duration_seconds", "Seconds a prune took.",
                      buckets=PRUNE_BUCKETS)


def _metrics() -> Metrics:
    m = metrics_mod.process()
    if "cache_hits" not in m:
        declare_metrics(m)
    return m


def event(name: str, n: int = 1) -> None:
    """Count an engine event (one of :meth:`CacheDirectory.count`'s names)."""
    metric = _EVENTS.get(name)
    wait = _WAITS.get(name)
    if metric is None and wait is None:
        return
    m = _metrics()
    if metric is not None:
        m.incr(metric[0], n, **metric[1])
    if wait is not None:
        m.incr("cache_single_flight_waits", n, outcome=wait)


def pruned(result: Any, max_size: int) -> None:
    """Record a prune (a :class:`~storaged.cache.pruner.PruneResult`)."""
    if result.locked_out:
        return
    m = _metrics()
    m.set("cache_max_size_bytes", max_size)
    m.observe("cache_prune_duration_seconds", result.seconds)
    if result.dry_run:
        return
    m.set("cache_size_bytes", result.total_after)
    m.set("cache_entries", max(0, result.entries_before - result.pruned))
    if result.pruned:
        m.incr("cache_evictions", result.pruned)
        m.incr("cache_evicted_bytes", result.pruned_bytes)
