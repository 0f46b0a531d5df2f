"""ObjectRepository: data and rows kept consistent, real file back end and sqlite."""

from __future__ import annotations

import hashlib
import io
import os

from oslo_config import cfg
import pytest

from storaged import exception
from storaged.catalog import Timestamp
from storaged.common import config
from storaged.objects import EtagMismatch
from storaged.objects import ObjectRepository


@pytest.fixture
def svc(tmp_path):
    path = tmp_path / "storaged.conf"
    path.write_text("[DEFAULT]\nstate_path = %s\n" % tmp_path)
    conf = config.prepare_service(
        ["--config-file", str(path)], prog="t", setup_logging=False,
        conf=cfg.ConfigOpts(),
    )
    service = ObjectRepository.from_conf(conf)
    service.create_container("AUTH_t", "c")
    yield service
    service.close()


def stored_files(svc):
    report = svc.backends.default.scrub()
    assert report.clean, report.summary()
    return report.checked


def read_all(svc, name, **kw):
    info, chunks, n = svc.get_object("AUTH_t", "c", name, **kw)
    data = b"".join(chunks)
    assert len(data) == n
    return info, data


def test_put_get_head_list_delete(svc):
    body = os.urandom(300_000)
    result = svc.put_object("AUTH_t", "c", "dir/a.txt", io.BytesIO(body), len(body),
                            metadata={"X-Object-Meta-Color": "red"})
    assert result.applied
    assert result.info.etag == hashlib.md5(body).hexdigest()
    assert result.info.content_type == "text/plain"
    info, data = read_all(svc, "dir/a.txt", verify=True)
    assert data == body
    assert info.metadata == {"X-Object-Meta-Color": "red"}
    assert svc.head_object("AUTH_t", "c", "dir/a.txt").size == len(body)
    assert [o.name for o in svc.list_objects("AUTH_t", "c")] == ["dir/a.txt"]
    assert svc.container_info("AUTH_t", "c").object_count == 1
    _, part = read_all(svc, "dir/a.txt", offset=10, length=5)
    assert part == body[10:15]
    assert svc.delete_object("AUTH_t", "c", "dir/a.txt")
    with pytest.raises(exception.ObjectNotFound):
        svc.head_object("AUTH_t", "c", "dir/a.txt")
    assert stored_files(svc) == 0
    with pytest.raises(exception.ObjectNotFound):
        svc.delete_object("AUTH_t", "c", "dir/a.txt")


def test_unknown_size_stream(svc):
    chunks = [b"x" * 1000] * 50
    result = svc.put_object("AUTH_t", "c", "s", iter(chunks))
    assert result.info.size == 50_000
    assert read_all(svc, "s")[1] == b"".join(chunks)


def test_newer_put_replaces_and_frees_old_data(svc):
    svc.put_object("AUTH_t", "c", "o", io.BytesIO(b"one"), 3,
                   timestamp=Timestamp(1000))
    svc.put_object("AUTH_t", "c", "o", io.BytesIO(b"two!"), 4,
                   timestamp=Timestamp(2000))
    assert read_all(svc, "o")[1] == b"two!"
    assert stored_files(svc) == 1


def test_older_put_loses_and_leaves_nothing(svc):
    svc.put_object("AUTH_t", "c", "o", io.BytesIO(b"new"), 3,
                   timestamp=Timestamp(2000))
    late = svc.put_object("AUTH_t", "c", "o", io.BytesIO(b"old"), 3,
                          timestamp=Timestamp(1000))
    assert late.applied is False
    assert read_all(svc, "o")[1] == b"new"
    assert stored_files(svc) == 1


def test_sync_delete_of_unknown_object_records_a_tombstone(svc):
    assert svc.delete_object("AUTH_t", "c", "never", timestamp=Timestamp(5000))
    late = svc.put_object("AUTH_t", "c", "never", io.BytesIO(b"x"), 1,
                          timestamp=Timestamp(4000))
    assert late.applied is False
    assert stored_files(svc) == 0


def test_etag_mismatch_stores_nothing(svc):
    with pytest.raises(EtagMismatch):
        svc.put_object("AUTH_t", "c", "o", io.BytesIO(b"data"), 4, etag="0" * 32)
    with pytest.raises(exception.ObjectNotFound):
        svc.head_object("AUTH_t", "c", "o")
    assert stored_files(svc) == 0
    ok = svc.put_object("AUTH_t", "c", "o", io.BytesIO(b"data"), 4,
                        etag='"%s"' % hashlib.md5(b"data").hexdigest())
    assert ok.applied


def test_missing_container_stores_nothing(svc):
    with pytest.raises(exception.ContainerNotFound):
        svc.put_object("AUTH_t", "nope", "o", io.BytesIO(b"data"), 4)
    assert stored_files(svc) == 0


def test_size_mismatch_stores_nothing(svc):
    with pytest.raises(exception.StoreError):
        svc.put_object("AUTH_t", "c", "o", io.BytesIO(b"short"), 100)
    assert stored_files(svc) == 0


@pytest.mark.parametrize("name", [
    "", ".", "..", "../x", "a/../b", "a\x00b", "\ud800", "o" * 1025, "line\nfeed",
])
def test_hostile_names_refused_before_any_io(svc, name):
    with pytest.raises(exception.InvalidName):
        svc.put_object("AUTH_t", "c", name, io.BytesIO(b"data"), 4)
    assert stored_files(svc) == 0


def test_corruption_is_detected_on_verified_read(svc):
    body = os.urandom(100_000)
    svc.put_object("AUTH_t", "c", "o", io.BytesIO(body), len(body))
    row = svc.catalog.container("AUTH_t", "c").get_object("o")
    path = row.location[len("file://"):]
    with open(path, "r+b") as f:
        f.seek(5000)
        byte = f.read(1)
        f.seek(5000)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(exception.CorruptObject):
        read_all(svc, "o", verify=True)
    report = svc.backends.default.scrub()
    assert len(report.corrupt) == 1


def test_container_delete_refuses_non_empty(svc):
    svc.put_object("AUTH_t", "c", "o", io.BytesIO(b"x"), 1)
    with pytest.raises(exception.ContainerNotEmpty):
        svc.delete_container("AUTH_t", "c")
    svc.delete_object("AUTH_t", "c", "o")
    svc.delete_container("AUTH_t", "c")
    with pytest.raises(exception.ContainerNotFound):
        svc.container_info("AUTH_t", "c")


def test_garbage_kept_when_data_delete_fails_and_collected_later(svc):
    svc.put_object("AUTH_t", "c", "o", io.BytesIO(b"one"), 3,
                   timestamp=Timestamp(1000))
    broker = svc.catalog.container("AUTH_t", "c")
    real = svc.backends.default.delete

    def failing(location):
        raise exception.BackendUnavailable(backend="local", reason="disk gone")

    svc.backends.default.delete = failing
    try:
        svc.put_object("AUTH_t", "c", "o", io.BytesIO(b"two"), 3,
                       timestamp=Timestamp(2000))
    finally:
        svc.backends.default.delete = real
    assert len(broker.list_garbage()) == 1
    assert svc.backends.default.scrub().checked == 2
    svc.delete_object("AUTH_t", "c", "o")  # the next write collects both
    assert broker.list_garbage() == []
    assert stored_files(svc) == 0
