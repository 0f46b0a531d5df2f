"""Schemas and migrations keyed on PRAGMA user_version."""

from __future__ import annotations

import os
import sqlite3

import pytest

from storaged import exception
from storaged.catalog import Catalog
from storaged.catalog import schema
from storaged.catalog.database import Database

# The sqlite driver's own machinery, not the contract.
pytestmark = pytest.mark.sqlite_only

V1 = schema.Schema(
    name="toy",
    migrations=(("CREATE TABLE t (a TEXT NOT NULL)",),),
    check="SELECT a FROM t",
)
V2 = schema.Schema(
    name="toy",
    migrations=(*V1.migrations, ("ALTER TABLE t ADD COLUMN b TEXT DEFAULT 'new'",)),
    check="SELECT a, b FROM t",
)


def database(tmp_path, which):
    return Database(
        str(tmp_path / "db"),
        schema=which,
        timeout=1.0,
        synchronous="normal",
        tmp_dir=str(tmp_path / "tmp"),
        quarantine_dir=str(tmp_path / "quarantined"),
    )


def init(conn, db_id):
    conn.execute("INSERT INTO t (a) VALUES (?)", (db_id,))


def test_old_database_is_migrated_on_open(tmp_path):
    old = database(tmp_path, V1)
    assert old.create(init) is True
    assert old.create(init) is False
    with old.read() as conn:
        assert schema.user_version(conn) == 1
    old.close()
    new = database(tmp_path, V2)
    with new.read() as conn:
        assert schema.user_version(conn) == 2
        ((a, b),) = conn.execute("SELECT a, b FROM t").fetchall()
    assert a == Database.db_id_of(new.find_file())
    assert b == "new"
    new.close()
    # The older code refuses a newer database, and leaves it be.
    with pytest.raises(exception.CatalogError, match="newer than the 1"):
        with old.read():
            pass
    assert not os.path.exists(tmp_path / "quarantined")
    assert new.exists()


def test_database_without_schema_is_corrupt(tmp_path):
    db = database(tmp_path, V1)
    os.makedirs(db.directory)
    sqlite3.connect(os.path.join(db.directory, "0123.db")).close()  # empty file
    with pytest.raises(exception.CatalogCorrupt, match="quarantined"):
        with db.read():
            pass
    assert not db.exists()


def test_container_schema(catalog):
    b = catalog.container("AUTH_a", "c")
    b.create("1000")
    b.put_object("o", 1001, 3, "t", "e")
    with b.db.read() as conn:
        assert schema.user_version(conn) == schema.CONTAINER.version == 2
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        triggers = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert triggers == {"objects_insert", "objects_delete", "objects_no_update",
                        "garbage_insert", "garbage_delete"}
    with catalog._index.read() as conn:
        assert schema.user_version(conn) == schema.INDEX.version == 2
    # Rows are replaced, never updated: an update would hide from the log.
    with pytest.raises(exception.CatalogError, match="never updated"):
        with b.db.write() as conn:
            conn.execute("UPDATE objects SET size = 4")
    assert b.get_object("o").size == 3


def test_synchronous_setting(tmp_path):
    with pytest.raises(ValueError):
        Database(str(tmp_path), schema=V1, timeout=1, synchronous="off",
                 tmp_dir=str(tmp_path), quarantine_dir=str(tmp_path))
    for mode, value in (("full", 2), ("normal", 1)):
        db = Database(str(tmp_path / mode), schema=V1, timeout=1, synchronous=mode,
                      tmp_dir=str(tmp_path / "tmp"), quarantine_dir=str(tmp_path))
        db.create(init)
        with db.read() as conn:
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == value
        db.close()


# -- the catalog's own schemas, from their previous versions ----------------------

CONTAINER_V1 = schema.Schema(
    name="container",
    migrations=schema.CONTAINER.migrations[:1],
    check=schema.CONTAINER.check,
)
INDEX_V1 = schema.Schema(
    name="account index",
    migrations=schema.INDEX.migrations[:1],
    check=schema.INDEX.check,
)


def test_version_1_catalog_is_migrated(tmp_path):
    path = str(tmp_path / "catalog")
    # Where the databases go (the index this makes is replaced below).
    layout = Catalog(path)
    directory = layout.container_dir("AUTH_old", "box")
    layout.close()
    for name in os.listdir(os.path.join(path, "index")):
        os.unlink(os.path.join(path, "index", name))

    def old_database(where, which):
        return Database(where, schema=which, timeout=1.0, synchronous="normal",
                        tmp_dir=os.path.join(path, "tmp"),
                        quarantine_dir=os.path.join(path, "quarantined"))

    def init_container(conn, db_id):
        conn.execute(
            "INSERT INTO container_info (id, account, container, created_at, "
            "put_timestamp, status_changed_at) VALUES (?, 'AUTH_old', 'box', "
            "'0000001000.00000', '0000001000.00000', '0000001000.00000')",
            (db_id,))
        conn.execute(
            "INSERT INTO objects (name, created_at, size, backend, location) "
            "VALUES ('o', '0000001001.00000', 5, 'b1', 'loc-old')")
        conn.execute("UPDATE container_info SET version = 1")

    def init_index(conn, db_id):
        conn.execute(
            "INSERT INTO containers VALUES ('AUTH_old', 'box', ?, "
            "'0000001000.00000', 1, '0000001000.00000', '0000000000.00000', "
            "'0000001000.00000', 1, 5, 0, 0)", (db_id,))

    container_db = old_database(directory, CONTAINER_V1)
    assert container_db.create(init_container)
    db_id = Database.db_id_of(container_db.find_file())
    container_db.close()
    index_db = old_database(os.path.join(path, "index"), INDEX_V1)
    assert index_db.create(lambda conn, _id: init_index(conn, db_id))
    with index_db.read() as conn:
        assert schema.user_version(conn) == 1
    index_db.close()

    catalog = Catalog(path)
    broker = catalog.container("AUTH_old", "box")
    info = broker.info()
    assert (info.object_count, info.bytes_used, info.garbage_count) == (1, 5, 0)
    assert broker.get_object("o").location == "loc-old"
    with broker.db.read() as conn:
        assert schema.user_version(conn) == 2
    with catalog._index.read() as conn:
        assert schema.user_version(conn) == 2
    assert [c.name for c in catalog.list_containers("AUTH_old")] == ["box"]
    assert list(catalog.iter_garbage_containers()) == []
    # The migrated database records garbage, and reports it.
    assert broker.put_object("o", "1002", 7, "t", "e", backend="b1",
                             location="loc-new")
    assert [(g.backend, g.location) for g in broker.list_garbage()] == [
        ("b1", "loc-old")]
    assert broker.info().garbage_count == 1
    assert list(catalog.iter_garbage_containers()) == [("AUTH_old", "box")]
    broker.close()
    catalog.close()
