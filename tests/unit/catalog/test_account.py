"""Account metadata: a database per account, merged key by key, last writer wins."""

from __future__ import annotations

import os
import threading

import pytest

from storaged import exception
from storaged.catalog import Catalog
from storaged.catalog import Timestamp

COLOR = "X-Account-Meta-Color"


def test_metadata_round_trips_and_persists(tmp_path):
    path = str(tmp_path / "catalog")
    catalog = Catalog(path, synchronous="normal")
    with catalog.account("AUTH_test") as broker:
        assert broker.update_metadata(
            {COLOR: "blue", "X-Account-Meta-Uni": "uni\u0e12"}, "1000")
    catalog.close()
    reopened = Catalog(path, synchronous="normal")
    try:
        with reopened.account("AUTH_test") as broker:
            info = broker.info()
        assert info.account == "AUTH_test"
        assert info.metadata == {COLOR: "blue", "X-Account-Meta-Uni": "uni\u0e12"}
        assert info.metadata_timestamps[COLOR] == Timestamp("1000")
        db = broker.db.find_file()
        assert db is not None
        assert os.path.relpath(db, path).startswith("accounts" + os.sep)
    finally:
        reopened.close()


def test_an_unknown_account_has_no_database(catalog, catalog_kind):
    broker = catalog.account("AUTH_nobody")
    assert not broker.exists()
    with pytest.raises(exception.AccountNotFound):
        broker.info()
    assert not broker.exists()
    if catalog_kind == "sqlite":
        # Reading made nothing on disk.
        assert not os.path.exists(broker.db.directory)


def test_each_key_keeps_its_own_timestamp(catalog):
    broker = catalog.account("AUTH_test")
    assert broker.update_metadata({"X-Account-Meta-A": "1"}, "2000")
    # Older for A (ignored), new key B (taken).
    assert broker.update_metadata({"X-Account-Meta-A": "old", "X-Account-Meta-B": "3"},
                                  "1500")
    assert broker.info().metadata == {"X-Account-Meta-A": "1", "X-Account-Meta-B": "3"}
    # An older removal changes nothing.
    assert not broker.update_metadata({"X-Account-Meta-A": ""}, "1000")
    # A newer one removes, and its timestamp keeps an older value out.
    assert broker.update_metadata({"X-Account-Meta-A": ""}, "3000")
    assert not broker.update_metadata({"X-Account-Meta-A": "late"}, "2500")
    info = broker.info()
    assert info.metadata == {"X-Account-Meta-B": "3"}
    assert info.metadata_timestamps["X-Account-Meta-A"] == Timestamp("3000")
    assert broker.update_metadata({"X-Account-Meta-A": "again"}, "3001")
    assert broker.info().metadata["X-Account-Meta-A"] == "again"


def test_keys_ignore_case(catalog):
    broker = catalog.account("AUTH_test")
    broker.update_metadata({"x-account-meta-color": "red"}, "1000")
    broker.update_metadata({"X-ACCOUNT-META-COLOR": "green"}, "1001")
    assert broker.info().metadata == {COLOR: "green"}


def test_limits_hold_across_updates(catalog):
    broker = catalog.account("AUTH_test")
    broker.update_metadata({f"X-Account-Meta-{i}": "v" for i in range(90)}, "1000")
    with pytest.raises(exception.MetadataTooLarge) as info:
        broker.update_metadata({"X-Account-Meta-One-More": "v"}, "1001")
    assert (info.value.limit, info.value.maximum) == ("count", 90)
    assert len(broker.info().metadata) == 90  # nothing written
    # Removing one makes room.
    broker.update_metadata({"X-Account-Meta-0": "", "X-Account-Meta-One-More": "v"},
                           "1002")
    assert len(broker.info().metadata) == 90

    other = catalog.account("AUTH_size")
    other.update_metadata({f"X-Account-Meta-{i:04d}": "k" * 256 for i in range(15)},
                          "1000")  # 15 * (4 + 256) = 3900 bytes
    with pytest.raises(exception.MetadataTooLarge) as info:
        other.update_metadata({"X-Account-Meta-K": "x" * 196}, "1001")  # 4097
    assert (info.value.limit, info.value.maximum) == ("size", 4096)
    other.update_metadata({"X-Account-Meta-K": "x" * 195}, "1002")  # 4096: fits


