"""The file driver keeps ``fallocate_reserve`` free, as Swift's object server."""

from __future__ import annotations

import io
import os

import pytest

from storaged import exception


def test_below_the_reserve_nothing_is_written(file_store_factory, tmp_path):
    store = file_store_factory(fallocate_reserve="100%", free_space_ttl=3600)
    for size in (10, None):
        with pytest.raises(exception.StorageFull) as info:
            store.add("o-%s" % size, io.BytesIO(b"x" * 10), size)
        assert "above its reserve (fallocate_reserve = 100%)" in str(info.value)
        assert isinstance(info.value, exception.InsufficientStorage)
    tmp = os.path.join(store.data_dirs[0], ".tmp")
    assert [n for n in os.listdir(tmp) if not n.endswith(".lock")] == []


def test_the_reserve_is_measured_not_estimated(file_store_factory, tmp_path,
                                              monkeypatch):
    # A 1 GiB filesystem with 1% reserved; the estimate, an hour old, says
    # there is room, the measurement (someone else took the space) says not.
    data = str(tmp_path / "data")
    real = os.statvfs
    free_blocks = {"n": 1000}

    def statvfs(path):
        if os.fspath(path) != data:
            return real(path)
        n = free_blocks["n"]
        return os.statvfs_result((1 << 20, 1 << 20, 1024, n, n, 10, 10, 10, 0, 255))

    monkeypatch.setattr(os, "statvfs", statvfs)
    store = file_store_factory(data, fallocate_reserve="1%", free_space_ttl=3600)
    assert store.add("fits", io.BytesIO(b"x"), 1).size == 1
    free_blocks["n"] = 10  # 10 MiB free: below the reserve of 10.24 MiB
    with pytest.raises(exception.StorageFull):
        store.add("no-room-left", io.BytesIO(b"x"), 1)
    free_blocks["n"] = 12
    assert store.add("room-again", io.BytesIO(b"x"), 1).size == 1
    with pytest.raises(exception.StorageFull):
        store.add("too-big", io.BytesIO(b"x"), 2 << 20)


def test_zero_turns_the_reserve_off(file_store_factory):
    store = file_store_factory(fallocate_reserve="0")
    assert store.add("o", io.BytesIO(b"data"), 4).size == 4


def test_a_bad_value_stops_start_up(file_store_factory):
    with pytest.raises(Exception) as info:
        file_store_factory(fallocate_reserve="lots")
    assert "fallocate_reserve" in str(info.value)
