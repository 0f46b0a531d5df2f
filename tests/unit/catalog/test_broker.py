"""The container broker: lifecycle, metadata, last-writer-wins, change log."""

from __future__ import annotations

import os
import random
import threading

import pytest

from storaged import exception
from storaged.catalog import MASK
from storaged.catalog import ObjectRow
from storaged.catalog import Timestamp
from storaged.catalog import TimestampConflict


def put(broker, name, ts, size=1, **kw):
    return broker.put_object(name, ts, size, "text/plain", f"etag-{ts}", **kw)


# -- container lifecycle ------------------------------------------------------


def test_create_is_idempotent_and_keeps_newest_put(catalog):
    b = catalog.container("AUTH_test", "c")
    assert not b.exists()
    with pytest.raises(exception.ContainerNotFound):
        b.info()
    assert b.create("100.0") is True
    assert b.create("200.0") is False
    assert b.create("150.0") is False
    info = b.info()
    assert info.put_timestamp == Timestamp("200.0")
    assert info.delete_timestamp == Timestamp(0)
    assert (info.account, info.container) == ("AUTH_test", "c")
    assert info.object_count == 0 and info.bytes_used == 0
    assert info.max_row == -1
    assert not info.deleted
    assert b.exists()


def test_delete_refuses_when_not_empty(broker):
    put(broker, "o", "1001.0")
    with pytest.raises(exception.ContainerNotEmpty):
        broker.delete("2000.0")
    assert broker.exists()
    broker.delete_object("o", "1002.0")
    broker.delete("2000.0")
    assert not broker.exists()


def test_delete_clears_the_metadata_as_swift_does(catalog, broker):
    broker.update_metadata({"X-Container-Meta-Color": "blue",
                            "X-Container-Read": ".r:*"}, "1000.5")
    broker.delete("1001.0")
    assert broker.info(include_deleted=True).metadata == {}
    broker.create("1002.0", {"X-Container-Meta-Size": "big"})
    assert broker.info().metadata == {"X-Container-Meta-Size": "big"}
    # A late update older than the delete does not come back either.
    broker.update_metadata({"X-Container-Meta-Color": "red"}, "1000.7")
    assert broker.info().metadata == {"X-Container-Meta-Size": "big"}


def test_delete_then_recreate(catalog, broker):
    before = broker.info()
    with pytest.raises(TimestampConflict):
        broker.delete("999.0")  # older than the PUT: Swift answers 409
    broker.delete("1001.0")
    assert not broker.exists()
    with pytest.raises(exception.ContainerNotFound):
        broker.info()
    with pytest.raises(exception.ContainerNotFound):
        broker.delete("1002.0")  # already deleted: 404
    with pytest.raises(exception.ContainerNotFound):
        put(broker, "o", "1003.0")
    with pytest.raises(exception.ContainerNotFound):
        broker.list_objects()
    gone = broker.info(include_deleted=True)
    assert gone.deleted
    assert gone.delete_timestamp == Timestamp("1001.0")
    assert gone.status_changed_at > before.status_changed_at
    # The container is kept (deleted) until reclaim.
    assert broker.stats().deleted
    # A PUT older than the delete cannot bring it back ...
    with pytest.raises(TimestampConflict):
        broker.create("1000.5")
    assert not broker.exists()
    # ... a newer one does, in the same database.
    assert broker.create("1004.0") is True
    again = broker.info()
    assert again.db_id == before.db_id
    assert not again.deleted
    assert put(broker, "o", "1005.0")


def test_two_brokers_one_container(catalog, broker):
    other = catalog.container("AUTH_test", "box")
    put(broker, "o", "1001.0", size=7)
    assert other.get_object("o").size == 7
    assert other.info().object_count == 1
    other.close()


def test_broker_names_are_checked(catalog):
    with pytest.raises(exception.InvalidName):
        catalog.container("AUTH_test", "a/b")
    with pytest.raises(exception.InvalidName):
        catalog.container("", "c")


