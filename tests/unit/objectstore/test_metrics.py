"""The object store's figures: operations, bytes, verify failures, scrubs."""

from __future__ import annotations

import io
import os

import pytest

from storaged import exception
from storaged import metrics as metrics_mod

FS = {"backend": "fs", "driver": "file"}


@pytest.fixture(autouse=True)
def _fresh_process_metrics():
    metrics_mod.reset()
    yield
    metrics_mod.reset()


def value(name, **labels):
    return metrics_mod.process().registry.get_sample_value(name, labels or None) or 0


def _flip(location: str, offset: int) -> None:
    with open(location[len("file://"):], "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x01]))


def test_adds_gets_deletes_and_bytes(file_store):
    result = file_store.add("obj1", io.BytesIO(b"x" * 5000))
    chunks, n = file_store.get(result.location)
    assert b"".join(chunks) == b"x" * 5000 and n == 5000
    file_store.get(result.location, offset=1000)[0].close()
    file_store.delete(result.location)
    with pytest.raises(exception.ObjectNotFound):
        file_store.delete(result.location)
    with pytest.raises(exception.InvalidName):  # refused before the driver: not counted
        file_store.add("", io.BytesIO(b""))
    ops = "storaged_store_operations_total"
    assert value(ops, op="add", outcome="ok", **FS) == 1
    assert value(ops, op="add", outcome="error", **FS) == 0
    assert value(ops, op="get", outcome="ok", **FS) == 2
    assert value(ops, op="delete", outcome="ok", **FS) == 1
    assert value(ops, op="delete", outcome="error", **FS) == 1
    assert value("storaged_store_added_bytes_total", **FS) == 5000
    assert value("storaged_store_read_bytes_total", **FS) == 9000


def test_a_corrupt_verified_read_and_a_scrub(file_store):
    data = os.urandom(3 * 4096 + 10)
    result = file_store.add("flipped", io.BytesIO(data))
    _flip(result.location, 4096)
    chunks, _n = file_store.get(result.location, verify=True)
    with pytest.raises(exception.CorruptObject):
        b"".join(chunks)
    chunks.close()
    assert value("storaged_store_verify_failures_total", check="digest", **FS) == 1
    report = file_store.scrub()
    assert len(report.corrupt) == 1
    assert value("storaged_store_scrub_checked_objects_total", **FS) == report.checked
    checked = value("storaged_store_scrub_checked_bytes_total", **FS)
    assert checked == report.bytes_checked
    assert value("storaged_store_scrub_corrupt_objects_total", **FS) == 1
    assert value("storaged_store_scrub_orphans_total", **FS) == len(report.orphans)
    assert value("storaged_store_scrub_last_timestamp_seconds", **FS) > 0


def test_a_scrub_counts_its_objects_as_it_goes(file_store):
    for i in range(3):
        file_store.add("o%d" % i, io.BytesIO(b"x" * (i + 1)))
    during = []
    file_store.scrub(progress=lambda report: during.append(
        (report.checked, value("storaged_store_scrub_checked_objects_total", **FS),
         value("storaged_store_scrub_checked_bytes_total", **FS))))
    assert [(n, objects) for n, objects, _ in during] == [(1, 1), (2, 2), (3, 3)]
    assert during[-1][2] == 6


def test_an_unread_verified_read_still_closes_the_driver_chunks(file_store):
    result = file_store.add("o", io.BytesIO(b"abc"))
    chunks, _n = file_store.get(result.location, verify=True)
    closed = []
    inner = chunks._chunks
    real_close = getattr(inner, "close", None)

    def close():
        closed.append(True)
        if real_close is not None:
            real_close()

    chunks._chunks = type("C", (), {"close": staticmethod(close)})()
    chunks.close()
    assert closed == [True]
