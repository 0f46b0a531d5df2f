"""The known failures of Swift's suite against storaged, and their reasons.

``known_failures.txt`` lists, one entry a line, the tests that fail today
and why::

    # SLO: multipart-manifest=put is refused
    test/functional/test_slo.py::TestSlo::*  # SLO not implemented
    test/functional/tests.py::TestFile::testCopy  # server-side copy not implemented

An entry is a test id or an :func:`fnmatch.fnmatchcase` pattern over test
ids, then whitespace, ``#`` and the reason. A line without a reason, or with
a reason that starts with ``TODO``, is a parse error, and so is an entry
listed twice. Lines starting with ``#`` and blank lines are comments.

Checking a run (:func:`check`):

* a failed or errored test that no entry matches is **unexpected** and
  fails the run (a regression, or a new test);
* a test matched by an entry that passed is reported as **fixed**, and the
  entry should be removed or narrowed (this does not fail the run);
* an entry that matches no test of the run at all is **stale** and fails
  the run (a renamed test, a typo), unless only part of the suite ran.

:func:`rewrite` updates the file from a run: it drops the entries that
match no failing test, keeps every other line (comments and reasons) as it
is, and appends one entry per new failure (a whole class as ``Class::*``
when every test of the class failed) with a ``TODO`` reason, which must be
replaced by hand before the file parses again.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence
import dataclasses
import fnmatch
import os
import re

from tools.swift_functional import junit

#: The file of the known failures, beside this module.
DEFAULT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            "known_failures.txt")
#: The reason :func:`rewrite` gives a new entry; :func:`parse` refuses it.
TODO = "TODO"
NEW_HEADER = "# New failures: give each a reason (what is missing), then group it"
_ENTRY = re.compile(r"^(?P<pattern>\S+)\s+#(?P<reason>.*)$")


class KnownFailuresError(ValueError):
    """A malformed known-failures file; the message names the line."""


@dataclasses.dataclass(frozen=True)
class Entry:
    """One known failure.

    :ivar pattern: a test id, or an fnmatch pattern over test ids.
    :ivar reason: why the tests it matches fail.
    :ivar lineno: its line in the file (1-based).
    """

    pattern: str
    reason: str
    lineno: int = 0

    def matches(self, test_id: str) -> bool:
        """Tell whether ``test_id`` is one of this entry's tests."""
        return fnmatch.fnmatchcase(test_id, self.pattern)


def parse_line(line: str, lineno: int = 0) -> Entry | None:
    """Return the entry on ``line``, or None for a comment or blank line.

    :raises KnownFailuresError: no reason, or a ``TODO`` reason.
    """
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    found = _ENTRY.match(text)
    where = "line %d: " % lineno if lineno else ""
    if found is None:
        raise KnownFailuresError(
            "%s%r: an entry is '<test id or pattern>  # <reason>'" % (where, text)
        )
    reason = found.group("reason").strip()
    if not reason:
        raise KnownFailuresError("%s%r has no reason" % (where, text))
    if reason.upper().startswith(TODO):
        raise KnownFailuresError(
            "%s%r: replace the TODO with the reason it fails" % (where, text)
        )
    return Entry(found.group("pattern"), reason, lineno)


def parse(text: str) -> list[Entry]:
    """Return the entries of a known-failures file's text, in file order.

    :raises KnownFailuresError: a malformed line or a duplicate entry.
    """
    entries: list[Entry] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        entry = parse_line(line, lineno)
        if entry is None:
            continue
        if entry.pattern in seen:
            raise KnownFailuresError(
                "line %d: %s is already listed on line %d"
                % (lineno, entry.pattern, seen[entry.pattern])
            )
        seen[entry.pattern] = lineno
        entries.append(entry)
    return entries


def load(path: str) -> list[Entry]:
    """Parse the known-failures file at ``path``."""
    with open(path, encoding="utf-8") as f:
        return parse(f.read())


