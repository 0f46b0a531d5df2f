"""One contract, every driver: what any object store back end must do.

Each driver runs the same tests through a :class:`Harness` that knows how to
put an object in place (``add`` for writable drivers, a file in the test
server's directory for ``http``).  Tests that need a capability the driver
does not declare check that the driver refuses the operation instead.
"""

from __future__ import annotations

from collections.abc import Callable
import concurrent.futures
import dataclasses
import hashlib
import io
import os
import uuid

import pytest

from storaged import exception
from storaged.objectstore import Capability
from storaged.objectstore import Driver
from storaged.objectstore import InvalidRange
from storaged.objectstore import SizeMismatch
from tests.unit.objectstore.conftest import write_file

CHUNK = 4096
SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5]


@dataclasses.dataclass
class Harness:
    store: Driver
    seed: Callable[[str, bytes], str]
    unseed: Callable[[str], None]
    other_scheme: str


def _data(n: int, salt: str = "") -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{salt}{counter}".encode()).digest()
        counter += 1
    return bytes(out[:n])


@pytest.fixture(params=["file", "file-sidecar", "http", "s3", "swift"])
def harness(request, file_store_factory, http_server, http_root, http_store_factory):
    if request.param == "swift":
        from tests.unit.objectstore import harness_swift

        store, seed, unseed = harness_swift.harness_parts(
            request.getfixturevalue("tmp_path"),
            request.getfixturevalue("swift_cluster"),
            CHUNK,
        )
        request.addfinalizer(store.close)
        return Harness(store, seed, unseed, "file:///etc/passwd")
    if request.param == "s3":
        from tests.unit.objectstore import harness_s3

        store, seed, unseed = harness_s3.harness_parts(
            request.getfixturevalue("tmp_path"),
            request.getfixturevalue("swift_cluster"),
            CHUNK,
        )
        request.addfinalizer(store.close)
        return Harness(store, seed, unseed, "file:///etc/passwd")
    if request.param.startswith("file"):
        options = {"chunk_size": CHUNK}
        if request.param == "file-sidecar":
            options["metadata_store"] = "sidecar"
        store = file_store_factory(**options)

        def seed(object_id: str, data: bytes) -> str:
            return store.add(object_id, io.BytesIO(data), len(data)).location

        return Harness(store, seed, store.delete, "http://127.0.0.1/x")

    store = http_store_factory(chunk_size=CHUNK)

    def seed_http(object_id: str, data: bytes) -> str:
        write_file(http_root, object_id, data)
        return f"{http_server.url}/files/{object_id}"

    def unseed_http(location: str) -> None:
        os.unlink(os.path.join(http_root, location.rsplit("/", 1)[1]))

    return Harness(store, seed_http, unseed_http, "file:///etc/passwd")


def _new_id() -> str:
    return uuid.uuid4().hex


def _read(chunks) -> bytes:
    return b"".join(chunks)


def test_declares_capabilities(harness):
    caps = harness.store.capabilities
    assert isinstance(caps, Capability)
    assert Capability.READ in caps
    assert Capability.REUSABLE in caps
    assert harness.store.SCHEMES


@pytest.mark.parametrize("size", SIZES)
def test_whole_read_returns_the_data_and_its_length(harness, size):
    data = _data(size, str(size))
    location = harness.seed(_new_id(), data)
    chunks, length = harness.store.get(location)
    assert length == size
    assert _read(chunks) == data
    assert harness.store.get_size(location) == size


@pytest.mark.parametrize(
    ("offset", "length"),
    [(0, 10), (1, None), (CHUNK, None), (CHUNK - 1, 2), (100, 0), (3 * CHUNK, 100)],
)
def test_ranged_read(harness, offset, length):
    data = _data(3 * CHUNK + 5)
    location = harness.seed(_new_id(), data)
    if Capability.RANGE_READ not in harness.store.capabilities:
        with pytest.raises(exception.StoreCapabilityError):
            harness.store.get(location, offset=offset, length=length)
        return
    chunks, n = harness.store.get(location, offset=offset, length=length)
    expected = data[offset:] if length is None else data[offset : offset + length]
    assert n == len(expected)
    assert _read(chunks) == expected


