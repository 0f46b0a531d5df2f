"""The ``file`` driver: layout, atomic publish, reclaim, integrity, space."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import zlib

import pytest
import xxhash

from storaged import exception
from storaged.objectstore import SizeMismatch
from storaged.objectstore.drivers import file as file_driver

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


def _path(location: str) -> str:
    assert location.startswith("file://")
    return location[len("file://"):]


def _tmp_entries(data_dir) -> list[str]:
    return sorted(os.listdir(os.path.join(data_dir, ".tmp")))


def _temps(data_dir) -> list[str]:
    return [n for n in _tmp_entries(data_dir) if not n.endswith(".lock")]


# -- layout -------------------------------------------------------------------


def test_layout_and_fanout(file_store, tmp_path):
    data = tmp_path / "data"
    assert json.loads((data / ".layout").read_text()) == {"format": 1, "fanout": 2}
    fans = [n for n in os.listdir(data) if not n.startswith(".")]
    assert len(fans) == 256
    locations = [
        file_store.add(f"obj-{i}", io.BytesIO(b"%d" % i)).location for i in range(64)
    ]
    used = {os.path.basename(os.path.dirname(_path(loc))) for loc in locations}
    assert len(used) > 30  # spread over many subdirectories
    for i, loc in enumerate(locations):
        assert _path(loc) == str(data / file_driver.fanout(f"obj-{i}") / f"obj-{i}")
        assert file_store.find(f"obj-{i}") == loc
    assert file_store.find("never-added") is None


def test_published_file_mode_and_metadata(file_store):
    result = file_store.add("mode", io.BytesIO(b"abc"), checksum_algo="md5")
    st = os.stat(_path(result.location))
    assert stat.S_IMODE(st.st_mode) == 0o640
    meta = json.loads(os.getxattr(_path(result.location), "user.storaged.meta"))
    assert meta["size"] == 3
    assert meta["algo"] == "sha256"
    assert meta["digest"] == hashlib.sha256(b"abc").hexdigest()
    assert meta["checksum"] == "md5:" + hashlib.md5(b"abc").hexdigest()
    assert meta["xxh3_64"] == xxhash.xxh3_64(b"abc").hexdigest()
    assert "crc32" not in meta
    assert meta["id"] == "mode"


def test_sidecar_metadata(file_store_factory, tmp_path):
    store = file_store_factory(metadata_store="sidecar")
    result = store.add("side", io.BytesIO(b"abc"))
    path = _path(result.location)
    sidecar = os.path.join(os.path.dirname(path), ".meta-side")
    assert json.loads(open(sidecar, "rb").read())["digest"] == result.multihash
    assert "user.storaged.meta" not in os.listxattr(path)
    store.delete(result.location)
    assert not os.path.exists(sidecar)


def test_missing_subdirectory_is_made_again(file_store, tmp_path):
    fan = tmp_path / "data" / file_driver.fanout("again")
    os.rmdir(fan)
    result = file_store.add("again", io.BytesIO(b"x"))
    assert b"".join(file_store.get(result.location, verify=True)[0]) == b"x"


def test_link_fallback_when_renameat2_is_refused(file_store):
    for dd in file_store._dirs:
        dd.renameat2 = False
    result = file_store.add("linked", io.BytesIO(b"via link"))
    with pytest.raises(exception.ObjectExists):
        file_store.add("linked", io.BytesIO(b"other"))
    assert b"".join(file_store.get(result.location, verify=True)[0]) == b"via link"
    assert _temps(os.path.dirname(os.path.dirname(_path(result.location)))) == []


# -- large objects (O_DIRECT blocks) and many small pieces ------------------------


def test_large_object_written_by_direct_blocks(file_store_factory):
    store = file_store_factory()
    size = 2 * file_driver.DIRECT_BLOCK + 12345
    data = os.urandom(size)
    result = store.add("large", io.BytesIO(data), size)
    assert result.multihash == hashlib.sha256(data).hexdigest()
    assert os.path.getsize(_path(result.location)) == size
    assert store._dirs[0].direct  # this filesystem took O_DIRECT
    chunks, n = store.get(result.location, verify=True)
    assert n == size and b"".join(chunks) == data
    assert store.scrub().clean


def test_large_object_of_unknown_size_in_odd_pieces(file_store_factory):
    store = file_store_factory(chunk_size=1_000_000)
    pieces = [os.urandom(n) for n in (3 * 1024 * 1024 + 5, 1, 700_001, 5 * 1024 * 1024)]
    result = store.add("odd", iter(pieces))
    data = b"".join(pieces)
    assert result.size == len(data)
    assert b"".join(store.get(result.location, verify=True)[0]) == data


def test_large_object_longer_than_declared(file_store_factory, tmp_path):
    store = file_store_factory()
    size = file_driver.DIRECT_BLOCK + 10
    with pytest.raises(SizeMismatch):
        store.add("long", io.BytesIO(os.urandom(size + 1)), size)
    assert store.find("long") is None
    assert _temps(tmp_path / "data") == []


class _Trickle(io.RawIOBase):
    """A stream that hands out at most 100 bytes per read."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self._data.read(min(n, 100) if n >= 0 else 100)


