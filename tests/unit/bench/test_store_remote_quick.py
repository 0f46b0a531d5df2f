"""Smoke test of ``bench/store_remote.py``: its ``--quick`` run, end to end.

The benchmark runs as a subprocess (it sets up its own concurrency backend,
botocore's environment and glance_store's global configuration), against
the Swift cluster it starts, and writes its figures with ``--json``.  The
storaged and bare-client columns must hold a figure on every row; the
glance_store column is checked only where glance_store is installed (it is
a benchmark-only dependency).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests import swift_cluster
from tests.servers import skip_or_fail

ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
)
KINDS = ("swift", "s3")
#: the rows of a quick run (12 MiB large objects, 64 KiB small ones)
ROWS = (
    "add 12 MiB",
    "read 12 MiB",
    "read 12 MiB, not verified",
    "add 64 KiB",
    "read 64 KiB",
    "read 64 KiB, not verified",
)

# about a minute and a half on an idle two-core machine; much more on a
# loaded one, where the Swift cluster alone may take a minute to start
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    why = swift_cluster.missing()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"{why} (and CI is set)", pytrace=False)
        skip_or_fail(why)
    out = tmp_path_factory.mktemp("bench-store-remote") / "figures.json"
    env = dict(os.environ, PYTHONPATH=ROOT)
    # the benchmark picks its own backend (threading), as bench.store does
    env.pop("STORAGED_CONCURRENCY_BACKEND", None)
    proc = subprocess.run(
        [sys.executable, "-m", "bench.store_remote", "--quick", "--json", str(out)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(out) as f:
        return json.load(f), proc.stdout


def _values(figures: dict[str, Any], kind: str, row: str, who: str) -> list[float]:
    return figures["kinds"][kind]["rows"].get(row, {}).get(who, [])


@pytest.mark.parametrize("kind", KINDS)
def test_storaged_and_bare_figures_on_every_row(quick_run, kind):
    figures, stdout = quick_run
    assert sorted(figures["kinds"][kind]["rows"]) == sorted(ROWS)
    for row in ROWS:
        ours = _values(figures, kind, row, "storaged")
        assert len(ours) == 1 and ours[0] > 0, (kind, row, ours)
        if not row.endswith("not verified"):
            bare = _values(figures, kind, row, "bare")
            assert len(bare) == 1 and bare[0] > 0, (kind, row, bare)
    # the printed table has the ratio columns
    assert "sd/glance >= 1" in stdout and "bare/sd <= 1.3" in stdout
    assert f"{kind} (" in stdout


@pytest.mark.parametrize("kind", KINDS)
def test_glance_store_figures_on_every_row(quick_run, kind):
    if importlib.util.find_spec("glance_store") is None:
        pytest.skip("glance_store is not installed (a benchmark-only dependency)")
    figures, _stdout = quick_run
    assert figures["anchor"].startswith("glance_store 5.7"), figures["anchor"]
    for row in ROWS:
        if row.endswith("not verified"):
            continue
        theirs = _values(figures, kind, row, "glance_store")
        assert len(theirs) == 1 and theirs[0] > 0, (kind, row, theirs)
