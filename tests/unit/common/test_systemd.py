"""sd_notify messages and the native-thread watchdog."""

from __future__ import annotations

import socket
import subprocess
import time

import pytest

from storaged.common import systemd


@pytest.fixture
def listener(tmp_path):
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield path, sock
    sock.close()


def test_from_environ_captures_and_unsets(listener):
    path, _ = listener
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000", "OTHER": "x"}
    notifier = systemd.Notifier.from_environ(env)
    assert env == {"OTHER": "x"}
    assert notifier.socket_path == path
    assert notifier.watchdog_interval() == 2.0


def test_messages(listener):
    path, sock = listener
    notifier = systemd.Notifier(path)
    assert notifier.ready("serving")
    assert sock.recv(100) == b"READY=1\nSTATUS=serving"
    assert notifier.stopping()
    assert sock.recv(100) == b"STOPPING=1"


def test_disabled_without_socket():
    notifier = systemd.Notifier.from_environ({})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.start_watchdog() is False


def test_watchdog_for_another_process_is_ignored(listener):
    path, _ = listener
    # A pid that is neither this process nor its parent (pid 1 can be the
    # parent: a test run started in the background and left by its shell).
    other = subprocess.Popen(["sleep", "30"])
    try:
        notifier = systemd.Notifier(path, watchdog_usec=100000,
                                    watchdog_pid=other.pid)
        assert notifier.watchdog_interval() == 0.0
    finally:
        other.kill()
        other.wait()


def test_watchdog_thread_pings(listener):
    path, sock = listener
    notifier = systemd.Notifier(path, watchdog_usec=100000)
    assert notifier.start_watchdog()
    try:
        got = [sock.recv(100) for _ in range(3)]
    finally:
        notifier.stop_watchdog()
    assert got == [b"WATCHDOG=1"] * 3
    time.sleep(0.2)
    assert notifier.watchdog_pings >= 3
