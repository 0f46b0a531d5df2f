"""Pooled connections that their server closed are dropped, not kept in CLOSE-WAIT."""

from __future__ import annotations

import logging
import time

from storaged.sync import client as client_mod
from tests.unit.sync.test_client import REALMS
from tests.unit.sync.test_client import _target
from tests.unit.sync.test_client import server  # noqa: F401 (fixture)

CLOSE_WAIT = "08"


def close_wait_sockets(server_port: int) -> int:
    """Count this machine's TCP sockets in CLOSE-WAIT towards ``server_port``."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == server_port and fields[3] == CLOSE_WAIT:
                count += 1
    return count


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_sweep_closes_what_the_server_closed(server):  # noqa: F811
    srv, handler = server
    port = srv.server_address[1]
    handler.close_after = True
    http = client_mod.HttpClient(timeout=5)
    tc = client_mod.TargetClient(http, _target(port), "k", REALMS)
    assert tc.delete("o", "1700000000.00000").status == 200
    # The answer said nothing of closing: the connection went back to the pool.
    assert http.idle_count() == 1
    assert wait_for(lambda: close_wait_sockets(port) == 1)
    assert http.sweep() == 1
    assert http.idle_count() == 0
    assert close_wait_sockets(port) == 0


def test_sweep_keeps_live_connections(server):  # noqa: F811
    srv, _handler = server
    http = client_mod.HttpClient(timeout=5)
    tc = client_mod.TargetClient(http, _target(srv.server_address[1]), "k", REALMS)
    tc.delete("o", "1700000000.00000")
    assert http.sweep() == 0
    assert http.idle_count() == 1
    tc.delete("o", "1700000000.00000")
    assert http.connections_opened == 1


def test_a_closed_pooled_connection_is_not_taken(server, caplog):  # noqa: F811
    caplog.set_level(logging.DEBUG, logger="storaged.sync.client")
    srv, handler = server
    port = srv.server_address[1]
    handler.close_after = True
    http = client_mod.HttpClient(timeout=5)
    tc = client_mod.TargetClient(http, _target(port), "k", REALMS)
    tc.delete("o", "1700000000.00000")
    assert wait_for(lambda: close_wait_sockets(port) == 1)
    tc.delete("o", "1700000000.00000")
    # A fresh connection at once, not a failed send and a retry.
    assert http.connections_opened == 2
    assert len(handler.seen) == 2
    assert "sending again" not in caplog.text


def test_a_pass_keeps_no_connection_for_the_next(source, target, make_engine):
    from storaged.common.daemon import run_pass
    from storaged.sync import daemon as sync_daemon
    from tests.unit.sync.conftest import put

    put(source, "p")
    engine = make_engine()
    stats = run_pass(sync_daemon.SyncWorker(engine, None, None))
    assert stats.ok, stats.errors
    assert engine.http.connections_opened >= 1
    assert engine.http.idle_count() == 0
