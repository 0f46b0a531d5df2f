"""An outage is logged when it starts, every outage_log_interval, and when it ends."""

from __future__ import annotations

import logging

from storaged.coordination import Coordinator
from tests.unit.coordination.conftest import make_conf


def test_failed_attempts_are_quiet_between_reminders(tmp_path, caplog):
    coordinator = Coordinator(make_conf(tmp_path, outage_log_interval=300.0),
                              "node1:test")
    clock = [1000.0]
    coordinator._now = lambda: clock[0]  # type: ignore[method-assign]
    coordinator._last_error = "connect: refused"
    loud = []
    with caplog.at_level(logging.DEBUG, logger="storaged.coordination.coordinator"):
        for second in range(0, 901, 5):  # an attempt every 5 s for 15 min
            clock[0] = 1000.0 + second
            caplog.clear()
            coordinator._log_still_down()
            loud += [(second, r.getMessage()) for r in caplog.records
                     if r.levelno >= logging.WARNING]
    assert [s for s, _m in loud] == [0, 300, 600, 900]
    assert "Cannot reach" in loud[0][1]
    assert all("still down after" in m for _s, m in loud[1:])
    for _s, message in loud:
        assert message.count("connect: refused") == 1
