"""A full disk: writes answer 507, deletes still work and give the space back.

The state directory (object data and catalog) lives on a real tmpfs mounted
for each test (root only; skipped where ``mount`` is refused).  The API runs
in-process, called as a WSGI server would call it.

* With the default reserve (``fallocate_reserve``, as Swift's), clients fill
  the disk until PUT answers 507; new containers and metadata updates are
  refused with 507 too, while DELETE answers 204 and frees the space, after
  which PUT works again.
* With the reserve off, sqlite itself runs out of room ("database or disk is
  full"): the writes it refuses answer 507, never 500.
* ``storaged-manage`` at a full disk prints one line, not a traceback.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import pytest

from storaged.api import app as app_mod
from tests.functional.api.apiserver import ROOT
from tests.functional.cache import tools
from tests.unit.api.conftest import Client
from tests.unit.api.conftest import make_conf

KiB = 1024
OBJECT_SIZE = 256 * KiB


@pytest.fixture
def small_fs(tmp_path):
    mount = tmp_path / "small"
    if not tools.mount_tmpfs(mount, "8m"):
        pytest.skip("cannot mount a tmpfs here (mount -t tmpfs needs root)")
    yield mount
    tools.umount(mount)
    if os.path.ismount(mount):
        # Busy (a file left open): detach it rather than leave it mounted.
        subprocess.run(["umount", "-l", str(mount)], check=False)


@contextlib.contextmanager
def api(directory, extra=""):
    conf = make_conf(directory, extra)
    application = app_mod.make_app(conf)
    try:
        yield Client(application)
    finally:
        application.close()


def free_bytes(path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill(client, container, sizes=(OBJECT_SIZE,), limit=200):
    """PUT objects, of each size in turn, until one is refused.

    :returns: ``{name: size}`` of those stored and the last answer (a refusal).
    """
    stored = {}
    refused = None
    for size in sizes:
        for _ in range(limit):
            name = "o%03d" % len(stored)
            res = client.as_user("PUT", "/v1/AUTH_test/%s/%s" % (container, name),
                                 body=os.urandom(size))
            if res.status != 201:
                refused = res
                break
            stored[name] = size
        else:
            raise AssertionError("%d objects of %d bytes stored on an 8 MiB disk"
                                 % (limit, size))
    return stored, refused


# Down to the last page: a refusal at 1 byte means the reserve is reached.
ALL_THE_WAY = (OBJECT_SIZE, 64 * KiB, 16 * KiB, 4 * KiB, 1 * KiB, 1)


def object_files(fs) -> list[str]:
    top = os.path.join(fs, "state", "objects")
    return [name for fan in os.listdir(top) if len(fan) == 2
            for name in os.listdir(os.path.join(top, fan))]


def fill_to_the_brim(directory) -> str:
    """Take every byte left on the filesystem with a plain file; return its path."""
    path = os.path.join(directory, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        for size in (64 * KiB, 4 * KiB, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return path


def test_full_disk_answers_507_and_deletes_free_space(small_fs):
    with api(small_fs) as client:
        assert client.as_user("PUT", "/v1/AUTH_test/c").status == 201
        stored, refused = fill(client, "c", ALL_THE_WAY)
        assert refused.status == 507, refused
        assert len(stored) >= 10
        assert free_bytes(small_fs) > 0  # the reserve held

        # Nothing new is recorded below the reserve: Swift's 507 for all.
        assert client.as_user("PUT", "/v1/AUTH_test/new").status == 507
        assert client.as_user("PUT", "/v1/AUTH_test/c").status == 507
        res = client.as_user("POST", "/v1/AUTH_test/c",
                             {"X-Container-Meta-Color": "blue"})
        assert res.status == 507, res
        res = client.as_user("POST", "/v1/AUTH_test/c/o000",
                             {"X-Object-Meta-Color": "blue"})
        assert res.status == 507, res

        # Reads work; deletes work and give the space back.
        assert client.as_user("GET", "/v1/AUTH_test/c/o000").status == 200
        before = free_bytes(small_fs)
        for name in stored:
            res = client.as_user("DELETE", "/v1/AUTH_test/c/" + name)
            assert res.status == 204, (name, res)
        # The data is gone; the catalog's write-ahead logs took some of the
        # space back (they grow until a checkpoint recycles them).
        assert object_files(small_fs) == []
        assert free_bytes(small_fs) >= before + sum(stored.values()) * 0.6
        assert client.as_user("GET", "/v1/AUTH_test/c").body == b""

        # And the space is usable again.
        res = client.as_user("PUT", "/v1/AUTH_test/c/again", body=b"x" * OBJECT_SIZE)
        assert res.status == 201, res
        assert client.as_user("PUT", "/v1/AUTH_test/new").status == 201
        res = client.as_user("POST", "/v1/AUTH_test/c",
                             {"X-Container-Meta-Color": "blue"})
        assert res.status == 204, res


def test_sqlite_disk_full_answers_507_not_500(small_fs):
    # No reserve: the catalog's own writes hit the wall.
    with api(small_fs, "[catalog]\nfallocate_reserve = 0\n"
                       "[local]\nfallocate_reserve = 0\n") as client:
        assert client.as_user("PUT", "/v1/AUTH_test/c").status == 201
        stored, refused = fill(client, "c")
        assert refused.status == 507, refused
        filler = fill_to_the_brim(small_fs)
        try:
            big_meta = {"X-Container-Meta-M%02d" % i: "v" * 200 for i in range(16)}
            answers = {
                "new container": client.as_user("PUT", "/v1/AUTH_test/new"),
                "container POST": client.as_user("POST", "/v1/AUTH_test/c",
                                                 big_meta),
                "object PUT": client.as_user("PUT", "/v1/AUTH_test/c/x",
                                             body=b"x" * 10000),
            }
            statuses = {what: res.status for what, res in answers.items()}
            assert statuses == dict.fromkeys(answers, 507), answers
            # A delete may or may not find room for its tombstone: never a 500.
            res = client.as_user("DELETE", "/v1/AUTH_test/c/o000")
            assert res.status in (204, 507), res
        finally:
            os.unlink(filler)
        for name in stored:
            res = client.as_user("DELETE", "/v1/AUTH_test/c/" + name)
            assert res.status in (204, 404), (name, res)
        res = client.as_user("PUT", "/v1/AUTH_test/c/again", body=b"x" * OBJECT_SIZE)
        assert res.status == 201, res


def manage(conf, *args):
    env = dict(os.environ, STORAGED_CONCURRENCY_BACKEND="eventlet")
    return subprocess.run(
        [sys.executable, "-m", "storaged.manage.cli", "--config-file", str(conf),
         *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize("reserve", ["1%", "0"])
def test_manage_at_a_full_disk_says_one_line(small_fs, reserve):
    conf = small_fs / "storaged.conf"
    conf.write_text(
        "[DEFAULT]\nstate_path = %s\n[catalog]\nfallocate_reserve = %s\n"
        "[local]\nfallocate_reserve = %s\n" % (small_fs / "state", reserve, reserve))
    assert manage(conf, "container", "create", "AUTH_test/c").returncode == 0
    data = small_fs / "data"
    data.write_bytes(os.urandom(OBJECT_SIZE))
    proc = None
    for i in range(100):
        proc = manage(conf, "object", "put", "AUTH_test/c", "o%d" % i, str(data))
        if proc.returncode != 0:
            break
    assert proc is not None and proc.returncode != 0
    filler = fill_to_the_brim(small_fs)
    try:
        for args in (("object", "put", "AUTH_test/c", "last", str(data)),
                     ("container", "create", "AUTH_test/other"),
                     ("container", "set", "AUTH_test/c", "--meta", "a=" + "b" * 200)):
            proc = manage(conf, *args)
            assert proc.returncode == 1, (args, proc.stderr)
            assert "Traceback" not in proc.stderr, (args, proc.stderr)
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1, (args, proc.stderr)
            assert "space" in lines[0] or "full" in lines[0], (args, lines)
    finally:
        os.unlink(filler)
