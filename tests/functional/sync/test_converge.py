"""``storaged-sync`` pushing a container to another ``storaged-api`` over HTTP.

Both target forms: the realm form (``//us/dst/AUTH_test/dst``, requests
signed with ``X-Container-Sync-Auth``) and the legacy full URL
(``X-Container-Sync-Key``).  Every kind of change converges: new objects,
overwrites, metadata changes (a POST on the source), deletes, and a delete
followed by a re-create.  What lands on the target keeps the source's
timestamp, etag, content type and user metadata.
"""

from __future__ import annotations

import pytest

from storaged import concurrency
from tests.functional.api.apiserver import ApiServer
from tests.functional.sync.cluster import SYNC_KEY
from tests.functional.sync.cluster import SyncDaemon
from tests.functional.sync.cluster import md5
from tests.functional.sync.cluster import snapshot
from tests.functional.sync.cluster import wait_for
from tests.functional.sync.cluster import write_realms

pytest.importorskip("swiftclient")


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    target = ApiServer(tmp_path_factory.mktemp("target")).start()
    source = ApiServer(tmp_path_factory.mktemp("source"))
    write_realms(source.realms, target)
    source.start()
    yield source, target
    source.kill()
    target.kill()


def _sync_to(form: str, target: ApiServer, container: str) -> str:
    if form == "realm":
        return "//us/dst/AUTH_test/%s" % container
    return "%s/v1/AUTH_test/%s" % (target.url, container)


@pytest.mark.parametrize("form", ["realm", "legacy"])
def test_every_change_converges(servers, form):
    source, target = servers
    name = "conv-" + form
    src, dst = source.connection(), target.connection()
    dst.put_container(name, headers={"X-Container-Sync-Key": SYNC_KEY})
    src.put_container(name, headers={
        "X-Container-Sync-To": _sync_to(form, target, name),
        "X-Container-Sync-Key": SYNC_KEY})
    # Both concurrency backends: eventlet for one form, threading for the other.
    daemon = SyncDaemon(source, name="d-" + form,
                        backend="eventlet" if form == "realm" else "threading")

    # New objects, with odd names, content types and user metadata.
    names = ["plain", "sub dir/ü.txt", "pct%2Fliteral", "a+b=c&d", "x" * 200]
    for i, obj in enumerate(names):
        src.put_object(name, obj, b"data %d" % i, content_type="text/x-%d" % i,
                       headers={"X-Object-Meta-Color": "c%d" % i})
    result = daemon.once()
    assert result.returncode == 0, daemon.output()
    want = snapshot(source, name, with_meta=True)
    assert len(want) == len(names)
    assert snapshot(target, name, with_meta=True) == want
    for i, obj in enumerate(names):
        _h, body = dst.get_object(name, obj)
        assert body == b"data %d" % i

    # Overwrite, metadata change, delete, delete-then-recreate.
    src.put_object(name, "plain", b"overwritten")
    src.post_object(name, "sub dir/ü.txt", headers={"X-Object-Meta-Color": "red",
                                                    "X-Object-Meta-New": "yes"})
    src.delete_object(name, "pct%2Fliteral")
    src.delete_object(name, "a+b=c&d")
    src.put_object(name, "a+b=c&d", b"recreated")
    result = daemon.once()
    assert result.returncode == 0, daemon.output()
    want = snapshot(source, name, with_meta=True)
    assert "pct%2Fliteral" not in want
    got = snapshot(target, name, with_meta=True)
    assert got == want
    assert got["plain"][0].strip('"') == md5(b"overwritten")
    assert ("x-object-meta-color", "red") in got["sub dir/ü.txt"][3]
    assert dst.get_object(name, "a+b=c&d")[1] == b"recreated"

    # A second pass with nothing new sends no PUT and fails nothing.
    result = daemon.once()
    assert result.returncode == 0, daemon.output()
    assert snapshot(target, name, with_meta=True) == want
    log = open(daemon.log).read()
    last = [line for line in log.splitlines()
            if "Container sync report: AUTH_test/%s" % name in line][-1]
    assert " puts=0 " in last and " failures=0 " in last


@pytest.mark.parametrize("backend", concurrency.BACKENDS)
def test_daemon_follows_changes_and_reports_progress(servers, backend):
    source, target = servers
    name = "live-" + backend
    src, dst = source.connection(), target.connection()
    dst.put_container(name, headers={"X-Container-Sync-Key": SYNC_KEY})
    src.put_container(name, headers={
        "X-Container-Sync-To": "//us/dst/AUTH_test/" + name,
        "X-Container-Sync-Key": SYNC_KEY})
    daemon = SyncDaemon(source, name="d-" + name, backend=backend).start()
    try:
        for i in range(20):
            src.put_object(name, "o%02d" % i, b"v%d" % i)
        wait_for(lambda: len(snapshot(target, name)) == 20,
                 what=lambda: "20 objects on the target\n" + daemon.output())
        for i in range(10):
            src.delete_object(name, "o%02d" % i)
        wait_for(lambda: snapshot(target, name) == snapshot(source, name),
                 what=lambda: "deletes on the target\n" + daemon.output())
        wait_for(lambda: '"rows_behind": 0' in daemon.manage(
            "sync", "status", "--format", "json").stdout, what="status caught up")
        result = daemon.manage("sync", "status")
        assert result.returncode == 0, result.stderr
        assert "AUTH_test/" + name in result.stdout
        metrics = open(daemon.sync["metrics_file"]).read()
        assert ('storaged_sync_rows_behind{account="AUTH_test",container="%s"'
                % name in metrics)
        assert SYNC_KEY not in open(daemon.log).read()
    finally:
        assert daemon.stop() == 0, daemon.output()
