"""The known-failures rules and the JUnit reading of tools.swift_functional."""

from __future__ import annotations

import pytest

from tools.swift_functional import junit
from tools.swift_functional import known
from tools.swift_functional import server
from tools.swift_functional import testconf

TESTS = "test/functional/tests.py"


def result(tid: str, outcome: str = junit.FAILED) -> junit.TestResult:
    return junit.TestResult(tid, tid.split("::", 1)[0], outcome, "")


# --- parsing --------------------------------------------------------------


def test_entry_with_reason():
    entry = known.parse_line("%s::TestFile::testCopy  # copy missing" % TESTS, 3)
    assert entry == known.Entry(TESTS + "::TestFile::testCopy", "copy missing", 3)


@pytest.mark.parametrize("line", ["", "   ", "# a comment", "  # indented"])
def test_comments_and_blank_lines_are_no_entries(line):
    assert known.parse_line(line) is None


@pytest.mark.parametrize("line", [
    TESTS + "::TestFile::testCopy",
    TESTS + "::TestFile::testCopy  #",
    TESTS + "::TestFile::testCopy  #   ",
    TESTS + "::TestFile::testCopy#no space before the hash",
    TESTS + "::TestFile::testCopy  # TODO",
    TESTS + "::TestFile::testCopy  # todo: find out",
    "two words  # a pattern holds no space",
])
def test_an_entry_needs_a_real_reason(line):
    with pytest.raises(known.KnownFailuresError, match="line 7"):
        known.parse_line(line, 7)


def test_parse_keeps_file_order_and_line_numbers():
    text = "# head\n\na::b  # one\nc::*  # two\n"
    assert known.parse(text) == [known.Entry("a::b", "one", 3),
                                 known.Entry("c::*", "two", 4)]


def test_an_entry_listed_twice_is_an_error():
    with pytest.raises(known.KnownFailuresError, match=r"line 3.*line 1"):
        known.parse("a::b  # one\n\na::b  # again\n")


def test_the_committed_file_parses():
    entries = known.load(known.DEFAULT_PATH)
    assert entries
    assert all(e.reason and "::" in e.pattern for e in entries)


# --- matching -------------------------------------------------------------


def test_patterns_match_ids_exactly_or_by_fnmatch():
    whole = known.Entry(TESTS + "::TestFile::*", "r")
    assert whole.matches(TESTS + "::TestFile::testCopy")
    # The UTF-8 variant of a class is another class.
    assert not whole.matches(TESTS + "::TestFileUTF8::testCopy")
    exact = known.Entry(TESTS + "::TestFile::testCopy", "r")
    assert exact.matches(TESTS + "::TestFile::testCopy")
    assert not exact.matches(TESTS + "::TestFile::testCopyRange")


def test_check_splits_known_unexpected_fixed_and_stale():
    entries = [
        known.Entry(TESTS + "::TestFile::*", "copy", 1),
        known.Entry(TESTS + "::TestAccount::testGone", "renamed", 2),
        known.Entry(TESTS + "::TestContainer::testFixed", "fixed", 3),
    ]
    results = [
        result(TESTS + "::TestFile::testCopy"),
        result(TESTS + "::TestFile::testCopyRange", junit.ERRORED),
        result(TESTS + "::TestFile::testPut", junit.PASSED),
        result(TESTS + "::TestContainer::testFixed", junit.PASSED),
        result(TESTS + "::TestContainer::testNew", junit.FAILED),
        result(TESTS + "::TestContainer::testSkip", junit.SKIPPED),
    ]
    verdict = known.check(entries, results)
    assert verdict.known == 2
    assert [r.id for r in verdict.unexpected] == [TESTS + "::TestContainer::testNew"]
    assert verdict.stale == (entries[1],)
    assert verdict.fixed == (
        known.Fixed(entries[0], (TESTS + "::TestFile::testPut",), 2),
        known.Fixed(entries[2], (TESTS + "::TestContainer::testFixed",), 0),
    )
    assert not verdict.ok


def test_a_run_with_only_known_failures_and_fixed_entries_is_ok():
    entries = [known.Entry(TESTS + "::TestFile::*", "copy", 1)]
    results = [result(TESTS + "::TestFile::testCopy"),
               result(TESTS + "::TestFile::testPut", junit.PASSED)]
    verdict = known.check(entries, results)
    assert verdict.ok
    assert verdict.fixed


def test_skipped_tests_keep_an_entry_from_being_stale():
    entries = [known.Entry(TESTS + "::TestSlo::*", "slo", 1)]
    verdict = known.check(entries, [result(TESTS + "::TestSlo::t", junit.SKIPPED)])
    assert verdict.ok and not verdict.fixed


def test_stale_entries_are_not_checked_on_part_of_the_suite():
    entries = [known.Entry(TESTS + "::TestFile::*", "copy", 1)]
    verdict = known.check(entries, [], check_stale=False)
    assert verdict.ok and verdict.stale == ()


