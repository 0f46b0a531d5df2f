"""The sync daemon's worker: one pass over every container that syncs.

:class:`SyncWorker` is what :func:`storaged.common.daemon.run_daemon`
drives.  Per pass it re-reads the realms file if it changed, lists the
containers with ``X-Container-Sync-To`` and ``-Key`` (an index lookup),
reads the sync group's members from coordination and hands each container
to the :class:`~storaged.sync.engine.SyncEngine`, isolated: a container
that fails is counted, logged once, and the pass goes on.

Progress is visible beyond the logs:

* per container and worker, a record in the state store under
  ``sync/<account>/<container>/<worker>`` (rows behind, sync points, last
  success, last error, rate, counters) -- ``storaged-manage sync status``
  reads them;
* the pass's counters in the daemon's status record (``storaged-manage
  status``);
* Prometheus metrics (:mod:`storaged.metrics`, listed in
  ``docs/metrics.rst``): objects and bytes sent, failures by reason, rows
  and seconds behind in total and for the worst
  :data:`WORST_CONTAINERS` containers, served on ``[sync] metrics_port``,
  written to ``[metrics] textfile_dir`` by ``--once``, and (deprecated)
  to ``[sync] metrics_file`` after every pass;
* a report line per container, a summary per pass, and a "since" line
  every ``[sync] report_interval``, as Swift logs.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
import logging
import time
from typing import Any
from typing import Final
from typing import Protocol

from prometheus_client import core as prom_core

from storaged import concurrency
from storaged import exception
from storaged import metrics as metrics_mod
from storaged.common.daemon import MAX_ERRORS_KEPT
from storaged.common.daemon import PassContext
from storaged.coordination.errors import CoordinationUnavailable
from storaged.sync import engine as engine_mod
from storaged.sync import realms as realms_mod

LOG = logging.getLogger(__name__)

#: State store prefix of the per-container progress records.
PROGRESS_PREFIX: Final = "sync/"
#: Progress records of containers not synced for this long expire.
PROGRESS_TTL: Final = 30 * 86400.0
_COUNTERS: Final = ("puts", "deletes", "skips", "superseded", "failures", "bytes")
#: Containers shown one by one in the metrics: those most behind.
WORST_CONTAINERS: Final = 20


class _Coordinator(Protocol):
    member_id: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def join_group(self, group: str, capabilities: dict[str, Any]) -> None: ...

    def get_members(self, group: str) -> dict[str, dict[str, Any]]: ...


class _StateStore(Protocol):
    def get(self, key: str) -> Any: ...

    def set(self, key: str, value: Any, *, ttl: float | None = None) -> None: ...

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...


def progress_key(account: str, container: str, worker: str) -> str:
    """Return the state store key of a container's progress for a worker."""
    return "%s%s/%s/%s" % (PROGRESS_PREFIX, account, container, worker)


