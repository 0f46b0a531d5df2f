"""The sync engine against a real API application over HTTP."""

from __future__ import annotations

import itertools

from storaged.catalog import Timestamp
from storaged.sync import engine as engine_mod
from tests.unit.sync.conftest import put


def sync(eng, view=None):
    return eng.sync_container("AUTH_test", "src", view)


def points(source, worker="node:sync"):
    return source.catalog.container("AUTH_test", "src").get_sync_points(worker)


def max_row(source):
    return source.catalog.container("AUTH_test", "src").get_max_row()


def test_split_gives_every_name_to_exactly_one_member():
    members = ["n1:sync", "n2:sync", "n3:sync"]
    views = [engine_mod.View.of(m, members) for m in members]
    counts = [0, 0, 0]
    for i in range(600):
        owners = [v.ordinal for v in views if v.mine("a", "c", "obj%d" % i)]
        assert len(owners) == 1
        counts[owners[0]] += 1
    assert all(c > 120 for c in counts), counts
    assert engine_mod.View.of("n1:sync", []).mine("a", "c", "anything")


def test_window_advances_over_contiguous_finished_rows_only():
    window = engine_mod._Window(4)
    a = window.add(5, engine_mod._RUNNING)
    b = window.add(6, engine_mod._RUNNING)
    window.add(7, engine_mod._DONE)
    window.finish(b, True)
    assert window.point == 4  # row 5 still in flight
    window.finish(a, False)
    assert window.point == 4 and window.pinned  # a failed row pins it
    c = window.add(9, engine_mod._RUNNING)
    window.finish(c, True)
    assert window.point == 4


def test_pushes_objects_with_timestamp_etag_type_and_metadata(source, target,
                                                                make_engine):
    for i in range(20):
        put(source, "o%02d" % i, b"data %d" % i, content_type="text/x-%d" % i,
            metadata={"X-Object-Meta-I": str(i)})
    put(source, "gone", b"bye")
    source.delete_object("AUTH_test", "src", "gone")
    eng = make_engine(concurrency=8)
    report = sync(eng)
    assert report.ok and report.puts == 20 and report.deletes == 1
    # Alone, nothing is left to re-check: no range is remembered.
    assert eng._pushed[("AUTH_test", "src")] == []
    assert report.point1 == report.point2 == max_row(source)
    assert points(source) == (max_row(source), max_row(source))
    for i in range(20):
        remote = target.service.head_object("AUTH_test", "dst", "o%02d" % i)
        local = source.head_object("AUTH_test", "src", "o%02d" % i)
        assert (remote.timestamp, remote.etag, remote.content_type,
                dict(remote.metadata)) == (local.timestamp, local.etag,
                                           local.content_type, dict(local.metadata))
    # Nothing new: no request at all (the re-check range is empty).
    target.requests.clear()
    report = sync(make_engine())
    assert report.ok and report.synced == 0 and target.requests == []


def test_failed_row_pins_the_point_and_is_retried_next_pass(source, target,
                                                             make_engine):
    for i in range(10):
        put(source, "o%d" % i)
    rows = {r.name: r.row_id for r in source.catalog.container(
        "AUTH_test", "src").get_items_since(-1)}
    target.fail("o3", "PUT", times=1)
    eng = make_engine(concurrency=4)
    report = sync(eng)
    assert report.failures == 1 and "503" in report.errors[0]
    # Later rows were pushed, but the point stays below the failed row.
    assert set(target.objects()) == {"o%d" % i for i in range(10)} - {"o3"}
    assert points(source)[0] == rows["o3"] - 1
    report = sync(eng)
    assert report.ok and report.puts == 1 and report.skips >= 6
    assert set(target.objects()) == {"o%d" % i for i in range(10)}
    assert points(source) == (max_row(source), max_row(source))


