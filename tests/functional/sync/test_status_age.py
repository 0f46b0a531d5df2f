"""``sync status`` tells a worker that stopped writing from a healthy one.

A real storaged-sync daemon syncs a container, then is SIGKILLed: its
progress record stays in the state store, last written when it died.  Once
the record is older than the daemon's interval allows (plus the margin
``storaged-manage status`` gives a late daemon), ``sync status`` shows it
``late`` and exits 1.
"""

from __future__ import annotations

import json
import time

import pytest

from storaged import concurrency
from storaged.common import status
from tests.functional.api.apiserver import ApiServer
from tests.functional.sync.cluster import SYNC_KEY
from tests.functional.sync.cluster import SyncDaemon
from tests.functional.sync.cluster import wait_for
from tests.functional.sync.cluster import write_realms

pytest.importorskip("swiftclient")

INTERVAL = 1.0


def _records(daemon):
    proc = daemon.manage("sync", "status", "--format", "json")
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc, json.loads(proc.stdout)["containers"]


@pytest.mark.parametrize("backend", concurrency.BACKENDS)
def test_a_killed_workers_record_turns_late(tmp_path, backend):
    for name in ("target", "source"):
        (tmp_path / name).mkdir()
    target = ApiServer(tmp_path / "target").start()
    source = ApiServer(tmp_path / "source")
    write_realms(source.realms, target)
    source.start()
    daemon = SyncDaemon(source, backend=backend, interval=INTERVAL)
    try:
        target.connection().put_container(
            "c", headers={"X-Container-Sync-Key": SYNC_KEY})
        src = source.connection()
        src.put_container("c", headers={
            "X-Container-Sync-To": "//us/dst/AUTH_test/c",
            "X-Container-Sync-Key": SYNC_KEY})
        src.put_object("c", "o", b"data")
        daemon.start()

        def synced():
            proc, recs = _records(daemon)
            return proc.returncode == 0 and recs and recs[0].get("last_success_at")

        wait_for(synced, timeout=60, what=daemon.output)
        proc, (rec,) = _records(daemon)
        assert rec["health"] == "ok"
        daemon.kill()
        # The writer is gone; rows keep arriving and nobody pushes them.
        for i in range(20):
            src.put_object("c", "after-%d" % i, b"x")
        killed_at = time.time()
        _proc, (rec,) = _records(daemon)
        written = rec["updated_at"]
        assert written <= killed_at

        # Late no sooner than the margin allows, and soon after it.
        late_from = rec["due_at"] + max(status.LATE_MARGIN,
                                        0.5 * (rec["due_at"] - written))
        assert late_from - killed_at < 120
        time.sleep(max(0.0, late_from - time.time() + 2.0))
        proc, (rec,) = _records(daemon)
        assert rec["health"] == "late", rec
        assert rec["rows_behind"] >= 20
        assert proc.returncode == 1
        human = daemon.manage("sync", "status")
        assert human.returncode == 1
        assert "late" in human.stdout
        assert "AUTH_test/c" in human.stdout
    finally:
        daemon.kill()
        source.kill()
        target.kill()