def test_many_small_pieces(file_store):
    data = os.urandom(200_000)  # 2,000 reads of 100 bytes
    result = file_store.add("trickle", _Trickle(data), len(data))
    assert b"".join(file_store.get(result.location, verify=True)[0]) == data


# -- atomic publish, failures, reclaim ----------------------------------------------


def test_partial_object_is_never_visible(file_store, tmp_path):
    seen = []

    def source():
        for _ in range(5):
            yield b"x" * 4096
            seen.append((file_store.find("partial"), _temps(tmp_path / "data")))

    result = file_store.add("partial", source())
    assert len(seen) == 5
    for found, temps in seen:
        assert found is None
        assert len(temps) == 1 and temps[0].endswith("-partial")
    assert file_store.find("partial") == result.location
    assert _temps(tmp_path / "data") == []


def test_failing_source_leaves_nothing(file_store, tmp_path):
    def source():
        yield b"x" * 10000
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        file_store.add("broken", source())
    assert file_store.find("broken") is None
    assert _temps(tmp_path / "data") == []
    file_store.add("broken", io.BytesIO(b"ok"))


def test_non_bytes_source_leaves_nothing(file_store, tmp_path):
    with pytest.raises(TypeError):
        file_store.add("text", iter(["not bytes"]))
    assert _temps(tmp_path / "data") == []


def test_declared_size_larger_than_any_free_space(file_store, tmp_path):
    with pytest.raises(exception.StorageFull) as info:
        file_store.add("huge", io.BytesIO(b""), 1 << 60)
    assert "no data directory has" in str(info.value)
    assert _temps(tmp_path / "data") == []


def test_scrub_leaves_live_writers_alone(file_store_factory, tmp_path):
    store = file_store_factory()
    other = file_store_factory()  # another writer token, same data dir
    reports = []

    def source():
        yield b"a" * 5000
        reports.append(other.scrub(reclaim=True))
        reports.append(store.scrub(reclaim=True))
        yield b"b" * 5000

    result = store.add("live", source())
    for report in reports:
        assert report.in_progress == 1
        assert report.reclaimed == []
        assert report.clean
    data = b"".join(store.get(result.location, verify=True)[0])
    assert data == b"a" * 5000 + b"b" * 5000


_KILLED_WRITER = textwrap.dedent(
    """
    import io, os, sys, time
    from storaged import concurrency
    concurrency.setup("threading")
    from oslo_config import cfg
    from storaged.conf import default
    from storaged.objectstore import backend as store_conf
    from storaged.objectstore.drivers.file import FileStore
    conf = cfg.ConfigOpts()
    default.register_opts(conf)
    store_conf.register_opts(conf)
    conf(["--config-file", sys.argv[1]])
    store_conf.register_dynamic_opts(conf)
    store = FileStore(conf, "fs")
    def source():
        yield b"x" * 100000
        print("writing", flush=True)
        time.sleep(60)
        yield b"never"
    store.add("killed", source())
    """
)