@pytest.mark.sqlite_only
def test_names_never_become_paths(catalog):
    b = catalog.container("AUTH_test", "..." + "\u00e9" * 50)
    b.create()
    rel = os.path.relpath(b.db.directory, catalog.containers_dir)
    assert "\u00e9" not in rel and "..." not in rel
    assert len(rel.split(os.sep)) == 2


# -- container metadata -------------------------------------------------------


def test_metadata_last_writer_wins_per_key(broker):
    both = {"X-Container-Meta-A": "1", "X-Container-Meta-B": "b"}
    assert broker.update_metadata(both, "1010.0")
    assert not broker.update_metadata({"X-Container-Meta-A": "0"}, "1005.0")  # older
    assert broker.info().metadata == both
    # Keys ignore case; the newer write wins.
    assert broker.update_metadata({"x-container-meta-a": "2"}, "1011.0")
    assert broker.info().metadata["X-Container-Meta-A"] == "2"
    # An empty value deletes the key, which keeps its timestamp ...
    assert broker.update_metadata({"X-Container-Meta-A": ""}, "1012.0")
    info = broker.info()
    assert "X-Container-Meta-A" not in info.metadata
    assert info.metadata_timestamps["X-Container-Meta-A"] == Timestamp("1012.0")
    # ... so an older value cannot come back.
    assert not broker.update_metadata({"X-Container-Meta-A": "old"}, "1011.5")
    assert "X-Container-Meta-A" not in broker.info().metadata
    assert broker.update_metadata({"X-Container-Meta-A": "new"}, "1013.0")
    assert broker.info().metadata["X-Container-Meta-A"] == "new"
    # The same value again changes nothing.
    assert not broker.update_metadata({"X-Container-Meta-B": "b"}, "1009.0")


def test_metadata_at_create(catalog):
    b = catalog.container("AUTH_test", "m")
    b.create("5.0", {"X-Container-Meta-Color": "blue"})
    assert b.info().metadata == {"X-Container-Meta-Color": "blue"}
    assert b.info().metadata_timestamps["X-Container-Meta-Color"] == Timestamp("5.0")


def test_metadata_limits_hold_across_updates(broker):
    broker.update_metadata({f"X-Container-Meta-{i}": "v" for i in range(60)}, "1001")
    with pytest.raises(exception.InvalidName, match="91 metadata items"):
        broker.update_metadata(
            {f"X-Container-Meta-X{i}": "v" for i in range(31)}, "1002"
        )
    assert len(broker.info().metadata) == 60


def test_sync_key_is_masked(broker):
    broker.set_sync("//realm/cluster/AUTH_b/c", "s3cr3t-key", "1001.0")
    broker.update_metadata({"X-Container-Meta-Temp-Url-Key": "tempkey"}, "1001.0")
    info = broker.info()
    assert info.sync_to == "//realm/cluster/AUTH_b/c"
    assert info.sync_key == "s3cr3t-key"
    assert info.syncing
    shown = (repr(info), str(info), repr(info.as_dict()), repr(info.masked_metadata()))
    for text in shown:
        assert "s3cr3t-key" not in text
        assert "tempkey" not in text
        assert MASK in text
    clear = info.as_dict(mask_secrets=False)["metadata"]
    assert clear["X-Container-Sync-Key"] == "s3cr3t-key"
    assert "s3cr3t" not in repr(broker)


def test_sync_to_change_resets_sync_points(broker):
    broker.set_sync("//r/c/a/one", "key", "1001.0")
    broker.set_sync_points("w1", 5, 3)
    broker.set_sync_points("w2", 7, 7)
    broker.update_metadata({"X-Container-Sync-Key": "key2"}, "1002.0")  # key only
    assert broker.get_sync_points("w1") == (5, 3)
    broker.update_metadata({"X-Container-Sync-To": "//r/c/a/one"}, "1003.0")  # same
    assert broker.get_sync_points("w1") == (5, 3)
    broker.update_metadata({"X-Container-Sync-To": "//r/c/a/two"}, "1004.0")
    assert broker.list_sync_points() == {}
    assert broker.get_sync_points("w1") == (-1, -1)
    assert broker.get_sync_points("w2") == (-1, -1)


