"""A coordination outage reads as three kinds of lines in a sync daemon's log.

A real storaged-sync daemon coordinates through a Redis of its own; the
Redis is killed for OUTAGE seconds and started again on the same port.
While it is down the daemon keeps syncing (each worker pushes every row),
and its log says: one line when the back end is lost (its error text once),
one "still down" reminder every ``[coordination] outage_log_interval``, one
line when it is back -- not a warning per container and pass.
"""

from __future__ import annotations

import os
import re
import time

import pytest

from storaged import concurrency
from tests.functional.api.apiserver import ApiServer
from tests.functional.sync.cluster import SYNC_KEY
from tests.functional.sync.cluster import SyncDaemon
from tests.functional.sync.cluster import wait_for
from tests.functional.sync.cluster import write_realms
from tests.servers import RedisServer
from tests.servers import ServerMissing
from tests.servers import skip_or_fail

pytest.importorskip("swiftclient")

OUTAGE = 25.0
REMIND = 10.0
CONTAINERS = ("c1", "c2", "c3")
LEVEL = re.compile(r" \d+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


def _size(path):
    return os.path.getsize(path) if os.path.exists(path) else 0


def _lines(path, start, end=None):
    with open(path, errors="replace") as f:
        f.seek(start)
        text = f.read() if end is None else f.read(end - start)
    return [line for line in text.splitlines() if LEVEL.search(line)]


def _loud(lines):
    return [line for line in lines
            if LEVEL.search(line).group(1) in ("WARNING", "ERROR", "CRITICAL")]


@pytest.mark.slow
@pytest.mark.parametrize("backend", concurrency.BACKENDS)
def test_outage_is_three_kinds_of_line(tmp_path, backend):
    redis = RedisServer()
    try:
        redis.start()
    except ServerMissing as err:
        skip_or_fail(str(err))
    for name in ("target", "source"):
        (tmp_path / name).mkdir()
    target = ApiServer(tmp_path / "target").start()
    source = ApiServer(tmp_path / "source")
    write_realms(source.realms, target)
    source.start()
    daemon = SyncDaemon(source, backend=backend, interval=0.5)
    with open(daemon.conf) as f:
        text = f.read()
    text = re.sub(r"backend_url = .*", "backend_url = %s\nmax_reconnect_backoff = 1"
                  "\noutage_log_interval = %s" % (redis.url, REMIND), text)
    with open(daemon.conf, "w") as f:
        f.write(text)
    try:
        src = source.connection()
        for name in CONTAINERS:
            target.connection().put_container(
                name, headers={"X-Container-Sync-Key": SYNC_KEY})
            src.put_container(name, headers={
                "X-Container-Sync-To": "//us/dst/AUTH_test/%s" % name,
                "X-Container-Sync-Key": SYNC_KEY})
            src.put_object(name, "before", b"x")
        daemon.start()
        wait_for(lambda: "Joined sync group" in daemon.output(), timeout=60,
                 what=daemon.output)
        wait_for(lambda: len(re.findall(r"sync pass \d+ ok", daemon.output())) >= 2,
                 timeout=60, what=daemon.output)

        start = _size(daemon.log)
        redis.kill()
        time.sleep(OUTAGE)
        passes_during = len(re.findall(r"sync pass \d+", "\n".join(
            _lines(daemon.log, start))))
        for name in CONTAINERS:  # synced meanwhile, by this worker alone
            src.put_object(name, "during", b"y")
        middle = _size(daemon.log)
        redis.start()
        wait_for(lambda: "Reconnected" in "\n".join(_lines(daemon.log, middle)),
                 timeout=60, what=daemon.output)
        time.sleep(3.0)  # a few passes after the return
        end = _size(daemon.log)

        outage = _lines(daemon.log, start, middle)
        after = _lines(daemon.log, middle, end)
        assert passes_during >= 3, outage  # the daemon kept working (50 nominal)
        loud = _loud(outage)
        lost = [line for line in loud if "Lost the coordination back end" in line]
        still = [line for line in loud if "still down" in line]
        assert len(lost) == 1, loud
        # one reminder every REMIND seconds, give or take a reconnection delay
        assert 1 <= len(still) <= OUTAGE // REMIND + 1, loud
        assert len(loud) == len(lost) + len(still), loud
        for line in loud:
            assert line.count("ECONNREFUSED") <= 1, line
            assert "Error:" not in line and "Unavailable:" not in line, line
        back = [line for line in after if "Reconnected" in line]
        assert len(back) == 1, after
        assert "down for" in back[0], back[0]
        assert not _loud(after), after
    finally:
        daemon.kill()
        source.kill()
        target.kill()
        redis.stop()
