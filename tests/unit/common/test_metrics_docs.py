"""docs/metrics.rst lists every metric, and no metric that does not exist."""

from __future__ import annotations

import os
import re

from storaged.api import app as api_app
from storaged.cache import metrics as cache_metrics
from storaged.common import daemon as daemon_mod
from storaged.coordination import metrics as coordination_metrics
from storaged.kvs import base as kvs_base
from storaged.metrics import Metrics
from storaged.objectstore import driver as store_driver
from storaged.sync import daemon as sync_daemon

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))


def _exposed_names():
    m = Metrics("t")
    daemon_mod.declare_metrics(m)
    api_app.declare_metrics(m)
    sync_daemon.declare_metrics(m)
    cache_metrics.declare_metrics(m)
    store_driver.declare_metrics(m)
    coordination_metrics.declare_metrics(m)
    kvs_base.declare_metrics(m)
    names = set()
    for family in m.registry.collect():
        names.add(family.name + "_total" if family.type == "counter" else family.name)
    names.update(name for _field, name, _text in sync_daemon._PER_CONTAINER)
    return names


def exposed_names():
    """Every metric name storaged exposes (counters with ``_total``)."""
    return _exposed_names()


def test_every_metric_is_documented_and_no_other():
    with open(os.path.join(ROOT, "docs", "metrics.rst")) as f:
        text = f.read()
    documented = set(re.findall(r"``(storaged_[a-z0-9_]+)``", text))
    exposed = _exposed_names()
    assert exposed - documented == set()
    assert documented - exposed == set()