class SyncWorker:
    """The periodic worker of ``storaged-sync``.

    :param engine: the sync engine (its ``worker`` is the member id).
    :param coordinator: the coordination member, or None to work alone.
    :param store: the state store for progress records, or None.
    :param group: the sync group's name.
    :param report_interval: seconds between two "since" summary lines.
    :param metrics_file: Prometheus textfile to write after each pass, or ""
        (deprecated: ``[metrics] textfile_dir`` and ``[sync] metrics_port``).
    :param interval: seconds between the starts of two passes, or None when
        no further pass is coming (``--once``).  Each progress record says
        by when it will be written again (``due_at``): one interval, or the
        last pass's duration if that was longer, so that ``storaged-manage
        sync status`` can tell a dead worker's record from a live one's.
    """

    name = "sync"

    def __init__(
        self,
        engine: engine_mod.SyncEngine,
        coordinator: _Coordinator | None,
        store: _StateStore | None,
        group: str = "storaged-sync",
        report_interval: float = 3600.0,
        metrics_file: str = "",
        interval: float | None = None,
        metrics: metrics_mod.Metrics | None = None,
    ) -> None:
        self.engine = engine
        self.coordinator = coordinator
        self.store = store
        self.group = group
        self.report_interval = report_interval
        self.metrics_file = metrics_file
        self.interval = interval
        self._last_pass_time = 0.0
        self._since = time.time()
        self._totals = dict.fromkeys(_COUNTERS, 0)
        self._records: dict[tuple[str, str], dict[str, Any]] = {}
        self.metrics = metrics or metrics_mod.process()
        declare_metrics(self.metrics)
        self.metrics.collector("sync-containers", _WorstContainers(self))
        if metrics_file:
            LOG.warning("[sync] metrics_file is deprecated: %s is still written "
                        "after every pass, but set [sync] metrics_port (the "
                        "daemon) or [metrics] textfile_dir (--once) instead",
                        metrics_file)

    # -- service hooks ---------------------------------------------------------

    def start(self) -> None:
        """Join the sync group (the back end may be down: retried behind)."""
        if self.coordinator is None:
            return
        # The coordinator logs an outage itself (once, then reminders): here
        # only what it means for this worker, without the error again.
        try:
            self.coordinator.start()
        except CoordinationUnavailable:
            pass
        try:
            self.coordinator.join_group(self.group, {"daemon": "sync"})
        except CoordinationUnavailable:
            # Remembered: the coordinator joins once it is connected.
            LOG.info("Sync group %s: %s joins once coordination is back, and "
                     "pushes every row meanwhile", self.group,
                     self.coordinator.member_id)
        else:
            LOG.info("Joined sync group %s as %s", self.group,
                     self.coordinator.member_id)

    def stop(self) -> None:
        """Leave the group, close the connections."""
        try:
            if self.coordinator is not None:
                self.coordinator.stop()
        finally:
            self.engine.http.close()

    # -- one pass ------------------------------------------------------------------

    def view(self) -> engine_mod.View:
        """Return the sync group as it is now (this worker alone if unknown).

        Working alone when the group cannot be read pushes more rows than
        needed (every worker pushes everything), never fewer.
        """
        me = self.engine.worker
        if self.coordinator is None:
            return engine_mod.View.of(me, ())
        try:
            members = concurrency.run_blocking(self.coordinator.get_members, self.group)
        except CoordinationUnavailable as err:
            # Asked once per container and pass: the coordinator already
            # logged the outage, its start, reminders and end.
            LOG.debug("Sync group %s unreadable (%s): this worker pushes every "
                      "row for now", self.group, err)
            return engine_mod.View.of(me, ())
        except exception.StoragedError as err:
            LOG.warning("Sync group %s unreadable (%s): this worker pushes every "
                        "row for now", self.group, err)
            return engine_mod.View.of(me, ())
        if me not in members:
            # Not (yet, or no longer) a member: the others do not count on
            # this worker, so it pushes everything.
            return engine_mod.View.of(me, ())
        return engine_mod.View.of(me, members)

    def run_pass(self, ctx: PassContext) -> None:
        """Sync every container that has a target."""
        started = time.monotonic()
        try:
            self._pass(ctx)
        finally:
            self._last_pass_time = time.monotonic() - started

    def _pass(self, ctx: PassContext) -> None:
        self.engine.realms.refresh()
        containers = concurrency.run_blocking(self.engine.catalog.containers_with_sync)
        ctx.count("containers", 0)
        for account, container in containers:
            if ctx.stopping:
                ctx.stats.interrupted = True
                LOG.info("sync: stop requested, leaving the pass")
                break
            self._container(ctx, account, container)
            self.engine.http.sweep()
        # Connections kept until the next pass would sit in CLOSE-WAIT once
        # their servers time them out (Swift's proxy after 60 s): a pass
        # keeps connections alive within itself, not across the interval.
        self.engine.http.close()
        self._set_gauges()
        self._write_metrics()
        self._maybe_report()

    def _container(self, ctx: PassContext, account: str, container: str) -> None:
        label = "%s/%s" % (account, container)
        ctx.count("items")
        ctx.count("containers")
        try:
            report = self.engine.sync_container(
                account, container, self.view(), lambda: ctx.stopping
            )
        except exception.FatalError:
            ctx.count("failed")
            raise
        except Exception as err:
            ctx.count("failed")
            self.metrics.incr("sync_failures", reason=_reason(err))
            self._keep_error(ctx, "%s: %s" % (label, err))
            if isinstance(err, exception.StoragedError):
                LOG.error("sync: container %s failed: %s", label, err)
            else:
                LOG.exception("sync: container %s failed", label)
            self._record_error(account, container, str(err))
            return
        for counter in _COUNTERS:
            value = getattr(report, counter)
            ctx.count(counter, value)
            self._totals[counter] += value
        self._measure(report)
        if report.failures:
            ctx.count("failed")
            self._keep_error(ctx, "%s: %d row(s) failed, first: %s" % (
                label, report.failures, report.errors[0] if report.errors else "?"))
        else:
            ctx.count("succeeded")
        self._record(report)

    def _measure(self, report: engine_mod.ContainerReport) -> None:
        m = self.metrics
        if report.puts:
            m.incr("sync_objects_sent", report.puts, op="put")
        if report.deletes:
            m.incr("sync_objects_sent", report.deletes, op="delete")
        if report.bytes:
            m.incr("sync_bytes_sent", report.bytes)
        if report.failures:
            m.incr("sync_failures", report.failures, reason="row")

    def _set_gauges(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        records = list(self._records.values())
        behind = [r for r in records if (r.get("rows_behind") or 0) > 0]
        m = self.metrics
        m.set("sync_containers", len(records))
        m.set("sync_containers_behind", len(behind))
        m.set("sync_rows_behind_total", sum(r.get("rows_behind") or 0 for r in records))
        m.set("sync_max_seconds_behind",
              max((seconds_behind(r, now) for r in records), default=0.0))

    @staticmethod
    def _keep_error(ctx: PassContext, text: str) -> None:
        if len(ctx.stats.errors) < MAX_ERRORS_KEPT:
            ctx.stats.errors.append(text[:500])

    # -- progress records ---------------------------------------------------

    def _previous(self, account: str, container: str) -> dict[str, Any]:
        known = self._records.get((account, container))
        if known is not None:
            return known
        if self.store is None:
            return {}
        try:
            value = self.store.call(
                self.store.get, progress_key(account, container, self.engine.worker)
            )
        except exception.StoragedError:
            return {}
        return dict(value) if isinstance(value, Mapping) else {}

    def _due_at(self, now: float) -> float | None:
        if self.interval is None:
            return None
        # The next pass starts one interval after this one did, or at once
        # when this one ran longer; each container comes at about the same
        # point of it.
        return now + max(self.interval, self._last_pass_time)

    def _save(self, account: str, container: str, record: dict[str, Any]) -> None:
        record["due_at"] = self._due_at(record["updated_at"])
        self._records[(account, container)] = record
        if self.store is None:
            return
        try:
            self.store.call(
                self.store.set,
                progress_key(account, container, self.engine.worker),
                record,
                ttl=PROGRESS_TTL,
            )
        except exception.StoragedError as err:
            LOG.warning("Could not record the sync progress of %s/%s: %s",
                        account, container, err)

    def _record(self, report: engine_mod.ContainerReport) -> None:
        record = self._previous(report.account, report.container)
        record.update(report.as_dict())
        record["updated_at"] = time.time()
        if report.rows_behind == 0 and not report.failures:
            record["caught_up_at"] = report.ended_at
        record.setdefault("caught_up_at", None)
        record.setdefault("first_seen_at", report.started_at)
        if report.failures:
            record["last_error"] = report.errors[0] if report.errors else "row failed"
            record["last_error_at"] = report.ended_at
        elif not report.stopped or report.stopped == "not syncing":
            record["last_success_at"] = report.ended_at
        record.setdefault("last_success_at", None)
        record.setdefault("last_error", "")
        record.setdefault("last_error_at", None)
        self._save(report.account, report.container, record)

    def _record_error(self, account: str, container: str, text: str) -> None:
        record = self._previous(account, container)
        record.update({
            "account": account,
            "container": container,
            "worker": self.engine.worker,
            "last_error": text[:300],
            "last_error_at": time.time(),
            "updated_at": time.time(),
        })
        record.setdefault("last_success_at", None)
        record.setdefault("caught_up_at", None)
        record.setdefault("first_seen_at", record["updated_at"])
        self._save(account, container, record)

    # -- reports -------------------------------------------------------------------

    def _maybe_report(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if now - self._since < self.report_interval:
            return
        t = self._totals
        LOG.info(
            "Since %s: %d synced [%d deletes, %d puts], %d skipped, %d failed, "
            "%d bytes",
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self._since)),
            t["puts"] + t["deletes"] + t["skips"] + t["superseded"],
            t["deletes"], t["puts"], t["skips"], t["failures"], t["bytes"],
        )
        self._since = now
        self._totals = dict.fromkeys(_COUNTERS, 0)

    def _write_metrics(self) -> None:
        if not self.metrics_file:
            return
        try:
            metrics_mod.textfile.write(self.metrics_file, self.metrics.registry)
        except OSError as err:
            LOG.warning("Could not write %s: %s", self.metrics_file, err)


