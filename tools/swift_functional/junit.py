"""Outcomes of Swift's tests, read from pytest's JUnit XML report.

A test's id is pytest's node id, which :mod:`.pytest_plugin` records as a
``nodeid`` property of each ``<testcase>``::

    <testcase classname="test.functional.tests.TestFile" name="testCopy">
      <properties>
        <property name="nodeid" value="test/functional/tests.py::TestFile::testCopy"/>

(the ``file`` attribute of the ``xunit1`` family will not do: it names the
file a test function is defined in, which for a decorated or inherited test
is another module). A report without the property, or a collection error,
falls back to the ``classname``: its components up to the first capitalised
one are the module.
"""

from __future__ import annotations

from collections.abc import Iterable
import dataclasses
import xml.etree.ElementTree as ET

PASSED = "passed"
FAILED = "failed"
ERRORED = "errored"
SKIPPED = "skipped"
#: The outcomes in the table's column order.
OUTCOMES = (PASSED, FAILED, ERRORED, SKIPPED)
#: Outcomes that make a test a failure to explain.
FAILING = frozenset({FAILED, ERRORED})
# When a test has several results (a failed call and a failed teardown), the
# worst one counts.
_RANK = {PASSED: 0, SKIPPED: 1, FAILED: 2, ERRORED: 3}
_CHILD_OUTCOME = {"failure": FAILED, "error": ERRORED, "skipped": SKIPPED}


@dataclasses.dataclass(frozen=True)
class TestResult:
    """One test's outcome.

    :ivar id: pytest's node id (``test/functional/tests.py::TestFile::testCopy``).
    :ivar file: the test's file, relative to the sdist's root.
    :ivar outcome: one of :data:`OUTCOMES`.
    :ivar message: the first line of the failure, error or skip message.
    """

    __test__ = False  # not a test class, whatever pytest thinks of the name

    id: str
    file: str
    outcome: str
    message: str = ""


def test_id(classname: str, name: str, nodeid: str = "") -> str:
    """Return a test's node id: ``nodeid`` if known, else rebuilt.

    >>> test_id("test.functional.tests.TestFile", "testCopy")
    'test/functional/tests.py::TestFile::testCopy'
    """
    if nodeid:
        return nodeid
    parts = classname.split(".") if classname else []
    for i, part in enumerate(parts):
        if part[:1].isupper():
            module, inner = parts[:i], parts[i:]
            break
    else:
        module, inner = parts, []
    if not module:
        # A collection error: ``name`` is the module (or path) that failed.
        return "::".join([*inner, name])
    return "::".join(["/".join(module) + ".py", *inner, name])


def _nodeid(case: ET.Element) -> str:
    for prop in case.iter("property"):
        if prop.get("name") == "nodeid":
            return prop.get("value", "")
    return ""


def _first_line(text: str | None) -> str:
    return (text or "").strip().split("\n", 1)[0][:300]


def parse(xml_text: str) -> list[TestResult]:
    """Return one result per test id from a JUnit XML report, in report order."""
    # The report is the one our own pytest run just wrote, not outside input.
    root = ET.fromstring(xml_text)  # noqa: S314
    results: dict[str, TestResult] = {}
    for case in root.iter("testcase"):
        tid = test_id(case.get("classname", ""), case.get("name", ""), _nodeid(case))
        outcome, message = PASSED, ""
        for child in case:
            found = _CHILD_OUTCOME.get(child.tag)
            if found is not None and _RANK[found] > _RANK[outcome]:
                outcome = found
                message = _first_line(child.get("message") or child.text)
        result = TestResult(tid, tid.split("::", 1)[0], outcome, message)
        previous = results.get(tid)
        if previous is None or _RANK[outcome] > _RANK[previous.outcome]:
            results[tid] = result
    return list(results.values())


def read(path: str) -> list[TestResult]:
    """Return the results of the JUnit XML report at ``path``."""
    with open(path, encoding="utf-8") as f:
        return parse(f.read())


def counts(results: Iterable[TestResult]) -> dict[str, dict[str, int]]:
    """Count outcomes per file: ``{file: {outcome: n}}``, files sorted."""
    table: dict[str, dict[str, int]] = {}
    for result in results:
        row = table.setdefault(result.file, dict.fromkeys(OUTCOMES, 0))
        row[result.outcome] += 1
    return dict(sorted(table.items()))


def format_table(results: Iterable[TestResult]) -> str:
    """Return the per-file table of outcomes, with a line of totals."""
    rows = counts(results)
    totals = dict.fromkeys(OUTCOMES, 0)
    for row in rows.values():
        for outcome in OUTCOMES:
            totals[outcome] += row[outcome]
    width = max([len("TOTAL"), len("file")] + [len(f) for f in rows])
    widths = [len(o) + 1 for o in OUTCOMES] + [6]

    def cells(name: str, values: list[str]) -> str:
        return name.ljust(width) + "".join(
            v.rjust(w + 1) for v, w in zip(values, widths, strict=True)
        )

    def line(name: str, row: dict[str, int]) -> str:
        counted = [row[o] for o in OUTCOMES]
        return cells(name, [str(n) for n in [*counted, sum(counted)]])

    header = cells("file", [*OUTCOMES, "total"])
    rule = "-" * len(header)

    body = [line(name, row) for name, row in rows.items()]
    return "\n".join([header, rule, *body, rule, line("TOTAL", totals)])
