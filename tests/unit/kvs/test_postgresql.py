"""What only the PostgreSQL driver does: URLs, schema, failures, processes.

The contract itself runs in test_contract.py.  These tests use the
machine's PostgreSQL (``tests.servers.postgres_url``), each in a schema of
its own that is dropped afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from storaged import exception
from storaged import kvs
from storaged.kvs.drivers.postgresql import PostgresKVS
from tests.servers import free_port

psycopg = pytest.importorskip("psycopg")

ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
)
PORT = "postgresql URL port must be a number from 1 to 65535"
FORM = "postgresql://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE[?schema=NAME]"


@pytest.fixture
def url(postgres_schema_url):
    return postgres_schema_url


@pytest.fixture
def store(url):
    s = kvs.open_store(url)
    yield s
    s.close()


def _admin(url):
    return psycopg.connect(url.partition("?")[0], autocommit=True)


def _schema(url):
    return url.rpartition("schema=")[2]


# -- URLs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            "postgresql://db.example.org/state",
            {"host": "db.example.org", "port": 5432, "dbname": "state",
             "schema": "storaged"},
        ),
        (
            "postgres://u:p%40ss@10.0.0.1:6432/st?schema=cluster_a&sslmode=verify-full"
            "&sslrootcert=/etc/ca.pem",
            {"host": "10.0.0.1", "port": 6432, "dbname": "st", "user": "u",
             "password": "p@ss", "schema": "cluster_a", "sslmode": "verify-full",
             "sslrootcert": "/etc/ca.pem"},
        ),
        (
            "postgresql://storaged@[::1]/test",
            {"host": "::1", "port": 5432, "dbname": "test", "user": "storaged",
             "schema": "storaged"},
        ),
    ],
)
def test_good_urls(given, expected):
    kvs.validate_url(given)
    assert PostgresKVS.parse_url(given) == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("postgresql://", f"postgresql URL names no host ({FORM})"),
        ("postgresql://h", f"postgresql URL names no database ({FORM})"),
        ("postgresql://h/", f"postgresql URL names no database ({FORM})"),
        ("postgresql://h/a/b", f"postgresql URL names no database ({FORM})"),
        ("postgresql://h:99999/d", PORT),
        ("postgresql://h:0/d", PORT),
        (
            "postgresql://h/d?schema=Bad-Name",
            "postgresql URL parameter schema must be 1 to 63 lower-case letters, "
            "digits or '_', not starting with a digit",
        ),
        (
            "postgresql://h/d?sslmode=maybe",
            "postgresql URL parameter sslmode must be one of disable, allow, "
            "prefer, require, verify-ca, verify-full",
        ),
        (
            "postgresql://h/d?password=x",
            "postgresql URL parameter 'password' is not known (it takes schema, "
            "sslmode, sslrootcert, sslcert, sslkey)",
        ),
        (
            "postgresql://h/d#frag",
            "postgresql URL must not have a #fragment (write a '#' in a password "
            "as %23)",
        ),
    ],
)
def test_bad_urls_give_one_exact_line(given, message):
    with pytest.raises(ValueError) as info:
        kvs.validate_url(given)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "given",
    [
        "postgresql://u:hunter2@h",
        "postgresql://u:hunter2@h:port/d",
        "postgresql://u:hun#ter2@h/d",
        "postgresql://u:hun/ter2@h/d",
        "postgresql://u:hunter2@h/d?schema=X",
    ],
)
def test_errors_and_masks_never_show_the_password(given):
    with pytest.raises(ValueError) as info:
        kvs.validate_url(given)
    assert "hun" not in str(info.value)
    assert "hunter2" not in kvs.mask_url(given)


def test_mask_url():
    assert (
        kvs.mask_url("postgresql://storaged:s3cret@db:5432/state?schema=a")
        == "postgresql://storaged:***@db:5432/state?schema=a"
    )


# -- schema --------------------------------------------------------------------


def test_schema_is_made_on_first_use_in_its_own_schema(store, url):
    store.set("k", {"x": 1})
    with _admin(url) as admin:
        tables = admin.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = %s ORDER BY table_name",
            (_schema(url),),
        ).fetchall()
        assert tables == [("kv",), ("locks",), ("meta",)]
        row = admin.execute(
            f'SELECT value, version, expires_at FROM "{_schema(url)}".kv'
        ).fetchone()
    assert row[0] == '{"x":1}' and row[1] == store.get_versioned("k")[1]
    assert row[2] is None


def test_scan_sorts_by_code_point_not_by_locale(store):
    keys = ["b", "B", "a", "_", "é", "z", "\U0001f600", "ä"]
    for key in keys:
        store.set(key, 1)
    assert [k for k, _ in store.scan("")] == sorted(keys)


def test_newer_schema_is_refused(store, url):
    store.set("k", 1)
    with _admin(url) as admin:
        admin.execute(
            f"UPDATE \"{_schema(url)}\".meta SET value = 2 "
            "WHERE name = 'schema_version'"
        )
    with kvs.open_store(url) as other:
        with pytest.raises(exception.KVSError) as info:
            other.get("k")
    assert "schema version 2" in str(info.value)


def test_concurrent_first_use_creates_the_schema_once(url):
    stores = [kvs.open_store(url) for _ in range(6)]
    errors: list[BaseException] = []

    def first_use(store, i):
        try:
            store.set(f"k{i}", i)
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [
        threading.Thread(target=first_use, args=(s, i)) for i, s in enumerate(stores)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert dict(stores[0].scan("k")) == {f"k{i}": i for i in range(6)}
    for s in stores:
        s.close()


# -- failures ------------------------------------------------------------------


def test_unreachable_server_is_a_backend_error():
    url = f"postgresql://storaged:hunter2@127.0.0.1:{free_port()}/state"
    with kvs.open_store(url, timeout=1) as store:
        with pytest.raises(exception.KVSBackendError) as info:
            store.get("k")
    assert isinstance(info.value, exception.RetryableError)
    assert "hunter2" not in str(info.value)
    assert "127.0.0.1" in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_database_is_a_backend_error(postgres_schema_url):
    base, _, query = postgres_schema_url.partition("?")
    url = base.rpartition("/")[0] + "/no_such_database_here?" + query
    with kvs.open_store(url, timeout=2) as store:
        with pytest.raises(exception.KVSBackendError) as info:
            store.set("k", 1)
    assert "no_such_database_here" in str(info.value)


def test_a_killed_session_fails_one_call_then_reconnects(store, url):
    store.set("k", 1)
    with _admin(url) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'storaged' AND pid <> pg_backend_pid() "
            "AND datname = current_database() AND query LIKE %s",
            (f"%{_schema(url)}%",),
        )
    # The idle connection was cut: the next call may fail once, never more.
    try:
        store.get("k")
    except exception.KVSBackendError:
        pass
    store.set("k", 2)
    assert store.get("k") == 2


def test_a_statement_past_the_timeout_is_a_backend_error(store, url):
    lease = store.lock("held", 30)
    store.set("k", 1)
    with _admin(url) as admin:
        # Hold the value's row lock so that a write has to wait for it.
        admin.execute("BEGIN")
        admin.execute(f'SELECT 1 FROM "{_schema(url)}".kv WHERE key = %s FOR UPDATE',
                      ("k",))
        with kvs.open_store(url, timeout=0.5) as impatient:
            with pytest.raises(exception.KVSBackendError) as info:
                impatient.set("k", 2)
        admin.execute("ROLLBACK")
    assert "statement timeout" in str(info.value)
    assert store.get("k") == 1
    store.set("k", 3, lease=lease)
    assert store.get("k") == 3


# -- several processes -----------------------------------------------------------

WORKER = """
import json, os, sys, time
from storaged import exception, kvs