def test_offset_at_the_end_is_empty_and_beyond_is_refused(harness):
    data = _data(1000)
    location = harness.seed(_new_id(), data)
    chunks, n = harness.store.get(location, offset=1000)
    assert (n, _read(chunks)) == (0, b"")
    with pytest.raises(InvalidRange):
        harness.store.get(location, offset=1001)
    with pytest.raises(InvalidRange):
        harness.store.get(location, offset=-1)


def test_chunk_size_shapes_chunks_not_length(harness):
    data = _data(10_000)
    location = harness.seed(_new_id(), data)
    chunks, n = harness.store.get(location, chunk_size=3000)
    pieces = list(chunks)
    assert n == 10_000
    assert b"".join(pieces) == data
    assert all(len(p) <= 3000 for p in pieces)
    assert len(pieces) >= 4


def test_closing_early_stops_the_stream(harness):
    data = _data(5 * CHUNK)
    location = harness.seed(_new_id(), data)
    chunks, _ = harness.store.get(location, chunk_size=CHUNK)
    assert next(chunks) == data[:CHUNK]
    chunks.close()
    chunks.close()
    assert list(chunks) == []


def test_missing_object(harness):
    location = harness.seed(_new_id(), b"gone soon")
    harness.unseed(location)
    with pytest.raises(exception.ObjectNotFound):
        harness.store.get(location)
    with pytest.raises(exception.ObjectNotFound):
        harness.store.get_size(location)


@pytest.mark.parametrize("bad", [None, "", 42, "no-scheme", "ftp://host/x", "\x00"])
def test_malformed_locations_are_refused(harness, bad):
    with pytest.raises(exception.InvalidLocation):
        harness.store.get(bad)
    with pytest.raises(exception.InvalidLocation):
        harness.store.get_size(bad)


def test_location_of_another_driver_is_refused(harness):
    with pytest.raises(exception.InvalidLocation) as info:
        harness.store.get(harness.other_scheme)
    assert "scheme" in str(info.value)


def test_add(harness):
    store = harness.store
    data = _data(3 * CHUNK + 7)
    if Capability.WRITE not in store.capabilities:
        with pytest.raises(exception.StoreCapabilityError) as info:
            store.add(_new_id(), io.BytesIO(data), len(data))
        assert "read-only" in str(info.value)
        return
    result = store.add(_new_id(), io.BytesIO(data), len(data))
    assert result.size == len(data)
    assert result.multihash == hashlib.sha256(data).hexdigest()
    assert result.hashing_algo == "sha256"
    assert result.checksum is None
    assert result.backend == store.backend_id
    assert isinstance(result.metadata, dict)
    chunks, n = store.get(result.location)
    assert (n, _read(chunks)) == (len(data), data)


def test_add_from_an_iterable_of_unknown_size(harness):
    store = harness.store
    if Capability.WRITE not in store.capabilities:
        pytest.skip("read-only driver")
    pieces = [_data(n, str(n)) for n in (1, 10, 5000, 0, 9000, 3)]
    result = store.add(_new_id(), iter(pieces), None)
    assert result.size == sum(map(len, pieces))
    assert _read(store.get(result.location)[0]) == b"".join(pieces)


@pytest.mark.parametrize("algo", ["sha512", "sha384", "blake2b", "sha1", "md5"])
def test_add_with_another_digest(harness, algo):
    store = harness.store
    if Capability.WRITE not in store.capabilities:
        pytest.skip("read-only driver")
    data = _data(5000)
    result = store.add(_new_id(), io.BytesIO(data), hashing_algo=algo)
    assert result.multihash == hashlib.new(algo, data).hexdigest()
    assert result.hashing_algo == algo


def test_md5_checksum_only_when_asked(harness):
    store = harness.store
    if Capability.WRITE not in store.capabilities:
        pytest.skip("read-only driver")
    data = _data(5000)
    result = store.add(_new_id(), io.BytesIO(data), checksum_algo="md5")
    assert result.checksum == hashlib.md5(data).hexdigest()
    assert result.multihash == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("algo", ["shake_128", "MD5", "sha256 ", "", None, "whirlpool"])
