"""A catalog that runs out of space says so (507), and says nothing is damaged."""

from __future__ import annotations

import pytest

from storaged import exception
from storaged.catalog import Catalog
from storaged.catalog import Timestamp
from storaged.common.freespace import Reserve

# The sqlite driver's own machinery, not the contract.
pytestmark = pytest.mark.sqlite_only


def test_sqlite_full_is_catalog_full_and_nothing_is_lost(broker):
    # sqlite answers SQLITE_FULL ("database or disk is full") past
    # max_page_count, as it does on a full disk.
    conn = broker.db._connection()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute("PRAGMA max_page_count = %d" % (pages + 2))
    stored = []
    with pytest.raises(exception.CatalogFull) as info:
        for i in range(1000):
            name = "o%04d-" % i + "x" * 400
            broker.put_object(name, Timestamp(2000 + i), 1, "text/plain",
                              "d41d8cd98f00b204e9800998ecf8427e")
            stored.append(name)
    assert isinstance(info.value, exception.InsufficientStorage)
    assert isinstance(info.value, exception.RetryableError)
    assert "database or disk is full" in str(info.value)
    assert stored
    # Rolled back, not quarantined: every acknowledged row is there.
    assert broker.db.exists()
    assert [r.name for r in broker.list_objects()] == stored


def test_require_space_below_the_reserve(tmp_path):
    cat = Catalog(str(tmp_path / "catalog"), reserve=Reserve.parse("100%"))
    try:
        with pytest.raises(exception.CatalogFull) as info:
            cat.require_space()
        assert "reserve 100%" in str(info.value)
    finally:
        cat.close()
    off = Catalog(str(tmp_path / "catalog"))
    try:
        off.require_space()
    finally:
        off.close()