url, rounds, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
store = kvs.open_store(url, timeout=30)
print("ready", flush=True)
while not os.path.exists(go):  # start together, to contend
    time.sleep(0.001)
conflicts = 0
for _ in range(rounds):
    while True:
        value, version = store.get_versioned("cas")
        try:
            store.compare_and_set("cas", version, value + 1)
            break
        except exception.KVSConflict:
            conflicts += 1
tokens = []
for _ in range(rounds):
    with store.lock("excl", 30, timeout=60) as lease:
        state = store.get("excl-state")
        store.set(
            "excl-state",
            {"count": state["count"] + 1, "last_token": lease.token},
            lease=lease,
        )
        tokens.append(lease.token)
print(json.dumps({"conflicts": conflicts, "tokens": tokens}))
"""


def test_processes_share_one_database_safely(url, tmp_path):
    with kvs.open_store(url) as store:
        store.set("cas", 0)
        store.set("excl-state", {"count": 0, "last_token": 0})
    workers, rounds = 4, 40
    go = tmp_path / "go"
    env = dict(os.environ, PYTHONPATH=ROOT)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, str(rounds), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(workers)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    with kvs.open_store(url) as store:
        assert store.get("cas") == workers * rounds
        state = store.get("excl-state")
    assert state["count"] == workers * rounds
    tokens = [t for r in results for t in r["tokens"]]
    assert len(set(tokens)) == len(tokens) == workers * rounds
    assert state["last_token"] == max(tokens)


def test_forked_child_opens_its_own_connections(store):
    store.set("k", "parent")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            store.set("k", "child")
            code = 0 if store.get("k") == "child" else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert store.get("k") == "child"  # the parent's connection still works
