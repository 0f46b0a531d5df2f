"""``python -m tools.swift_functional``: Swift's suite against storaged-api.

Usage (``tox -e swift-functional`` passes the first three)::

    python -m tools.swift_functional --swift-version 2.36.0 \\
        --cache-dir .tox/swift-functional-cache --work-dir /tmp/sf \\
        [--write-known-failures] [TEST_ID_OR_PATH ...]

Exit status: 0 when every failing test is a known failure and no entry of
the known failures is stale; 1 otherwise (or when the run itself broke:
the server died, pytest could not run the suite); 2 for a malformed
known-failures file or bad arguments.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import os
import shutil
import subprocess
import sys
import tempfile

from tools.swift_functional import junit
from tools.swift_functional import known
from tools.swift_functional import runner
from tools.swift_functional import sdist
from tools.swift_functional import server
from tools.swift_functional import testconf

# pytest's exit statuses for "all passed" and "some tests failed".
_PYTEST_RAN = (0, 1)
# How many test ids to show per fixed entry.
_SHOW = 10


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.swift_functional",
        description="Run Swift's functional tests against a real storaged-api "
        "and check the failures against the known ones.",
    )
    parser.add_argument("--swift-version", required=True,
                        help="the swift sdist to take test/functional from")
    parser.add_argument("--cache-dir", default=os.path.join(".tox",
                        "swift-functional-cache"),
                        help="where the sdist is downloaded and unpacked, once")
    parser.add_argument("--work-dir", default="",
                        help="where the server's state, logs, test.conf and "
                        "the JUnit XML report go (default: a new temporary "
                        "directory, kept)")
    parser.add_argument("--known-failures", default=known.DEFAULT_PATH,
                        help="the known-failures file (default: %(default)s)")
    parser.add_argument("--write-known-failures", action="store_true",
                        help="rewrite the known-failures file from this run: "
                        "drop entries that match no failing test, append new "
                        "failures with a TODO reason to fill in")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds the suite may run (default: %(default)s)")
    parser.add_argument("tests", nargs="*",
                        help="test ids or paths to run (default: the whole "
                        "suite; the stale-entry check needs the whole suite)")
    return parser.parse_args(argv)


def run_suite(args: argparse.Namespace, work_dir: str) -> list[junit.TestResult]:
    """Start the server, run the suite, stop the server; return the results.

    :raises RuntimeError: the run broke (server, pytest or report).
    """
    root = sdist.prepare(args.swift_version, os.path.abspath(args.cache_dir))
    # A fresh server every run: what an earlier run left in its state
    # (containers, objects) would change the listings the tests check.
    shutil.rmtree(os.path.join(work_dir, "storaged"), ignore_errors=True)
    api = server.ApiServer(os.path.join(work_dir, "storaged"))
    test_conf = os.path.join(work_dir, "test.conf")
    junit_xml = os.path.join(work_dir, "junit.xml")
    log = os.path.join(work_dir, "pytest.log")
    print("swift-functional: storaged-api at %s (log: %s)" % (api.url, api.log),
          flush=True)
    api.start()
    try:
        testconf.write(test_conf, api.auth_uri)
        print("swift-functional: running Swift's test/functional (output: %s)"
              % log, flush=True)
        status = runner.run(root, test_conf, junit_xml, log, args.tests,
                            args.timeout)
        died = not api.alive()
    finally:
        stopped = api.stop()
    print("swift-functional: pytest: %s" % runner.last_line(log))
    print("swift-functional: storaged-api stopped (exit status %d)" % stopped)
    if died:
        raise RuntimeError("storaged-api died during the run:\n" + api.output())
    if stopped != 0:
        raise RuntimeError("storaged-api exited %d on SIGTERM:\n%s"
                           % (stopped, api.output()))
    if status not in _PYTEST_RAN or not os.path.exists(junit_xml):
        raise RuntimeError("pytest exited %d without running the suite; see %s"
                           % (status, log))
    results = junit.read(junit_xml)
    if not results:
        raise RuntimeError("no test ran")
    print("swift-functional: JUnit XML report: %s" % junit_xml)
    return results


def report(verdict: known.Verdict, entries: int) -> None:
    """Print what the check found."""
    for fixed in verdict.fixed:
        entry = fixed.entry
        advice = ("remove it" if not fixed.failing
                  else "narrow it (%d still fail)" % fixed.failing)
        print("\nNOW PASSING (line %d, %s: %s): %s"
              % (entry.lineno, entry.pattern, entry.reason, advice))
        for tid in fixed.passed[:_SHOW]:
            print("    %s" % tid)
        if len(fixed.passed) > _SHOW:
            print("    ... and %d more" % (len(fixed.passed) - _SHOW))
    for entry in verdict.stale:
        print("\nSTALE ENTRY (line %d): %s matches no test" % (entry.lineno,
                                                               entry.pattern))
    for result in verdict.unexpected:
        print("\nUNEXPECTED %s: %s\n    %s" % (result.outcome.upper(), result.id,
                                              result.message))
    print("\nswift-functional: %d known failures (%d entries), %d unexpected, "
          "%d stale entries, %d entries with passing tests"
          % (verdict.known, entries, len(verdict.unexpected), len(verdict.stale),
             len(verdict.fixed)))


def write_known_failures(path: str, results: list[junit.TestResult]) -> int:
    """Rewrite the known-failures file from ``results``; return the exit status."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    new_text, added = known.rewrite(text, results)
    with open(path, "w", encoding="utf-8") as f:
        f.write(new_text)
    if added:
        print("swift-functional: %d new entries in %s: replace each TODO with "
              "the reason" % (added, path))
        return 1
    print("swift-functional: %s rewritten, no new failure" % path)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; return the exit status."""
    args = parse_args(argv)
    if args.write_known_failures and args.tests:
        print("swift-functional: --write-known-failures needs the whole suite",
              file=sys.stderr)
        return 2
    entries: list[known.Entry] = []
    if not args.write_known_failures:
        try:
            entries = known.load(args.known_failures)
        except known.KnownFailuresError as err:
            print("swift-functional: %s: %s" % (args.known_failures, err),
                  file=sys.stderr)
            return 2
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="swift-functional-")
    os.makedirs(work_dir, exist_ok=True)
    try:
        results = run_suite(args, os.path.abspath(work_dir))
    except (RuntimeError, OSError, subprocess.SubprocessError) as err:
        # SubprocessError: pip failed, or the suite outran --timeout.
        print("swift-functional: FAILED: %s" % err, file=sys.stderr)
        return 1
    print("\n" + junit.format_table(results))
    if args.write_known_failures:
        return write_known_failures(args.known_failures, results)
    verdict = known.check(entries, results, check_stale=not args.tests)
    report(verdict, len(entries))
    if args.tests:
        print("swift-functional: part of the suite ran: stale entries not checked")
    if not verdict.ok:
        print("swift-functional: FAILED (see UNEXPECTED and STALE above; %s)"
              % args.known_failures)
        return 1
    print("swift-functional: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
