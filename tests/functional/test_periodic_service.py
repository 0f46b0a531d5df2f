"""A real periodic daemon (tests/functional/demo_daemon.py) as a subprocess.

Each test runs on both concurrency backends and checks what an operator
relies on: ``--once`` exit codes, passes on a timer, SIGTERM finishing the
current item then exiting 0, SIGTERM abandoning a stuck item within the stop
timeout, SIGHUP re-reading options and reopening logs, systemd READY /
WATCHDOG / STOPPING, and status records in the state store.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from storaged import kvs

BACKENDS = ["eventlet", "threading"]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def wait_for(predicate, timeout=20.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s" % what)


class Daemon:
    """The demo daemon with its own state path, config file and log."""

    def __init__(self, tmp_path, backend, **demo):
        self.dir = tmp_path
        self.backend = backend
        self.conf = tmp_path / "storaged.conf"
        self.log = tmp_path / "demo.log"
        self.journal = tmp_path / "journal"
        self.demo = {"interval": 0.2, "count": 3, "item_time": 0.05}
        self.demo.update(demo)
        self.daemon_opts = {"stop_timeout": 10}
        self.proc: subprocess.Popen | None = None
        self.write_conf()

    def write_conf(self, **demo):
        self.demo.update(demo)
        lines = [
            "[DEFAULT]",
            "state_path = %s" % (self.dir / "state"),
            "node_id = node-a",
            "log_file = %s" % self.log,
            "debug = false",
            "graceful_shutdown_timeout = 60",
            "[daemon]",
        ]
        lines += ["%s = %s" % kv for kv in self.daemon_opts.items()]
        lines += ["[demo]", "journal = %s" % self.journal]
        for key, value in self.demo.items():
            if isinstance(value, list):
                value = ",".join(str(v) for v in value)
            lines.append("%s = %s" % (key, value))
        self.conf.write_text("\n".join(lines) + "\n")

    def args(self, *extra):
        return [sys.executable, "-m", "tests.functional.demo_daemon",
                "--config-file", str(self.conf), *extra]

    def env(self, **extra):
        env = dict(os.environ, STORAGED_CONCURRENCY_BACKEND=self.backend)
        env.pop("NOTIFY_SOCKET", None)
        env.update(extra)
        return env

    def run_once(self):
        return subprocess.run(self.args("--once"), cwd=ROOT, env=self.env(),
                              capture_output=True, text=True, timeout=60)

    def start(self, **env):
        # A session of its own: teardown kills the daemon and any child
        # (the threading backend's service process) even if a test fails.
        self.proc = subprocess.Popen(
            self.args(), cwd=ROOT, env=self.env(**env),
            stdout=open(self.dir / "stdout", "w"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self.proc

    def signal(self, signo):
        assert self.proc is not None
        self.proc.send_signal(signo)

    def wait(self, timeout):
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill(self):
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)

    def log_text(self):
        text = ""
        for path in sorted(self.dir.glob("demo.log*")):
            text += path.read_text(errors="replace")
        return text

    def done_lines(self):
        if not self.journal.exists():
            return []
        return self.journal.read_text().splitlines()

    def status(self):
        store = kvs.open_store("sqlite:///%s" % (self.dir / "state" / "state.sqlite"))
        try:
            return store.get("status/node-a/demo")
        finally:
            store.close()

    def diagnostics(self):
        stdout = self.dir / "stdout"
        out = stdout.read_text() if stdout.exists() else ""
        return "stdout:\n%s\nlog:\n%s" % (out[-3000:], self.log_text()[-3000:])


@pytest.fixture(params=BACKENDS)
def daemon(request, tmp_path):
    d = Daemon(tmp_path, request.param)
    yield d
    d.kill()


def test_once_success_exits_0_and_publishes_status(daemon):
    proc = daemon.run_once()
    assert proc.returncode == 0, daemon.diagnostics()
    assert daemon.done_lines() == ["1 0 done", "1 1 done", "1 2 done"]
    assert "demo pass 1 ok in" in daemon.log_text()
    assert "items=3 succeeded=3 failed=0" in daemon.log_text()
    status = daemon.status()
    assert status["daemon"] == "demo"
    assert status["node"] == "node-a"
    assert status["backend"] == daemon.backend
    assert status["last_pass"]["ok"] is True
    assert status["last_pass"]["counters"]["succeeded"] == 3


def test_once_with_a_failing_item_exits_1_and_goes_on(daemon):
    daemon.write_conf(fail_items=[1])
    proc = daemon.run_once()
    assert proc.returncode == 1, daemon.diagnostics()
    # the failure of item 1 did not stop item 2
    assert daemon.done_lines() == ["1 0 done", "1 2 done"]
    log = daemon.log_text()
    assert "item 1 failed" in log
    assert log.count("item 1 is broken on purpose") >= 1
    assert "demo pass 1 FAILED" in log
    status = daemon.status()
    assert status["last_pass"]["ok"] is False
    assert status["last_pass"]["errors"] == ["1: item 1 is broken on purpose"]


def test_runs_passes_on_a_timer_then_sigterm_exits_0(daemon):
    daemon.start()
    wait_for(lambda: len(daemon.done_lines()) >= 6, what="two passes")
    status = wait_for(lambda: _status_or_none(daemon), what="status")
    assert status["passes"] >= 1
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(30) == 0, daemon.diagnostics()
    assert daemon.status()["state"] == "stopped"
    assert "demo stopped" in daemon.log_text()


def _status_or_none(daemon):
    try:
        return daemon.status()
    except Exception:
        return None


def test_sigterm_finishes_the_current_item(daemon):
    daemon.write_conf(count=20, item_time=1.0, interval=0.05)
    daemon.start()
    wait_for(lambda: daemon.done_lines(), what="first item")
    done_at_signal = len(daemon.done_lines())
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(30) == 0, daemon.diagnostics()
    done = daemon.done_lines()
    # the item in progress was completed, and no new one was started
    assert len(done) == done_at_signal + 1, (done_at_signal, done)
    assert "stop requested, leaving the pass" in daemon.log_text()


def test_sigterm_abandons_a_stuck_item_within_stop_timeout(daemon):
    daemon.daemon_opts["stop_timeout"] = 1
    daemon.write_conf(count=2, item_time=120, interval=0.05)
    daemon.start()
    wait_for(lambda: "first pass in" in daemon.log_text(), what="start")
    time.sleep(0.5)
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(30) == 0, daemon.diagnostics()
    assert time.monotonic() - started < 15
    assert "did not finish within 1.0s" in daemon.log_text()


def test_sighup_rereads_mutable_options_and_reopens_logs(daemon):
    daemon.write_conf(interval=30, count=1)
    daemon.start()
    wait_for(lambda: "interval 30.0s" in daemon.log_text(), what="start")
    # logrotate moves the file away; the daemon must write a new one.
    os.rename(daemon.log, daemon.dir / "demo.log.1")
    daemon.write_conf(interval=0.5)
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: daemon.log.exists() and "interval 0.5s" in daemon.log.read_text(),
             what="reload logged in a new log file")
    # the new interval is in force: passes come every 0.5 s, not 30 s
    wait_for(lambda: len(daemon.done_lines()) >= 3, what="passes at the new interval")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(30) == 0, daemon.diagnostics()


def test_systemd_ready_watchdog_and_stopping(daemon, tmp_path):
    # A process-blocking item: the watchdog must be fed all the same.
    daemon.write_conf(count=1, item_time=2.5, interval=0.05, blocking_sleep=True)
    sock_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(0.2)
    messages: list[tuple[float, str]] = []
    try:
        daemon.start(NOTIFY_SOCKET=sock_path, WATCHDOG_USEC="200000")

        def drain(budget=0.5):
            # the watchdog pings every 0.1 s: read for a while, not until quiet
            end = time.monotonic() + budget
            while time.monotonic() < end:
                try:
                    messages.append((time.monotonic(), sock.recv(4096).decode()))
                except TimeoutError:
                    return

        # Two more passes than were done when draining began (a busy
        # machine may start the daemon slowly): at least one whole blocking
        # pass happens while the socket is read, so its pings have true times.
        drain()
        wanted = max(2, len(daemon.done_lines()) + 2)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(daemon.done_lines()) < wanted:
            drain()
        assert len(daemon.done_lines()) >= wanted, daemon.diagnostics()
        before_stop = list(messages)
        daemon.signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while daemon.proc.poll() is None and time.monotonic() < deadline:
            drain()
        assert daemon.wait(1) == 0, daemon.diagnostics()
        drain()
    finally:
        sock.close()
    texts = [m for _, m in messages]
    assert any(m.startswith("READY=1") for m in texts), texts
    assert any("STOPPING=1" in m for m in texts), texts
    # only pings read while the test was draining the socket have true times
    pings = [t for t, m in before_stop if m == "WATCHDOG=1"]
    assert len(pings) >= 10, texts
    # Items block the whole process for 2.5 s: a watchdog fed from a green
    # thread would go silent that long. Pings every 0.1 s are expected.
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert max(gaps) < 1.5, gaps
