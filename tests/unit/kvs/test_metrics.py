"""The state store times its operations by operation and driver."""

from __future__ import annotations

import pytest

from storaged import exception
from storaged import kvs
from storaged import metrics as metrics_mod


@pytest.fixture(autouse=True)
def _fresh_process_metrics():
    metrics_mod.reset()
    yield
    metrics_mod.reset()


def count(op, driver):
    return metrics_mod.process().registry.get_sample_value(
        "storaged_kvs_operation_duration_seconds_count", {"op": op, "driver": driver}
    ) or 0


@pytest.mark.parametrize("url", ["memory://", "sqlite"])
def test_operations_are_timed(url, tmp_path):
    if url == "sqlite":
        url = "sqlite:///%s" % (tmp_path / "kvs.db")
    driver = url.split(":", 1)[0]
    with kvs.open_store(url) as store:
        store.set("a", 1)
        store.set_multi({"b": 2, "c": 3})
        assert store.get("a") == 1
        _value, version = store.get_versioned("a")
        store.compare_and_set("a", version, 2)
        assert store.get_multi(["b", "c"]) == {"b": 2, "c": 3}
        store.delete("a")
        with pytest.raises(exception.KVSNotFound):  # a miss is timed too
            store.get("a")
        store.delete_multi(["b", "c"])
        store.purge_expired()
        with store.lock("l"):
            pass
    assert count("set", driver) == 1
    assert count("set_multi", driver) == 1
    assert count("get", driver) == 2
    assert count("get_versioned", driver) == 1
    assert count("compare_and_set", driver) == 1
    assert count("get_multi", driver) == 1
    assert count("delete", driver) == 1
    assert count("delete_multi", driver) == 1
    assert count("purge_expired", driver) == 1
    assert count("lock_attempt", driver) == 1
