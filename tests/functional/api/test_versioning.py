"""Versioned writes through a real storaged-api: the ``swift`` CLI and HTTP.

Versions are listed (a GET of the archive container) and restored (a DELETE
puts the previous one back); in history mode a DELETE leaves a marker; two
writers of one name on different worker processes lose no version.
"""

from __future__ import annotations

import threading

import pytest

from tests.functional.api.apiserver import ApiServer
from tests.functional.api.test_swiftclient import cli

swiftclient = pytest.importorskip("swiftclient")
from swiftclient import client as swift  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ApiServer(tmp_path_factory.mktemp("api"), api={"workers": "3"})
    srv.start()
    yield srv
    status = srv.stop()
    assert status == 0, srv.output()


def test_versions_listed_and_restored_with_the_cli(server, tmp_path):
    assert cli(server, "post", "archive").returncode == 0
    post = cli(server, "post", "-H", "X-Versions-Location: archive", "docs")
    assert post.returncode == 0, post.stderr
    assert "Versions-Location: archive" in cli(server, "stat", "docs").stdout
    note = tmp_path / "note.txt"
    for text in ("first\n", "second\n", "third\n"):
        note.write_text(text)
        up = cli(server, "upload", "docs", "note.txt", cwd=tmp_path)
        assert up.returncode == 0, up.stderr
    listed = cli(server, "list", "archive").stdout.splitlines()
    assert len(listed) == 2
    assert all(name.startswith("008note.txt/") for name in listed)
    assert cli(server, "download", "archive", listed[0], "-o", "-").stdout == "first\n"
    assert cli(server, "download", "archive", listed[1], "-o", "-").stdout == "second\n"
    # Each delete puts the previous version back.
    for expected in ("second\n", "first\n"):
        delete = cli(server, "delete", "docs", "note.txt")
        assert delete.returncode == 0, delete.stderr
        assert cli(server, "download", "docs", "note.txt", "-o", "-").stdout == expected
    assert cli(server, "list", "archive").stdout == ""
    assert cli(server, "delete", "docs", "note.txt").returncode == 0
    assert cli(server, "list", "docs").stdout == ""


def test_history_mode_keeps_every_version_and_a_marker(server):
    conn = server.connection()
    conn.put_container("history")
    conn.put_container("logbook", headers={"X-History-Location": "history"})
    conn.put_object("logbook", "entry", b"one", content_type="text/one")
    conn.put_object("logbook", "entry", b"two", content_type="text/two")
    conn.delete_object("logbook", "entry")
    with pytest.raises(swift.ClientException) as err:
        conn.get_object("logbook", "entry")
    assert err.value.http_status == 404
    _headers, entries = conn.get_container("history")
    assert [e["content_type"] for e in entries] == [
        "text/one", "text/two", "application/x-deleted;swift_versions_deleted=1"]
    assert [conn.get_object("history", e["name"])[1] for e in entries] == [
        b"one", b"two", b""]


def test_writers_on_several_workers_lose_no_version(server):
    conn = server.connection()
    conn.put_container("busy-archive")
    conn.put_container("busy", headers={"X-Versions-Location": "busy-archive"})
    conn.put_object("busy", "name", b"v0")
    errors = []

    def write(i):
        try:
            # One connection each: the requests spread over the workers.
            server.connection().put_object("busy", "name", b"v%d" % i)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(1, 13)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    _headers, entries = conn.get_container("busy-archive")
    bodies = {conn.get_object("busy-archive", e["name"])[1] for e in entries}
    bodies.add(conn.get_object("busy", "name")[1])
    assert len(entries) == 12
    assert bodies == {b"v%d" % i for i in range(13)}
