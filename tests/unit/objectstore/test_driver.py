"""The driver base class: capabilities, metadata checks, argument checks."""

from __future__ import annotations

import dataclasses
import io

import pytest

from storaged import exception
from storaged.objectstore import Capability
from storaged.objectstore import InvalidRange
from storaged.objectstore import SizeMismatch
from storaged.objectstore import require
from storaged.objectstore.driver import iter_source
from storaged.objectstore.driver import validate_metadata
from storaged.objectstore.drivers.file import FileStore


class _Caps:
    backend_id = "ro"
    capabilities = Capability.READ | Capability.RANGE_READ


def test_require():
    require(_Caps(), Capability.READ)
    require(_Caps(), Capability.READ | Capability.RANGE_READ)
    with pytest.raises(exception.StoreCapabilityError) as info:
        require(_Caps(), Capability.WRITE)
    assert str(info.value) == "Back end ro cannot add objects (it is read-only)"
    with pytest.raises(exception.StoreCapabilityError) as info:
        require(_Caps(), Capability.READ | Capability.DELETE | Capability.SCRUB)
    assert str(info.value) == "Back end ro cannot delete objects and scrub its data"


@pytest.mark.parametrize(
    "metadata",
    [{}, "s", [], {"a": ["b", {"c": "d"}]}, {"mount": {"id": "x", "paths": ["/a"]}}],
)
def test_good_metadata(metadata):
    validate_metadata("b", metadata)


@pytest.mark.parametrize(
    ("metadata", "where"),
    [
        ({"n": 1}, "metadata['n'] is a int"),
        ({"a": [None]}, "metadata['a'][0] is a NoneType"),
        ({1: "x"}, "key 1 in metadata is not a string"),
        ({"b": b"bytes"}, "is a bytes"),
        ({"f": 1.5}, "is a float"),
        ({"t": ("tuple",)}, "is a tuple"),
        (True, "metadata is a bool"),
    ],
)
def test_bad_metadata(metadata, where):
    with pytest.raises(exception.InvalidMetadata) as info:
        validate_metadata("b", metadata)
    assert where in str(info.value)


class _BadMetadataStore(FileStore):
    def _add(self, *args):
        result = super()._add(*args)
        return dataclasses.replace(result, metadata={"size": result.size})


def test_driver_metadata_is_checked(tmp_path):
    from tests.unit.objectstore.conftest import make_conf

    conf = make_conf(tmp_path, "[DEFAULT]\nenabled_backends = fs:file\n")
    store = _BadMetadataStore(conf, "fs")
    with pytest.raises(exception.InvalidMetadata) as info:
        store.add("x", io.BytesIO(b"data"))
    assert "Back end fs returned invalid metadata" in str(info.value)
    store.close()


@pytest.mark.parametrize("size", [-1, 1.5, "10", True])
def test_bad_declared_size(file_store, size):
    with pytest.raises(SizeMismatch):
        file_store.add("x", io.BytesIO(b"data"), size)


@pytest.mark.parametrize(
    "kwargs",
    [{"offset": True}, {"offset": "1"}, {"length": -1}, {"length": 1.0}],
)
def test_bad_ranges(file_store, kwargs):
    location = file_store.add("r", io.BytesIO(b"data")).location
    with pytest.raises(InvalidRange):
        file_store.get(location, **kwargs)


@pytest.mark.parametrize("chunk_size", [0, -5, True])
def test_bad_chunk_size(file_store, chunk_size):
    location = file_store.add("c", io.BytesIO(b"data")).location
    with pytest.raises(ValueError):
        file_store.get(location, chunk_size=chunk_size)


def test_iter_source_reads_one_byte_past_a_declared_size():
    class Endless(io.RawIOBase):
        reads = 0

        def readable(self):
            return True

        def read(self, n=-1):
            self.reads += n
            return b"z" * n

    source = Endless()
    chunks = list(iter_source(source, 1000, 2500))
    assert sum(map(len, chunks)) == 2501
    assert source.reads == 2501


def test_iter_source_joins_small_pieces():
    chunks = list(iter_source(iter([b"a"] * 2500), 1000, None))
    assert [len(c) for c in chunks] == [1000, 1000, 500]