# --- rewriting ------------------------------------------------------------


def test_rewrite_keeps_reasons_and_comments_and_drops_entries_without_failures():
    text = ("# copy\n"
            "%s::TestFile::testCopy  # copy missing\n"
            "%s::TestFile::testPut  # fixed since\n"
            "%s::TestFile::testGone  # renamed\n" % (TESTS, TESTS, TESTS))
    results = [result(TESTS + "::TestFile::testCopy"),
               result(TESTS + "::TestFile::testPut", junit.PASSED)]
    new_text, added = known.rewrite(text, results)
    assert added == 0
    assert new_text == "# copy\n%s::TestFile::testCopy  # copy missing\n" % TESTS
    known.parse(new_text)


def test_rewrite_appends_new_failures_with_todo_collapsing_whole_classes():
    results = [
        result(TESTS + "::TestSlo::test_a", junit.ERRORED),
        result(TESTS + "::TestSlo::test_b", junit.ERRORED),
        result(TESTS + "::TestFile::testCopy"),
        result(TESTS + "::TestFile::testPut", junit.PASSED),
    ]
    new_text, added = known.rewrite("# head\n", results)
    assert added == 2
    assert new_text.splitlines() == [
        "# head",
        "",
        known.NEW_HEADER,
        "%s::TestSlo::*  # TODO" % TESTS,
        "%s::TestFile::testCopy  # TODO" % TESTS,
    ]
    with pytest.raises(known.KnownFailuresError, match="TODO"):
        known.parse(new_text)
    # A second rewrite lists the still unexplained failures once, not twice.
    again, added_again = known.rewrite(new_text, results)
    assert (again, added_again) == (new_text, 2)


def test_rewrite_refuses_a_malformed_line():
    with pytest.raises(known.KnownFailuresError):
        known.rewrite("a::b\n", [])


# --- JUnit XML ------------------------------------------------------------

REPORT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
<testcase classname="test.functional.tests.TestFile" name="testCopy">
  <properties><property name="nodeid"
    value="test/functional/tests.py::TestFile::testCopy"/></properties>
  <failure message="AssertionError: 501 != 201&#10;more">tb</failure>
  <error message="teardown failed">tb</error>
</testcase>
<testcase classname="test.functional.tests.TestFile" name="testPut"/>
<testcase classname="test.functional.s3api.test_acl.TestS3Acl" name="test_a">
  <skipped type="pytest.skip" message="s3api middleware is not enabled"/>
</testcase>
<testcase classname="test.functional.test_slo.TestSlo" name="test_b">
  <error message="setup failed">tb</error>
</testcase>
<testcase classname="" name="test.functional.test_broken">
  <error message="collection failure">tb</error>
</testcase>
</testsuite></testsuites>
"""


def test_junit_results_use_the_node_id_and_the_worst_outcome():
    results = junit.parse(REPORT)
    assert results[0] == junit.TestResult(
        TESTS + "::TestFile::testCopy", TESTS, junit.ERRORED, "teardown failed")
    assert results[1] == junit.TestResult(
        TESTS + "::TestFile::testPut", TESTS, junit.PASSED, "")
    # Without the property, the class name is split at its first capital.
    assert results[2].id == "test/functional/s3api/test_acl.py::TestS3Acl::test_a"
    assert results[2].outcome == junit.SKIPPED
    assert results[3].id == "test/functional/test_slo.py::TestSlo::test_b"
    assert results[4].id == "test.functional.test_broken"
    assert results[4].outcome == junit.ERRORED


def test_table_counts_per_file_with_totals():
    table = junit.format_table(junit.parse(REPORT)).splitlines()
    assert table[0].split() == ["file", "passed", "failed", "errored", "skipped",
                                "total"]
    rows = {line.split()[0]: line.split()[1:] for line in table[2:-2]}
    assert rows[TESTS] == ["1", "0", "1", "0", "2"]
    assert rows["test/functional/s3api/test_acl.py"] == ["0", "0", "0", "1", "1"]
    assert table[-1].split() == ["TOTAL", "1", "0", "3", "1", "5"]


# --- configuration --------------------------------------------------------


def test_every_test_conf_user_is_configured_in_storaged():
    conf = server.render_config("/state", "/api.log", 8080, testconf.USERS)
    options = testconf.func_test_options("http://127.0.0.1:8080/auth/v1.0")
    logins = {u.login: u for u in testconf.USERS}
    for index in ("", "2", "3", "6"):
        account = options.get("account" + index, options["account"])
        login = "%s:%s" % (account, options["username" + index])
        user = logins[login]
        assert user.key == options["password" + index]
        assert "%s = %s" % user.storaged_option in conf
    assert "user_test_tester3 = testing3\n" in conf
    assert "user_test_tester6 = testing6 .reseller_admin\n" in conf
    # Users storaged cannot express stay out, so that their tests skip.
    assert "username5" not in options and "service_prefix" not in options
