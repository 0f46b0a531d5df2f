"""[coordination] options: defaults, validation, per back end settings."""

from __future__ import annotations

from oslo_config import cfg
import pytest

from storaged import exception
from storaged.conf import coordination as coordination_conf
from storaged.coordination import backends
from storaged.coordination import mask_url
from storaged.coordination import validate_conf
from tests.unit.coordination.conftest import make_conf


def test_option_names():
    names = sorted(o.name for o in coordination_conf.COORDINATION_OPTS)
    assert names == [
        "backend_url", "file_single_host", "heartbeat_interval",
        "initial_reconnect_backoff", "lock_timeout", "lock_ttl",
        "max_reconnect_backoff", "membership_ttl", "outage_log_interval",
        "partitions", "settle_time",
    ]
    assert coordination_conf.list_opts() == [
        (coordination_conf.GROUP, coordination_conf.COORDINATION_OPTS)
    ]


def test_defaults_are_valid_and_finite(tmp_path):
    conf = cfg.ConfigOpts()
    from storaged.conf import default
    default.register_opts(conf)
    coordination_conf.register_opts(conf)
    conf([])
    conf.set_override("state_path", str(tmp_path))
    validate_conf(conf, None)
    settings = backends.settings_from_conf(conf)
    assert settings.kind == "file"
    assert settings.url == "file://%s/coordination" % tmp_path
    assert settings.lock_timeout < float("inf")
    assert settings.heartbeat_interval <= min(settings.lock_ttl,
                                              settings.membership_ttl) / 3
    assert settings.settle_time == max(settings.lock_ttl, settings.membership_ttl)
    assert settings.partitions >= 256


def _problem(conf, option):
    with pytest.raises(exception.ConfigError) as info:
        validate_conf(conf, None)
    assert info.value.group == "coordination"
    assert info.value.option == option
    return info.value.problem


def test_heartbeat_must_be_at_most_a_third_of_the_ttls(tmp_path):
    conf = make_conf(tmp_path, heartbeat_interval=1.5, lock_ttl=10, membership_ttl=4)
    assert "third" in _problem(conf, "heartbeat_interval")
    conf = make_conf(tmp_path, heartbeat_interval=1.4, lock_ttl=4, membership_ttl=4)
    _problem(conf, "heartbeat_interval")
    validate_conf(make_conf(tmp_path, heartbeat_interval=1.0, lock_ttl=3,
                            membership_ttl=3))


def test_backoff_order(tmp_path):
    conf = make_conf(tmp_path, initial_reconnect_backoff=2.0, max_reconnect_backoff=1.0)
    assert "initial_reconnect_backoff" in _problem(conf, "max_reconnect_backoff")


@pytest.mark.parametrize(
    "url, words",
    [
        ("ipc://", "try-lock"),
        ("memcached://127.0.0.1:11211", "evict"),
        ("mysql://u:p@h/db", "membership"),
        ("postgresql://h/db", "membership"),
        ("kubernetes://", "deprecated"),
        ("etcd://h:2379", "etcd3+http"),
        ("consul://h", "removed"),
        ("zake://", "removed"),
        ("gopher://h", "unknown back end 'gopher'"),
        ("/just/a/path", "not a URL"),
        ("file://host/dir", "three slashes"),
        ("file://relative", "three slashes"),
        ("redis://h:6379?timeout=30", "lock_ttl and membership_ttl"),
        ("redis://h:6379?lock_timeout=30", "lock_ttl"),
        ("etcd3+http://h:2379?membership_timeout=3", "membership_ttl"),
        ("redis://h:6379?socket_timeout=3", "remove it from the URL"),
        ("zookeeper://h:2181?handler=eventlet", "threading handler"),
    ],
)
def test_unfit_urls_are_refused_with_a_reason(tmp_path, url, words):
    conf = make_conf(tmp_path, backend_url=url)
    assert words in _problem(conf, "backend_url")


@pytest.mark.parametrize(
    "url, kind",
    [
        ("file:///var/lib/storaged/coordination", "file"),
        ("redis://:secret@h:6379?db=3", "redis"),
        ("etcd3+http://h:2379", "etcd"),
        ("etcd3+https://h:2379?ca_cert=/ca.pem", "etcd"),
        ("zookeeper://h1:2181,h2:2181", "zookeeper"),
        ("kazoo://h:2181", "zookeeper"),
    ],
)
def test_fit_urls(url, kind):
    assert backends.check_url(url, eventlet=False) == kind


def test_zookeeper_needs_the_threading_backend():
    with pytest.raises(ValueError, match="concurrency_backend = threading"):
        backends.check_url("zookeeper://h:2181", eventlet=True)
    for url in ("file:///x", "redis://h", "etcd3+http://h"):
        backends.check_url(url, eventlet=True)


def test_refusal_never_shows_a_password(tmp_path):
    conf = make_conf(tmp_path, backend_url="redis://:hunter2@h:6379?timeout=3")
    assert "hunter2" not in _problem(conf, "backend_url")


def test_mask_url():
    assert mask_url("redis://:hunter2@h:6379/0") == "redis://:***@h:6379/0"
    assert mask_url("redis://user:pw@h") == "redis://user:***@h"
    assert mask_url("zookeeper://h?keyfile_password=pw&x=1") == (
        "zookeeper://h?keyfile_password=***&x=1"
    )
    assert mask_url("redis://h?sentinel_password=s") == "redis://h?sentinel_password=***"
    assert mask_url("etcd3+http://h:2379") == "etcd3+http://h:2379"


def test_tooz_options_carry_the_ttls(tmp_path):
    def settings(url, **kw):
        return backends.settings_from_conf(
            make_conf(tmp_path, lock_ttl=6, membership_ttl=9, heartbeat_interval=1,
                      **kw), url)

    assert settings("file:///d").tooz_options() == {"timeout": 9, "executor": "sync"}
    redis = settings("redis://h").tooz_options()
    assert redis["lock_timeout"] == 6 and redis["membership_timeout"] == 9
    assert redis["socket_timeout"] == 2.0 and redis["executor"] == "sync"
    etcd = settings("etcd3+http://h").tooz_options()
    assert etcd == {"timeout": 2, "lock_timeout": 6, "membership_timeout": 9,
                    "executor": "sync"}
    # One ZooKeeper session carries locks and membership.
    assert settings("zookeeper://h").tooz_options() == {"timeout": 6}
    assert settings("zookeeper://h").effective_lock_ttl == 6.0
    assert settings("file:///d").effective_lock_ttl == float("inf")


def test_margin_leaves_room_for_beats(tmp_path):
    for ttl in (2, 4, 10, 60):
        s = backends.settings_from_conf(
            make_conf(tmp_path, lock_ttl=ttl, membership_ttl=ttl,
                      heartbeat_interval=ttl / 3), "redis://h")
        assert 0 < s.lock_margin < ttl - s.heartbeat_interval
        assert s.io_timeout < ttl
