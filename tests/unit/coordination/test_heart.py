"""The heartbeat thread: calls handed over, abandoned calls, stopping."""

from __future__ import annotations

import threading
import time

import pytest

from storaged.coordination import heart as heart_mod


@pytest.fixture
def heart():
    ticks = []
    exits = []

    def tick():
        ticks.append(threading.get_ident())
        return time.monotonic() + 0.01

    made = heart_mod.Heart("test-heart", tick, lambda: exits.append(True))
    made.ticks = ticks
    made.exits = exits
    made.start()
    yield made
    made.stop(timeout=10)


def test_calls_run_on_the_heart_thread(heart):
    ident = heart.call(threading.get_ident, timeout=10)
    assert ident != threading.get_ident()
    assert heart.call(lambda: heart.in_thread(), timeout=10) is True
    assert not heart.in_thread()
    # From the thread itself, a call runs at once (no deadlock).
    assert heart.call(lambda: heart.call(lambda: 42, timeout=1), timeout=10) == 42
    assert ident in heart.ticks


def test_errors_come_back_to_the_caller(heart):
    def boom():
        raise KeyError("x")

    with pytest.raises(KeyError):
        heart.call(boom, timeout=10)


def test_an_abandoned_call_is_cleaned_up(heart):
    release = threading.Event()
    cleaned = []

    def slow():
        release.wait(10)
        return "taken"

    with pytest.raises(TimeoutError):
        heart.call(slow, timeout=0.05, cleanup=cleaned.append)
    release.set()
    deadline = time.monotonic() + 10
    while not cleaned and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cleaned == ["taken"]


def test_stop_runs_on_exit_and_refuses_later_calls(heart):
    heart.stop(timeout=10)
    assert heart.exits == [True]
    assert not heart.alive
    with pytest.raises(heart_mod.HeartStopped):
        heart.call(lambda: 1, timeout=1)


def test_pause_and_green_detection_without_eventlet():
    assert not heart_mod.on_main_green_thread()
    heart_mod.pause(0)
    heart_mod.pause(0.001)
