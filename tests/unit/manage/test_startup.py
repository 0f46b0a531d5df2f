"""What storaged-manage loads to start: nothing a command does not use.

An operator's command and every cron run pay the start-up: ``--help`` and
``status`` must not import eventlet (nor tooz and futurist, which import
it), and ``--help`` not the object store, catalog or logging machinery
either.  Checked on the modules a fresh process holds, not on a clock.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CHILD = r"""
import contextlib, io, json, sys
from storaged.manage import cli
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        status = cli.main(sys.argv[1:])
    except SystemExit as exit:
        status = exit.code
print(json.dumps({"status": status, "modules": sorted(sys.modules)}))
"""

NEVER = ("eventlet", "futurist", "tooz", "greenlet")
NOT_FOR_HELP = (*NEVER, "storaged.objectstore", "storaged.catalog", "storaged.objects",
                "storaged.kvs", "storaged.cache", "prometheus_client", "oslo_log.log",
                "oslo_service.backend._threading")


def _loaded(tmp_path, *argv):
    conf = tmp_path / "storaged.conf"
    conf.write_text(f"[DEFAULT]\nstate_path = {tmp_path}\n"
                    "concurrency_backend = eventlet\n")
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, "--config-file", str(conf), *argv],
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    return answer["status"], set(answer["modules"])


def _present(modules, names):
    return sorted(m for m in modules if any(
        m == n or m.startswith(n + ".") for n in names))


@pytest.mark.parametrize("argv", [["--help"], ["object", "put", "--help"]])
def test_help_loads_no_driver_and_no_eventlet(tmp_path, argv):
    status, modules = _loaded(tmp_path, *argv)
    assert status == 0
    assert _present(modules, NOT_FOR_HELP) == []


def test_status_runs_on_native_threads_without_eventlet(tmp_path):
    # Even with concurrency_backend = eventlet in the file: that option is
    # the daemons'; the command is not refused for it either.
    status, modules = _loaded(tmp_path, "status")
    assert status == 0
    assert _present(modules, NEVER) == []
    assert "storaged.kvs" in modules
