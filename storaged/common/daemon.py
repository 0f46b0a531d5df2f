"""Periodic daemons: one pass of a domain worker, on a timer, under oslo.service.

A daemon is a *worker* (the domain object: the sync engine, the pruner, …)
that knows how to make one pass, and a :class:`PeriodicService` that decides
when passes run and reports on them.  The worker never sees signals, argv or
eventlet; it gets a :class:`PassContext` and hands it each item::

    class Pruner:
        name = "cache-prune"

        def run_pass(self, ctx: PassContext) -> None:
            ctx.each(self.entries_to_remove(), self.remove, describe=str)

The timeline of a daemon whose interval is 60 s and whose passes take 10 s::

    t=0      start; READY=1 sent; first pass after a random delay in [0, 60)
    t=23     pass 1 runs (10 s) -> summary line, status record written
    t=33     sleep 60 - 10 = 50 s
    t=83     pass 2 ...
    SIGTERM  the current item finishes (at most [daemon] stop_timeout), no
             new item starts, status "stopped" is written, exit status 0
    SIGHUP   mutable options re-read, log files reopened

Per-item isolation: :meth:`PassContext.run_item` catches an item's error,
counts it, logs it once with its context and goes on; only a
:class:`~storaged.exception.FatalError` ends the pass early.  A pass
succeeded when no item failed and nothing fatal happened; ``--once`` exits 0
or 1 accordingly.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
import logging
import os
import random
import threading
import time
from typing import Any
from typing import Protocol
from typing import TypeVar

from oslo_config import cfg
from oslo_service import service as oslo_service

from storaged import concurrency
from storaged import exception
from storaged import metrics as metrics_mod
from storaged import version
from storaged.common import status as status_mod
from storaged.common import systemd
from storaged.metrics import Metrics

LOG = logging.getLogger(__name__)

T = TypeVar("T")

#: error messages kept in a pass's status record
MAX_ERRORS_KEPT = 5

ONCE_OPT = cfg.BoolOpt(
    "once",
    default=False,
    help="Run one pass, then exit: 0 if the pass succeeded, 1 if it did not. "
    "For cron and systemd timers.",
)


class Worker(Protocol):
    """The domain object a periodic daemon drives.

    A worker may also define ``start()`` and ``stop()``: they run in the
    process that makes the passes (under oslo.service's threading backend
    that is a child of the main process), before the first pass and after
    the last one; ``--once`` calls them around its single pass.  Connections
    (a coordination back end, say) belong there, not in ``__init__``.
    """

    #: the daemon's name in logs and status records, e.g. ``sync``
    name: str

    def run_pass(self, ctx: PassContext) -> None:
        """Make one pass, handing each item to ``ctx``."""


class PassStats:
    """Counters and outcome of one pass."""

    def __init__(self) -> None:
        self.started_at = time.time()
        self.ended_at: float | None = None
        self.counters: dict[str, int] = {"items": 0, "succeeded": 0, "failed": 0}
        self.errors: list[str] = []
        self.fatal: str | None = None
        self.interrupted = False

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to counter ``name``."""
        self.counters[name] = self.counters.get(name, 0) + n

    @property
    def ok(self) -> bool:
        """Tell whether the pass succeeded: no failed item, nothing fatal."""
        return self.fatal is None and self.counters.get("failed", 0) == 0

    @property
    def duration(self) -> float:
        """Seconds the pass took (so far)."""
        return (self.ended_at or time.time()) - self.started_at

    def summary(self) -> str:
        """One line with every counter, for the log."""
        parts = ["%s=%d" % (k, v) for k, v in self.counters.items()]
        if self.interrupted:
            parts.append("interrupted=yes")
        if self.fatal:
            parts.append("fatal=%r" % self.fatal)
        return " ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-able record of the pass."""
        return {
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration": round(self.duration, 3),
            "ok": self.ok,
            "counters": dict(self.counters),
            "errors": list(self.errors),
            "fatal": self.fatal,
            "interrupted": self.interrupted,
        }


