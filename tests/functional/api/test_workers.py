"""Every worker of storaged-api keeps the daemon contract, on both backends.

With ``[api] workers`` > 1 the workers run on oslo.service's launcher
(eventlet) or cotyledon's ServiceManager (threading).  Each test looks at
every worker: READY=1 comes only once each of them serves, the watchdog is
fed while they run, SIGHUP reloads each of them in place, SIGTERM lets each
drain its requests.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import pytest

from tests.functional.api.apiserver import ApiServer
from tests.functional.api.apiserver import children as _children
from tests.functional.api.test_lifecycle import refused
from tests.functional.api.test_lifecycle import slow_upload

pytest.importorskip("swiftclient")

BACKENDS = ["eventlet", "threading"]


def _pids(text, pattern):
    """The pids (oslo.log's second field) of the log lines matching ``pattern``."""
    pids = set()
    for line in text.splitlines():
        if re.search(pattern, line):
            pids.add(int(line.split()[2]))
    return pids


def _messages(server, seconds):
    """Every notification received within ``seconds``."""
    deadline = time.monotonic() + seconds
    messages = []
    while time.monotonic() < deadline:
        messages += server.notifications(max(0.01, deadline - time.monotonic()))
    return messages


def _wait(predicate, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for %s" % what)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ready_once_every_worker_serves_and_the_watchdog_is_fed(tmp_path, backend):
    server = ApiServer(tmp_path, backend=backend, api={"workers": "3"},
                       env={"WATCHDOG_USEC": "400000"})
    with server:
        # READY=1 came: each of the three had said it serves before.
        children = set(_children(server.proc.pid))
        assert len(children) == 3
        assert _pids(server.output(), r"Worker \d+ serving on") == children
        pings = [m for m in _messages(server, 1.5) if "WATCHDOG=1" in m]
        assert len(pings) >= 2
        # A worker that dies is replaced; the watchdog goes on, READY is
        # not sent again.
        os.kill(min(children), signal.SIGKILL)
        _wait(lambda: len(set(_children(server.proc.pid)) - children) == 1,
              "a replacement worker")
        messages = _messages(server, 1.5)
        assert any("WATCHDOG=1" in m for m in messages)
        assert not any("READY=1" in m.split("\n") for m in messages)
        assert server.stop() == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_sighup_reloads_every_worker_in_place(tmp_path, backend):
    server = ApiServer(tmp_path, backend=backend, api={"workers": "2"})
    with server:
        children = set(_children(server.proc.pid))
        assert len(children) == 2
        # logrotate: the file moves away, SIGHUP makes every process reopen.
        os.rename(server.log, server.log + ".1")
        server.signal(signal.SIGHUP)

        def reloaded():
            if not os.path.exists(server.log):
                return set()
            with open(server.log, errors="replace") as f:
                return _pids(f.read(), r"Worker \d+ reloaded: log files reopened")

        _wait(lambda: reloaded() == children, "both workers reloading")
        # The same processes go on serving.
        assert set(_children(server.proc.pid)) == children
        conn = server.connection()
        conn.put_container("after-hup")
        conn.close()
        assert server.stop() == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigterm_lets_every_worker_drain(tmp_path, backend):
    server = ApiServer(tmp_path, backend=backend, api={"workers": "2"})
    with server:
        children = set(_children(server.proc.pid))
        conn = server.connection()
        conn.put_container("c")
        _url, token = conn.get_auth()
        results = [{} for _ in range(6)]
        uploads = [
            threading.Thread(target=slow_upload, args=(
                server.port, token, "/v1/AUTH_test/c/slow%d" % i, 200_000, 1.5,
                result))
            for i, result in enumerate(results)
        ]
        for upload in uploads:
            upload.start()
        _wait(lambda: all("sent_half" in r or "error" in r for r in results),
              "every upload half sent")
        time.sleep(0.2)
        server.signal(signal.SIGTERM)
        # Every process lets go of the listening socket (new connections
        # are refused) while the uploads in progress go on.
        _wait(lambda: refused(server.port), "the listening socket closed")
        for upload in uploads:
            upload.join(30)
        assert [r.get("status") for r in results] == [201] * 6, (
            results, server.output())
        assert server.proc.wait(30) == 0
    log = server.output()
    assert _pids(log, r"Worker \d+ stopped") == children
    assert "storaged-api stopped" in log


def test_auto_starts_one_worker_per_usable_cpu(tmp_path):
    # "auto", the default: as many workers as CPUs this process may run on
    # (one serves in-process).
    expected = len(os.sched_getaffinity(0))
    server = ApiServer(tmp_path, api={"workers": "auto"})
    with server:
        assert re.search(r"listening on \S+ \(eventlet backend, %d worker\(s\)\)"
                         % expected, server.output()), server.output()
        if expected > 1:
            assert len(_children(server.proc.pid)) == expected
        assert server.stop() == 0
