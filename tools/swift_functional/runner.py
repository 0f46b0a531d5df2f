"""Running ``python -m pytest test/functional`` in the unpacked sdist.

Swift's own tox runs its functional tests with stestr, whose discovery
takes every ``test*.py``: pytest is told the same (``python_files``), or it
would leave out ``tests.py``, the largest file of the suite. Swift's
``tox.ini`` is pytest's configuration file (its ``[pytest]`` section), so
storaged's own pytest settings never apply. The report is JUnit XML, with
each test's node id recorded by :mod:`.pytest_plugin` (read by :mod:`.junit`).
"""

from __future__ import annotations

from collections.abc import Sequence
import os
import subprocess
import sys

#: What runs when no tests are named.
DEFAULT_SELECTION = ("test/functional",)
# Where ``tools`` is importable from, for the plugin.
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def pytest_command(junit_xml: str, selection: Sequence[str] = ()) -> list[str]:
    """Return the command that runs the suite (from the sdist's root)."""
    return [
        sys.executable, "-m", "pytest",
        "-c", "tox.ini", "--rootdir", ".",
        "-p", "tools.swift_functional.pytest_plugin",
        "-p", "no:cacheprovider",
        "-o", "python_files=test*.py",
        "--junitxml", junit_xml,
        # Swift's addopts say --verbose and -r a (a line per test and per
        # skip); the output goes to a log, and the report keeps tracebacks.
        "-q", "-rN", "--tb=short",
        *(selection or DEFAULT_SELECTION),
    ]


def last_line(path: str) -> str:
    """Return the last non-blank line of the file at ``path`` (pytest's summary)."""
    with open(path, errors="replace") as f:
        lines = [line.strip() for line in f if line.strip()]
    return lines[-1] if lines else ""


def run(
    suite_root: str,
    test_conf: str,
    junit_xml: str,
    log: str,
    selection: Sequence[str] = (),
    timeout: float = 1800.0,
) -> int:
    """Run the suite against the server ``test_conf`` names; return pytest's status.

    :param suite_root: the unpacked sdist (``test/functional`` inside).
    :param log: where pytest's output goes (its tracebacks are also in the
        JUnit XML report).
    :param selection: test ids or paths; the whole suite when empty.
    :param timeout: seconds after which the run is killed.
    :raises subprocess.TimeoutExpired: the run took longer than ``timeout``.
    """
    env = dict(os.environ)
    env.update({
        "SWIFT_TEST_CONFIG_FILE": test_conf,
        # Never fall back to Swift's in-process cluster.
        "SWIFT_TEST_IN_PROCESS": "0",
        "PYTHONPATH": os.pathsep.join(
            p for p in (_REPO_ROOT, env.get("PYTHONPATH", "")) if p
        ),
    })
    for name in ("SWIFT_TEST_POLICY", "SWIFT_TEST_IN_MEMORY_OBJ"):
        env.pop(name, None)
    if os.path.exists(junit_xml):
        os.unlink(junit_xml)
    with open(log, "wb") as out:
        return subprocess.run(
            pytest_command(junit_xml, selection), cwd=suite_root, env=env,
            stdout=out, stderr=subprocess.STDOUT, timeout=timeout, check=False,
        ).returncode