def declare_metrics(metrics: metrics_mod.Metrics) -> None:
    """Declare the sync daemon's own metrics (the per-container ones aside)."""
    metrics.counter("sync_objects_sent", "Objects put or deleted on sync "
                    "targets (op: put, delete).", ["op"])
    metrics.counter("sync_bytes_sent", "Bytes of object bodies sent to sync "
                    "targets.")
    metrics.counter("sync_failures", "Sync failures by reason: row (a row the "
                    "target did not confirm), unavailable (a back end down or a "
                    "timeout: the container is retried next pass), error (a "
                    "refused or misconfigured container), bug (an unexpected "
                    "error, logged with its traceback).", ["reason"])
    metrics.gauge("sync_containers", "Containers with a sync target seen by "
                  "this worker.", multiprocess_mode="max")
    metrics.gauge("sync_containers_behind", "Containers with rows left to "
                  "push after the last pass.", multiprocess_mode="max")
    metrics.gauge("sync_rows_behind_total", "Row ids after this worker's sync "
                  "point 1, over every container.", multiprocess_mode="max")
    metrics.gauge("sync_max_seconds_behind", "The largest "
                  "storaged_sync_seconds_behind of any container.",
                  multiprocess_mode="max")


def _reason(err: BaseException) -> str:
    if isinstance(err, exception.RetryableError | CoordinationUnavailable):
        return "unavailable"
    if isinstance(err, exception.StoragedError):
        return "error"
    return "bug"