# -- objects: last writer wins --------------------------------------------------------


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        # (op, ts, expected return) ...; final (deleted, ts) or None
        ([("put", 10, True), ("put", 9, False)], (False, 10)),
        ([("put", 10, True), ("put", 10, False)], (False, 10)),
        ([("put", 10, True), ("delete", 9, False)], (False, 10)),
        ([("put", 10, True), ("delete", 10, False)], (False, 10)),
        ([("put", 10, True), ("delete", 11, True)], (True, 11)),
        ([("put", 10, True), ("delete", 11, True), ("put", 10.5, False)], (True, 11)),
        ([("put", 10, True), ("delete", 11, True), ("put", 12, True)], (False, 12)),
        ([("delete", 11, True), ("put", 10, False)], (True, 11)),
        ([("delete", 11, True), ("delete", 10, False)], (True, 11)),
        ([("delete", 11, True), ("delete", 12, True)], (True, 12)),
        ([("put", "10.0_1", True), ("put", "10.0", False), ("delete", "10.0_2", True)],
         (True, "10.0_2")),
    ],
)
def test_object_last_writer_wins(broker, ops, expected):
    for op, ts, applied in ops:
        if op == "put":
            assert put(broker, "o", Timestamp(ts)) is applied
        else:
            assert broker.delete_object("o", Timestamp(ts)) is applied
    row = broker.get_object("o", include_deleted=True)
    deleted, ts = expected
    assert row.deleted is deleted
    assert row.created_at == Timestamp(ts)
    assert (broker.get_object("o") is None) is deleted


def test_put_records_every_field(broker):
    assert broker.put_object(
        "dir/\u00fc.txt", "1001.5", 12, "text/plain; charset=utf-8", "abc123",
        backend="file1", location="file:///data/ab/cd",
        metadata={"x-object-meta-color": "red", "Content-Disposition": "inline"},
    )
    row = broker.get_object("dir/\u00fc.txt")
    assert row == ObjectRow(
        row_id=row.row_id, name="dir/\u00fc.txt", created_at=Timestamp("1001.5"),
        size=12, content_type="text/plain; charset=utf-8", etag="abc123",
        deleted=False, backend="file1", location="file:///data/ab/cd",
        metadata={"X-Object-Meta-Color": "red", "Content-Disposition": "inline"},
    )


def test_tombstone_fields_are_empty(broker):
    put(broker, "o", "1001", size=5, backend="b", location="l",
        metadata={"X-Object-Meta-A": "1"})
    broker.delete_object("o", "1002")
    row = broker.get_object("o", include_deleted=True)
    assert (row.size, row.etag, row.backend, row.location, row.metadata) == (
        0, "", "", "", {})


def test_delete_of_unknown_object_leaves_a_tombstone(broker):
    assert broker.delete_object("never", "1001")
    assert broker.get_object("never") is None
    assert broker.get_object("never", include_deleted=True).deleted
    assert not put(broker, "never", "1000.5")  # a late, older PUT stays refused


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"size": -1}, "non-negative integer"),
        ({"size": True}, "non-negative integer"),
        ({"size": 1.5}, "non-negative integer"),
        ({"content_type": "a\r\nb"}, "CR or LF"),
        ({"etag": "e" * 300}, "longer than 256 bytes"),
        ({"metadata": {"X-Object-Meta-" + "n" * 200: "v"}}, "longer than 128"),
        ({"location": "a\x00"}, "NUL"),
    ],
)
def test_bad_object_fields(broker, kwargs, words):
    args = {"size": 1, "content_type": "t", "etag": "e"}
    args.update(kwargs)
    with pytest.raises(exception.InvalidName, match=words):
        broker.put_object("o", "1001", **args)
    assert broker.get_items_since(-1) == []


def test_bad_timestamp_is_refused(broker):
    with pytest.raises(ValueError):
        put(broker, "o", "yesterday")
    with pytest.raises(ValueError):
        broker.delete_object("o", -5)


