"""storaged-manage checks what it is given as the API does, in one line.

Each case runs the real command: a value the API would refuse is refused
with one line on stderr and a non-zero exit status, never a traceback and
never stored.  Metadata in any script comes back exactly as it was given.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, STORAGED_CONCURRENCY_BACKEND="eventlet")
REALMS = "[realm1]\nkey = realm-secret\ncluster_c1 = http://127.0.0.1:8080/v1/\n"


def run(conf, *args):
    return subprocess.run(
        [sys.executable, "-m", "storaged.manage.cli", "--config-file", str(conf),
         *args],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60,
    )


def one_line_error(proc, *words):
    assert proc.returncode not in (0, None), proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("storaged-manage: "), lines[0]
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def conf(tmp_path):
    realms = tmp_path / "realms.conf"
    realms.write_text(REALMS)
    path = tmp_path / "storaged.conf"
    path.write_text(
        "[DEFAULT]\nstate_path = %s\nnode_id = node-a\n"
        "[sync]\nallowed_sync_hosts = 127.0.0.1, peer.example.com\n"
        "realms_conf = %s\n" % (tmp_path / "state", realms)
    )
    made = run(path, "container", "create", "A/C")
    assert made.returncode == 0, made.stderr
    return path


@pytest.mark.parametrize("args,words", [
    (["object", "list", "A/C", "--limit", "-5"], ["--limit", "-5", "10000"]),
    (["object", "list", "A/C", "--limit", "10001"], ["--limit", "10001", "10000"]),
    (["container", "list", "A", "--limit", "-1"], ["--limit", "-1"]),
    (["cache", "list", "--limit", "-1"], ["--limit", "-1"]),
])
def test_bad_numbers_are_one_line(conf, args, words):
    one_line_error(run(conf, *args), *words)


def test_good_limits_still_work(conf):
    for args in (["object", "list", "A/C", "--limit", "0"],
                 ["object", "list", "A/C", "--limit", "10000"],
                 ["container", "list", "A", "--limit", "1"],
                 ["cache", "list", "--limit", "0"]):
        proc = run(conf, *args)
        assert proc.returncode == 0, (args, proc.stderr)


@pytest.mark.parametrize("value,words", [
    ("file:///etc/passwd", ["Invalid scheme 'file'"]),
    ("https://evil.example.com/v1/A/C", ["Invalid host 'evil.example.com'"]),
    ("http://peer.example.com", ["Path required"]),
    ("//nosuch/c1/A/C", ["No realm key for 'nosuch'"]),
    ("//realm1/nosuch/A/C", ["No cluster endpoint"]),
    ("//realm1/c1/A", ["Invalid X-Container-Sync-To format"]),
])
def test_sync_to_the_api_refuses_is_refused(conf, value, words):
    one_line_error(run(conf, "container", "set", "A/C", "--sync-to", value,
                       "--sync-key", "k"), *words)
    shown = json.loads(run(conf, "container", "show", "A/C", "--format",
                           "json").stdout)
    assert "X-Container-Sync-To" not in shown["metadata"]


@pytest.mark.parametrize("value,stored", [
    ("//realm1/c1/B/D/", "//realm1/c1/B/D"),
    ("https://peer.example.com/v1/AUTH_b/c", "https://peer.example.com/v1/AUTH_b/c"),
    ("", None),
])
def test_sync_to_the_api_accepts_is_accepted(conf, value, stored):
    proc = run(conf, "container", "set", "A/C", "--sync-to", value)
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(run(conf, "container", "show", "A/C", "--format",
                           "json").stdout)
    assert shown["metadata"].get("X-Container-Sync-To") == stored


VALUES = {
    "Latin": "värde",
    "Cjk": "名前",
    "Emoji": "😀",
    "Astral": "𝄞 and 𠜎",
    "Mixed": " a=b, ü 名 😀 ",
}


def test_non_ascii_metadata_round_trips(conf, tmp_path):
    data = tmp_path / "data.bin"
    data.write_bytes(b"hello")
    meta = [arg for key, value in VALUES.items()
            for arg in ("--meta", "%s=%s" % (key, value))]
    put = run(conf, "object", "put", "A/C", "obj", str(data), *meta)
    assert put.returncode == 0, put.stderr
    changed = run(conf, "container", "set", "A/C", *meta)
    assert changed.returncode == 0, changed.stderr

    for args, prefix in ((["object", "head", "A/C", "obj"], "X-Object-Meta-"),
                         (["container", "show", "A/C"], "X-Container-Meta-")):
        js = run(conf, *args, "--format", "json")
        assert js.returncode == 0, js.stderr
        got = json.loads(js.stdout)["metadata"]
        for key, value in VALUES.items():
            assert got[prefix + key] == value
        human = run(conf, *args)
        assert human.returncode == 0, human.stderr
        for key, value in VALUES.items():
            assert "%s%s: %s\n" % (prefix, key, value) in human.stdout


@pytest.mark.parametrize("where,words", [
    ("missing-dir/out", ["cannot write", "No such file or directory"]),
    (".", ["cannot write", "is a directory"]),
])
def test_get_to_a_place_that_cannot_be_written_is_one_line(conf, tmp_path,
                                                          where, words):
    data = tmp_path / "data.bin"
    data.write_bytes(b"hello")
    assert run(conf, "object", "put", "A/C", "obj", str(data)).returncode == 0
    one_line_error(run(conf, "object", "get", "A/C", "obj", "-o",
                       str(tmp_path / where)), *words)


@pytest.mark.parametrize("target", ["A", "A/C/x", "/C"])
def test_sync_status_wants_account_and_container(conf, target):
    one_line_error(run(conf, "sync", "status", "--container", target),
                   "expected ACCOUNT/CONTAINER")


def test_object_metadata_that_is_not_utf8_prints_its_bytes(conf, tmp_path):
    """Kept as Swift keeps it, and shown as it came (no traceback)."""
    data = tmp_path / "data.bin"
    data.write_bytes(b"hello")
    env = dict(ENV, LC_ALL="C.UTF-8", PYTHONIOENCODING="utf-8")
    base = [sys.executable, "-m", "storaged.manage.cli", "--config-file", str(conf)]
    put = subprocess.run([*base, "object", "put", "A/C", "raw", str(data),
                                 "--meta", os.fsencode("raw=\udcff\udcfeok")],
                         cwd=ROOT, env=env, capture_output=True, timeout=60)
    assert put.returncode == 0, put.stderr
    human = subprocess.run([*base, "object", "head", "A/C", "raw"], cwd=ROOT,
                           env=env, capture_output=True, timeout=60)
    assert human.returncode == 0, human.stderr
    assert b"X-Object-Meta-Raw: \xff\xfeok\n" in human.stdout
    js = subprocess.run([*base, "object", "head", "A/C", "raw", "--format", "json"],
                        cwd=ROOT, env=env, capture_output=True, timeout=60)
    assert js.returncode == 0, js.stderr
    assert json.loads(js.stdout)["metadata"]["X-Object-Meta-Raw"] == "\udcff\udcfeok"
