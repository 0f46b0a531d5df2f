"""Shared pytest set-up.

The test process itself runs on the ``threading`` backend (no monkey-patching
of pytest); daemons under test run as subprocesses on the backend each test
chooses, and on the default one, ``eventlet`` (as operators run them), when a
test chooses none.
"""

from __future__ import annotations

import os

os.environ.setdefault("STORAGED_CONCURRENCY_BACKEND", "eventlet")

from storaged import concurrency

concurrency.setup("threading")

# The fixtures of the servers the tests start; the Swift cluster is one per
# test session, whichever directories its tests are in.
pytest_plugins = ["tests.servers", "tests.swift_cluster"]
