"""The concurrency module: backend choice and helpers (threading in-process)."""

from __future__ import annotations

import os
import subprocess
import sys

from storaged import concurrency

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_choose_backend_env_wins(tmp_path, monkeypatch):
    conf = tmp_path / "s.conf"
    conf.write_text("[DEFAULT]\nconcurrency_backend = threading\n")
    monkeypatch.setenv(concurrency.ENV_VAR, "eventlet")
    assert concurrency.choose_backend(["--config-file", str(conf)])[0] == "eventlet"
    monkeypatch.delenv(concurrency.ENV_VAR)
    backend, source = concurrency.choose_backend(["--config-file=%s" % conf])
    assert (backend, source) == ("threading", str(conf))


def test_choose_backend_later_file_and_dir_win(tmp_path, monkeypatch):
    monkeypatch.delenv(concurrency.ENV_VAR, raising=False)
    a = tmp_path / "a.conf"
    a.write_text("[DEFAULT]\nconcurrency_backend = threading\n")
    d = tmp_path / "conf.d"
    d.mkdir()
    (d / "10.conf").write_text("[DEFAULT]\nconcurrency_backend = eventlet\n")
    args = ["--config-file", str(a), "--config-dir", str(d)]
    assert concurrency.choose_backend(args)[0] == "eventlet"


def test_malformed_file_is_left_to_prepare_service(tmp_path, monkeypatch):
    monkeypatch.delenv(concurrency.ENV_VAR, raising=False)
    bad = tmp_path / "bad.conf"
    bad.write_text("[DEFAULT\nconcurrency_backend = threading\n")
    assert concurrency.choose_backend(["--config-file", str(bad)]) == (
        "eventlet", "default")


def test_spawn_and_run_blocking_threading():
    task = concurrency.spawn(lambda x: x * 2, 21)
    assert task.wait(5) == 42
    assert concurrency.run_blocking(sum, [1, 2, 3]) == 6


def test_eventlet_run_blocking_keeps_the_hub_free():
    # In a monkey-patched process, a blocking call through run_blocking must
    # let green threads run, and a native thread must be able to call it.
    code = r"""
from storaged import concurrency
concurrency.setup("eventlet")
import eventlet
from eventlet import patcher
real_sleep = patcher.original("time").sleep
ticks = []
def ticker():
    for _ in range(20):
        ticks.append(1)
        eventlet.sleep(0.01)
t = eventlet.spawn(ticker)
concurrency.run_blocking(real_sleep, 0.5)
during = len(ticks)  # 0 if the call had blocked the hub
t.wait()
out = []
th = concurrency.start_native_thread(
    lambda: out.append(concurrency.run_blocking(lambda: "native ok")), "n")
th.join(5)
print(during, out[0])
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    during, *rest = proc.stdout.split()
    assert int(during) >= 10, proc.stdout
    assert rest == ["native", "ok"]
