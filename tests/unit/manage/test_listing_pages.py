"""``--all`` listings: page after page, nothing lost or repeated.

The commands run in this process on a catalog in a temporary directory,
with pages of a few entries instead of 10,000 so that a listing spans many.
"""

from __future__ import annotations

import json

import pytest

from storaged.catalog import factory
from storaged.catalog.timestamp import Timestamp
from storaged.common import config
from storaged.manage import cli as manage
from storaged.manage import data

NAMES = sorted(
    ["plain-%02d" % i for i in range(17)]
    + ["dir-a/%02d" % i for i in range(9)]
    + ["dir-b/x/%02d" % i for i in range(5)]
    + ["z"]
)


@pytest.fixture
def run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STORAGED_CONCURRENCY_BACKEND", "threading")
    monkeypatch.setattr(data, "PAGE", 4)
    path = tmp_path / "storaged.conf"
    path.write_text("[DEFAULT]\nstate_path = %s\n" % (tmp_path / "state"))
    conf = config.prepare_service(["--config-file", str(path)], prog="test",
                                  setup_logging=False)
    catalog = factory.open_catalog(conf)
    for container in ("c", "d", "e", "f", "g"):
        catalog.container("AUTH_x", container).create()
    broker = catalog.container("AUTH_x", "c")
    for name in NAMES:
        broker.put_object(name, Timestamp.now(), 1, "text/plain", "e" * 32)
    catalog.close()

    def call(*args):
        capsys.readouterr()
        status = manage.main(["--config-file", str(path), *args, "--format", "json"])
        out = capsys.readouterr().out
        assert status == 0, out
        return json.loads(out)

    return call


def test_every_object_once(run):
    assert [e["name"] for e in run("object", "list", "AUTH_x/c", "--all")] == NAMES
    # Without --all: one page, of at most the limit.
    assert len(run("object", "list", "AUTH_x/c", "--limit", "6")) == 6


def test_limit_caps_the_whole_listing(run):
    listed = run("object", "list", "AUTH_x/c", "--all", "--limit", "10")
    assert [e["name"] for e in listed] == NAMES[:10]
    # Beyond one page of the catalog's: a limit the catalog alone refuses.
    listed = run("object", "list", "AUTH_x/c", "--all", "--limit", "20000")
    assert len(listed) == len(NAMES)


def test_prefix_marker_and_delimiter_across_pages(run):
    listed = run("object", "list", "AUTH_x/c", "--all", "--prefix", "plain-",
                 "--marker", "plain-03")
    assert [e["name"] for e in listed] == NAMES[NAMES.index("plain-04"):][:13]
    rolled = run("object", "list", "AUTH_x/c", "--all", "--delimiter", "/")
    assert [e.get("subdir", e.get("name")) for e in rolled] == (
        ["dir-a/", "dir-b/"] + ["plain-%02d" % i for i in range(17)] + ["z"])


def test_every_container_once(run):
    listed = run("container", "list", "AUTH_x", "--all")
    assert [e["name"] for e in listed] == ["c", "d", "e", "f", "g"]
