"""The cache's figures from real processes: /metrics and a cron prune's textfile."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from prometheus_client.parser import text_string_to_metric_families

from storaged.cache import ObjectCache
from tests.functional.api.apiserver import ROOT
from tests.functional.api.apiserver import free_port
from tests.functional.test_metrics import sample
from tests.functional.test_metrics import scrape
from tests.functional.test_metrics import wait_for
from tests.unit.cache.support import seed_entries


def _conf(tmp_path, port=0):
    conf = tmp_path / "cache.conf"
    conf.write_text("\n".join([
        "[DEFAULT]",
        "state_path = %s" % (tmp_path / "state"),
        "node_id = n1",
        "log_file = %s" % (tmp_path / "cache.log"),
        "[cache]",
        "cache_dir = %s" % (tmp_path / "cache"),
        "max_size = 15000",
        "low_watermark = 0.5",
        "prune_interval = 1",
        "clean_interval = 60",
        "prefetch_interval = 60",
        "metrics_port = %d" % port,
        "[metrics]",
        "textfile_dir = %s" % (tmp_path / "textfiles"),
    ]) + "\n")
    (tmp_path / "textfiles").mkdir(exist_ok=True)
    return conf


def _seed(tmp_path, n):
    cache = ObjectCache(str(tmp_path / "cache"))
    try:
        seed_entries(cache, [time.time_ns() + k for k in range(n)], 1000)
    finally:
        cache.close()


def test_a_cron_prune_writes_the_cache_figures(tmp_path):
    conf = _conf(tmp_path)
    _seed(tmp_path, 20)
    result = subprocess.run(
        [sys.executable, "-m", "storaged.cmd.cache", "prune", "--config-file",
         str(conf)], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env=dict(os.environ, STORAGED_CONCURRENCY_BACKEND="eventlet"))
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "textfiles" / "cache-prune-n1.prom").read_text()
    values = {s.name: s.value for family in text_string_to_metric_families(text)
              for s in family.samples}
    assert values["storaged_cache_evictions_total"] == 13
    assert values["storaged_cache_evicted_bytes_total"] == 13000
    assert values["storaged_cache_size_bytes"] == 7000
    assert values["storaged_cache_entries"] == 7
    assert values["storaged_cache_max_size_bytes"] == 15000
    assert values["storaged_cache_prune_duration_seconds_count"] == 1


def test_the_cache_daemon_serves_them(tmp_path):
    port = free_port()
    conf = _conf(tmp_path, port)
    _seed(tmp_path, 20)
    env = dict(os.environ, STORAGED_CONCURRENCY_BACKEND="eventlet")
    env.pop("NOTIFY_SOCKET", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "storaged.cmd.cache", "--config-file", str(conf)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        wait_for(lambda: sample(scrape(port), "storaged_cache_evictions_total") == 13,
                 "the first prune's evictions")
        got = scrape(port)
        assert sample(got, "storaged_cache_size_bytes") == 7000
        assert sample(got, "storaged_cache_max_size_bytes") == 15000
        # The prunes go on: nothing more to evict, each one timed.
        wait_for(lambda: sample(scrape(port),
                                "storaged_cache_prune_duration_seconds_count") >= 2,
                 "a second prune")
        assert sample(scrape(port), "storaged_cache_evictions_total") == 13
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