@dataclasses.dataclass(frozen=True)
class Fixed:
    """An entry some of whose tests passed.

    :ivar entry: the entry.
    :ivar passed: the ids of its tests that passed.
    :ivar failing: how many of its tests still fail.
    """

    entry: Entry
    passed: tuple[str, ...]
    failing: int


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The check of a run against the known failures.

    :ivar unexpected: failing tests that no entry matches.
    :ivar fixed: entries matching tests that passed.
    :ivar stale: entries that match no test of the run.
    :ivar known: failing tests that an entry matches.
    """

    unexpected: tuple[junit.TestResult, ...]
    fixed: tuple[Fixed, ...]
    stale: tuple[Entry, ...]
    known: int

    @property
    def ok(self) -> bool:
        """True when the run passes: nothing unexpected, nothing stale."""
        return not self.unexpected and not self.stale


def check(
    entries: Sequence[Entry],
    results: Iterable[junit.TestResult],
    check_stale: bool = True,
) -> Verdict:
    """Check a run's results against the known failures.

    :param check_stale: report entries that match no test (off when only
        part of the suite ran).
    """
    results = list(results)
    unexpected: list[junit.TestResult] = []
    known = 0
    for result in results:
        if result.outcome not in junit.FAILING:
            continue
        if any(entry.matches(result.id) for entry in entries):
            known += 1
        else:
            unexpected.append(result)
    fixed: list[Fixed] = []
    stale: list[Entry] = []
    for entry in entries:
        matched = [r for r in results if entry.matches(r.id)]
        if not matched:
            if check_stale:
                stale.append(entry)
            continue
        passed = tuple(r.id for r in matched if r.outcome == junit.PASSED)
        if passed:
            failing = sum(1 for r in matched if r.outcome in junit.FAILING)
            fixed.append(Fixed(entry, passed, failing))
    return Verdict(tuple(unexpected), tuple(fixed), tuple(stale), known)


def _class_of(test_id: str) -> str:
    """``file::Class`` of a test id, or ``""`` for a test outside a class."""
    parts = test_id.split("::")
    return "::".join(parts[:2]) if len(parts) == 3 else ""


def new_patterns(
    unexpected: Iterable[junit.TestResult], results: Iterable[junit.TestResult]
) -> list[str]:
    """Return entries' patterns covering ``unexpected``, as narrow as useful.

    A class every test of which failed becomes ``file::Class::*``; any other
    failure is listed by its id.
    """
    tests_of: dict[str, list[junit.TestResult]] = {}
    for result in results:
        tests_of.setdefault(_class_of(result.id), []).append(result)
    patterns: list[str] = []
    done: set[str] = set()
    for result in unexpected:
        klass = _class_of(result.id)
        members = tests_of.get(klass, []) if klass else []
        whole = len(members) > 1 and all(
            r.outcome in junit.FAILING for r in members
        )
        if whole:
            if klass not in done:
                done.add(klass)
                patterns.append(klass + "::*")
        else:
            patterns.append(result.id)
    return patterns


def rewrite(text: str, results: Sequence[junit.TestResult]) -> tuple[str, int]:
    """Update a known-failures file's text from a whole run's results.

    Entries that match no failing test are dropped; entries with a ``TODO``
    reason are dropped too (and listed again if their tests still fail);
    every other line is kept. New failures are appended under
    :data:`NEW_HEADER` with a ``TODO`` reason.

    :returns: the new text and the number of entries added.
    :raises KnownFailuresError: a line that is neither a comment nor an entry.
    """
    failing = [r for r in results if r.outcome in junit.FAILING]
    kept_lines: list[str] = []
    entries: list[Entry] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        try:
            entry = parse_line(line, lineno)
        except KnownFailuresError:
            found = _ENTRY.match(line.strip())
            if found is None or not found.group("reason").strip().upper().startswith(
                TODO
            ):
                raise
            continue  # a TODO from an earlier rewrite: listed again below
        if line.strip() == NEW_HEADER:
            continue
        if entry is not None:
            if not any(entry.matches(r.id) for r in failing):
                continue
            entries.append(entry)
        kept_lines.append(line)
    verdict = check(entries, results, check_stale=False)
    added = new_patterns(verdict.unexpected, results)
    while kept_lines and not kept_lines[-1].strip():
        kept_lines.pop()
    if added:
        kept_lines += ["", NEW_HEADER]
        kept_lines += ["%s  # %s" % (pattern, TODO) for pattern in added]
    return "\n".join(kept_lines) + "\n", len(added)
