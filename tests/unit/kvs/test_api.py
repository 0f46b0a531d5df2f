"""open_store / validate_url / get_store / mask_url: choosing and checking drivers."""

from __future__ import annotations

import os
import stat

from oslo_config import cfg
import pytest

from storaged import exception
from storaged import kvs
from storaged.conf import kvs as kvs_conf
from storaged.kvs.drivers.memory import MemoryKVS
from storaged.kvs.drivers.redis import RedisKVS
from storaged.kvs.drivers.sqlite import SqliteKVS

KNOWN = "(known: memory, postgres, postgresql, redis, rediss, sqlite)"


def test_known_schemes_come_from_entry_points():
    assert kvs.known_schemes() == [
        "memory",
        "postgres",
        "postgresql",
        "redis",
        "rediss",
        "sqlite",
    ]


def test_public_names():
    assert set(kvs.__all__) >= {
        "open_store",
        "validate_url",
        "get_store",
        "mask_url",
        "KeyValueStore",
        "Lease",
    }


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////var/lib/storaged/state.sqlite",
        "sqlite:////x.sqlite",
        "redis://localhost",
        "redis://localhost:6380/2",
        "redis://:pa%40ss@10.0.0.1:6379/0",
        "redis://user:pw@[::1]:6379",
        "rediss://cache.example.org:6380/1?ssl_ca_certs=/etc/ca.pem&ssl_cert_reqs=required",
        "rediss://h?ssl_check_hostname=false",
        "memory://",
        "memory://named-store_1",
    ],
)
def test_good_urls(url):
    kvs.validate_url(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "the state store URL is empty " + KNOWN),
        (
            "state.sqlite",
            "not a state store URL: state.sqlite (expected DRIVER://...; "
            "known: memory, postgres, postgresql, redis, rediss, sqlite)",
        ),
        ("mongodb://db:27017/", "unknown state store driver 'mongodb' " + KNOWN),
        ("SQLITE:////x", "unknown state store driver 'SQLITE' " + KNOWN),
        (
            "sqlite://relative/state.sqlite",
            "sqlite URL needs an absolute path after sqlite:/// "
            "(e.g. sqlite:////var/lib/storaged/state.sqlite)",
        ),
        (
            "sqlite:///relative.sqlite",
            "sqlite URL needs an absolute path after sqlite:/// "
            "(e.g. sqlite:////var/lib/storaged/state.sqlite)",
        ),
        (
            "sqlite:////var/lib/storaged/",
            "sqlite URL must name a file, not a directory",
        ),
        ("redis://", "redis URL names no host (redis://[:PASSWORD@]HOST[:PORT][/DB])"),
        ("redis://h:99999", "redis URL port must be a number from 1 to 65535"),
        ("redis://h:port", "redis URL port must be a number from 1 to 65535"),
        ("redis://h/x", "redis URL database must be a number (/0, /1 ...)"),
        (
            "redis://h?ssl_ca_certs=/ca",
            "redis URL parameter ssl_ca_certs needs rediss:// (TLS)",
        ),
        (
            "rediss://h?ssl_cert_reqs=maybe",
            "redis URL parameter ssl_cert_reqs must be one of none, optional, required",
        ),
        (
            "memory://a/b",
            "memory URL name: use up to 128 letters, digits, '.', '_' or '-'",
        ),
    ],
)
def test_bad_urls_give_one_exact_line(url, message):
    with pytest.raises(ValueError) as info:
        kvs.validate_url(url)
    assert str(info.value) == message
    with pytest.raises(ValueError):
        kvs.open_store(url)