def test_temp_files_of_a_killed_writer_are_reclaimed(file_store_factory, tmp_path):
    store = file_store_factory()  # writes tmp_path/storaged.conf
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(tmp_path / "storaged.conf")],
        stdout=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "STORAGED_CONCURRENCY_BACKEND": "threading"},
    )
    try:
        assert child.stdout.readline() == b"writing\n"
        live = store.scrub(reclaim=True)
        assert live.in_progress == 1 and live.reclaimed == []
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    data = tmp_path / "data"
    left = _tmp_entries(data)
    assert len(left) == 2  # the partial object and the dead writer's lock
    assert store.find("killed") is None
    report = store.scrub()
    assert [o.reason for o in report.orphans] == [
        "temporary file of a writer that is gone"
    ]
    assert not report.clean
    assert _tmp_entries(data) == left  # reported, not removed
    # A new process (here: a new driver) reclaims at start-up.
    # (Stores that have not written hold no lock file.)
    file_store_factory()
    assert _tmp_entries(data) == []


def test_close_releases_the_writer_lock(file_store, tmp_path):
    file_store.add("one", io.BytesIO(b"1"))
    assert len(_tmp_entries(tmp_path / "data")) == 1
    file_store.close()
    assert _tmp_entries(tmp_path / "data") == []


# -- integrity -----------------------------------------------------------------------


def _flip(path: str, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x01]))


@pytest.mark.parametrize("offset", [0, 4096, 3 * 4096 + 9])
def test_flipped_byte(file_store, offset):
    data = os.urandom(3 * 4096 + 10)
    result = file_store.add("flipped", io.BytesIO(data))
    _flip(_path(result.location), offset)
    chunks, n = file_store.get(result.location, verify=True)
    received = b""
    with pytest.raises(exception.CorruptObject) as info:
        for chunk in chunks:
            received += chunk
    # Reads check the XXH3 recorded with the data; scrub the sha256.
    assert "xxh3_64 does not match the recorded one" in str(info.value)
    assert len(received) < n  # the whole (corrupt) object never went out
    # An unverified read serves what is on disk: it is the caller's choice.
    assert b"".join(file_store.get(result.location)[0]) != data
    report = file_store.scrub()
    assert [c.where for c in report.corrupt] == [result.location]
    assert [c.reason for c in report.corrupt] == ["sha256 digest does not match"]
    assert not report.clean
    assert file_store.find("flipped") == result.location  # reported, not removed


def _rewrite_meta(path, **changes):
    meta = json.loads(os.getxattr(path, "user.storaged.meta"))
    for key, value in changes.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    os.setxattr(path, "user.storaged.meta", json.dumps(meta).encode())


