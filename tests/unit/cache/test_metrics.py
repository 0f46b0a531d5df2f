"""The cache's figures reach this process's metrics: hits, fills, waits, prunes."""

from __future__ import annotations

import os

import pytest

from storaged import metrics as metrics_mod
from storaged.cache import Pruner
from storaged.cache import metrics as cache_metrics
from tests.unit.cache.support import read_all
from tests.unit.cache.support import seed_entries


@pytest.fixture(autouse=True)
def _fresh_process_metrics():
    metrics_mod.reset()
    yield
    metrics_mod.reset()


def value(name, **labels):
    return metrics_mod.process().registry.get_sample_value(name, labels or None) or 0


def test_a_miss_fills_then_hits(cache, backend):
    ref = backend.put("loc", os.urandom(70_000))
    for _ in range(3):
        read_all(cache, ref, backend.fetch_for("loc"))
    assert value("storaged_cache_misses_total") == 1
    assert value("storaged_cache_hits_total") == 2
    assert value("storaged_cache_fills_total", outcome="ok") == 1
    assert value("storaged_cache_fills_total", outcome="failed") == 0


def test_a_failed_fill_and_a_single_flight_wait_are_counted(cache):
    cache.count("fill_failures")
    cache.count("hits_after_wait")
    cache.count("followed", 2)
    cache.count("bypass_size")  # the engine's own counter only
    assert value("storaged_cache_fills_total", outcome="failed") == 1
    assert value("storaged_cache_single_flight_waits_total", outcome="hit") == 1
    assert value("storaged_cache_single_flight_waits_total", outcome="followed") == 2
    assert value("storaged_cache_hits_total") == 1
    assert cache.counters["bypass_size"] == 1


def test_a_prune_sets_the_size_and_counts_evictions(make_cache):
    cache = make_cache(max_size=15_000, low_watermark=0.5)
    seed_entries(cache, [1000 * k for k in range(20)], 1000)
    Pruner(cache).prune(dry_run=True)
    assert value("storaged_cache_evictions_total") == 0
    assert value("storaged_cache_prune_duration_seconds_count") == 1
    result = Pruner(cache).prune()
    assert result.pruned == 13
    assert value("storaged_cache_evictions_total") == 13
    assert value("storaged_cache_evicted_bytes_total") == 13_000
    assert value("storaged_cache_size_bytes") == 7000
    assert value("storaged_cache_entries") == 7
    assert value("storaged_cache_max_size_bytes") == 15_000
    assert value("storaged_cache_prune_duration_seconds_count") == 2


def test_the_metrics_are_declared_once_on_any_process_metrics():
    m = metrics_mod.Metrics("t")
    cache_metrics.declare_metrics(m)
    cache_metrics.declare_metrics(m)
    assert "cache_hits" in m and "cache_prune_duration_seconds" in m
