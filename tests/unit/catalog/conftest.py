"""Fixtures of the catalog tests: the contract suite runs on every driver.

``catalog`` (and ``broker``, a container made in it) is parametrised over
the drivers, ``sqlite`` (a directory of this test's own) and ``postgresql``
(the machine's server, ``tests.servers.postgres_url``, in a schema of this
test's own, dropped after it; skipped when no server answers, failed in
CI).  A test about one driver's own machinery (sqlite's files, quarantine,
its account index) is marked ``sqlite_only`` and runs on sqlite alone;
``sqlite_catalog`` is the sqlite catalog for tests outside the contract.
"""

from __future__ import annotations

import pytest

from storaged.catalog import Catalog

DRIVERS = ("sqlite", "postgresql")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "sqlite_only: a catalog test of the sqlite driver's own machinery"
    )


def pytest_generate_tests(metafunc):
    if "catalog_kind" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("sqlite_only")
        metafunc.parametrize("catalog_kind", ["sqlite"] if only else list(DRIVERS))


def _sqlite(tmp_path):
    # ``normal``: these tests are about semantics, not power loss; the
    # crash test runs with the default (``full``).
    return Catalog(str(tmp_path / "catalog"), synchronous="normal", timeout=2.0)


@pytest.fixture
def catalog(catalog_kind, tmp_path, request):
    if catalog_kind == "sqlite":
        cat = _sqlite(tmp_path)
    else:
        from storaged.catalog.postgresql import PostgresCatalog

        url = request.getfixturevalue("postgres_schema_url")
        cat = PostgresCatalog(
            url, path=str(tmp_path / "catalog"), synchronous="normal", timeout=5.0
        )
    yield cat
    cat.close()


@pytest.fixture
def sqlite_catalog(tmp_path):
    cat = _sqlite(tmp_path)
    yield cat
    cat.close()


@pytest.fixture
def broker(catalog):
    b = catalog.container("AUTH_test", "box")
    b.create("1000.0")
    yield b
    b.close()


class Backdoor:
    """What a test does to a driver's storage behind the broker's back."""

    def __init__(self, kind):
        self.kind = kind

    def set_status_changed_at(self, broker, ts):
        """Pretend a container's status changed at ``ts`` (it is the wall clock)."""
        if self.kind == "sqlite":
            with broker.db.write() as conn:
                conn.execute(
                    "UPDATE container_info SET status_changed_at = ?", (ts.internal,)
                )
            return
        broker._conns.transaction(lambda conn: conn.execute(
            "UPDATE containers SET status_changed_at = %s "
            "WHERE account = %s AND container = %s",
            (ts.internal, broker.account, broker.container),
        ))


@pytest.fixture
def backdoor(catalog_kind):
    return Backdoor(catalog_kind)