class PassContext:
    """What a worker gets for one pass: counters, isolation, the stop flag."""

    def __init__(self, daemon: str, stop_event: threading.Event | None = None) -> None:
        self.daemon = daemon
        self.stats = PassStats()
        self._stop = stop_event or threading.Event()

    @property
    def stopping(self) -> bool:
        """Tell whether the daemon was asked to stop: start no new item."""
        return self._stop.is_set()

    def count(self, name: str, n: int = 1) -> None:
        """Add to a counter of this pass (shown in the summary and status)."""
        self.stats.count(name, n)

    def run_item(
        self, label: str, fn: Callable[..., T], *args: Any, **kwargs: Any
    ) -> T | None:
        """Run one item, isolated: an error is counted and logged, not raised.

        :returns: what ``fn`` returned, or None if it failed.
        :raises storaged.exception.FatalError: re-raised, it ends the pass.
        """
        self.stats.count("items")
        expected: exception.RetryableError | None = None
        try:
            result = fn(*args, **kwargs)
        except exception.FatalError:
            self.stats.count("failed")
            raise
        except exception.RetryableError as err:
            expected = err
        except Exception as err:
            self._keep(label, err)
            LOG.exception("%s: item %s failed", self.daemon, label)
            return None
        else:
            self.stats.count("succeeded")
            return result
        # A back end that is down or a timeout is expected, not a bug: one
        # line, logged outside the except block (oslo.log appends the active
        # exception to a warning, which would repeat its text).
        self._keep(label, expected)
        LOG.warning("%s: item %s failed: %s", self.daemon, label, expected)
        return None

    def _keep(self, label: str, err: Exception) -> None:
        self.stats.count("failed")
        text = "%s: %s" % (label, err)
        if len(self.stats.errors) < MAX_ERRORS_KEPT:
            self.stats.errors.append(text[:500])

    def each(
        self,
        items: Iterable[T],
        fn: Callable[[T], Any],
        describe: Callable[[T], str] = str,
    ) -> None:
        """Run ``fn`` on every item, isolated, until asked to stop."""
        for item in items:
            if self.stopping:
                self.stats.interrupted = True
                LOG.info("%s: stop requested, leaving the pass", self.daemon)
                return
            self.run_item(describe(item), fn, item)


def run_pass(worker: Worker, stop_event: threading.Event | None = None) -> PassStats:
    """Run one pass of ``worker`` and return its stats (never raises Exception)."""
    ctx = PassContext(worker.name, stop_event)
    expected: exception.StoragedError | None = None
    try:
        worker.run_pass(ctx)
    except exception.FatalError as err:
        ctx.stats.fatal = str(err)
        expected = err
    except exception.RetryableError as err:
        # e.g. the coordination back end is down: an operator's problem,
        # not a bug, so no traceback.
        ctx.stats.fatal = "%s: %s" % (type(err).__name__, err)
        expected = err
    except Exception as err:
        ctx.stats.fatal = "%s: %s" % (type(err).__name__, err)
        LOG.exception("%s: pass failed", worker.name)
    ctx.stats.ended_at = time.time()
    if expected is not None:
        # Outside the except block: oslo.log would append the active
        # exception's text to the line a second time.
        LOG.error("%s: pass stopped: %s", worker.name, expected)
    return ctx.stats


def declare_metrics(metrics: Metrics) -> None:
    """Declare the metrics every periodic daemon has (label ``daemon``)."""
    metrics.gauge("daemon_up", "1 while the daemon runs its passes, 0 once "
                  "it stopped.", ["daemon"], multiprocess_mode="max")
    metrics.histogram("pass_duration_seconds", "Seconds a pass took.", ["daemon"])
    metrics.counter("passes", "Passes made, by outcome (ok: no item failed "
                    "and nothing fatal; failed).", ["daemon", "outcome"])
    metrics.counter("pass_items", "Items handled by passes, by outcome "
                    "(succeeded, failed).", ["daemon", "outcome"])
    metrics.gauge("last_success_timestamp_seconds", "When the last pass "
                  "that succeeded ended (Unix time).", ["daemon"],
                  multiprocess_mode="max")
    metrics.gauge("last_pass_timestamp_seconds", "When the last pass ended, "
                  "whatever its outcome (Unix time).", ["daemon"],
                  multiprocess_mode="max")


