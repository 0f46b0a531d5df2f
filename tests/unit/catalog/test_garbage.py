"""Object data no longer referenced: recorded with the write that replaced it."""

from __future__ import annotations

import logging
import os
import sqlite3
import time

import pytest

from storaged import exception
from storaged.catalog import Garbage
from storaged.catalog import Timestamp

SECRET = "https://user:s3cr3t@store.example/v1/AUTH_x/data/"


def put(broker, name, ts, location="", backend="b1"):
    return broker.put_object(name, ts, 1, "text/plain", f"etag-{ts}",
                             backend=backend if location else "", location=location)


def pairs(broker):
    return [(g.backend, g.location) for g in broker.list_garbage()]


# -- what becomes garbage -------------------------------------------------------


def test_newer_put_makes_the_old_data_garbage(broker):
    before = time.time()
    assert put(broker, "o", "1001", "loc-1")
    assert broker.list_garbage() == []
    assert put(broker, "o", "1002", "loc-2")
    (entry,) = broker.list_garbage()
    assert (entry.backend, entry.location) == ("b1", "loc-1")
    assert before <= entry.added_at <= time.time()
    assert isinstance(entry.garbage_id, int)
    assert broker.get_object("o").location == "loc-2"
    assert broker.info().garbage_count == 1
    assert broker.stats().garbage == 1


def test_delete_makes_the_data_garbage(broker):
    put(broker, "o", "1001", "loc-1")
    assert broker.delete_object("o", "1002")
    assert pairs(broker) == [("b1", "loc-1")]
    # The tombstone points at nothing: deleting or replacing it adds nothing.
    assert broker.delete_object("o", "1003")
    assert put(broker, "o", "1004", "loc-2")
    assert pairs(broker) == [("b1", "loc-1")]


@pytest.mark.parametrize("ts", ["1000", "1001"])  # older, equal
def test_a_write_that_loses_adds_nothing(broker, ts):
    put(broker, "o", "1001", "loc-1")
    assert not put(broker, "o", ts, "loc-late")
    assert not broker.delete_object("o", ts)
    assert broker.list_garbage() == []
    assert broker.get_object("o").location == "loc-1"


def test_metadata_update_keeps_the_data(broker):
    put(broker, "o", "1001", "loc-1")
    assert broker.update_object_metadata("o", "1002", {"X-Object-Meta-A": "1"},
                                         content_type="image/png")
    assert broker.list_garbage() == []
    assert broker.get_object("o").location == "loc-1"
    # ... and the data is still tracked when the row goes later.
    broker.delete_object("o", "1003")
    assert pairs(broker) == [("b1", "loc-1")]


def test_rows_without_data_make_no_garbage(broker):
    put(broker, "o", "1001")  # no back end, no location
    assert put(broker, "o", "1002")
    assert broker.delete_object("o", "1003")
    assert put(broker, "p", "1001")
    assert put(broker, "p", "1002", "loc-1")
    assert broker.list_garbage() == []


def test_only_different_data_is_garbage(broker):
    put(broker, "o", "1001", "loc-1")
    assert put(broker, "o", "1002", "loc-1")  # the same data again
    assert broker.list_garbage() == []
    assert put(broker, "o", "1003", "loc-1", backend="b2")  # another back end
    assert pairs(broker) == [("b1", "loc-1")]


def test_list_garbage_oldest_first_and_limit(broker):
    for i in range(5):
        put(broker, f"o{i}", "1001", f"loc-{i}")
    for i in (3, 0, 4, 1, 2):
        broker.delete_object(f"o{i}", "1002")
    assert [g.location for g in broker.list_garbage()] == [
        "loc-3", "loc-0", "loc-4", "loc-1", "loc-2"]
    assert [g.location for g in broker.list_garbage(limit=2)] == ["loc-3", "loc-0"]
    assert broker.list_garbage(limit=0) == []
    for bad in (-1, "5", True, 1.5):
        with pytest.raises(ValueError):
            broker.list_garbage(limit=bad)


def test_garbage_repr_hides_the_location():
    entry = Garbage(7, "b1", SECRET, 1700000000.0)
    assert "s3cr3t" not in repr(entry)
    assert "b1" in repr(entry) and "7" in repr(entry)
    with pytest.raises(AttributeError):
        entry.location = "x"  # frozen


