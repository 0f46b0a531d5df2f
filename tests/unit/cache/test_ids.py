"""Hostile ids and queue items are refused before any path is built.

Glance's ``is_cached('../../../../../etc/hostname')`` returned True; here
every operation that takes an id from outside checks it first.
"""

from __future__ import annotations

import os

import pytest

from storaged import exception
from storaged.cache import InvalidQueueItem
from storaged.cache import Queue
from storaged.cache import entry_id_for
from storaged.cache import validate_entry_id

HOSTILE = [
    "../../../../../etc/hostname",
    "..",
    ".",
    "incomplete",
    "invalid/x",
    "a\x00b",
    "0" * 63 + "\x00",
    "0" * 65,
    "f" * 10_000,
    "",
    "/etc/passwd",
    "A" * 64,  # uppercase is not an id either
    "0" * 63 + "/",
    "0" * 62 + "..",
    "\udcff" * 64,
    None,
    b"0" * 64,
]


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
def test_validate_entry_id_refuses(value):
    with pytest.raises(exception.InvalidName):
        validate_entry_id(value)


def test_ids_are_64_lowercase_hex_digits():
    entry_id = entry_id_for("mirror", "https://example.org/x")
    assert validate_entry_id(entry_id) == entry_id
    assert len(entry_id) == 64
    assert entry_id != entry_id_for("mirror2", "https://example.org/x")


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
def test_cache_operations_refuse_before_touching_files(cache, tmp_path, value,
                                                      monkeypatch):
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    os.symlink(victim, os.path.join(cache.cache_dir, "incomplete", "victim-link"))
    touched = []
    for name in ("open", "unlink", "stat", "lstat", "rename", "listdir"):
        real = getattr(os, name)

        def spy(*args, _real=real, _name=name, **kw):
            touched.append((_name, args[:1]))
            return _real(*args, **kw)

        monkeypatch.setattr(os, name, spy)
    for op in (cache.lookup, cache.delete, cache.entry_path, cache.incomplete_path):
        with pytest.raises(exception.InvalidName):
            op(value)
    monkeypatch.undo()
    assert touched == []
    assert victim.read_text() == "keep me"


@pytest.mark.parametrize("target", [
    {"object": "a/c"},
    {"object": "a//o"},
    {"object": "a/c/o\x00x"},
    {"object": "a/c/" + "x" * 9000},
    {"object": 5},
    {"backend": "../etc", "location": "x"},
    {"backend": "b", "location": ""},
    {"backend": "b", "location": "x", "extra": "y"},
    {},
    ["a/c/o"],
])
def test_hostile_queue_items_are_refused(tmp_path, target):
    queue = Queue(str(tmp_path))
    with pytest.raises(InvalidQueueItem):
        queue.add(target)
    assert queue.items() == []


def test_queue_item_names_are_checked(tmp_path):
    queue = Queue(str(tmp_path))
    with pytest.raises(InvalidQueueItem):
        queue.remove("../../etc/passwd")
