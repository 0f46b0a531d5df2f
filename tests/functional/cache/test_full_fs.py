"""A small, full filesystem never yields a corrupt entry; readers are still served.

The cache lives on a real 4 MiB tmpfs mounted for the test (root only; the
tests are skipped where ``mount`` is refused).  Glance's cache grew to 2.25x
its limit and kept failed fills in ``invalid/`` until cron ran; here:

* admission: a fill that would not fit is not started (free space checked);
* reservation: ``fallocate`` fails with ENOSPC before anything is written;
* a write that fails with ENOSPC half-way (space taken by someone else
  after admission, no reservation): the reader still gets the whole body
  from the back end, nothing goes into place, and the failed fill keeps no
  space in ``invalid/``.

The last case also runs without a tmpfs, with ENOSPC raised at the write call
itself (:func:`test_enospc_at_the_write_call_simulated`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os

import pytest

from storaged.cache import ObjectCache
from storaged.cache import fill as fill_mod
from tests.functional.cache import tools
from tests.unit.cache.support import FakeBackend
from tests.unit.cache.support import read_all

MiB = 1024 * 1024


@pytest.fixture
def small_fs(tmp_path):
    mount = tmp_path / "small"
    if not tools.mount_tmpfs(mount, "4m"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    tools.umount(mount)


def _state(cache):
    names = sorted(os.listdir(cache.cache_dir))
    return {
        "entries": [n for n in names if len(n) == 64],
        "incomplete": os.listdir(os.path.join(cache.cache_dir, "incomplete")),
        "invalid": cache.invalid_files(),
    }


def _check_entries(cache, backend):
    for entry_id in _state(cache)["entries"]:
        with open(cache.entry_path(entry_id), "rb") as f:
            body = f.read()
        assert body in backend.objects.values()


def test_admission_on_a_small_filesystem(tmp_path, small_fs):
    objects = {"o%d" % i: os.urandom(1536 * 1024) for i in range(3)}
    with tools.CountingServer() as server:
        path = tools.write_conf(tmp_path, cache={"cache_dir": small_fs / "cache"})
        conf = tools.load_conf(path)
        tools.add_rows(conf, {n: ("mirror", server.put(n, d), d)
                              for n, d in objects.items()})
        out = tools.run("tests.functional.cache.reader", "--config-file", path,
                        "--objects", "o0,o1,o2,o2", check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["errors"] == []
    assert sorted(result["digests"]) == sorted(
        "%s:%s" % (n, hashlib.sha256(objects[n]).hexdigest())
        for n in ("o0", "o1", "o2", "o2"))
    assert result["counters"]["fills"] == 2
    assert result["counters"]["bypass_admission"] == 2  # o2, both times
    cache = ObjectCache(str(small_fs / "cache"))
    try:
        state = _state(cache)
        assert len(state["entries"]) == 2
        assert state["incomplete"] == [] and state["invalid"] == []
    finally:
        cache.close()


def _ballast_hook(mount, at):
    def hook(location, sent):
        if sent == at and not os.path.exists(mount / "ballast"):
            with open(mount / "ballast", "wb") as f:
                try:
                    while True:
                        f.write(b"\0" * 65536)
                        f.flush()
                except OSError as err:
                    assert err.errno == errno.ENOSPC

    return hook


def test_enospc_half_way_through_a_fill(small_fs):
    backend = FakeBackend("slow")
    data = os.urandom(1 * MiB)
    ref = backend.put("loc", data)
    cache = ObjectCache(str(small_fs / "cache"), backends=["slow"], reserve=False)
    try:
        backend.on_chunk = _ballast_hook(small_fs, 512 * 1024)
        assert read_all(cache, ref, backend.fetch_for("loc")) == data
        state = _state(cache)
        assert state["entries"] == [] and state["incomplete"] == []
        [failed] = state["invalid"]
        assert "no space left" in failed["error"]
        assert failed["size"] == 0  # holds no space
        # Room again: the next read fills the cache.
        os.unlink(small_fs / "ballast")
        backend.on_chunk = None
        assert read_all(cache, ref, backend.fetch_for("loc"), verify=True) == data
        assert _state(cache)["entries"] == [ref.entry_id]
        _check_entries(cache, backend)
    finally:
        cache.close()


def test_enospc_at_reservation(small_fs, monkeypatch):
    backend = FakeBackend("slow")
    data = os.urandom(3 * MiB)
    ref = backend.put("loc", data)
    cache = ObjectCache(str(small_fs / "cache"), backends=["slow"])
    try:
        with open(small_fs / "ballast", "wb") as f:
            f.write(b"\0" * (2 * MiB))
        monkeypatch.setattr(cache, "_admit", lambda size: None)  # let it try
        assert read_all(cache, ref, backend.fetch_for("loc")) == data
        state = _state(cache)
        assert state["entries"] == [] and state["incomplete"] == []
        assert state["invalid"] == []  # nothing was written at all
        assert cache.counters["bypass_no_space"] == 1
    finally:
        cache.close()


def test_enospc_at_the_write_call_simulated(tmp_path, monkeypatch):
    """The same as on a tmpfs, with ENOSPC raised by the write call itself."""
    backend = FakeBackend("slow")
    data = os.urandom(1 * MiB)
    ref = backend.put("loc", data)
    cache = ObjectCache(str(tmp_path / "cache"), backends=["slow"], reserve=False)
    real = fill_mod._write_all
    calls = []

    def full(fd, chunk, hashers):
        calls.append(1)
        if len(calls) > 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, chunk, hashers)

    monkeypatch.setattr(fill_mod, "_write_all", full)
    try:
        assert read_all(cache, ref, backend.fetch_for("loc"), verify=True) == data
        state = _state(cache)
        assert state["entries"] == [] and state["incomplete"] == []
        assert state["invalid"][0]["size"] == 0
    finally:
        cache.close()