# -- atomic with the replacement -----------------------------------------------------


@pytest.mark.sqlite_only
def test_row_and_garbage_appear_together(broker):
    put(broker, "o", "1001", "loc-1")
    path = broker.db.find_file()
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        reader.execute("BEGIN")  # a snapshot from before the write
        reader.execute("SELECT count(*) FROM objects").fetchone()
        put(broker, "o", "1002", "loc-2")

        def snapshot():
            row = reader.execute(
                "SELECT location FROM objects WHERE name = 'o'").fetchone()
            garbage = reader.execute(
                "SELECT location FROM garbage ORDER BY id").fetchall()
            return row[0], [g[0] for g in garbage]

        assert snapshot() == ("loc-1", [])
        reader.execute("COMMIT")
        reader.execute("BEGIN")
        assert snapshot() == ("loc-2", ["loc-1"])
        reader.execute("COMMIT")
    finally:
        reader.close()


@pytest.mark.sqlite_only
def test_a_failed_write_records_no_garbage(broker):
    put(broker, "o", "1001", "loc-1")
    # Make the insert of the new row fail after the old row was replaced.
    with broker.db.write() as conn:
        conn.execute(
            "CREATE TRIGGER poison BEFORE INSERT ON objects "
            "WHEN new.location = 'poison' BEGIN SELECT RAISE(ABORT, 'boom'); END")
    with pytest.raises(exception.CatalogError, match="boom"):
        put(broker, "o", "1002", "poison")
    assert broker.list_garbage() == []
    assert broker.get_object("o").location == "loc-1"
    assert broker.info().garbage_count == 0


# -- collecting ----------------------------------------------------------------------


def test_forget_garbage(broker):
    for i in range(3):
        put(broker, f"o{i}", "1001", f"loc-{i}")
        broker.delete_object(f"o{i}", "1002")
    ids = [g.garbage_id for g in broker.list_garbage()]
    assert broker.forget_garbage([]) == 0
    assert broker.forget_garbage(iter([ids[2], ids[2], 99999])) == 1
    assert broker.forget_garbage([ids[2]]) == 0  # forgotten already
    assert [g.garbage_id for g in broker.list_garbage()] == ids[:2]
    with pytest.raises(ValueError):
        broker.forget_garbage(["1"])
    # An id is never given twice, even after the newest entry was forgotten.
    put(broker, "o9", "1001", "loc-9")
    broker.delete_object("o9", "1002")
    assert broker.list_garbage()[-1].garbage_id > ids[2]
    assert broker.info().garbage_count == 3


def test_forget_many_at_once(broker):
    for i in range(1200):
        put(broker, f"o{i:04d}", "1001", f"l{i}")
    for i in range(1200):
        broker.delete_object(f"o{i:04d}", "1002")
    ids = [g.garbage_id for g in broker.list_garbage(limit=2000)]
    assert len(ids) == 1200
    assert broker.forget_garbage(ids) == 1200
    assert broker.list_garbage() == []


def test_collect_garbage_keeps_what_failed(broker, caplog):
    for i in range(4):
        put(broker, f"o{i}", "1001", SECRET + str(i), backend=f"b{i}")
        broker.delete_object(f"o{i}", "1002")
    failing = broker.list_garbage()[1]
    calls = []

    def delete(backend, location):
        calls.append((backend, location))
        if location == failing.location:
            raise OSError(f"cannot reach {location}")

    with caplog.at_level(logging.WARNING, logger="storaged.catalog.broker"):
        assert broker.collect_garbage(delete) == (3, 1)
    assert calls == [(f"b{i}", SECRET + str(i)) for i in range(4)]
    assert broker.list_garbage() == [failing]
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    message = record.getMessage()
    assert "s3cr3t" not in message and SECRET not in message
    assert "b1" in message and str(failing.garbage_id) in message
    assert broker.info().garbage_count == 1
    # The next pass tries again.
    assert broker.collect_garbage(lambda backend, location: None) == (1, 0)
    assert broker.list_garbage() == []
    assert broker.collect_garbage(delete) == (0, 0)