def test_update_object_metadata(broker):
    put(broker, "o", "1001", size=9, metadata={"X-Object-Meta-A": "1"})
    first = broker.get_object("o")
    assert broker.update_object_metadata("o", "1002", {"X-Object-Meta-B": "2"},
                                         content_type="image/png")
    row = broker.get_object("o")
    assert row.metadata == {"X-Object-Meta-B": "2"}
    assert (row.size, row.etag, row.content_type) == (9, first.etag, "image/png")
    assert row.created_at == Timestamp("1002")
    assert row.row_id > first.row_id  # sync sees the change
    assert not broker.update_object_metadata("o", "1001.5", {"X-Object-Meta-C": "3"})
    assert not broker.update_object_metadata("missing", "1003", {})
    broker.delete_object("o", "1004")
    assert not broker.update_object_metadata("o", "1005", {})
    assert broker.info().object_count == 0


# -- counts -------------------------------------------------------------------


def _check_counts(broker, model):
    live = {n: s for n, (deleted, _ts, s) in model.items() if not deleted}
    info = broker.info()
    assert info.object_count == len(live)
    assert info.bytes_used == sum(live.values())
    listed = broker.list_objects()
    assert {r.name: r.size for r in listed} == live


def test_counts_follow_replacements_and_deletes(broker):
    rng = random.Random(7)
    model = {}
    for step in range(400):
        name = f"o{rng.randrange(25)}"
        ts = Timestamp(2000 + rng.randrange(300))
        size = rng.randrange(1000)
        current = model.get(name)
        newer = current is None or ts > current[1]
        if rng.random() < 0.3:
            assert broker.delete_object(name, ts) is newer
            if newer:
                model[name] = (True, ts, 0)
        elif rng.random() < 0.1 and current and not current[0]:
            applied = broker.update_object_metadata(name, ts, {})
            assert applied is newer
            if newer:
                model[name] = (False, ts, current[2])
        else:
            assert put(broker, name, ts, size=size) is newer
            if newer:
                model[name] = (False, ts, size)
        if step % 50 == 0:
            _check_counts(broker, model)
    _check_counts(broker, model)


# -- the change log -----------------------------------------------------------


def test_change_log_order_and_completeness(broker):
    rng = random.Random(11)
    latest = {}
    seen_max = -1
    for step in range(300):
        name = f"n{rng.randrange(40)}"
        ts = Timestamp(3000 + step)  # always newer: every op applies
        if rng.random() < 0.25:
            assert broker.delete_object(name, ts)
        else:
            assert put(broker, name, ts)
        latest[name] = ts
        # A follower at the previous end sees exactly this change next.
        new = broker.get_items_since(seen_max)
        assert [r.name for r in new] == [name]
        assert new[0].row_id > seen_max
        seen_max = new[0].row_id
    log = broker.get_items_since(-1, limit=10_000)
    ids = [r.row_id for r in log]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert {r.name: r.created_at for r in log} == latest  # each name once, latest
    assert len(log) == len(latest)
    # Paging through gives the same log.
    paged, point = [], -1
    while True:
        page = broker.get_items_since(point, limit=7)
        if not page:
            break
        paged.extend(page)
        point = page[-1].row_id
    assert paged == log
    assert broker.get_max_row() == ids[-1]
    assert broker.info().max_row == ids[-1]


def test_ignored_writes_do_not_touch_the_log(broker):
    put(broker, "a", "2000")
    before = broker.get_items_since(-1)
    assert not put(broker, "a", "1999")
    assert not broker.delete_object("a", "1999")
    assert broker.get_items_since(-1) == before


def test_row_ids_are_never_reused(broker):
    put(broker, "a", "2000")
    broker.delete_object("a", "2001")
    top = broker.get_max_row()
    assert broker.reclaim(age=0) == 1  # the newest row is gone ...
    assert broker.get_items_since(-1) == []
    put(broker, "b", "2002")
    assert broker.get_items_since(-1)[0].row_id > top  # ... its id is not reused


def test_get_items_since_arguments(broker):
    with pytest.raises(ValueError):
        broker.get_items_since("5")
    with pytest.raises(ValueError):
        broker.get_items_since(0, limit=-1)


# -- sync points --------------------------------------------------------------


