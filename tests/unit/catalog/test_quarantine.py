"""Damaged databases are quarantined, never crashed on nor silently replaced."""

from __future__ import annotations

import os
import sqlite3

import pytest

from storaged import exception
from storaged.catalog import Catalog

# The sqlite driver's own machinery, not the contract.
pytestmark = pytest.mark.sqlite_only


def fill(broker, count=300):
    for i in range(count):
        broker.put_object(f"object-{i:05d}", 2000 + i, i, "text/plain", "e" * 32,
                          metadata={"X-Object-Meta-Pad": "p" * 200})


def db_file(broker):
    path = broker.db.find_file()
    assert path is not None
    return path


def quarantined(catalog):
    root = os.path.join(catalog.quarantine_dir, "containers")
    return sorted(os.listdir(root)) if os.path.isdir(root) else []


def damage_garbage(path):
    with open(path, "r+b") as f:
        f.write(os.urandom(4096))


def damage_empty(path):
    os.truncate(path, 0)


def damage_header(path):
    os.truncate(path, 100)


def damage_half(path):
    os.truncate(path, os.path.getsize(path) // 2)


@pytest.mark.parametrize(
    "damage", [damage_garbage, damage_empty, damage_header, damage_half]
)
def test_damaged_database_is_quarantined(catalog, damage):
    broker = catalog.container("AUTH_test", "box")
    broker.create("1000")
    fill(broker)
    broker.close()
    path = db_file(broker)
    db_id = os.path.basename(path)[:-3]
    damage(path)

    with pytest.raises(exception.CatalogCorrupt) as info:
        # Opening, or the first read of a missing page, finds the damage.
        broker.info()
        broker.list_objects()
        broker.get_items_since(-1, limit=100_000)
    message = str(info.value)
    assert "is corrupt and was quarantined to" in message
    moved = quarantined(catalog)
    assert len(moved) == 1
    assert moved[0].startswith(os.path.basename(broker.db.directory) + "-")
    assert db_id + ".db" in os.listdir(
        os.path.join(catalog.quarantine_dir, "containers", moved[0]))
    # The container is gone (not silently empty) and can be made again.
    assert not broker.exists()
    with pytest.raises(exception.ContainerNotFound):
        broker.info()
    assert [c.name for c in catalog.list_containers("AUTH_test")] == []
    assert broker.create("3000") is True
    assert broker.info().object_count == 0
    assert broker.info().db_id != db_id
    assert [c.name for c in catalog.list_containers("AUTH_test")] == ["box"]


def test_check_finds_damage_inside_the_file(catalog):
    broker = catalog.container("AUTH_test", "box")
    broker.create("1000")
    fill(broker, 600)
    broker.check()
    broker.check(full=True)
    broker.close()
    path = db_file(broker)
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        f.write(b"\xa5" * 8192)
    with pytest.raises(exception.CatalogCorrupt):
        broker.check()
        broker.check(full=True)
    assert len(quarantined(catalog)) == 1
    assert not broker.exists()


def test_other_brokers_see_the_quarantine(catalog):
    first = catalog.container("AUTH_test", "box")
    first.create("1000")
    fill(first, 10)
    other = catalog.container("AUTH_test", "box")
    assert other.info().object_count == 10  # other has a connection open
    first.close()
    damage_garbage(db_file(first))
    with pytest.raises(exception.CatalogCorrupt):
        first.info()
    # The other broker's connection points at the moved file: it notices.
    with pytest.raises(exception.ContainerNotFound):
        other.put_object("x", 5000, 1, "t", "e")
    assert other.create("5000") is True
    assert other.put_object("x", 5001, 1, "t", "e")
    assert first.info().object_count == 1
    other.close()


def test_unreadable_index_is_rebuilt(catalog):
    for name in ("a", "b", "c"):
        b = catalog.container("AUTH_test", name)
        b.create("1000")
        b.put_object("o", 1001, 5, "t", "e")
        b.close()
    catalog.container("AUTH_test", "c").delete_object("o", 1002)
    catalog.container("AUTH_test", "c").delete(1003)
    assert [c.name for c in catalog.list_containers("AUTH_test")] == ["a", "b"]
    catalog.close()
    index_file = catalog._index.find_file()
    damage_garbage(index_file)
    listed = catalog.list_containers("AUTH_test")
    assert [(c.name, c.object_count, c.bytes_used) for c in listed] == [
        ("a", 1, 5), ("b", 1, 5)]
    assert len(os.listdir(os.path.join(catalog.quarantine_dir, "index"))) == 1
    assert list(catalog.iter_containers(include_deleted=True)) == [
        ("AUTH_test", "a"), ("AUTH_test", "b"), ("AUTH_test", "c")]


def test_missing_index_is_rebuilt(catalog):
    catalog.container("AUTH_test", "a").create("1000")
    assert catalog.list_accounts() == ["AUTH_test"]
    catalog.close()
    for name in os.listdir(catalog._index.directory):
        os.unlink(os.path.join(catalog._index.directory, name))
    other = Catalog(catalog.path)  # a second process, say
    assert other.list_accounts() == ["AUTH_test"]
    for name in os.listdir(catalog._index.directory):
        os.unlink(os.path.join(catalog._index.directory, name))
    assert catalog.list_accounts() == ["AUTH_test"]  # found missing on use
    other.close()


def test_busy_database_raises_catalog_busy(tmp_path):
    catalog = Catalog(str(tmp_path / "cat"), timeout=0.2, synchronous="normal")
    broker = catalog.container("AUTH_test", "box")
    broker.create("1000")
    broker.put_object("o", 1001, 1, "t", "e")
    holder = sqlite3.connect(db_file(broker), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(exception.CatalogBusy) as info:
            broker.put_object("p", 1002, 1, "t", "e")
        assert isinstance(info.value, exception.RetryableError)
        assert "database is locked" in str(info.value)
        # Readers are not blocked by a writer (WAL).
        assert broker.get_object("o") is not None
        assert broker.get_object("p") is None
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert broker.put_object("p", 1002, 1, "t", "e")
    broker.close()
    catalog.close()
