"""Fixtures of the coordination functional tests.

The servers (Redis, etcd, ZooKeeper) come from ``tests.servers``, a plugin
of the whole suite: each is started once per session, privately, and the
tests that need a missing one are skipped (or fail with
``STORAGED_REQUIRE_SERVERS=1``).
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from typing import Any
import uuid

import pytest

from storaged.coordination import CoordinationUnavailable
from storaged.coordination import Coordinator
from tests.functional.coordination import helpers


@pytest.fixture
def uid() -> str:
    """A short unique suffix for group and lock names of one test."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def coordinators(tmp_path) -> Iterator[Callable[..., Coordinator]]:
    """Factory of started coordinators in this process, stopped at the end.

    ``make(url, member_id, **overrides)``: the overrides are ``[coordination]``
    options (``lock_ttl=3``, ``heartbeat_interval=0.5``, ...).  Partition
    shares move at once (``settle_time`` 0) unless a test sets it.
    """
    made: list[Coordinator] = []

    def make(url: str, member_id: str, **overrides: Any) -> Coordinator:
        overrides.setdefault("initial_reconnect_backoff", 0.1)
        overrides.setdefault("settle_time", 0.0)
        conf = helpers.make_conf(str(tmp_path), **overrides)
        coordinator = Coordinator(conf, member_id, backend_url=url)
        made.append(coordinator)
        try:
            coordinator.start()
        except CoordinationUnavailable:
            # A server slow to answer on a loaded machine (a JVM pausing):
            # the coordinator goes on connecting in the background.
            helpers.wait_for(lambda: coordinator.connected, timeout=60)
        return coordinator

    yield make
    for coordinator in reversed(made):
        try:
            coordinator.stop()
        except Exception:
            pass


@pytest.fixture
def victims() -> Iterator[Callable[..., helpers.Victim]]:
    """Factory of started :class:`helpers.Victim` processes, killed at the end.

    ``make(url, member, state_path, **options)`` (options as ``Victim``'s).
    """
    made: list[helpers.Victim] = []

    def make(url: str, member: str, state_path: str, **options: Any) -> helpers.Victim:
        victim = helpers.Victim(url, member, state_path, **options)
        made.append(victim)
        return victim.start()

    yield make
    for victim in made:
        victim.kill()
