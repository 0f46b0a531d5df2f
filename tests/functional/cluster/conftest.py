"""The engines a cluster of storaged nodes shares, started for the tests here.

A real Swift cluster (tests.swift_cluster) for the data, the machine's
PostgreSQL for the catalog and the state store (schemas of the test's own,
dropped afterwards), and a private Redis for coordination.
"""

from __future__ import annotations

from collections.abc import Iterator
import os
import uuid

import pytest

from tests.servers import POSTGRES_DEFAULT_URL
from tests.servers import POSTGRES_ENV
from tests.servers import RedisServer
from tests.servers import ServerMissing
from tests.servers import skip_or_fail


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """The PostgreSQL server's URL, once it answers."""
    psycopg = pytest.importorskip("psycopg")
    url = os.environ.get(POSTGRES_ENV, POSTGRES_DEFAULT_URL)
    try:
        psycopg.connect(url, autocommit=True, connect_timeout=5).close()
    except psycopg.OperationalError as err:
        skip_or_fail(f"no PostgreSQL at {url}: {err}")
    yield url


@pytest.fixture
def schemas(postgres_url) -> Iterator[tuple[str, str]]:
    """Two fresh schema names (catalog, state) for one test."""
    import psycopg

    tag = "c3_" + uuid.uuid4().hex[:10]
    names = (tag + "_catalog", tag + "_state")
    yield names
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for schema in names:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture(scope="module")
def redis_coordination() -> Iterator[str]:
    server = RedisServer()
    try:
        server.start()
    except ServerMissing as err:
        skip_or_fail(str(err))
    yield server.url
    server.stop()