@pytest.mark.parametrize(
    "url",
    [
        "mongodb://admin:hunter2@db/",
        "redis://hunter2@localhost",  # no colon: the user part is the secret
        "redis://:hunter2@localhost/nodb",
        "redis://:hunter2@localhost:notaport",
        "redis://:hun#ter2@localhost",
        "redis://:hun/ter2@localhost",
        "redis://:hun?ter2@localhost",
        "redis://:hunter2@localhost?password=x&nope=1",
        "not a url :hunter2@",
    ],
)
def test_errors_never_show_the_password(url):
    with pytest.raises(ValueError) as info:
        kvs.validate_url(url)
    assert "hunter2" not in str(info.value)
    assert "hun" not in str(info.value).replace("hunter", "")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://u:pw@h/0", "redis://u:***@h/0"),
        ("rediss://u:p@w/d@h:1/0", "rediss://u:***@h:1/0"),
        ("redis://pw@h", "redis://***@h"),
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("redis://h?password=pw&db=1", "redis://h?password=***&db=1"),
        ("sqlite:////var/lib/a@b/state.sqlite", "sqlite:////var/lib/a@b/state.sqlite"),
        ("memory://x", "memory://x"),
        ("junk:pw@", "***"),
    ],
)
def test_mask_url(url, masked):
    assert kvs.mask_url(url) == masked


@pytest.mark.parametrize(
    ("url", "cls"),
    [
        ("memory://", MemoryKVS),
        ("redis://127.0.0.1:1", RedisKVS),
        ("rediss://127.0.0.1:1", RedisKVS),
    ],
)
def test_open_store_picks_the_driver(url, cls):
    store = kvs.open_store(url, timeout=0.5)
    try:
        assert type(store) is cls
    finally:
        store.close()


def test_open_store_sqlite_and_options(tmp_path):
    url = "sqlite:///%s" % (tmp_path / "s.sqlite")
    with kvs.open_store(
        url, timeout=3, sqlite_synchronous="full", default_lock_ttl=4
    ) as store:
        assert type(store) is SqliteKVS
        assert store.timeout == 3.0 and store.default_lock_ttl == 4.0
        assert store.lock("x").ttl == 4.0
    with pytest.raises(ValueError):
        kvs.open_store(url, sqlite_synchronous="off")
    with pytest.raises(ValueError):
        kvs.open_store(url, timeout=0)


def test_memory_named_stores_share_data_private_ones_do_not():
    with (
        kvs.open_store("memory://shared-test") as a,
        kvs.open_store("memory://shared-test") as b,
    ):
        a.set("k", 1)
        assert b.get("k") == 1
    with kvs.open_store("memory://") as c, kvs.open_store("memory://") as d:
        c.set("k", 1)
        with pytest.raises(exception.KVSNotFound):
            d.get("k")


def _conf(tmp_path, url: str | None = None) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf.register_opt(cfg.StrOpt("state_path", default=str(tmp_path / "state")))
    kvs_conf.register_opts(conf)
    conf([], project="storaged-test", default_config_files=[])
    if url is not None:
        conf.set_override("backend_url", url, group="kvs")
    return conf


def test_get_store_default_creates_the_directory(tmp_path):
    conf = _conf(tmp_path)
    old = os.umask(0o022)
    try:
        with kvs.get_store(conf) as store:
            store.set("k", 1)
    finally:
        os.umask(old)
    state = tmp_path / "state"
    assert stat.S_IMODE(state.stat().st_mode) == 0o750
    assert stat.S_IMODE((state / "state.sqlite").stat().st_mode) == 0o640
    with kvs.get_store(conf) as store:
        assert store.get("k") == 1


def test_get_store_applies_options(tmp_path):
    conf = _conf(tmp_path)
    conf.set_override("timeout", 2.5, group="kvs")
    conf.set_override("default_lock_ttl", 9.0, group="kvs")
    with kvs.get_store(conf) as store:
        assert store.timeout == 2.5 and store.default_lock_ttl == 9.0


def test_get_store_bad_url_is_a_config_error(tmp_path):
    conf = _conf(tmp_path, "redis://:hunter2@host/db")
    with pytest.raises(exception.ConfigError) as info:
        kvs.get_store(conf)
    assert "[kvs] backend_url: redis URL database must be a number" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_get_store_unwritable_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    conf = _conf(tmp_path, f"sqlite:///{blocker}/sub/state.sqlite")
    with pytest.raises(exception.ConfigError) as info:
        kvs.get_store(conf)
    assert "cannot create the directory" in str(info.value)
