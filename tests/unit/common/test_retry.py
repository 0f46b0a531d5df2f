"""Tests of storaged.common.retry."""

from __future__ import annotations

import pytest
import tenacity

from storaged.common import retry


def _state(attempt: int) -> tenacity.RetryCallState:
    state = tenacity.RetryCallState(tenacity.Retrying(), None, (), {})
    state.attempt_number = attempt
    return state


def test_wait_doubles_up_to_the_maximum() -> None:
    wait = retry.wait_doubling(0.002, 0.05)
    assert [wait(_state(n)) for n in range(1, 8)] == pytest.approx(
        [0.002, 0.004, 0.008, 0.016, 0.032, 0.05, 0.05]
    )


def test_wait_jitter_bounds() -> None:
    wait = retry.wait_doubling(0.002, 0.05, jitter=(0.5, 1.5))
    for n, base in ((1, 0.002), (6, 0.05), (40, 0.05)):
        seen = [wait(_state(n)) for _ in range(200)]
        assert min(seen) >= base * 0.5
        assert max(seen) <= base * 1.5
        assert len(set(seen)) > 1


def test_wait_never_past_the_deadline() -> None:
    wait = retry.wait_doubling(1.0, 10.0, deadline=100.0, clock=lambda: 99.75)
    assert wait(_state(3)) == pytest.approx(0.25)


def test_endless_poll_does_not_overflow() -> None:
    assert retry.wait_doubling(0.0005, 0.01)(_state(5000)) == pytest.approx(0.01)


def test_last_result_returned_when_stopped() -> None:
    calls: list[int] = []
    slept: list[float] = []

    def attempt() -> None:
        calls.append(1)

    got = retry.retrying(
        retry=tenacity.retry_if_result(lambda r: r is None),
        stop=tenacity.stop_after_attempt(3),
        wait=retry.wait_doubling(0.1, 1.0),
        sleep=slept.append,
    )(attempt)
    assert got is None
    assert len(calls) == 3
    assert slept == pytest.approx([0.1, 0.2])


def test_last_error_reraised_not_retry_error() -> None:
    def attempt() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        retry.retrying(
            retry=tenacity.retry_if_exception_type(KeyError),
            stop=tenacity.stop_after_attempt(2),
            sleep=lambda s: None,
        )(attempt)


def test_zero_wait_does_not_sleep() -> None:
    slept: list[float] = []
    results = iter([None, 1])
    got = retry.retrying(
        retry=tenacity.retry_if_result(lambda r: r is None),
        stop=tenacity.stop_after_attempt(2),
        sleep=slept.append,
    )(lambda: next(results))
    assert got == 1
    assert slept == []


def test_stop_at() -> None:
    now = [5.0]
    stop = retry.stop_at(10.0, lambda: now[0])
    assert not stop(_state(1))
    now[0] = 10.0
    assert stop(_state(1))