@pytest.mark.parametrize("size", [100, 3 * 4096 + 10])
@pytest.mark.parametrize("recorded", ["crc32", "digest only"])
def test_objects_of_earlier_formats_are_verified_by_what_they_carry(
        file_store, size, recorded):
    # Objects written when a CRC-32 was the fast check are read-checked by
    # it; objects written with no fast check by their digest.
    data = os.urandom(size)
    result = file_store.add("old-%d" % size, io.BytesIO(data))
    path = _path(result.location)
    crc = "%08x" % zlib.crc32(data) if recorded == "crc32" else None
    _rewrite_meta(path, xxh3_64=None, crc32=crc)
    chunks, _n = file_store.get(result.location, verify=True)
    assert b"".join(chunks) == data
    _flip(path, size // 2)
    with pytest.raises(exception.CorruptObject) as info:
        chunks, _n = file_store.get(result.location, verify=True)
        b"".join(chunks)
    name = "crc32" if recorded == "crc32" else "sha256"
    assert "%s does not match the recorded one" % name in str(info.value)


@pytest.mark.parametrize(("key", "value"), [("xxh3_64", "not-hex!"),
                                            ("xxh3_64", "abc"),
                                            ("crc32", "not-hex!")])
def test_bad_recorded_check_is_corrupt_metadata(file_store, key, value):
    result = file_store.add("badcheck", io.BytesIO(b"data"))
    _rewrite_meta(_path(result.location), **{key: value})
    with pytest.raises(exception.CorruptObject) as info:
        file_store.get(result.location, verify=True)
    assert "metadata unreadable" in str(info.value)


def test_truncated_object(file_store):
    result = file_store.add("short", io.BytesIO(b"x" * 10000))
    os.truncate(_path(result.location), 9999)
    with pytest.raises(exception.CorruptObject) as info:
        file_store.get(result.location, verify=True)
    assert "9999 bytes on disk, 10000 recorded" in str(info.value)
    assert [c.reason for c in file_store.scrub().corrupt] == [
        "9999 bytes on disk, 10000 recorded"
    ]


def test_object_without_metadata(file_store):
    result = file_store.add("bare", io.BytesIO(b"data"))
    os.removexattr(_path(result.location), "user.storaged.meta")
    with pytest.raises(exception.CorruptObject) as info:
        file_store.get(result.location, verify=True)
    assert "metadata missing" in str(info.value)
    report = file_store.scrub(reclaim=True)
    assert [o.reason for o in report.orphans] == ["object without metadata"]
    # With xattrs, a bare file was not written by the store: never removed.
    assert report.reclaimed == []
    assert file_store.find("bare") == result.location


def test_unreadable_metadata(file_store):
    result = file_store.add("garbled", io.BytesIO(b"data"))
    os.setxattr(_path(result.location), "user.storaged.meta", b"{not json")
    with pytest.raises(exception.CorruptObject) as info:
        file_store.get(result.location, verify=True)
    assert "metadata unreadable" in str(info.value)
    assert len(file_store.scrub().corrupt) == 1


def test_sidecar_scrub_reclaims_incomplete_adds(file_store_factory, tmp_path):
    store = file_store_factory(metadata_store="sidecar", reclaim_age=0)
    kept = store.add("kept", io.BytesIO(b"kept"))
    half = store.add("half", io.BytesIO(b"half"))
    # A delete killed after removing the sidecar (or a file put there):
    os.unlink(os.path.join(os.path.dirname(_path(half.location)), ".meta-half"))
    # An add killed between publishing its sidecar and its object, or a
    # delete killed after removing the object:
    lone = store.add("lone", io.BytesIO(b"lone"))
    os.unlink(_path(lone.location))
    report = store.scrub(reclaim=True)
    reasons = sorted(o.reason for o in report.orphans)
    assert reasons == ["metadata of no object", "object without metadata"]
    assert len(report.reclaimed) == 2
    assert store.find("half") is None
    assert store.find("kept") == kept.location
    assert store.scrub().clean


def test_sidecar_of_no_object_is_reclaimed_only_when_old(file_store_factory):
    """An add in progress publishes its sidecar just before its object."""
    store = file_store_factory(metadata_store="sidecar", reclaim_age=3600)
    lone = store.add("lone", io.BytesIO(b"lone"))
    os.unlink(_path(lone.location))
    report = store.scrub(reclaim=True)
    assert [o.reason for o in report.orphans] == ["metadata of no object"]
    assert report.reclaimed == []
    sidecar = os.path.join(os.path.dirname(_path(lone.location)), ".meta-lone")
    assert os.path.exists(sidecar)
    # With a reclaim age it has reached, it goes.
    store2 = file_store_factory(metadata_store="sidecar", reclaim_age=0)
    assert len(store2.scrub(reclaim=True).reclaimed) == 1
    assert not os.path.exists(sidecar)


def test_sidecar_goes_first_and_leaves_with_a_failed_publish(file_store_factory,
                                                            monkeypatch):
    from storaged.objectstore.drivers import file_write

    store = file_store_factory(metadata_store="sidecar")
    renamed = []
    real = file_write._rename_into

    def rename_into(dd, fan_dir, tmp, name):
        renamed.append(name)
        if not name.startswith(".meta-"):
            raise OSError(5, "Input/output error")
        return real(dd, fan_dir, tmp, name)

    monkeypatch.setattr(file_write, "_rename_into", rename_into)
    with pytest.raises(Exception):  # noqa: B017 (translated by the driver)
        store.add("fails", io.BytesIO(b"data"))
    assert renamed == [".meta-fails", "fails"]
    assert store.find("fails") is None
    assert store.scrub().clean


def test_scrub_reports_unexpected_entries(file_store, tmp_path):
    data = tmp_path / "data"
    (data / "stray.txt").write_text("x")
    (data / "00" / "not-here").write_text("x")  # valid id, wrong subdirectory
    os.symlink("/etc/passwd", data / file_driver.fanout("lnk") / "lnk")
    report = file_store.scrub(reclaim=True)
    assert sorted(o.reason for o in report.orphans) == [
        "not a regular file (symbolic link?)",
        "unexpected entry",
        "unexpected entry in the data directory",
    ]
    assert report.reclaimed == []
    assert (data / "stray.txt").exists()


def test_verify_store_notices_a_missing_directory(file_store, tmp_path):
    file_store.verify_store()
    shutil.rmtree(tmp_path / "data")
    with pytest.raises(exception.BackendUnavailable) as info:
        file_store.verify_store()
    assert str(tmp_path / "data") in str(info.value)


# -- placement ------------------------------------------------------------------


def test_highest_priority_first(file_store_factory, tmp_path):
    store = file_store_factory(dirs=f"{tmp_path}/low:1, {tmp_path}/high:20")
    result = store.add("where", io.BytesIO(b"x"))
    assert _path(result.location).startswith(f"{tmp_path}/high/")
    assert store.data_dirs == [f"{tmp_path}/low", f"{tmp_path}/high"]


# -- real filesystems: full, small, without xattrs ----------------------------------


def _can_unshare() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    probe = subprocess.run(
        [unshare, "--user", "--map-root-user", "--mount", "true"], capture_output=True
    )
    return probe.returncode == 0


_FILESYSTEMS = textwrap.dedent(
    """
    import io, json, os, pathlib, subprocess, sys
    from storaged import concurrency
    concurrency.setup("threading")
    from storaged import exception
    from storaged.objectstore.drivers.file import FileStore
    from tests.unit.objectstore.conftest import make_conf

    root = pathlib.Path(sys.argv[1])
    for name, fstype, opts in (("small", "tmpfs", "size=1m"), ("ram", "ramfs", "")):
        (root / name).mkdir()
        cmd = ["mount", "-t", fstype] + (["-o", opts] if opts else [])
        subprocess.run(cmd + [fstype, str(root / name)], check=True)
    out = {}

    def store(dirs, **options):
        lines = ["[DEFAULT]", "enabled_backends = fs:file", "[fs]"]
        lines.append("data_dirs = " + dirs)
        lines += ["%s = %s" % kv for kv in options.items()]
        return FileStore(make_conf(root, "\\n".join(lines) + "\\n"), "fs")

    full = store(str(root / "small" / "objects"), free_space_ttl=0)
    try:
        full.add("big", iter([b"x" * 65536] * 40), None)
    except exception.StorageFull as err:
        out["full"] = str(err)
    out["full_tmp"] = sorted(os.listdir(root / "small" / "objects" / ".tmp"))
    out["full_find"] = full.find("big")
    out["after_full"] = full.add("small-one", io.BytesIO(b"fits")).size
    full.close()

    both = store("%s/small/both:100, %s/disk:10" % (root, root))
    out["declared_big"] = both.add("b", io.BytesIO(b"y" * 2000000), 2000000).location
    out["declared_small"] = both.add("s", io.BytesIO(b"y" * 1000), 1000).location
    out["unknown_size"] = both.add("u", io.BytesIO(b"y" * 1000)).location

    ram = store(str(root / "ram" / "objects"))
    out["ram_mode"] = ram._dirs[0].metadata
    r = ram.add("r", io.BytesIO(b"ram"))
    out["ram_read"] = b"".join(ram.get(r.location, verify=True)[0]).decode()
    big = bytes(range(256)) * (9 * 4096 + 7)
    r = ram.add("big", io.BytesIO(big), len(big))
    out["ram_big"] = b"".join(ram.get(r.location, verify=True)[0]) == big
    out["ram_direct"] = ram._dirs[0].direct
    try:
        store(str(root / "ram" / "strict"), metadata_store="xattr")
    except exception.ConfigError as err:
        out["ram_strict"] = [err.group, err.option, err.problem]
    print(json.dumps(out))
    """
)


def test_real_filesystems_full_small_and_without_xattrs(tmp_path):
    if not _can_unshare():
        pytest.skip("cannot mount a private tmpfs (user namespaces unavailable)")
    run = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", sys.executable, "-c",
         _FILESYSTEMS, str(tmp_path)],
        capture_output=True,
        cwd=REPO,
        env={**os.environ, "STORAGED_CONCURRENCY_BACKEND": "threading"},
        timeout=60,
    )
    assert run.returncode == 0, run.stderr.decode()
    out = json.loads(run.stdout.decode().strip().splitlines()[-1])
    # ENOSPC while writing: StorageFull, and nothing left behind.
    assert out["full"].startswith("No space left on back end fs")
    assert "No space left on device" in out["full"]  # ENOSPC, not the pre-check
    assert [n for n in out["full_tmp"] if not n.endswith(".lock")] == []
    assert out["full_find"] is None
    assert out["after_full"] == 4
    # A declared size that does not fit the preferred directory goes elsewhere.
    assert f"{tmp_path}/disk/" in out["declared_big"]
    assert f"{tmp_path}/small/both/" in out["declared_small"]
    assert f"{tmp_path}/small/both/" in out["unknown_size"]
    # No user xattrs (ramfs): sidecar metadata, or a clear start-up error.
    assert out["ram_mode"] == "sidecar"
    assert out["ram_read"] == "ram"
    # No O_DIRECT there either: large objects fall back to buffered writes.
    assert out["ram_big"] is True
    assert out["ram_direct"] is False
    group, option, problem = out["ram_strict"]
    assert (group, option) == ("fs", "metadata_store")
    assert "without user extended attributes" in problem


