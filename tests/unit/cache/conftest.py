"""Fixtures of the cache tests: a cache on each metadata store, a back end double."""

from __future__ import annotations

import pytest

from storaged.cache import ObjectCache
from tests.unit.cache.support import FakeBackend


@pytest.fixture(params=["xattr", "index"])
def metadata_store(request):
    """Every test using it runs on both metadata stores."""
    return request.param


@pytest.fixture
def make_cache(tmp_path, metadata_store):
    made = []

    def make(**kw):
        kw.setdefault("metadata_store", metadata_store)
        kw.setdefault("backends", ["slow"])
        cache = ObjectCache(str(tmp_path / "cache"), **kw)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.close()


@pytest.fixture
def cache(make_cache):
    return make_cache()


@pytest.fixture
def backend():
    return FakeBackend()
