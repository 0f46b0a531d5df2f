"""Entry metadata: the xattr store, the index fallback, and the start-up probe."""

from __future__ import annotations

import errno
import os

import pytest

from storaged import exception
from storaged.cache import EntryMeta
from storaged.cache import ObjectCache
from storaged.cache import metadata
from tests.unit.cache.support import entry_name


def _file(path, data=b"abc"):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
    os.write(fd, data)
    return fd


def test_write_read_and_hits(cache, tmp_path):
    entry_id = entry_name(1)
    fd = _file(os.path.join(cache.cache_dir, entry_id))
    try:
        meta = EntryMeta(3, "sha256:ab", "b:a/c/o", 5, {"md5": "cd"}, 0, 7)
        cache.meta.write(fd, entry_id, meta)
        assert cache.meta.read(fd, entry_id) == meta
        cache.meta.record_hit(fd, entry_id, 99)
        cache.meta.record_hit(fd, entry_id, 100)
        got = cache.meta.read(fd, entry_id)
        assert (got.hits, got.last_access) == (2, 100)
        lookup = cache.meta.access_lookup(cache.cache_dir)
        assert lookup(entry_id, os.path.join(cache.cache_dir, entry_id)) == 100
        assert lookup(entry_name(2), os.path.join(cache.cache_dir, entry_name(2))) \
            is None
    finally:
        os.close(fd)


def test_errors_of_failed_fills(cache):
    name = entry_name(1) + ".123"
    path = os.path.join(cache.cache_dir, "invalid", name)
    fd = _file(path)
    try:
        cache.meta.record_error(fd, name, "boom " * 1000)
    finally:
        os.close(fd)
    text = cache.meta.read_error(path, name)
    assert text.startswith("boom boom")
    assert len(text) <= metadata.MAX_ERROR_LENGTH


def test_access_values_that_do_not_parse_count_as_absent():
    assert metadata.parse_access(b"3 17") == (3, 17)
    assert metadata.parse_access(b"garbage") == (0, None)
    assert metadata.parse_access(None) == (0, None)
    assert metadata.EntryMeta.from_json(b"{not json", None) is None


def test_index_reconcile_drops_rows_of_vanished_entries(tmp_path):
    cache = ObjectCache(str(tmp_path / "c"), metadata_store="index")
    try:
        ids = [entry_name(i) for i in range(3)]
        for entry_id in ids:
            cache.meta.write(-1, entry_id, EntryMeta(1, "sha256:x", "", 1))
        assert cache.meta.reconcile({ids[0]}) == 2
        assert cache.meta.read(-1, ids[0]) is not None
        assert cache.meta.read(-1, ids[1]) is None
    finally:
        cache.close()


def test_without_xattrs_auto_falls_back_to_the_index(tmp_path, monkeypatch, caplog):
    def no_xattr(*args, **kw):
        raise OSError(errno.ENOTSUP, "Operation not supported")

    monkeypatch.setattr(os, "setxattr", no_xattr)
    cache = ObjectCache(str(tmp_path / "c"))
    try:
        assert cache.meta.kind == "index"
        assert "no user extended attributes" in caplog.text
        assert os.path.exists(os.path.join(cache.cache_dir, metadata.INDEX_FILE))
    finally:
        cache.close()
    with pytest.raises(exception.ConfigError) as err:
        ObjectCache(str(tmp_path / "d"), metadata_store="xattr")
    assert "[cache] metadata_store" in str(err.value)
    assert "user_xattr" in str(err.value)


def test_a_cache_dir_that_cannot_be_made_is_a_config_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(exception.ConfigError) as err:
        ObjectCache(str(blocker / "cache"))
    assert "[cache] cache_dir" in str(err.value)
