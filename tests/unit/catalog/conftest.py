"""Fixtures of the catalog tests: a real catalog in a temporary directory."""

from __future__ import annotations

import pytest

from storaged.catalog import Catalog


@pytest.fixture
def catalog(tmp_path):
    # ``normal``: these tests are about semantics, not power loss; the
    # crash test runs with the default (``full``).
    cat = Catalog(str(tmp_path / "catalog"), synchronous="normal", timeout=2.0)
    yield cat
    cat.close()


@pytest.fixture
def broker(catalog):
    b = catalog.container("AUTH_test", "box")
    b.create("1000.0")
    yield b
    b.close()
