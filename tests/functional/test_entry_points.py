"""Every command refuses a bad configuration file the same way.

Each entry point runs as a real process (the ``bin/`` shims, which are the
console scripts' mains) with the default concurrency backend: one line on
stderr naming the file and the problem, exit status 2, no traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: (shim, extra arguments a command needs to get as far as its configuration)
COMMANDS = [
    ("storaged-api", []),
    ("storaged-sync", ["--once"]),
    ("storaged-cache", ["--once"]),
    ("storaged-cache-prune", []),
    ("storaged-cache-clean", []),
    ("storaged-heartbeat", ["--once"]),
    ("storaged-expirer", ["--once"]),
    ("storaged-manage", ["config", "check"]),
]

#: name -> (file content or None for no file, words the one line must hold)
BAD_FILES = {
    "malformed": (b"[DEFAULT\nnode_id = a\n", "malformed file: line 1"),
    "not-utf8": (b"[DEFAULT]\nnode_id = caf\xe9\xff\n", "line 2: not valid UTF-8"),
    "missing": (None, "configuration file not found"),
}


def _env(tmp_path):
    env = dict(os.environ, HOME=str(tmp_path))
    # The default backend (eventlet), as an operator's daemon runs.
    env.pop("STORAGED_CONCURRENCY_BACKEND", None)
    return env


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
@pytest.mark.parametrize("prog,extra", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_bad_config_file_is_one_line_exit_2(tmp_path, prog, extra, kind):
    content, problem = BAD_FILES[kind]
    path = tmp_path / ("%s.conf" % kind)
    if content is not None:
        path.write_bytes(content)
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bin", prog),
         "--config-file", str(path), *extra],
        cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("%s: %s: " % (prog, path)), lines[0]
    assert problem in lines[0], lines[0]
    assert proc.stdout == ""