def test_delete_answers_404_and_409_are_success(source, target, make_engine):
    put(source, "never-there")
    put(source, "newer-there")
    source.delete_object("AUTH_test", "src", "never-there")
    source.delete_object("AUTH_test", "src", "newer-there")
    # The target has a newer write of one of them: its DELETE gets 409.
    target.service.put_object("AUTH_test", "dst", "newer-there", [b"new"], 3,
                              timestamp=Timestamp.now())
    report = sync(make_engine())
    assert report.ok and report.deletes == 2
    assert target.objects() == {"newer-there": target.objects()["newer-there"]}


def test_head_same_or_newer_skips_the_put(source, target, make_engine):
    ts = put(source, "same").info.timestamp
    put(source, "older-there")
    target.service.put_object("AUTH_test", "dst", "same", [b"x"], 1, timestamp=ts)
    target.service.put_object("AUTH_test", "dst", "older-there", [b"old"], 3,
                              timestamp=Timestamp(1000))
    report = sync(make_engine())
    assert (report.skips, report.puts) == (1, 1)
    assert ("PUT", "same") not in target.requests


def test_time_budget_stops_without_running_ahead(source, target, make_engine):
    for i in range(30):
        put(source, "t%02d" % i)
    eng = make_engine(concurrency=1, container_time=10)
    ticks = itertools.count()
    eng._clock = lambda: float(next(ticks))
    report = sync(eng)
    assert report.stopped == "container_time"
    point1 = points(source)[0]
    assert -1 < point1 < max_row(source)
    on_target = set(target.objects())
    for row in source.catalog.container("AUTH_test", "src").get_items_since(-1):
        if row.row_id <= point1:
            assert row.name in on_target
    eng._clock = lambda: 0.0
    assert sync(eng).ok
    assert len(target.objects()) == 30


def test_recheck_pushes_the_rows_another_worker_never_pushed(source, target,
                                                              make_engine):
    for i in range(40):
        put(source, "r%02d" % i)
    members = ["w0", "w1"]
    w0 = make_engine("w0", concurrency=4)
    report = sync(w0, engine_mod.View.of("w0", members))
    mine = {n for n in ("r%02d" % i for i in range(40))
            if engine_mod.View.of("w0", members).mine("AUTH_test", "src", n)}
    assert 0 < len(mine) < 40
    assert set(target.objects()) == mine and report.puts == len(mine)
    assert points(source, "w0") == (max_row(source), -1)
    # w1 died without pushing anything: w0's re-check stage pushes its share,
    # and leaves its own rows alone.
    target.requests.clear()
    report = sync(w0, engine_mod.View.of("w0", ["w0"]))
    assert report.ok and report.rechecked == 40 - len(mine)
    assert report.puts == 40 - len(mine)
    assert len(target.objects()) == 40
    assert not {n for _m, n in target.requests} & mine
    assert points(source, "w0") == (max_row(source), max_row(source))


def test_restart_rechecks_with_heads_only(source, target, make_engine):
    for i in range(10):
        put(source, "h%d" % i)
    members = ["w0", "w1"]
    sync(make_engine("w0"), engine_mod.View.of("w0", members))
    sync(make_engine("w1"), engine_mod.View.of("w1", members))
    assert len(target.objects()) == 10
    # A new process (no memory of what it pushed) re-checks the range: HEADs.
    target.requests.clear()
    report = sync(make_engine("w0"), engine_mod.View.of("w0", members))
    assert report.ok and report.puts == 0 and report.skips == 10
    assert {m for m, _n in target.requests} == {"HEAD"}


def test_metadata_change_re_puts_with_the_new_timestamp(source, target,
                                                         make_engine):
    put(source, "m", b"body", metadata={"X-Object-Meta-A": "1"})
    eng = make_engine()
    sync(eng)
    broker = source.catalog.container("AUTH_test", "src")
    ts = Timestamp.now()
    broker.update_object_metadata("m", ts, {"X-Object-Meta-A": "2"})
    assert sync(eng).puts == 1
    remote = target.service.head_object("AUTH_test", "dst", "m")
    assert remote.timestamp == ts and remote.metadata["X-Object-Meta-A"] == "2"
