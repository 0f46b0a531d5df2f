"""storaged-manage container|object|store, run as an operator runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, STORAGED_CONCURRENCY_BACKEND="eventlet")


@pytest.fixture
def manage(tmp_path):
    conf = tmp_path / "storaged.conf"
    conf.write_text("[DEFAULT]\nstate_path = %s\n" % (tmp_path / "state"))

    def run(*args, stdin=None, check=None):
        proc = subprocess.run(
            [sys.executable, "-m", "storaged.manage.cli", "--config-file", str(conf),
             *args],
            cwd=ROOT, env=ENV, input=stdin, capture_output=True, timeout=120,
        )
        if check is not None:
            assert proc.returncode == check, proc.stderr.decode()
        return proc

    run("container", "create", "AUTH_demo/photos", "--meta", "color=blue", check=0)
    return run


def test_put_get_roundtrip_file_and_stdin(manage, tmp_path):
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(3 * 1024 * 1024 + 7))
    out = manage("object", "put", "AUTH_demo/photos", "cat.jpg", str(src),
                 "--format", "json", check=0)
    put = json.loads(out.stdout)
    assert put["bytes"] == src.stat().st_size
    assert put["content_type"] == "image/jpeg"
    assert put["applied"] is True
    manage("object", "put", "AUTH_demo/photos", "docs/readme.txt",
           stdin=b"hello\n", check=0)
    dst = tmp_path / "copy.bin"
    manage("object", "get", "AUTH_demo/photos", "cat.jpg", "-o", str(dst), check=0)
    assert dst.read_bytes() == src.read_bytes()
    got = manage("object", "get", "AUTH_demo/photos", "docs/readme.txt", check=0)
    assert got.stdout == b"hello\n"
    listing = json.loads(manage("object", "list", "AUTH_demo/photos", "--delimiter",
                                "/", "--format", "json", check=0).stdout)
    assert [e.get("name", e.get("subdir")) for e in listing] == ["cat.jpg", "docs/"]
    head = json.loads(manage("object", "head", "AUTH_demo/photos", "cat.jpg",
                             "--format", "json", check=0).stdout)
    assert head["hash"] == put["hash"]
    show = json.loads(manage("container", "show", "AUTH_demo/photos", "--format",
                             "json", check=0).stdout)
    assert show["object_count"] == 2
    assert show["metadata"]["X-Container-Meta-Color"] == "blue"
    containers = json.loads(manage("container", "list", "AUTH_demo", "--format",
                                   "json", check=0).stdout)
    assert [c["name"] for c in containers] == ["photos"]


def test_sync_key_never_shown(manage):
    manage("container", "set", "AUTH_demo/photos", "--sync-to",
           "http://127.0.0.1/v1/AUTH_b/photos", "--sync-key", "s3cr3t-key",
           check=0)
    for fmt in ("human", "json"):
        out = manage("container", "show", "AUTH_demo/photos", "--format", fmt,
                     check=0)
        assert b"s3cr3t-key" not in out.stdout + out.stderr
        assert b"http://127.0.0.1/v1/AUTH_b/photos" in out.stdout


def test_delete_then_missing(manage):
    manage("object", "put", "AUTH_demo/photos", "o", stdin=b"x", check=0)
    manage("object", "delete", "AUTH_demo/photos", "o", check=0)
    proc = manage("object", "head", "AUTH_demo/photos", "o", check=1)
    assert proc.stderr == b"storaged-manage: Object not found: AUTH_demo/photos/o\n"
    proc = manage("container", "delete", "AUTH_demo/photos", check=0)
    proc = manage("container", "show", "AUTH_demo/photos", check=1)
    assert b"Container not found" in proc.stderr


# (arguments after "object put" or "container create", expected message part)
HOSTILE = [
    (["object", "put", "AUTH_demo/photos", ""], b"must not be empty"),
    (["object", "put", "AUTH_demo/photos", "."], b"path segment"),
    (["object", "put", "AUTH_demo/photos", ".."], b"path segment"),
    (["object", "put", "AUTH_demo/photos", "../../etc/passwd"], b"path segment"),
    (["object", "put", "AUTH_demo/photos", "a/./b"], b"path segment"),
    (["object", "put", "AUTH_demo/photos", "o" * 1025], b"the limit is 1024"),
    (["object", "put", "AUTH_demo/photos", "a\nb"], b"control character"),
    (["object", "put", "AUTH_demo/photos", "a\x1bb"], b"control character"),
    (["object", "put", "AUTH_demo/photos", os.fsdecode(b"bad\xff")],
     b"not valid UTF-8"),
    (["container", "create", "AUTH_demo/.."], b"'..' is not allowed"),
    (["container", "create", "AUTH_demo/."], b"'.' is not allowed"),
    (["container", "create", "../AUTH_demo"], b"Invalid account name: '..'"),
    (["container", "create", "AUTH_demo/a/b"], b"expected ACCOUNT/CONTAINER"),
    (["container", "create", "AUTH_demo/" + "c" * 257], b"the limit is 256"),
    (["container", "create", "/photos"], b"expected ACCOUNT/CONTAINER"),
    (["container", "create", "AUTH_demo/" + os.fsdecode(b"\xc0\xaf")],
     b"not valid UTF-8"),
    (["object", "get", "AUTH_demo/..", "x"], b"'..' is not allowed"),
]


@pytest.mark.parametrize(("args", "message"), HOSTILE,
                         ids=[repr(a[-1])[:30] for a, _ in HOSTILE])
def test_hostile_names_refused_with_one_line(manage, tmp_path, args, message):
    if args[:2] == ["object", "put"]:
        args = [*args, "-"]
    proc = manage(*args, stdin=b"data", check=1)
    assert proc.stderr.startswith(b"storaged-manage: ")
    assert proc.stderr.count(b"\n") == 1, proc.stderr
    assert message in proc.stderr, proc.stderr
    scrub = manage("store", "scrub", "--format", "json", check=0)
    assert json.loads(scrub.stdout)[0]["checked"] == 0


def test_corruption_detected_by_get_and_scrub(manage, tmp_path):
    manage("object", "put", "AUTH_demo/photos", "o", stdin=os.urandom(200_000),
           check=0)
    objects = tmp_path / "state" / "objects"
    (path,) = [p for p in objects.rglob("*") if p.is_file() and ".tmp" not in p.parts
               and p.stat().st_size == 200_000]
    data = bytearray(path.read_bytes())
    data[1234] ^= 0x01
    path.write_bytes(bytes(data))
    dst = tmp_path / "out"
    proc = manage("object", "get", "AUTH_demo/photos", "o", "-o", str(dst), check=1)
    assert b"corrupt" in proc.stderr
    assert not dst.exists()  # nothing half-written under the name
    scrub = manage("store", "scrub", check=1)
    assert b"1 corrupt" in scrub.stdout
    manage("store", "verify", check=0)


def test_usage_errors(manage):
    proc = manage("container", "set", "AUTH_demo/photos", check=1)
    assert b"nothing to set" in proc.stderr
    proc = manage("object", "put", "AUTH_demo/photos", "o", "/nonexistent/file",
                  check=1)
    assert b"cannot read /nonexistent/file" in proc.stderr
    proc = manage("container", "create", "AUTH_demo/x", "--meta", "novalue", check=1)
    assert b"expected --meta KEY=VALUE" in proc.stderr


def test_delete_that_a_newer_write_outlives_fails(manage, tmp_path):
    """As the API's 409: the object stays, and the command says so."""
    import time

    from storaged.catalog import Catalog
    from storaged.catalog import Timestamp

    manage("object", "put", "AUTH_demo/photos", "later.txt", stdin=b"x", check=0)
    # A sync peer's write from the future, straight into the catalog row.
    catalog = Catalog(str(tmp_path / "state" / "catalog"))
    try:
        broker = catalog.container("AUTH_demo", "photos")
        future = Timestamp(time.time() + 3600)
        assert broker.update_object_metadata("later.txt", future,
                                             {"X-Object-Meta-A": "1"})
        broker.close()
    finally:
        catalog.close()
    proc = manage("object", "delete", "AUTH_demo/photos", "later.txt")
    assert proc.returncode != 0
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "not deleted" in lines[0], lines
    manage("object", "head", "AUTH_demo/photos", "later.txt", check=0)