_UNDER_EVENTLET = textwrap.dedent(
    """
    import io, os, sys
    from storaged import concurrency
    assert concurrency.setup("eventlet") == "eventlet"
    from storaged.objectstore.drivers.file import FileStore
    from tests.unit.objectstore.conftest import make_conf
    import pathlib

    root = pathlib.Path(sys.argv[1])
    conf = make_conf(root, "[DEFAULT]\\nenabled_backends = fs:file\\n")
    store = FileStore(conf, "fs")
    big = os.urandom(9 * 1024 * 1024 + 3)
    results = [store.add("big", io.BytesIO(big), len(big))]

    def small(i):
        return store.add("small-%d" % i, io.BytesIO(b"x" * i))

    tasks = [concurrency.spawn(small, i) for i in range(20)]
    results += [t.wait(30) for t in tasks]
    assert b"".join(store.get(results[0].location, verify=True)[0]) == big
    for r in results[1:]:
        assert len(b"".join(store.get(r.location, verify=True)[0])) == r.size
    report = store.scrub()
    assert report.clean and report.checked == 21, report
    print("ok")
    """
)


def test_under_eventlet(tmp_path):
    run = subprocess.run(
        [sys.executable, "-c", _UNDER_EVENTLET, str(tmp_path)],
        capture_output=True,
        cwd=REPO,
        env={**os.environ, "STORAGED_CONCURRENCY_BACKEND": "eventlet"},
        timeout=120,
    )
    assert run.returncode == 0, run.stderr.decode()[-3000:]
    assert run.stdout.decode().strip().endswith("ok")
