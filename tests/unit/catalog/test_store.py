"""The catalog: account index, iteration, reclaim of deleted containers."""

from __future__ import annotations

import os

from oslo_config import cfg
import pytest

from storaged import exception
from storaged.catalog import Catalog
from storaged.catalog import Subdir
from storaged.catalog import Timestamp
from storaged.catalog import store
from storaged.conf import catalog as catalog_conf


def make(catalog, account, name, objects=(), ts="1000"):
    b = catalog.container(account, name)
    b.create(ts)
    for i, size in enumerate(objects):
        b.put_object(f"o{i}", 1001 + i, size, "t", "e")
    return b


def test_account_listing_and_totals(catalog):
    make(catalog, "AUTH_a", "one", [1, 2, 3])
    make(catalog, "AUTH_a", "two", [10])
    make(catalog, "AUTH_a", "empty")
    make(catalog, "AUTH_b", "other", [7])
    listed = catalog.list_containers("AUTH_a")
    assert [(c.name, c.object_count, c.bytes_used) for c in listed] == [
        ("empty", 0, 0), ("one", 3, 6), ("two", 1, 10)]
    assert listed[0].put_timestamp == Timestamp("1000")
    assert listed[0].last_modified == "1970-01-01T00:16:40.000000"
    info = catalog.account_info("AUTH_a")
    assert (info.container_count, info.object_count, info.bytes_used) == (3, 4, 16)
    assert catalog.list_accounts() == ["AUTH_a", "AUTH_b"]
    assert catalog.list_containers("AUTH_nobody") == []
    with pytest.raises(exception.AccountNotFound):
        catalog.account_info("AUTH_nobody")
    with pytest.raises(exception.InvalidName):
        catalog.list_containers("AUTH/a")


def test_index_follows_every_change(catalog):
    b = make(catalog, "AUTH_a", "c", [5, 5])
    b.put_object("o0", 2000, 50, "t", "e")  # replaces a 5
    b.delete_object("o1", 2001)
    b.put_object("late", 1500, 1, "t", "e")
    assert not b.put_object("late", 1400, 99, "t", "e")  # ignored
    (entry,) = catalog.list_containers("AUTH_a")
    assert (entry.object_count, entry.bytes_used) == (2, 51)
    for name in ("o0", "late"):
        b.delete_object(name, 3000)
    b.delete(3001)
    assert catalog.list_containers("AUTH_a") == []
    info = catalog.account_info("AUTH_a")  # the account is still known
    assert (info.container_count, info.object_count) == (0, 0)
    assert catalog.list_accounts() == []
    b.create(3002)
    assert [c.name for c in catalog.list_containers("AUTH_a")] == ["c"]


def test_delimited_account_listing(catalog):
    for name in ("log-2023", "log-2024", "photos", "zz"):
        make(catalog, "AUTH_a", name)
    entries = catalog.list_containers("AUTH_a", delimiter="-")
    assert entries[0] == Subdir("log-")
    assert [e.name for e in entries] == ["log-", "photos", "zz"]
    assert [e.name for e in catalog.list_containers(
        "AUTH_a", prefix="log-", reverse=True)] == ["log-2024", "log-2023"]


def test_iteration_and_sync_containers(catalog, monkeypatch):
    monkeypatch.setattr(store, "_PAGE", 2)  # page through the index
    names = [("AUTH_a", "c1"), ("AUTH_a", "c2"), ("AUTH_b", "c1"), ("AUTH_b", "c3"),
             ("AUTH_c", "gone")]
    for account, name in names:
        make(catalog, account, name)
    catalog.container("AUTH_c", "gone").delete(2000)
    catalog.container("AUTH_a", "c2").set_sync("//r/c/AUTH_x/c2", "k", 2001)
    catalog.container("AUTH_b", "c3").set_sync("//r/c/AUTH_x/c3", "", 2001)  # no key
    catalog.container("AUTH_b", "c1").set_sync("//r/c/AUTH_x/c1", "k", 2001)
    assert list(catalog.iter_containers()) == names[:4]
    assert list(catalog.iter_containers(include_deleted=True)) == names
    assert catalog.containers_with_sync() == [("AUTH_a", "c2"), ("AUTH_b", "c1")]
    catalog.container("AUTH_b", "c1").set_sync("", "", 2002)  # sync off
    assert catalog.containers_with_sync() == [("AUTH_a", "c2")]
    catalog.container("AUTH_c", "gone").create(2003)
    catalog.container("AUTH_c", "gone").set_sync("//r/c/a/b", "k", 2004)
    catalog.container("AUTH_c", "gone").delete(2005)
    assert catalog.containers_with_sync() == [("AUTH_a", "c2")]  # not deleted ones


@pytest.mark.sqlite_only  # the PostgreSQL index is the container's row
def test_late_reports_never_roll_back(catalog):
    b = make(catalog, "AUTH_a", "c", [1])
    old = b.stats()
    b.put_object("o9", 2000, 100, "t", "e")
    catalog._report(old)  # a report that arrives out of order
    (entry,) = catalog.list_containers("AUTH_a")
    assert entry.object_count == 2 and entry.bytes_used == 101