class Reporter:
    """Writes the summary line, the status record and the metrics of a daemon.

    :param metrics: where pass figures go; this process's
        (:func:`storaged.metrics.process`) when None.
    """

    def __init__(
        self,
        daemon: str,
        node_id: str,
        board: status_mod.StatusBoard | None,
        notifier: systemd.Notifier | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.daemon = daemon
        self.node_id = node_id
        self.board = board
        self.notifier = notifier
        self._metrics = metrics
        self.passes = 0
        self.failed_passes = 0
        self.last: PassStats | None = None
        self.last_success: float | None = None
        self.started_at = time.time()

    @property
    def metrics(self) -> Metrics:
        """The metrics the figures go to (declared on first use)."""
        metrics = self._metrics or metrics_mod.process()
        declare_metrics(metrics)
        return metrics

    def up(self, running: bool) -> None:
        """Set the daemon's ``up`` gauge."""
        self.metrics.set("daemon_up", 1 if running else 0, daemon=self.daemon)

    def record(self, state: str, **extra: Any) -> dict[str, Any]:
        """Return the status record for ``state``."""
        rec: dict[str, Any] = {
            "node": self.node_id,
            "daemon": self.daemon,
            "state": state,
            "pid": os.getpid(),
            "version": version.version_string(),
            "backend": concurrency.backend(),
            "started_at": self.started_at,
            "passes": self.passes,
            "failed_passes": self.failed_passes,
            "last_success": self.last_success,
            "last_pass": self.last.as_dict() if self.last else None,
        }
        rec.update(extra)
        return rec

    def publish(self, state: str, **extra: Any) -> None:
        """Write the record (best effort)."""
        if self.board is not None:
            self.board.publish(self.node_id, self.daemon, self.record(state, **extra))

    def _measure(self, stats: PassStats) -> None:
        metrics, daemon = self.metrics, self.daemon
        metrics.observe("pass_duration_seconds", stats.duration, daemon=daemon)
        metrics.incr("passes", outcome="ok" if stats.ok else "failed", daemon=daemon)
        for outcome in ("succeeded", "failed"):
            metrics.incr("pass_items", stats.counters.get(outcome, 0),
                         daemon=daemon, outcome=outcome)
        ended = stats.ended_at or time.time()
        metrics.set("last_pass_timestamp_seconds", ended, daemon=daemon)
        if stats.ok:
            metrics.set("last_success_timestamp_seconds", ended, daemon=daemon)

    def pass_done(
        self, stats: PassStats, next_pass_at: float | None, state: str = "idle"
    ) -> None:
        """Log the summary line and publish the record of a finished pass."""
        self.passes += 1
        self.last = stats
        if stats.ok:
            self.last_success = stats.ended_at
        else:
            self.failed_passes += 1
        self._measure(stats)
        LOG.info(
            "%s pass %d %s in %.2fs: %s",
            self.daemon,
            self.passes,
            "ok" if stats.ok else "FAILED",
            stats.duration,
            stats.summary(),
        )
        self.publish(state, next_pass_at=next_pass_at)
        if self.notifier is not None:
            self.notifier.status(
                "pass %d %s: %s" % (self.passes, "ok" if stats.ok else "failed",
                                    stats.summary())
            )


class PeriodicService(oslo_service.Service):  # type: ignore[misc,name-defined]
    """An oslo.service ``Service`` running a worker's passes on a timer.

    :param conf: the daemon's configuration.
    :param worker: the domain object.
    :param interval: returns the seconds between pass starts; called before
        every sleep, so a mutable option takes effect after SIGHUP.
    :param reporter: writes summary lines and status records.
    :param notifier: systemd notifications (READY, watchdog, STOPPING).
    :param reload: called with ``conf`` after SIGHUP re-read the options.
    """

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        worker: Worker,
        interval: Callable[[], float],
        reporter: Reporter,
        notifier: systemd.Notifier | None = None,
        reload: Callable[[cfg.ConfigOpts], None] | None = None,
    ) -> None:
        super().__init__(threads=4)
        self.conf = conf
        self.worker = worker
        self.interval = interval
        self.reporter = reporter
        self.notifier = notifier or systemd.Notifier(None)
        self.reload_hook = reload
        self._stop: threading.Event = threading.Event()
        self._wake: threading.Event = threading.Event()
        self._loop_done: threading.Event = threading.Event()

    # -- oslo.service Service API ------------------------------------------

    def start(self) -> None:
        """Start the pass loop; send READY once it is running."""
        super().start()
        _reopen_log_files()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._loop_done = threading.Event()
        self.reporter.started_at = time.time()
        # The endpoint is served by the process that makes the passes (a
        # child of the launcher's under the threading backend).
        metrics_mod.serve()
        _call_hook(self.worker, "start")
        self.reporter.up(True)
        self.tg.add_thread(self._loop)
        self.reporter.publish("starting")
        self.notifier.start_watchdog()
        self.notifier.ready("%s running" % self.worker.name)
        LOG.info(
            "%s started (pid %d, %s backend, interval %.1fs)",
            self.worker.name,
            os.getpid(),
            concurrency.backend(),
            self.interval(),
        )

    def stop(self, graceful: bool = False) -> None:
        """Stop after the current item; wait at most ``[daemon] stop_timeout``."""
        if self._stop.is_set() and self._loop_done.is_set():
            super().stop(graceful)
            return
        LOG.info("%s stopping", self.worker.name)
        self.notifier.stopping()
        self._stop.set()
        self._wake.set()
        timeout = self.conf.daemon.stop_timeout
        if not self._loop_done.wait(timeout):
            LOG.warning(
                "%s: the current item did not finish within %.1fs; abandoning it",
                self.worker.name,
                timeout,
            )
        try:
            _call_hook(self.worker, "stop")
        except Exception:
            LOG.exception("%s: error while stopping", self.worker.name)
        self.reporter.publish("stopped")
        self.reporter.up(False)
        self.notifier.stop_watchdog()
        super().stop(graceful)
        LOG.info("%s stopped", self.worker.name)

    def reset(self) -> None:
        """SIGHUP: logs reopened, the reload hook called.

        oslo.service's launcher (``restart_method="mutate"``) has called
        ``conf.mutate_config_files()`` just before: the options marked
        ``mutable`` hold their new values (each change logged, and the
        mutate hooks registered on ``conf`` run), and a change to any other
        option is logged as ignored.
        """
        _reopen_log_files()
        if self.reload_hook is not None:
            self.reload_hook(self.conf)
        # The loop may be sleeping on the old interval: let it recompute.
        self._wake.set()
        LOG.info(
            "%s reloaded its configuration (interval %.1fs)",
            self.worker.name,
            self.interval(),
        )

    # -- the loop ----------------------------------------------------------

    def _loop(self) -> None:
        try:
            # Jitter only the first pass, so that a fleet restarted at once
            # does not hit the back ends together.
            fraction = random.random()  # noqa: S311 (jitter, not crypto)
            base = time.monotonic()
            LOG.info(
                "%s: first pass in %.1fs", self.worker.name, fraction * self.interval()
            )
            while not self._sleep_until(base, fraction):
                started = time.monotonic()
                stats = run_pass(self.worker, self._stop)
                base, fraction = started, 1.0
                delay = max(0.0, started + self.interval() - time.monotonic())
                self.reporter.pass_done(stats, time.time() + delay)
        finally:
            self._loop_done.set()

    def _sleep_until(self, base: float, fraction: float) -> bool:
        """Sleep until ``base + fraction * interval``; True if stopping.

        The interval is read again whenever SIGHUP wakes the loop.
        """
        while not self._stop.is_set():
            remaining = base + fraction * self.interval() - time.monotonic()
            if remaining <= 0:
                return False
            self._wake.wait(remaining)
            self._wake.clear()
        return True