def test_collect_garbage_limit(broker):
    for i in range(5):
        put(broker, f"o{i}", "1001", f"loc-{i}")
        broker.delete_object(f"o{i}", "1002")
    seen = []
    assert broker.collect_garbage(lambda b, loc: seen.append(loc), limit=2) == (2, 0)
    assert seen == ["loc-0", "loc-1"]
    assert [g.location for g in broker.list_garbage()] == ["loc-2", "loc-3", "loc-4"]


def test_missing_container_has_no_garbage_to_list(catalog):
    b = catalog.container("AUTH_test", "never")
    with pytest.raises(exception.ContainerNotFound):
        b.list_garbage()
    with pytest.raises(exception.ContainerNotFound):
        b.collect_garbage(lambda backend, location: None)


# -- containers, reclaim and the account index -----------------------------------------


def test_deleted_container_keeps_its_garbage_until_collected(
    catalog, catalog_kind, broker
):
    put(broker, "o", "1001", "loc-1")
    broker.delete_object("o", "1002")
    broker.delete("1003")  # garbage is not an object: the container is empty
    assert not broker.exists()
    now = time.time() + 10_000
    assert catalog.reclaim(age=1000, now=now).removed == 0
    assert broker.stats().deleted
    assert pairs(broker) == [("b1", "loc-1")]  # still readable once deleted
    assert broker.info(include_deleted=True).garbage_count == 1
    assert list(catalog.iter_garbage_containers()) == [("AUTH_test", "box")]
    assert broker.collect_garbage(lambda backend, location: None) == (1, 0)
    assert list(catalog.iter_garbage_containers()) == []
    assert catalog.reclaim(age=1000, now=now).removed == 1
    with pytest.raises(exception.ContainerNotFound):
        broker.info(include_deleted=True)
    if catalog_kind == "sqlite":
        assert not os.path.exists(broker.db.directory)


def test_reclaim_never_drops_garbage(broker):
    put(broker, "o", "1001", "loc-1")
    put(broker, "o", "1002", "loc-2")
    broker.delete_object("o", "1003")
    assert broker.reclaim(age=0) == 1  # the tombstone ...
    assert pairs(broker) == [("b1", "loc-1"), ("b1", "loc-2")]  # ... not these


def test_container_with_objects_is_still_refused(broker):
    put(broker, "o", "1001", "loc-1")
    put(broker, "o", "1002", "loc-2")
    with pytest.raises(exception.ContainerNotEmpty):
        broker.delete("1003")


def test_iter_garbage_containers(catalog, catalog_kind):
    brokers = {}
    for name in ("a", "b", "c"):
        b = brokers[name] = catalog.container("AUTH_g", name)
        b.create("1000")
        put(b, "o", "1001", f"loc-{name}")
    assert list(catalog.iter_garbage_containers()) == []
    put(brokers["a"], "o", "1002", "loc-a2")
    brokers["c"].delete_object("o", "1002")
    brokers["c"].delete("1003")  # deleted containers are listed too
    assert list(catalog.iter_garbage_containers()) == [("AUTH_g", "a"), ("AUTH_g", "c")]
    brokers["a"].collect_garbage(lambda backend, location: None)
    assert list(catalog.iter_garbage_containers()) == [("AUTH_g", "c")]
    # A rebuilt index finds them too.
    catalog.rebuild_index()
    assert list(catalog.iter_garbage_containers()) == [("AUTH_g", "c")]
    if catalog_kind == "sqlite":
        with catalog._index.read() as conn:
            plan = " ".join(str(r) for r in conn.execute(
                "EXPLAIN QUERY PLAN SELECT account, container FROM containers "
                "WHERE garbage > 0 AND (account, container) > (?, ?) "
                "ORDER BY account, container LIMIT 10", ("", "")))
        assert "ix_containers_garbage" in plan
    for b in brokers.values():
        b.close()


def test_garbage_timestamps_are_wall_clock(broker):
    # added_at is when the entry was written, whatever the writes' timestamps.
    put(broker, "o", Timestamp(5), "loc-1")
    put(broker, "o", Timestamp(6), "loc-2")
    assert broker.list_garbage()[0].added_at > 1_000_000_000
