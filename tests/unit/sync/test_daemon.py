"""The daemon's worker: passes, progress records, metrics, the group view."""

from __future__ import annotations

from storaged import kvs
from storaged.common.daemon import run_pass
from storaged.coordination.errors import CoordinationUnavailable
from storaged.sync import daemon as sync_daemon
from tests.unit.sync.conftest import SYNC_KEY
from tests.unit.sync.conftest import put


class Coordinator:
    """Just what the worker asks of a coordinator."""

    def __init__(self, member_id, members=None, down=False):
        self.member_id = member_id
        self.members = members or {}
        self.down = down
        self.joined = []

    def start(self):
        pass

    def stop(self):
        pass

    def join_group(self, group, caps):
        self.joined.append(group)

    def get_members(self, group):
        if self.down:
            raise CoordinationUnavailable("coordination back end down")
        return self.members


def test_pass_records_progress_and_metrics(tmp_path, source, target, make_engine):
    for i in range(5):
        put(source, "p%d" % i)
    store = kvs.open_store("memory://svc-progress")
    metrics = tmp_path / "sync.prom"
    worker = sync_daemon.SyncWorker(make_engine(), None, store,
                                    metrics_file=str(metrics))
    stats = run_pass(worker)
    assert stats.ok, stats.errors
    assert stats.counters["puts"] == 5 and stats.counters["containers"] == 1
    record = store.get(sync_daemon.progress_key("AUTH_test", "src", "node:sync"))
    assert record["rows_behind"] == 0 and record["puts"] == 5
    assert record["last_success_at"] and not record["last_error"]
    assert record["target"] == "//us/dst/AUTH_test/dst"
    assert SYNC_KEY not in repr(record)
    text = metrics.read_text()
    assert ('storaged_sync_rows_behind{account="AUTH_test",container="src",'
            'worker="node:sync"} 0.0') in text


def test_failing_container_is_isolated_and_recorded(source, target, make_engine):
    source.create_container("AUTH_test", "bad", {
        "X-Container-Sync-To": "//nowhere/x/AUTH_test/dst",
        "X-Container-Sync-Key": SYNC_KEY})
    put(source, "ok")
    store = kvs.open_store("memory://svc-failing")
    worker = sync_daemon.SyncWorker(make_engine(), None, store)
    stats = run_pass(worker)
    assert not stats.ok
    assert stats.counters["failed"] == 1 and stats.counters["succeeded"] == 1
    bad = store.get(sync_daemon.progress_key("AUTH_test", "bad", "node:sync"))
    assert "No realm key" in bad["last_error"]
    assert "ok" in target.objects()


def test_view_from_the_group_or_alone(make_engine):
    eng = make_engine("n1:sync")
    coord = Coordinator("n1:sync", {"n1:sync": {}, "n2:sync": {}})
    worker = sync_daemon.SyncWorker(eng, coord, None)
    worker.start()
    assert coord.joined == ["storaged-sync"]
    assert worker.view().members == ("n1:sync", "n2:sync")
    # Not listed (yet): push everything rather than count on the others.
    coord.members = {"n2:sync": {}}
    assert worker.view().members == ("n1:sync",)
    coord.down = True
    assert worker.view().members == ("n1:sync",)


def test_interval_report_line(make_engine, caplog):
    worker = sync_daemon.SyncWorker(make_engine(), None, None, report_interval=10)
    worker._totals.update(puts=3, deletes=2, skips=1)
    worker._maybe_report(worker._since + 5)
    assert "Since" not in caplog.text
    with caplog.at_level("INFO"):
        worker._maybe_report(worker._since + 11)
    assert "6 synced [2 deletes, 3 puts], 1 skipped, 0 failed" in caplog.text
    assert worker._totals["puts"] == 0


def test_pass_feeds_sync_metrics(source, target, make_engine):
    from storaged.metrics import Metrics

    for i in range(3):
        put(source, "m%d" % i)
    metrics = Metrics("sync")
    worker = sync_daemon.SyncWorker(make_engine(), None, None, metrics=metrics)
    assert run_pass(worker).ok
    get = metrics.registry.get_sample_value
    assert get("storaged_sync_objects_sent_total", {"op": "put"}) == 3
    assert get("storaged_sync_bytes_sent_total") > 0
    assert get("storaged_sync_containers") == 1
    assert get("storaged_sync_rows_behind_total") == 0
    assert get("storaged_sync_max_seconds_behind") == 0
    labels = {"account": "AUTH_test", "container": "src", "worker": "node:sync"}
    assert get("storaged_sync_rows_behind", labels) == 0
    assert get("storaged_sync_seconds_behind", labels) == 0


def test_failures_by_reason(source, target, make_engine):
    from storaged.metrics import Metrics

    source.create_container("AUTH_test", "bad", {
        "X-Container-Sync-To": "//nowhere/x/AUTH_test/dst",
        "X-Container-Sync-Key": SYNC_KEY})
    metrics = Metrics("sync")
    worker = sync_daemon.SyncWorker(make_engine(), None, None, metrics=metrics)
    run_pass(worker)
    assert metrics.registry.get_sample_value(
        "storaged_sync_failures_total", {"reason": "error"}) == 1


def test_seconds_behind_is_time_since_caught_up():
    rec = {"rows_behind": 0, "caught_up_at": 100.0, "first_seen_at": 50.0}
    assert sync_daemon.seconds_behind(rec, 130.0) == 0
    rec["rows_behind"] = 4
    assert sync_daemon.seconds_behind(rec, 130.0) == 30.0
    # Never caught up: since first seen.
    assert sync_daemon.seconds_behind(
        {"rows_behind": 4, "caught_up_at": None, "first_seen_at": 50.0}, 130.0) == 80.0
    # A container that failed after it caught up is behind again.
    rec = {"rows_behind": 0, "caught_up_at": 100.0, "last_error_at": 110.0}
    assert sync_daemon.seconds_behind(rec, 130.0) == 30.0


def test_per_container_series_are_bounded(make_engine):
    from storaged.metrics import Metrics

    metrics = Metrics("sync")
    worker = sync_daemon.SyncWorker(make_engine(), None, None, metrics=metrics)
    n = sync_daemon.WORST_CONTAINERS + 15
    for i in range(n):
        worker._records[("AUTH_a", "c%d" % i)] = {
            "account": "AUTH_a", "container": "c%d" % i, "worker": "w",
            "rows_behind": i, "first_seen_at": 0.0}
    shown = [s for fam in metrics.registry.collect()
             if fam.name == "storaged_sync_rows_behind" for s in fam.samples]
    assert len(shown) == sync_daemon.WORST_CONTAINERS
    # The worst ones.
    assert min(s.value for s in shown) == n - sync_daemon.WORST_CONTAINERS