def seconds_behind(record: dict[str, Any], now: float) -> float:
    """Return how far behind a container is, in seconds (0: caught up).

    The time since this worker last finished a pass over the container
    with nothing left to push (or since it first saw it): an upper bound
    of the age of the oldest row not yet synced.
    """
    caught_up = record.get("caught_up_at")
    if (not record.get("rows_behind") and caught_up
            and caught_up >= (record.get("last_error_at") or 0)):
        return 0.0
    since = caught_up or record.get("first_seen_at") or now
    return max(0.0, now - float(since))


#: per-container gauges: record field, metric, help
_PER_CONTAINER: Final = (
    ("rows_behind", "storaged_sync_rows_behind",
     "Row ids of the change log after this worker's point1."),
    ("seconds_behind", "storaged_sync_seconds_behind",
     "Seconds since this worker last had nothing left to push in the "
     "container: an upper bound of the oldest unsynced row's age."),
    ("point1", "storaged_sync_point1", "Sync point 1 (new rows)."),
    ("point2", "storaged_sync_point2", "Sync point 2 (re-check)."),
    ("rate", "storaged_sync_rate_objects_per_second",
     "Rows confirmed per second in the last pass."),
    ("last_success_at", "storaged_sync_last_success_timestamp_seconds",
     "When a pass over the container last finished without a failed row."),
    ("last_error_at", "storaged_sync_last_error_timestamp_seconds",
     "When a pass over the container last failed."),
    ("failures", "storaged_sync_last_pass_failures",
     "Rows that failed in the last pass."),
)


class _WorstContainers:
    """The per-container gauges of the containers most behind, at scrape time.

    Only :data:`WORST_CONTAINERS` containers are shown (by rows behind,
    then seconds behind), so a node with a million containers exposes a
    bounded number of series; the ``storaged_sync_*_total`` and ``max``
    gauges cover the rest.
    """

    def __init__(self, worker: SyncWorker) -> None:
        self.worker = worker

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        now = time.time()
        records = [dict(r, seconds_behind=seconds_behind(r, now))
                   for r in list(self.worker._records.values())]
        records.sort(key=lambda r: (r.get("rows_behind") or 0, r["seconds_behind"]),
                     reverse=True)
        records = records[:WORST_CONTAINERS]
        for field, name, text in _PER_CONTAINER:
            family = prom_core.GaugeMetricFamily(
                name, text, labels=["account", "container", "worker"]
            )
            for rec in records:
                value = rec.get(field)
                if value is None:
                    continue
                family.add_metric([str(rec.get("account", "")),
                                   str(rec.get("container", "")),
                                   str(rec.get("worker", ""))], float(value))
            yield family


def check_realms(path: str) -> realms_mod.Realms:
    """Load the realms file at start-up (a malformed one stops the daemon)."""
    return realms_mod.Realms.load(path)