def _call_hook(worker: Worker, name: str) -> None:
    hook = getattr(worker, name, None)
    if hook is not None:
        hook()


def _has_option(conf: cfg.ConfigOpts, group: str, name: str) -> bool:
    try:
        getattr(conf[group], name)
    except (cfg.NoSuchOptError, cfg.NoSuchGroupError):
        return False
    return True


def _reopen_log_files() -> None:
    """Close file handlers so the next record reopens them (after logrotate)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.acquire()
            try:
                handler.close()
            finally:
                handler.release()


def apply_changes(
    changed: Mapping[tuple[str | None, str], tuple[Any, Any]],
    group: str,
    targets: Sequence[object],
    renames: Mapping[str, str] | None = None,
) -> list[str]:
    """Set the new value of each changed option of ``group`` on its target.

    A mutate hook (``conf.register_mutate_hook``) calls this with what
    ``conf.mutate_config_files()`` found changed: only options declared
    ``mutable=True`` ever appear there, so marking an option mutable is
    what makes it reloadable.  An option goes to the first target with an
    attribute of its name (or of ``renames[name]``).

    :returns: the names of the options applied.
    """
    applied = []
    for (opt_group, name), (_old, new) in sorted(
        changed.items(), key=lambda item: (item[0][0] or "", item[0][1])
    ):
        if opt_group != group:
            continue
        attr = (renames or {}).get(name, name)
        for target in targets:
            if hasattr(target, attr):
                setattr(target, attr, new)
                applied.append(name)
                break
    return applied


def run_daemon(
    conf: cfg.ConfigOpts,
    worker: Worker,
    interval: Callable[[], float],
    board: status_mod.StatusBoard | None,
    notifier: systemd.Notifier | None = None,
    reload: Callable[[cfg.ConfigOpts], None] | None = None,
    metrics_group: str | None = None,
) -> int:
    """Run a periodic daemon: one pass with ``--once``, else the service.

    Metrics: unless the command set them up already from ``conf`` (it
    must, when the worker holds them), this process's are made here
    (:func:`storaged.metrics.setup`): the service serves them on the
    ``metrics_port`` of ``metrics_group`` (the worker's name when None, if
    such a group has the option); ``--once`` writes them to ``[metrics]
    textfile_dir`` when the pass ends.

    :returns: the process exit status.
    :raises storaged.metrics.http.MetricsPortInUse: the port is taken.
    """
    if notifier is None:
        notifier = systemd.Notifier.from_environ()
    if not metrics_mod.configured(conf):
        group = metrics_group or worker.name
        metrics_mod.setup(
            conf, worker.name,
            group if _has_option(conf, group, "metrics_port") else None,
            once=conf.once,
        )
    metrics = metrics_mod.process()
    reporter = Reporter(
        worker.name,
        conf.node_id,
        board if conf.daemon.publish_status else None,
        notifier,
        metrics,
    )
    if conf.once:
        _call_hook(worker, "start")
        try:
            stats = run_pass(worker)
        finally:
            _call_hook(worker, "stop")
        reporter.pass_done(stats, None, state="ran once")
        metrics_mod.write_textfile()
        return 0 if stats.ok else 1
    svc = PeriodicService(conf, worker, interval, reporter, notifier, reload)
    launcher = oslo_service.launch(conf, svc, restart_method="mutate")
    status = launcher.wait()
    return int(status or 0)