def test_sync_points_per_worker(broker):
    assert broker.get_sync_points("node-a:sync:0") == (-1, -1)
    broker.set_sync_points("node-a:sync:0", point1=10)
    assert broker.get_sync_points("node-a:sync:0") == (10, -1)
    broker.set_sync_points("node-a:sync:0", point2=4)
    assert broker.get_sync_points("node-a:sync:0") == (10, 4)
    broker.set_sync_points("node-a:sync:0", point2=2)  # points may go back
    broker.set_sync_points("node-b:sync:0", 3, 1)
    assert broker.get_sync_points("node-a:sync:0") == (10, 2)
    assert broker.list_sync_points() == {
        "node-a:sync:0": (10, 2),
        "node-b:sync:0": (3, 1),
    }
    broker.reset_sync_points("node-b:sync:0")
    assert broker.get_sync_points("node-b:sync:0") == (-1, -1)
    assert broker.get_sync_points("node-a:sync:0") == (10, 2)
    broker.reset_sync_points()
    assert broker.list_sync_points() == {}
    with pytest.raises(ValueError):
        broker.set_sync_points("w", point1=-2)
    with pytest.raises(exception.InvalidName):
        broker.set_sync_points("", point1=1)


def test_sync_points_survive_reopen(catalog, broker):
    broker.set_sync_points("w", 8, 6)
    broker.close()
    again = catalog.container("AUTH_test", "box")
    assert again.get_sync_points("w") == (8, 6)
    again.close()


# -- reclaim ------------------------------------------------------------------


def test_reclaim_removes_only_old_tombstones(broker):
    now = 100_000.0
    put(broker, "live-old", now - 5000)
    put(broker, "dead-old", now - 5000)
    broker.delete_object("dead-old", now - 4000)
    broker.delete_object("dead-edge", now - 1000)  # exactly at the age: kept
    broker.delete_object("dead-new", now - 10)
    put(broker, "live-new", now - 1)
    assert broker.reclaim(age=1000, now=now) == 1
    names = {r.name: r.deleted for r in broker.get_items_since(-1)}
    assert names == {"live-old": False, "dead-edge": True, "dead-new": True,
                     "live-new": False}
    assert broker.info().object_count == 2
    assert broker.reclaim(age=0, now=now) == 2
    assert {r.name for r in broker.get_items_since(-1)} == {"live-old", "live-new"}
    assert broker.info().object_count == 2


def test_reclaim_in_batches(broker):
    for i in range(2500):
        broker.delete_object(f"t{i:05d}", 2000 + i * 0.001)
    put(broker, "keep", "2000")
    assert broker.reclaim(age=10, now=5000) == 2500
    assert [r.name for r in broker.get_items_since(-1)] == ["keep"]


def test_reclaim_prunes_old_deleted_metadata_keys(broker):
    broker.update_metadata({"X-Container-Meta-A": "1", "X-Container-Meta-B": "2"}, 2000)
    broker.update_metadata({"X-Container-Meta-A": ""}, 2001)
    broker.update_metadata({"X-Container-Meta-B": ""}, 9000)
    broker.reclaim(age=1000, now=9500)
    stamps = broker.info().metadata_timestamps
    assert "X-Container-Meta-A" not in stamps
    assert stamps["X-Container-Meta-B"] == Timestamp(9000)


def test_reclaim_default_age(catalog):
    b = catalog.container("AUTH_test", "age")
    b.create()
    assert b.reclaim_age == 604800
    now = Timestamp.now()
    b.delete_object("week-old", Timestamp(float(now) - 604800 - 60))
    b.delete_object("day-old", Timestamp(float(now) - 86400))
    assert b.reclaim() == 1
    assert [r.name for r in b.get_items_since(-1)] == ["day-old"]


# -- threads ------------------------------------------------------------------


def test_one_broker_many_threads(broker):
    errors = []

    def work(t):
        try:
            for i in range(60):
                put(broker, f"t{t}-{i}", 2000 + i, size=t)
                broker.get_object(f"t{t}-{i}")
                broker.list_objects(prefix=f"t{t}-", limit=5)
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    info = broker.info()
    assert info.object_count == 360
    assert info.bytes_used == sum(t * 60 for t in range(6))
