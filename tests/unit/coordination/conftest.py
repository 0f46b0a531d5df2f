"""Shared helpers of the coordination unit tests (file:// back end only)."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
import time

from oslo_config import cfg
import pytest

from storaged.conf import coordination as coordination_conf
from storaged.conf import default as default_conf
from storaged.coordination import Coordinator


def make_conf(tmp_path, **overrides) -> cfg.ConfigOpts:
    """A parsed ConfigOpts with the [coordination] options, state in tmp_path."""
    conf = cfg.ConfigOpts()
    default_conf.register_opts(conf)
    coordination_conf.register_opts(conf)
    conf([])
    conf.set_override("state_path", str(tmp_path))
    # Fast beats so that the tests waiting for one do not wait long.
    settings = {"heartbeat_interval": 0.05, "lock_ttl": 2, "membership_ttl": 2,
                "initial_reconnect_backoff": 0.05, "max_reconnect_backoff": 0.2,
                "lock_timeout": 5.0}
    settings.update(overrides)
    for name, value in settings.items():
        conf.set_override(name, value, "coordination")
    return conf


def wait_for(condition: Callable[[], object], timeout: float = 15.0) -> object:
    """Poll ``condition`` until it is true; fail after ``timeout`` seconds.

    Only a safety net against hanging: the tests assert on what happened,
    never on how long it took.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail("condition not met within %ss" % timeout)
        time.sleep(0.01)


@pytest.fixture
def conf(tmp_path) -> cfg.ConfigOpts:
    return make_conf(tmp_path)


@pytest.fixture
def coordinators(conf) -> Iterator[Callable[..., Coordinator]]:
    """Factory of started coordinators, all stopped at the end of the test."""
    made: list[Coordinator] = []

    def make(member_id: str = "node1:test", *, start: bool = True,
             config: cfg.ConfigOpts | None = None, **kwargs) -> Coordinator:
        coordinator = Coordinator(config or conf, member_id, **kwargs)
        made.append(coordinator)
        if start:
            coordinator.start()
        return coordinator

    yield make
    for coordinator in made:
        coordinator.stop()
