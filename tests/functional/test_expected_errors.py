"""Expected conditions are one log line, never a traceback.

A coordination back end that is down is something an operator must see,
not a bug: ``storaged-heartbeat --once`` says so in one line per event
(the error text once), fails its pass, and exits 1.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests import servers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("port", ["1", "free"])
def test_heartbeat_once_with_back_end_down_is_one_line(tmp_path, port):
    if port == "free":
        port = str(servers.free_port())
    conf = tmp_path / "storaged.conf"
    conf.write_text(
        "[DEFAULT]\nstate_path = %s\nnode_id = node-a\n"
        "[coordination]\nbackend_url = redis://127.0.0.1:%s\n" % (tmp_path, port)
    )
    env = dict(os.environ, HOME=str(tmp_path))
    env.pop("STORAGED_CONCURRENCY_BACKEND", None)
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bin", "storaged-heartbeat"),
         "--config-file", str(conf), "--once"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "Traceback" not in out
    assert "heartbeat pass 1 FAILED" in out
    errors = [line for line in out.splitlines() if "ECONNREFUSED" in line]
    assert errors, out
    for line in errors:
        # the error's text once: no exception summary repeating it
        assert line.count("ECONNREFUSED") == 1, line
