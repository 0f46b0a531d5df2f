"""What only the Redis driver does: namespace, failures, lost counters."""

from __future__ import annotations

import pytest

from storaged import exception
from storaged import kvs
from tests.servers import RedisServer
from tests.servers import ServerMissing
from tests.servers import free_port
from tests.servers import skip_or_fail

redis = pytest.importorskip("redis")

REDIS_DB = 10


@pytest.fixture
def private_server():
    """A server of this test's own, free to be killed or reconfigured."""
    server = RedisServer()
    try:
        server.start()
    except ServerMissing as err:
        skip_or_fail(str(err))
    yield server
    server.stop()


@pytest.fixture
def raw(redis_url):
    client = redis.Redis.from_url(f"{redis_url}/{REDIS_DB}", decode_responses=True)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def store(redis_url, raw):
    s = kvs.open_store(f"{redis_url}/{REDIS_DB}")
    yield s
    s.close()


def test_everything_lives_under_the_namespace(store, raw):
    store.set("a", {"x": 1}, ttl=60)
    lease = store.lock("l", 30)
    assert sorted(raw.keys("*")) == [
        "storaged:fence",
        "storaged:kv:a",
        "storaged:lock:l",
    ]
    assert raw.get("storaged:lock:l") == str(lease.token)
    version, _, text = raw.get("storaged:kv:a").partition(":")
    assert text == '{"x":1}' and int(version) == store.get_versioned("a")[1]
    assert 0 < raw.pttl("storaged:kv:a") <= 60_000
    assert 0 < raw.pttl("storaged:lock:l") <= 30_000
    lease.release()
    assert not raw.exists("storaged:lock:l")


def test_foreign_keys_are_not_listed_and_foreign_values_are_errors(store, raw):
    raw.set("other:app:key", "x")
    assert [k for k, _ in store.scan("")] == []
    raw.set("storaged:kv:unversioned", "no version here")
    with pytest.raises(exception.KVSError):
        store.get("unversioned")
    raw.set("storaged:kv:bad", "12:{not json")
    with pytest.raises(exception.KVSError):
        store.get("bad")


def test_tokens_keep_growing_when_the_counter_is_lost(store, raw):
    first = store.lock("t", 30)
    first.release()
    raw.flushdb()  # a restart of a server without persistence
    second = store.lock("t", 30)
    assert second.token > first.token
    second.release()


def test_unreachable_server_is_a_backend_error():
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    with kvs.open_store(url, timeout=0.5) as store:
        with pytest.raises(exception.KVSBackendError) as info:
            store.get("k")
    assert isinstance(info.value, exception.RetryableError)
    assert "hunter2" not in str(info.value)
    assert "127.0.0.1" in str(info.value)


def test_wrong_password_is_a_backend_error_without_the_password(private_server):
    admin = redis.Redis(port=private_server.port)
    admin.config_set("requirepass", "right-one")
    admin.close()
    url = private_server.url.replace("//", "//:wrong-one@")
    with kvs.open_store(url, timeout=2) as store:
        with pytest.raises(exception.KVSBackendError) as info:
            store.set("k", 1)
    assert "wrong-one" not in str(info.value) and "right-one" not in str(info.value)
    with kvs.open_store(private_server.url.replace("//", "//:right-one@")) as store:
        store.set("k", 1)
        assert store.get("k") == 1


def test_server_restart_fails_one_call_then_reconnects(private_server):
    store = kvs.open_store(private_server.url, timeout=2)
    store.set("k", 1)
    lease = store.lock("l", 30)
    port, directory = private_server.port, private_server.directory
    private_server.kill()
    with pytest.raises(exception.KVSBackendError):
        store.get("k")
    with pytest.raises(exception.KVSBackendError):
        lease.release()
    restarted = RedisServer(port=port, directory=directory)
    restarted.start()
    try:
        store.set("k", 2)  # a new connection, no manual reconnect
        assert store.get("k") == 2
        # Nothing persisted, so the old lease is gone with the data; its
        # holder cannot write, and the name is free again.
        with pytest.raises(exception.LeaseLost):
            store.set("k", 3, lease=lease)
        newer = store.lock("l", 30, blocking=False)
        assert newer.token > lease.token
    finally:
        store.close()
        restarted.stop()


def test_lease_exit_survives_an_unreachable_server(private_server):
    store = kvs.open_store(private_server.url, timeout=1)
    with store.lock("l", 30):
        private_server.kill()
    # __exit__ logged the failure instead of raising it.
    store.close()