def test_unsupported_digest_is_refused_before_writing(harness, algo):
    store = harness.store
    if Capability.WRITE not in store.capabilities:
        pytest.skip("read-only driver")
    object_id = _new_id()

    def endless():
        raise AssertionError("the data must not be read")
        yield b""  # pragma: no cover

    with pytest.raises(exception.UnsupportedHashAlgorithm):
        store.add(object_id, endless(), hashing_algo=algo)
    # Nothing was created: the id is still free.
    store.add(object_id, io.BytesIO(b"x"))


@pytest.mark.parametrize(("declared", "actual"), [(10, 9), (10, 11), (0, 1), (5, 0)])
def test_wrong_declared_size_leaves_nothing(harness, declared, actual):
    store = harness.store
    if Capability.WRITE not in store.capabilities:
        pytest.skip("read-only driver")
    object_id = _new_id()
    with pytest.raises(SizeMismatch):
        store.add(object_id, io.BytesIO(_data(actual)), declared)
    result = store.add(object_id, io.BytesIO(b"second try"), 10)
    assert _read(store.get(result.location)[0]) == b"second try"


def test_duplicate_id_is_refused_and_keeps_the_first(harness):
    store = harness.store
    if Capability.WRITE not in store.capabilities:
        pytest.skip("read-only driver")
    object_id = _new_id()
    first = store.add(object_id, io.BytesIO(b"first"))
    with pytest.raises(exception.ObjectExists):
        store.add(object_id, io.BytesIO(b"second"))
    assert _read(store.get(first.location)[0]) == b"first"


def test_delete(harness):
    store = harness.store
    location = harness.seed(_new_id(), b"to delete")
    if Capability.DELETE not in store.capabilities:
        with pytest.raises(exception.StoreCapabilityError):
            store.delete(location)
        assert _read(store.get(location)[0]) == b"to delete"
        return
    store.delete(location)
    with pytest.raises(exception.ObjectNotFound):
        store.get(location)
    with pytest.raises(exception.ObjectNotFound):
        store.delete(location)


@pytest.mark.parametrize("size", [0, 1, CHUNK, 3 * CHUNK + 1])
def test_verified_read(harness, size):
    store = harness.store
    data = _data(size)
    location = harness.seed(_new_id(), data)
    if Capability.VERIFY_READ not in store.capabilities:
        with pytest.raises(exception.StoreCapabilityError):
            store.get(location, verify=True)
        return
    chunks, n = store.get(location, verify=True)
    assert (n, _read(chunks)) == (size, data)


def test_verified_ranged_read_is_refused(harness):
    store = harness.store
    location = harness.seed(_new_id(), _data(100))
    with pytest.raises(exception.StoreCapabilityError):
        store.get(location, offset=10, verify=True)


def test_verify_store(harness):
    harness.store.verify_store()


def test_scrub_of_a_healthy_store(harness):
    store = harness.store
    if Capability.SCRUB not in store.capabilities:
        with pytest.raises(exception.StoreCapabilityError):
            store.scrub()
        return
    for n in (0, 10, 3 * CHUNK):
        harness.seed(_new_id(), _data(n))
    seen = []
    report = store.scrub(progress=lambda r: seen.append((r.checked, r.bytes_checked)))
    assert report.clean, report
    assert report.checked == 3
    assert report.bytes_checked == 3 * CHUNK + 10
    # Told after each object, as it goes.
    assert [checked for checked, _ in seen] == [1, 2, 3]
    assert seen[-1][1] == report.bytes_checked
    assert "on_checked" not in report.as_dict()


def test_concurrent_reads_from_threads(harness):
    store = harness.store
    assert Capability.THREAD_SAFE in store.capabilities
    objects = {}
    for i in range(8):
        data = _data(2 * CHUNK + i, str(i))
        objects[harness.seed(_new_id(), data)] = data

    def read(location: str) -> bool:
        return _read(store.get(location)[0]) == objects[location]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert all(pool.map(read, list(objects) * 4))
