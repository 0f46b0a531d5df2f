"""A pytest plugin for Swift's suite: node ids in the report, no back-off.

Each test's node id is recorded as a ``nodeid`` property of its JUnit XML
``<testcase>`` (:mod:`.junit` reads it): the ``classname`` alone does not
say which part is the module's path.

``test.functional.retry()`` retries a request that failed with a 5xx or a
socket error up to five times, sleeping 1, 2, 4, 8 and 16 seconds between
tries: 31 seconds for every request that fails for good, which a real
cluster's transient errors need but a server on the loopback address never
does. storaged answers 501 to a header it refuses (an ACL, say), so each
such request would cost 31 seconds; without the sleeps the tries are the
same and so is every outcome, only sooner.

Loaded with ``-p tools.swift_functional.pytest_plugin``.
"""

from __future__ import annotations

import sys

import pytest


def _no_backoff(seconds: float) -> None:
    """Stand in for ``time.sleep`` between ``retry()``'s tries."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Record each test's node id for the JUnit XML report."""
    for item in items:
        item.user_properties.append(("nodeid", item.nodeid))


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Replace ``test.functional``'s ``sleep`` once the suite is imported."""
    module = sys.modules.get("test.functional")
    if module is not None and hasattr(module, "sleep"):
        vars(module)["sleep"] = _no_backoff
