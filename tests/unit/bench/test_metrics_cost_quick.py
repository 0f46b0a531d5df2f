"""Smoke test of ``bench/metrics_cost.py``: a short run prints every figure."""

from __future__ import annotations

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
)


def test_prints_the_cost_per_request_and_per_scrape():
    proc = subprocess.run(
        [sys.executable, "-m", "bench.metrics_cost", "--requests", "2000",
         "--reps", "1"],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True,
        text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for label in ("in memory", "multiprocess", "one scrape", "cost of turning"):
        assert re.search(label + r".* \d+\.\d\d (us|ms) \(\d+\.\d\d%", proc.stdout), (
            label, proc.stdout)
