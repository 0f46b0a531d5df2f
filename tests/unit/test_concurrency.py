"""The concurrency module: backend choice and helpers (threading in-process)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

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


_LOGGING_FROM_EVERY_KIND_OF_THREAD = r"""
import logging, sys
from storaged import concurrency
concurrency.setup("eventlet")
import eventlet
from oslo_config import cfg
from storaged.common import config
LOG = logging.getLogger("storaged.test")
if sys.argv[1] == "oslo":  # the daemons' handlers, set up after the patch
    config.prepare_service(["--config-file", sys.argv[2]], prog="test",
                           conf=cfg.ConfigOpts())
# else: no handler at all, logging's last resort (created before the patch)
def emit(kind, n):
    for i in range(n):
        LOG.warning("%s %d", kind, i)
        if kind == "green" and i % 50 == 0:
            eventlet.sleep(0)
tasks = [eventlet.spawn(concurrency.run_blocking, emit, "pool", 3000),
         eventlet.spawn(concurrency.run_blocking, emit, "pool", 3000),
         eventlet.spawn(emit, "green", 3000)]
native = concurrency.start_native_thread(lambda: emit("native", 3000), "n")
for t in tasks:
    t.wait()
native.join()
print("done", file=sys.__stdout__)
"""


@pytest.mark.parametrize("handlers", ["last-resort", "oslo"])
def test_eventlet_logging_from_native_threads_never_deadlocks(handlers, tmp_path):
    # Monkey-patched, logging's locks are green: a native thread (the pool
    # behind run_blocking, a heartbeat) that waits on one while a green
    # thread holds it never wakes, and the process hangs.
    (tmp_path / "storaged.conf").write_text(
        "[DEFAULT]\nstate_path = %s\n" % tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", _LOGGING_FROM_EVERY_KIND_OF_THREAD, handlers,
         str(tmp_path / "storaged.conf")],
        cwd=ROOT, capture_output=True, text=True, timeout=90,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines()[-1] == "done"
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = (proc.stdout + proc.stderr).splitlines()
    kinds = [line.split()[-2] for line in lines
             if len(line.split()) >= 2 and line.split()[-1].isdigit()]
    assert {k: kinds.count(k) for k in ("pool", "green", "native")} == {
        "pool": 6000, "green": 3000, "native": 3000}


def test_a_shared_lock_held_across_green_io_by_hub_and_pool_threads():
    # A client's token lock: held across I/O, taken by green threads on the
    # hub and by run_blocking's native threads at once.  Nobody may hang,
    # and the exclusion must hold.
    code = r"""
from storaged import concurrency
concurrency.setup("eventlet")
import eventlet
from eventlet import patcher
lock = concurrency.shared_lock()
inside = [0]
worst = [0]
def hold(native):
    with lock:
        inside[0] += 1
        worst[0] = max(worst[0], inside[0])
        if native:
            patcher.original("time").sleep(0.001)
        else:
            eventlet.sleep(0.001)  # green I/O while holding it
        inside[0] -= 1
def worker(n):
    for _ in range(30):
        hold(False)
        concurrency.run_blocking(hold, True)
threads = [eventlet.spawn(worker, n) for n in range(12)]
for thread in threads:
    thread.wait()
print("done", worst[0])
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert "Cannot switch" not in proc.stderr, proc.stderr[-3000:]
    assert (proc.returncode, proc.stdout) == (0, "done 1\n"), proc.stderr[-3000:]
