"""Hostile ids and locations: refused before any path is built or opened."""

from __future__ import annotations

import io
import os

import pytest

from storaged import exception
from storaged.objectstore import names
from storaged.objectstore.drivers import file as file_driver

# (id, words the message must contain)
HOSTILE_IDS = [
    ("../x", "'/'"),
    ("a/../../b", "'/'"),
    ("/etc/passwd", "'/'"),
    ("x\x00y", "NUL"),
    ("\x00", "NUL"),
    ("a" * (names.MAX_ID_LENGTH + 1), "characters long"),
    ("\udcff", "UTF-8"),
    ("ok\udc80", "UTF-8"),
    ("", "empty"),
    (".", "'.' or '..'"),
    ("..", "'.' or '..'"),
    (".hidden", "start with '.'"),
    (".tmp", "start with '.'"),
    ("..\\..\\windows", "'\\'"),
    ("a\\b", "'\\'"),
    ("new\nline", "ASCII letters"),
    ("tab\there", "ASCII letters"),
    ("space here", "ASCII letters"),
    ("caf\u00e9", "ASCII letters"),
    ("%2e%2e", "ASCII letters"),
    ("~root", "ASCII letters"),
    ("name:stream", "ASCII letters"),
]

GOOD_IDS = [
    "a",
    "0",
    "x" * names.MAX_ID_LENGTH,
    "6f1ed002-ab5d-4f5a-9a7d-0b6f2c1e2a3b",
    "image.v1.2_final-copy",
    "-dash-first",
    "_underscore",
    "trailing.",
]


@pytest.mark.parametrize(("object_id", "words"), HOSTILE_IDS)
def test_hostile_ids_are_refused_with_a_reason(object_id, words):
    with pytest.raises(exception.InvalidName) as info:
        names.validate_object_id(object_id)
    message = str(info.value)
    assert message.startswith("Invalid object id: ")
    assert words in message


@pytest.mark.parametrize("object_id", [b"bytes", 12, None, ["a"]])
def test_non_strings_are_refused(object_id):
    with pytest.raises(exception.InvalidName) as info:
        names.validate_object_id(object_id)
    assert "must be a string" in str(info.value)


@pytest.mark.parametrize("object_id", GOOD_IDS)
def test_good_ids(object_id):
    assert names.validate_object_id(object_id) == object_id


def test_overlong_id_message_is_bounded():
    with pytest.raises(exception.InvalidName) as info:
        names.validate_object_id("a" * 100_000)
    assert len(str(info.value)) < 200


@pytest.mark.parametrize(("object_id", "words"), HOSTILE_IDS)
def test_add_refuses_hostile_ids_before_touching_disk(
    file_store, tmp_path, object_id, words
):
    before = sorted(os.walk(tmp_path / "data"))
    with pytest.raises(exception.InvalidName):
        file_store.add(object_id, io.BytesIO(b"data"))
    assert sorted(os.walk(tmp_path / "data")) == before
    assert not (tmp_path / "x").exists()
    with pytest.raises(exception.InvalidName):
        file_store.find(object_id)


# -- locations ---------------------------------------------------------------


@pytest.fixture
def two_stores(file_store_factory, tmp_path):
    """A store, its one stored object, and a second store with its own object."""
    store = file_store_factory(dirs=f"{tmp_path}/a:10, {tmp_path}/b:5")
    location = store.add("victim", io.BytesIO(b"secret")).location
    other_conf_dir = tmp_path / "other"
    other = file_driver.FileStore(
        _conf_with(tmp_path, f"data_dirs = {other_conf_dir}"), "fs"
    )
    other_location = other.add("foreign", io.BytesIO(b"foreign")).location
    yield store, location, other_location
    other.close()


def _conf_with(tmp_path, line: str):
    from tests.unit.objectstore.conftest import make_conf

    return make_conf(tmp_path, f"[DEFAULT]\nenabled_backends = fs:file\n[fs]\n{line}\n")


def _hostile_locations(tmp_path, location: str, other_location: str) -> list[str]:
    a = f"{tmp_path}/a"
    fan = file_driver.fanout("victim")
    return [
        "file:///etc/passwd",
        "file://localhost/etc/passwd",
        "file://" + a,
        f"file://{a}/",
        f"file://{a}/{fan}",
        f"file://{a}/../b/{fan}/victim",
        f"file://{a}/{fan}/../../../etc/passwd",
        f"file://{a}/%2e%2e/{fan}/victim",
        f"file://{a}/{fan}/..",
        f"file://{a}/{fan}/.",
        f"file://{a}/{fan}/victim/",
        f"file://{a}//{fan}/victim",
        f"file://{a}/{fan}/victim%00.txt",
        f"file://{a}/{fan}/victim\x00",
        f"file://{a}/{fan}/%ff%fe",
        f"file://{a}/{fan}/victim?x=1",
        f"file://{a}/{fan}/victim#frag",
        f"file://{a}/00/victim",  # right directory layout, wrong subdirectory
        f"file://{a}/.tmp/victim",
        f"file://{a}/.layout",
        f"file://{a}/{fan}/.meta-victim",
        f"file://{a}x/{fan}/victim",  # a sibling whose name starts like a
        other_location,  # another back end's data directory
        "file:" + location[len("file://"):],
        "http://example.org/victim",
        "FILE" + location[4:] + "/..",
    ]


def test_hostile_locations_are_refused(two_stores, tmp_path):
    store, location, other_location = two_stores
    for bad in _hostile_locations(tmp_path, location, other_location):
        for op in (store.get, store.get_size, store.delete):
            with pytest.raises(exception.InvalidLocation) as info:
                op(bad)
            assert "Invalid location for back end fs" in str(info.value), bad
    # And nothing was deleted on the way.
    assert b"".join(store.get(location)[0]) == b"secret"


def test_symlink_in_place_of_an_object_is_not_followed(file_store, tmp_path):
    secret = tmp_path / "outside"
    secret.write_bytes(b"outside the data dir")
    location = file_store.add("link", io.BytesIO(b"x")).location
    path = location[len("file://"):]
    os.unlink(path)
    os.symlink(secret, path)
    for op in (file_store.get, file_store.get_size, file_store.delete):
        with pytest.raises(exception.InvalidLocation) as info:
            op(location)
        assert "symbolic link" in str(info.value)
    assert secret.read_bytes() == b"outside the data dir"
    assert os.path.islink(path)


def test_symlinked_subdirectory_is_not_followed(file_store, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    location = file_store.add("escape", io.BytesIO(b"x")).location
    path = location[len("file://"):]
    fan_dir = os.path.dirname(path)
    (outside / "escape").write_bytes(b"planted")
    os.rename(fan_dir, fan_dir + ".moved")
    os.symlink(outside, fan_dir)
    for op in (file_store.get, file_store.get_size, file_store.delete):
        with pytest.raises(exception.InvalidLocation):
            op(location)
    assert (outside / "escape").read_bytes() == b"planted"


def test_fifo_in_place_of_an_object_does_not_hang(file_store):
    location = file_store.add("fifo", io.BytesIO(b"x")).location
    path = location[len("file://"):]
    os.unlink(path)
    os.mkfifo(path)
    with pytest.raises(exception.InvalidLocation):
        file_store.get(location)
    with pytest.raises(exception.InvalidLocation):
        file_store.delete(location)
