"""Smoke test of ``bench/api.py --anchor swift``: a tiny run, end to end.

The benchmark runs as a subprocess and starts both sides itself: a
storaged-api and a Swift all-in-one from Debian's packages.  Every row of
its ratio table must hold figures of both and their ratio.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests import swift_cluster
from tests.servers import skip_or_fail

ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_storaged_and_swift_figures_side_by_side():
    why = swift_cluster.missing()
    if why:
        skip_or_fail(why)
    pytest.importorskip("swiftclient")
    proc = subprocess.run(
        [sys.executable, "-m", "bench.api", "--quick", "--anchor", "swift",
         "--count-small", "20", "--count-large", "4"],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=540, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # PUT and GET, two sizes, two client counts.
    for row in _rows(proc.stdout, "| backend | op | size | clients | storaged", 8):
        assert re.search(r"\| \d+ \| \d+ \| \d+\.\d\dx \|", row), row
    # The disk's own limit beside each PUT row, and the share of it.
    for row in _rows(proc.stdout, "| backend | size | clients | storaged PUT/s", 4):
        assert re.search(r"\| \d+ \| \d+ \| \d+% \|$", row), row


def _rows(stdout, header, expected):
    """The eventlet rows of the table that starts with ``header``."""
    table = stdout[stdout.index(header):].split("\n\n")[0]
    rows = [line for line in table.splitlines()[2:] if line.startswith("| eventlet")]
    assert len(rows) == expected, stdout
    return rows
