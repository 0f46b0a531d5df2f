"""The lock back ends are the entry points of ``storaged.coordination.locks``."""

from __future__ import annotations

from importlib import metadata
import subprocess
import sys

import pytest

from storaged import exception
from storaged.coordination import backends


def test_entry_points_are_exactly_the_accepted_kinds():
    kinds = set(backends.SCHEMES.values())
    assert kinds == {backends.FILE, backends.REDIS, backends.ETCD,
                     backends.ZOOKEEPER}
    names = [ep.name for ep in metadata.entry_points(group=backends.NAMESPACE)]
    assert sorted(names) == sorted(kinds)  # one each, no duplicate
    assert backends.known_kinds() == sorted(kinds)


@pytest.mark.parametrize("kind", sorted(set(backends.SCHEMES.values())))
def test_every_kind_loads_a_lock_backend_of_that_kind(kind):
    cls = backends.lock_backend_class(kind)
    assert isinstance(cls, type)
    assert issubclass(cls, backends.LockBackend)
    assert cls is not backends.LockBackend
    assert cls.kind == kind
    assert not getattr(cls, "__abstractmethods__", None), cls


def test_loading_one_kind_imports_only_its_module():
    code = (
        "import sys\n"
        "from storaged.coordination import backends\n"
        "backends.lock_backend_class('file')\n"
        "mods = [m for m in sys.modules\n"
        "        if m.startswith('storaged.coordination.backends.')]\n"
        "print(' '.join(sorted(mods)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, check=True).stdout.split()
    assert "storaged.coordination.backends.file" in out
    for other in ("redis", "etcd", "zookeeper"):
        assert "storaged.coordination.backends." + other not in out


def test_unknown_kind_is_a_config_error_naming_the_installed_ones():
    with pytest.raises(exception.ConfigError) as info:
        backends.lock_backend_class("memcached")
    assert info.value.group == "coordination"
    assert info.value.option == "backend_url"
    assert "memcached" in info.value.problem
    for kind in backends.known_kinds():
        assert kind in info.value.problem


def test_only_zookeeper_limits_the_lock_ttl():
    for kind in backends.known_kinds():
        cls = backends.lock_backend_class(kind)
        overridden = cls.ttl_limit is not backends.LockBackend.ttl_limit
        assert overridden == (kind == backends.ZOOKEEPER), kind
