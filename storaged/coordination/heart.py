"""The heartbeat thread: a native OS thread that owns the back end client.

tooz's own ``Heart`` is a ``threading.Thread``, which eventlet's monkey
patching turns into a green thread: a process busy in one call that does
not yield (a hung ``getxattr``, a C extension, a CPU loop) starves it, and
its locks and membership expire while it still believes it holds them.

:class:`Heart` is started with :func:`storaged.concurrency.start_native_thread`
and waits only on native primitives, so it keeps beating whatever the green
threads do.  It runs one loop::

    run the calls handed to it  ->  tick()  ->  wait until the deadline
                                                 tick() returned, or a call
                                                 or a wake-up arrives

Under eventlet, the tooz client lives entirely on this thread: its sockets,
locks and hub are this thread's own, and never shared with green threads of
the main hub (a green lock or socket used from two OS threads can hang or
raise).  Callers hand their back end calls over with :meth:`Heart.call`; a
green thread waits for the answer in eventlet's thread pool
(:func:`storaged.concurrency.run_blocking`), so the hub keeps running.
Under the threading backend callers make their calls directly and the heart
only beats.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
import logging
import time
from typing import Any

from storaged import concurrency
from storaged import exception

LOG = logging.getLogger(__name__)


class HeartStopped(exception.StoragedError, RuntimeError):
    """The heartbeat thread has stopped; the call was not run.

    Still a :class:`RuntimeError`, as it was before it joined storaged's
    hierarchy.
    """

    msg_fmt = "the coordination heartbeat thread %(state)s"


class _Call:
    """One call handed to the heartbeat thread."""

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        cleanup: Callable[[Any], None] | None,
    ) -> None:
        self.fn = fn
        self.args = args
        self.cleanup = cleanup
        self.done = concurrency.native_event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.abandoned = False
        self.lock = concurrency.native_module("threading").Lock()

    def run(self) -> None:
        try:
            self.result = self.fn(*self.args)
        except BaseException as err:  # handed to the caller
            self.error = err
        with self.lock:
            abandoned = self.abandoned
            self.done.set()
        if abandoned and self.error is None and self.cleanup is not None:
            # The caller gave up waiting: undo what it will never see.
            try:
                self.cleanup(self.result)
            except Exception:
                LOG.exception("Cleaning up after an abandoned coordination call failed")

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.done.set()


def on_main_green_thread() -> bool:
    """Whether the caller is a green thread of the main eventlet hub.

    Such a caller must never wait on a native primitive directly: it would
    stall every other green thread.
    """
    if not concurrency.is_eventlet():
        return False
    threading = concurrency.native_module("threading")
    return bool(threading.get_ident() == threading.main_thread().ident)


def pause(seconds: float) -> None:
    """Sleep in the caller's thread the right way (green or native)."""
    if seconds <= 0:
        return
    if on_main_green_thread():
        concurrency.sleep(seconds)
    else:
        concurrency.native_sleep(seconds)


class Heart:
    """A native thread running ``tick`` and the calls handed to it.

    :param name: thread name.
    :param tick: called after every wake-up; returns the
        :func:`time.monotonic` deadline of the next call.
    :param on_exit: called on the thread when it stops.
    """

    def __init__(
        self,
        name: str,
        tick: Callable[[], float],
        on_exit: Callable[[], None],
    ) -> None:
        threading = concurrency.native_module("threading")
        self.name = name
        self._tick = tick
        self._on_exit = on_exit
        self._cond = threading.Condition(threading.Lock())
        self._get_ident = threading.get_ident
        self._calls: collections.deque[_Call] = collections.deque()
        self._wake = False
        self._stopping = False
        self._exited = False
        self._thread: Any = None
        self._ident: int | None = None

    def start(self) -> None:
        """Start the thread."""
        self._thread = concurrency.start_native_thread(self._run, self.name)

    def in_thread(self) -> bool:
        """Whether the caller runs on this heart's thread."""
        return self._ident is not None and self._get_ident() == self._ident

    @property
    def alive(self) -> bool:
        """Whether the thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        """Make the thread run ``tick`` now."""
        with self._cond:
            self._wake = True
            self._cond.notify()

    def call(
        self,
        fn: Callable[..., Any],
        *args: Any,
        timeout: float,
        cleanup: Callable[[Any], None] | None = None,
    ) -> Any:
        """Run ``fn(*args)`` on the thread and return its result.

        Called from the thread itself, runs it at once.

        :param timeout: seconds to wait for the answer.
        :param cleanup: called with the result if the caller stopped
            waiting before the call finished (to release what it took).
        :raises TimeoutError: no answer in time.
        :raises HeartStopped: the thread has stopped.
        """
        if self.in_thread():
            return fn(*args)
        call = _Call(fn, args, cleanup)
        with self._cond:
            if self._exited or self._thread is None:
                raise HeartStopped(state="is not running")
            self._calls.append(call)
            self._cond.notify()
        if on_main_green_thread():
            finished = concurrency.run_blocking(call.done.wait, timeout)
        else:
            finished = call.done.wait(timeout)
        if not finished:
            with call.lock:
                if not call.done.is_set():
                    call.abandoned = True
                    raise TimeoutError(
                        "the coordination heartbeat thread did not answer in %.1fs"
                        % timeout
                    )
        if call.error is not None:
            raise call.error
        return call.result

    def stop(self, timeout: float) -> None:
        """Stop the thread (it runs ``on_exit`` first) and wait for it."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is None or self.in_thread():
            return
        if on_main_green_thread():
            concurrency.run_blocking(self._thread.join, timeout)
        else:
            self._thread.join(timeout)
        if self._thread.is_alive():
            LOG.warning(
                "The coordination heartbeat thread did not stop within %.1fs", timeout
            )

    def _run(self) -> None:
        self._ident = self._get_ident()
        deadline = 0.0
        try:
            while True:
                with self._cond:
                    while not (self._calls or self._wake or self._stopping):
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        self._cond.wait(min(remaining, 60.0))
                    calls = list(self._calls)
                    self._calls.clear()
                    self._wake = False
                    stopping = self._stopping
                for call in calls:
                    call.run()
                if stopping:
                    break
                try:
                    deadline = self._tick()
                except Exception:
                    LOG.exception("Coordination heartbeat failed")
                    deadline = time.monotonic() + 1.0
        finally:
            try:
                self._on_exit()
            except Exception:
                LOG.exception("Stopping coordination failed")
            with self._cond:
                self._exited = True
                calls = list(self._calls)
                self._calls.clear()
            for call in calls:
                call.fail(HeartStopped(state="stopped"))
