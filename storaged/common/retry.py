"""Retrying a call: tenacity, with storaged's sleeps and backoff.

Every loop of storaged that calls something again until it works is a
:class:`tenacity.Retrying` built by :func:`retrying`, which adds what they
all need:

* the sleep is :func:`storaged.concurrency.sleep` (a green sleep under
  eventlet, so a wait never stalls the hub) unless the caller passes its
  own, e.g. :func:`storaged.concurrency.native_sleep` in a native thread; a
  zero wait does not sleep (nor yield) at all;
* when it stops, the last attempt's outcome is what the caller gets: its
  return value, or its exception re-raised -- never tenacity's
  ``RetryError``.

:class:`wait_doubling` is the backoff of the lock polls and the cache's
claim loop.  Worked example: ``wait_doubling(0.002, 0.05, jitter=(0.5,
1.5))`` waits 0.001-0.003 s after the first attempt, 0.002-0.006 s after
the second, and so on up to 0.025-0.075 s from the sixth on; with a
``deadline`` it never sleeps past it.

A loop driven by something other than its own calls -- the coordinator's
reconnection, timed by its heartbeat thread -- keeps its own state and does
not use this module.
"""

from __future__ import annotations

from collections.abc import Callable
import random
from typing import Any

import tenacity

from storaged import concurrency

__all__ = ["retrying", "stop_at", "wait_doubling"]


def retrying(
    *,
    sleep: Callable[[float], None] | None = None,
    **kwargs: Any,
) -> tenacity.Retrying:
    """Return a :class:`tenacity.Retrying` that sleeps the storaged way.

    :param sleep: how to wait between attempts (default:
        :func:`storaged.concurrency.sleep`).
    :param kwargs: ``retry``, ``stop``, ``wait``, ... as tenacity takes them.
    """
    pause = concurrency.sleep if sleep is None else sleep

    def _sleep(seconds: float) -> None:
        if seconds > 0:
            pause(seconds)

    kwargs.setdefault("retry_error_callback", _last_outcome)
    return tenacity.Retrying(sleep=_sleep, **kwargs)


def _last_outcome(retry_state: tenacity.RetryCallState) -> Any:
    """Return the last attempt's value, or raise its exception."""
    assert retry_state.outcome is not None
    return retry_state.outcome.result()


def stop_at(deadline: float, clock: Callable[[], float]) -> Callable[
    [tenacity.RetryCallState], bool
]:
    """Stop once ``clock()`` has reached ``deadline``.

    :param clock: the clock ``deadline`` is on (a coordinator's own, say).
    """

    def stop(retry_state: tenacity.RetryCallState) -> bool:
        return clock() >= deadline

    return stop


class wait_doubling(tenacity.wait.wait_base):
    """``first``, doubled after each attempt up to ``maximum``, jittered.

    :param first: the wait after the first attempt, in seconds.
    :param maximum: the largest wait before jitter.
    :param jitter: bounds of the random factor the wait is multiplied by,
        so that contenders do not retry in step; ``(1.0, 1.0)`` for none.
    :param deadline: never wait past this time of ``clock``.
    :param clock: the clock of ``deadline``.
    """

    def __init__(
        self,
        first: float,
        maximum: float,
        *,
        jitter: tuple[float, float] = (1.0, 1.0),
        deadline: float | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.first = first
        self.maximum = maximum
        self.jitter = jitter
        self.deadline = deadline
        self.clock = clock

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        # The exponent is bounded: an endless poll must not overflow a float.
        doublings = min(retry_state.attempt_number - 1, 64)
        delay = min(self.first * 2.0**doublings, self.maximum)
        low, high = self.jitter
        if low != high:
            delay *= random.uniform(low, high)  # noqa: S311 (jitter, not crypto)
        else:
            delay *= low
        if self.deadline is not None:
            assert self.clock is not None
            delay = min(delay, self.deadline - self.clock())
        return delay