def test_reclaim_pass(catalog, catalog_kind, backdoor):
    now = 1_000_000.0
    keep = make(catalog, "AUTH_a", "live", ts=now - 5000)
    keep.delete_object("old-tombstone", now - 4000)
    keep.delete_object("new-tombstone", now - 10)
    keep.put_object("old-live", now - 4000, 3, "t", "e")
    old = make(catalog, "AUTH_a", "deleted-long-ago", ts=now - 9000)
    old.delete(now - 8000)
    recent = make(catalog, "AUTH_a", "deleted-recently", ts=now - 9000)
    recent.delete(now - 8000)
    # status_changed_at is the wall clock: pretend it changed long ago.
    backdoor.set_status_changed_at(old, Timestamp(now - 8000))
    backdoor.set_status_changed_at(recent, Timestamp(now - 100))
    result = catalog.reclaim(age=1000, now=now)
    assert (result.containers, result.tombstones, result.removed, result.errors) == (
        3, 1, 1, 0)
    assert [r.name for r in keep.get_items_since(-1)] == ["new-tombstone", "old-live"]
    with pytest.raises(exception.ContainerNotFound):
        old.info(include_deleted=True)
    assert recent.info(include_deleted=True).deleted
    assert list(catalog.iter_containers(include_deleted=True)) == [
        ("AUTH_a", "deleted-recently"), ("AUTH_a", "live")]
    if catalog_kind == "sqlite":
        assert os.listdir(catalog.tmp_dir) == []
    # The name is free again.
    assert old.create(now) is True
    assert old.info().object_count == 0


@pytest.mark.sqlite_only
def test_reclaim_heals_the_index(catalog):
    b = make(catalog, "AUTH_a", "c", [4])
    with catalog._index.write() as conn:  # as if a report was lost
        conn.execute("DELETE FROM containers")
        conn.execute(
            "INSERT INTO containers VALUES ('AUTH_a', 'ghost', 'nope', '1', 1, "
            "'1', '0', '1', 0, 0, 0, 0, 0)")
    assert [c.name for c in catalog.list_containers("AUTH_a")] == ["ghost"]
    catalog.reclaim()
    assert [(c.name, c.bytes_used) for c in catalog.list_containers("AUTH_a")] == [
        ("c", 4)]
    b.close()


def test_rebuild_index(catalog, catalog_kind):
    make(catalog, "AUTH_a", "c", [4, 4])
    catalog.rebuild_index()
    assert [(c.name, c.bytes_used) for c in catalog.list_containers("AUTH_a")] == [
        ("c", 8)]
    if catalog_kind == "sqlite":
        assert len(os.listdir(os.path.join(catalog.quarantine_dir, "index"))) == 1


@pytest.mark.sqlite_only
def test_reclaim_goes_on_after_a_damaged_container(catalog):
    make(catalog, "AUTH_a", "good", [1])
    bad = make(catalog, "AUTH_a", "bad", [1])
    bad.close()
    with open(bad.db.find_file(), "r+b") as f:
        f.write(b"\x00" * 4096)
    result = catalog.reclaim()
    assert (result.containers, result.quarantined) == (2, 1)
    assert [c.name for c in catalog.list_containers("AUTH_a")] == ["good"]


def test_from_conf(tmp_path):
    conf = cfg.ConfigOpts()
    conf.register_opt(cfg.StrOpt("state_path"))
    catalog_conf.register_opts(conf)
    conf([], default_config_files=[])
    conf.set_override("state_path", str(tmp_path))
    conf.set_override("reclaim_age", 60, group="catalog")
    conf.set_override("max_container_name_length", 5, group="catalog")
    cat = Catalog.from_conf(conf)
    assert cat.path == str(tmp_path / "catalog")
    assert cat.reclaim_age == 60
    assert cat.synchronous == "full"
    assert cat.limits.max_container_name_length == 5
    with pytest.raises(exception.InvalidName):
        cat.container("AUTH_a", "sixsix")
    cat.close()


def test_options_are_pinned():
    (group, opts), = catalog_conf.list_opts()
    assert group.name == "catalog"
    assert {o.name: o.default for o in opts} == {
        "backend_url": "",
        "path": "$state_path/catalog",
        "reclaim_age": 604800,
        "timeout": 10.0,
        "synchronous": "full",
        "fallocate_reserve": "1%",
        "max_account_name_length": 256,
        "max_container_name_length": 256,
        "max_object_name_length": 1024,
        "max_meta_name_length": 128,
        "max_meta_value_length": 256,
        "max_meta_count": 90,
        "max_meta_overall_size": 4096,
    }
    for opt in opts:
        assert opt.help.strip(), opt.name


@pytest.mark.sqlite_only
def test_reclaim_tidies_container_directories(catalog):
    b = make(catalog, "AUTH_a", "c", [1])
    current = os.path.basename(b.db.find_file())
    directory = b.db.directory
    # What a process holding a connection to a moved database leaves behind.
    for name in ("0ld.db-wal", "0ld.db-shm", "notes.txt"):
        with open(os.path.join(directory, name), "w") as f:
            f.write("x")
    catalog.reclaim()
    left = set(os.listdir(directory))
    assert not left & {"0ld.db-wal", "0ld.db-shm"}
    assert {current, current + "-wal", current + "-shm", "notes.txt"} <= left
    assert b.info().object_count == 1
    # A directory left empty (here: after a quarantine) is removed.
    other = make(catalog, "AUTH_a", "d")
    other.close()
    other.db.quarantine("test")
    assert os.listdir(other.db.directory) == []
    catalog.reclaim()
    assert not os.path.exists(other.db.directory)
    assert other.create() is True  # and made again on demand