@pytest.mark.parametrize("updates", [
    {"X-Account-Meta-" + "n" * 129: "v"},
    {COLOR: "v" * 257},
    {COLOR: "two\nlines"},
    {COLOR: "\udcff"},
    {"X-Account-Meta-": "v"},
    {"Not A Header": "v"},
])
def test_bad_metadata_is_refused_before_any_write(catalog, catalog_kind, updates):
    broker = catalog.account("AUTH_test")
    with pytest.raises(exception.InvalidName):
        broker.update_metadata(updates, "1000")
    assert not broker.exists()
    if catalog_kind == "sqlite":
        assert not os.path.exists(broker.db.directory)


def test_bad_account_name_is_refused(catalog):
    with pytest.raises(exception.InvalidName):
        catalog.account("AUTH/x")


def test_concurrent_first_updates_make_one_database(tmp_path):
    path = str(tmp_path / "catalog")
    catalogs = [Catalog(path, synchronous="normal") for _ in range(4)]
    barrier = threading.Barrier(len(catalogs))
    errors = []

    def update(i, catalog):
        try:
            barrier.wait()
            with catalog.account("AUTH_race") as broker:
                broker.update_metadata({f"X-Account-Meta-K{i}": str(i)})
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=update, args=(i, c))
               for i, c in enumerate(catalogs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        with catalogs[0].account("AUTH_race") as broker:
            assert broker.info().metadata == {
                f"X-Account-Meta-K{i}": str(i) for i in range(len(catalogs))}
            files = [n for n in os.listdir(broker.db.directory) if n.endswith(".db")]
        assert len(files) == 1
    finally:
        for catalog in catalogs:
            catalog.close()


def test_metadata_is_not_in_the_rebuilt_index(catalog):
    """The account index is derived data; account metadata must survive it."""
    catalog.container("AUTH_test", "c").create("1000")
    catalog.account("AUTH_test").update_metadata({COLOR: "blue"}, "1000")
    catalog.rebuild_index()
    assert catalog.account("AUTH_test").info().metadata == {COLOR: "blue"}
    assert catalog.account_info("AUTH_test").container_count == 1


@pytest.mark.sqlite_only  # PostgreSQL: a clear error, see test_postgresql.py
def test_damaged_account_database_is_quarantined(catalog):
    broker = catalog.account("AUTH_test")
    broker.update_metadata({COLOR: "blue"}, "1000")
    broker.close()
    path = broker.db.find_file()
    assert path is not None
    with open(path, "r+b") as f:
        f.write(os.urandom(4096))
    with pytest.raises(exception.CatalogCorrupt):
        catalog.account("AUTH_test").info()
    assert os.listdir(os.path.join(catalog.quarantine_dir, "accounts"))
    # The account starts afresh.
    fresh = catalog.account("AUTH_test")
    assert not fresh.exists()
    fresh.update_metadata({COLOR: "green"}, "2000")
    assert fresh.info().metadata == {COLOR: "green"}


def test_temp_url_keys_are_masked_in_the_repr(catalog):
    broker = catalog.account("AUTH_test")
    broker.update_metadata({"X-Account-Meta-Temp-Url-Key": "s3cret",
                            "X-Account-Meta-Temp-Url-Key-2": "other",
                            "X-Account-Meta-Color": "blue"}, "1000.0")
    record = broker.info()
    assert record.metadata["X-Account-Meta-Temp-Url-Key"] == "s3cret"
    shown = repr(record)
    assert "s3cret" not in shown and "other" not in shown
    assert "blue" in shown and "***" in shown
