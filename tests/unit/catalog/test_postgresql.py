"""What only the PostgreSQL catalog does: URLs, its schema, failures, row ids.

The contract runs in the other modules of this package, on both drivers.
These tests use the machine's PostgreSQL (``tests.servers.postgres_url``),
each in a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from storaged import exception
from storaged.catalog import Timestamp
from storaged.catalog.factory import open_catalog
from storaged.catalog.listing import MAX_LIMIT
from storaged.catalog.postgresql import PostgresCatalog
from storaged.catalog.postgresql import url as url_mod
from storaged.catalog.postgresql.schema import SCHEMA_VERSION
from tests.servers import free_port
from tests.unit.catalog.test_factory import make_conf

psycopg = pytest.importorskip("psycopg")


@pytest.fixture
def url(postgres_schema_url):
    return postgres_schema_url


@pytest.fixture
def pg(url, tmp_path):
    cat = PostgresCatalog(url, path=str(tmp_path), synchronous="normal", timeout=5.0)
    yield cat
    cat.close()


def admin(url):
    return psycopg.connect(url.partition("?")[0], autocommit=True)


def schema_of(url):
    return url.rpartition("schema=")[2]


# -- URLs and the factory ------------------------------------------------------


def test_url_defaults_and_parameters():
    kwargs = url_mod.parse_url("postgres://u:p%40ss@db.example:6543/cat?sslmode=require")
    assert kwargs == {
        "host": "db.example", "port": 6543, "dbname": "cat", "user": "u",
        "password": "p@ss", "schema": "storaged_catalog", "sslmode": "require",
    }
    assert url_mod.parse_url("postgresql://h/d?schema=c1")["schema"] == "c1"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("postgresql:///db", "names no host"),
        ("postgresql://h/", "names no database"),
        ("postgresql://h:99999/d", "port"),
        ("postgresql://h/d?schema=Bad-Name", "schema must be"),
        ("postgresql://h/d?colour=red", "'colour' is not known"),
        ("postgresql://h/d?sslmode=maybe", "sslmode must be one of"),
        ("postgresql://u:secret@h/d#cret", "fragment"),
    ],
)
def test_bad_urls(tmp_path, url, words):
    with pytest.raises(ValueError, match=words):
        url_mod.parse_url(url)
    with pytest.raises(exception.ConfigError) as info:
        open_catalog(make_conf(tmp_path, backend_url=url))
    assert "[catalog] backend_url" in str(info.value)
    assert "cret" not in str(info.value)


def test_factory_opens_postgresql_and_a_named_sibling(url, tmp_path):
    conf = make_conf(tmp_path, backend_url=url, reclaim_age=60)
    cat = open_catalog(conf)
    queue = open_catalog(conf, name="expirer")
    try:
        assert isinstance(cat, PostgresCatalog)
        assert cat.reclaim_age == 60
        assert cat.path == str(tmp_path / "catalog")
        assert queue.schema == cat.schema + "_expirer"
        cat.container("AUTH_a", "c").create("1000")
        queue.container("AUTH_a", "other").create("1000")
        assert list(cat.iter_containers()) == [("AUTH_a", "c")]
        assert list(queue.iter_containers()) == [("AUTH_a", "other")]
    finally:
        cat.close()
        queue.close()
        with admin(url) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{queue.schema}" CASCADE')


# -- the schema ------------------------------------------------------------------


def test_schema_is_made_once_by_many_at_once(url):
    cats = [PostgresCatalog(url) for _ in range(4)]
    errors = []

    def first_use(cat):
        try:
            cat.list_accounts()
        except Exception as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=first_use, args=(c,)) for c in cats]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for cat in cats:
        cat.close()
    assert errors == []
    with admin(url) as conn:
        row = conn.execute(
            f'SELECT value FROM "{schema_of(url)}".meta WHERE name = %s',
            ("schema_version",),
        ).fetchone()
    assert row == (SCHEMA_VERSION,)


def test_unknown_schema_version_is_a_clear_error(url, pg):
    pg.list_accounts()
    with admin(url) as conn:
        conn.execute(
            f'UPDATE "{schema_of(url)}".meta SET value = 99 '
            "WHERE name = 'schema_version'"
        )
    other = PostgresCatalog(url)
    try:
        with pytest.raises(exception.CatalogError, match="schema version 99"):
            other.list_accounts()
    finally:
        other.close()


def test_unreachable_server_is_catalog_busy(tmp_path):
    cat = PostgresCatalog(
        f"postgresql://postgres@127.0.0.1:{free_port()}/test", timeout=1.0
    )
    try:
        with pytest.raises(exception.CatalogBusy) as info:
            cat.container("AUTH_a", "c").info()
    finally:
        cat.close()
    assert "127.0.0.1" in str(info.value)


def test_damage_is_a_clear_error_not_a_crash(url, pg):
    b = pg.container("AUTH_a", "c")
    b.create("1000")
    with admin(url) as conn:
        conn.execute(f'DROP TABLE "{schema_of(url)}".sync_points')
    with pytest.raises(exception.CatalogError, match="sync_points"):
        b.get_sync_points("w1")
    assert b.info().object_count == 0  # the rest still answers


# -- writes ----------------------------------------------------------------------


def test_a_failed_write_records_no_garbage(url, pg):
    b = pg.container("AUTH_a", "c")
    b.create("1000")
    b.put_object("o", "1001", 1, "t", "e", backend="b1", location="loc-1")
    with admin(url) as conn:
        conn.execute(f'SET search_path = "{schema_of(url)}"')
        conn.execute(
            "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN IF NEW.location = 'poison' THEN RAISE EXCEPTION 'boom'; END IF; "
            "RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER poison BEFORE INSERT OR UPDATE ON objects "
            "FOR EACH ROW EXECUTE FUNCTION poison()"
        )
    with pytest.raises(exception.CatalogError, match="boom"):
        b.put_object("o", "1002", 5, "t", "e", backend="b1", location="poison")
    assert b.list_garbage() == []
    info = b.info()
    assert (info.garbage_count, info.max_row, info.bytes_used) == (0, 1, 1)
    assert b.get_object("o").location == "loc-1"


def test_row_and_garbage_appear_together(url, pg):
    b = pg.container("AUTH_a", "c")
    b.create("1000")
    b.put_object("o", "1001", 1, "t", "e", backend="b1", location="loc-1")
    schema = schema_of(url)
    with admin(url) as reader:
        reader.autocommit = False
        reader.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")

        def snapshot():
            row = reader.execute(
                f'SELECT location FROM "{schema}".objects WHERE name = %s', ("o",)
            ).fetchone()
            garbage = reader.execute(
                f'SELECT location FROM "{schema}".garbage ORDER BY id'
            ).fetchall()
            return row[0], [g[0] for g in garbage]

        assert snapshot() == ("loc-1", [])  # the snapshot is taken here
        b.put_object("o", "1002", 1, "t", "e", backend="b1", location="loc-2")
        assert snapshot() == ("loc-1", [])
        reader.commit()
        assert snapshot() == ("loc-2", ["loc-1"])
        reader.commit()


def test_default_limit_is_ten_thousand(url, pg):
    b = pg.container("AUTH_a", "c")
    b.create("1000")
    total = MAX_LIMIT + 5
    with admin(url) as conn:  # fast: rows straight into the table
        conn.execute(
            f'INSERT INTO "{schema_of(url)}".objects (container_id, name, row_id, '
            "created_at, size, deleted) SELECT (SELECT id FROM "
            f'"{schema_of(url)}".containers), '
            "CASE WHEN i <= %(n)s THEN 'o' ELSE 't' END || "
            "lpad((i %% %(n)s)::text, 5, '0'), i, '2000', 1, i > %(n)s "
            "FROM generate_series(1, 2 * %(n)s) AS i",
            {"n": total},
        )
    listed = b.list_objects()
    assert len(listed) == MAX_LIMIT
    assert all(e.name.startswith("o") for e in listed)  # tombstones never show
    after = [e.name for e in b.list_objects(marker=f"o{MAX_LIMIT - 1:05d}")]
    assert len(after) == 5


def test_two_catalogs_are_two_nodes(url, tmp_path):
    # Two catalogs on one schema see each other at once: the index has no lag.
    a = PostgresCatalog(url, path=str(tmp_path / "a"))
    b = PostgresCatalog(url, path=str(tmp_path / "b"))
    try:
        a.container("AUTH_x", "c").create("1000")
        a.container("AUTH_x", "c").put_object("o", "1001", 7, "t", "e")
        assert b.account_info("AUTH_x").object_count == 1
        assert [c.bytes_used for c in b.list_containers("AUTH_x")] == [7]
        b.container("AUTH_x", "c").delete_object("o", "1002")
        assert a.account_info("AUTH_x").bytes_used == 0
    finally:
        a.close()
        b.close()


def test_writers_in_threads_lose_nothing(pg):
    broker = pg.container("AUTH_a", "c")
    broker.create("1000")
    per_thread = 50

    def write(t):
        for i in range(per_thread):
            broker.put_object(f"t{t}-{i}", f"{1001 + i}.{t:05d}", 1, "t", "e")

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = broker.get_items_since(-1, limit=10_000)
    assert len(rows) == 4 * per_thread
    assert [r.row_id for r in rows] == list(range(1, 4 * per_thread + 1))
    assert broker.info().object_count == 4 * per_thread


def test_a_writer_that_waited_for_the_lock_sees_the_row_written_meanwhile(url, pg):
    # Two puts of one name wait behind a held lock of the container's row;
    # whichever goes second must see the first one's row (not its snapshot
    # from before the wait), or it would count the object twice and might
    # overwrite a newer write.
    b = pg.container("AUTH_a", "c")
    b.create("1000")
    results = {}

    def put(ts):
        results[ts] = b.put_object("o", ts, int(float(ts)), "t", "e")

    with admin(url) as holder:
        holder.autocommit = False
        holder.execute(
            f'SELECT 1 FROM "{schema_of(url)}".containers FOR UPDATE'
        )
        threads = [threading.Thread(target=put, args=(ts,)) for ts in ("2000", "1500")]
        for t in threads:
            t.start()
            time.sleep(0.3)  # waiting for the lock, in this order
        holder.commit()
        for t in threads:
            t.join()
    assert sorted(results.items()) == [("1500", False), ("2000", True)]
    info = b.info()
    assert (info.object_count, info.bytes_used, info.max_row) == (1, 2000, 1)
    assert b.get_object("o").created_at == Timestamp("2000")


def _wait_for(predicate, what, patience=30.0):
    deadline = time.monotonic() + patience
    while not predicate():
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.01)


def test_concurrent_writes_share_one_transaction_each_its_own_answer(url, pg):
    # A leader waits behind a held lock of the containers' rows while eight
    # more writes queue: they go in one transaction (one xmin), and each
    # caller gets its own answer.
    pg.container("AUTH_a", "c1").create("1000")
    pg.container("AUTH_a", "c2").create("1000")
    gone = pg.container("AUTH_a", "gone")
    gone.create("1000")
    gone.delete("1001")
    answers = {}

    def put(i, container, name, ts):
        try:
            answers[i] = pg.container("AUTH_a", container).put_object(
                name, ts, 1, "t", "e")
        except exception.StoragedError as err:
            answers[i] = type(err).__name__

    writes = [("c1", "first", "2000"), ("c2", "a", "2000"), ("c1", "b", "2000"),
              ("c2", "c", "2000"), ("nope", "d", "2000"), ("gone", "e", "2000"),
              ("c1", "first", "1999"), ("c1", "f", "2000"), ("c2", "a", "2001")]
    group = pg._conns.group
    with admin(url) as holder:
        holder.autocommit = False
        holder.execute(f'SELECT 1 FROM "{schema_of(url)}".containers FOR UPDATE')
        threads = [threading.Thread(target=put, args=(i, *w))
                   for i, w in enumerate(writes)]
        threads[0].start()
        _wait_for(lambda: group._leading, "led")
        for t in threads[1:]:
            t.start()
        _wait_for(lambda: len(group._pending) == len(writes) - 1, "queued")
        holder.commit()
        for t in threads:
            t.join(30)
    assert [answers[i] for i in range(len(writes))] == [
        True, True, True, True, "ContainerNotFound", "ContainerNotFound", False,
        True, True]
    schema = schema_of(url)
    with admin(url) as conn:
        rows = conn.execute(
            f'SELECT c.container, o.name, o.row_id, o.xmin::text FROM "{schema}"'
            f'.objects o JOIN "{schema}".containers c ON c.id = o.container_id '
            "ORDER BY c.container, o.row_id").fetchall()
    by_name = {(r[0], r[1]): r for r in rows}
    assert sorted(by_name) == [("c1", "b"), ("c1", "f"), ("c1", "first"),
                               ("c2", "a"), ("c2", "c")]
    batch_xmins = {by_name[k][3] for k in by_name if k != ("c1", "first")}
    assert len(batch_xmins) == 1
    assert by_name["c1", "first"][3] not in batch_xmins
    # Row ids in commit order, one per write, per container.
    assert [r[2] for r in rows if r[0] == "c1"] == [1, 2, 3]
    assert [(r[1], r[2]) for r in rows if r[0] == "c2"] == [("c", 2), ("a", 3)]
    assert pg.container("AUTH_a", "c2").get_object("a").created_at == Timestamp("2001")
    assert pg.container("AUTH_a", "c1").info().object_count == 3


def test_a_write_that_fails_in_a_batch_fails_alone(pg):
    # A statement error rolls the whole pipeline back: every write is then
    # run on its own, and only the failing one's caller gets the error.
    from storaged.catalog.group_commit import Change
    from storaged.catalog.postgresql import batch

    pg.container("AUTH_a", "c").create("1000")
    names = {"account": "AUTH_a", "container": "c"}

    def write(name, size):
        params = {**names, "name": name, "created_at": Timestamp("2000").internal,
                  "size": size, "content_type": "t", "etag": "e", "backend": "",
                  "location": "", "deleted": False, "metadata": "{}", "live": 1,
                  "now": time.time()}
        return Change(batch.RowWrite(names, params))

    changes = [write("good", 1), write("bad", 2**70), write("also-good", 2)]
    batch.run_batch(pg._conns, changes)
    assert [c.result[1] if c.error is None else None for c in changes] == [
        True, None, True]
    assert isinstance(changes[1].error, exception.CatalogError)
    assert "out of range" in str(changes[1].error)
    broker = pg.container("AUTH_a", "c")
    assert [r.name for r in broker.list_objects()] == ["also-good", "good"]
    assert broker.info().bytes_used == 3


GREEN_CHILD = r"""
import sys
from storaged import concurrency
concurrency.setup("eventlet")
from storaged.catalog import Timestamp
from storaged.catalog.postgresql import PostgresCatalog

catalog = PostgresCatalog(sys.argv[1], synchronous="normal")
broker = catalog.container("AUTH_green", "box")
concurrency.run_blocking(broker.create, "1000")

def work(g):
    for i in range(10):
        name = "g%d-%d" % (g, i)
        assert concurrency.run_blocking(
            broker.put_object, name, Timestamp(2000 + i, offset=g), g, "t", "e")
        assert concurrency.run_blocking(broker.get_object, name).size == g
        concurrency.run_blocking(broker.list_objects, prefix="g%d-" % g, limit=3)
    return g

tasks = [concurrency.spawn(work, g) for g in range(8)]
assert sorted(t.wait(60) for t in tasks) == list(range(8))
info = concurrency.run_blocking(broker.info)
assert info.object_count == 80, info
assert info.max_row == 80, info
catalog.close()
print("ok", info.object_count)
"""


def test_green_threads_through_run_blocking(url):
    # As storaged-api calls it: eventlet, each call in run_blocking's threads.
    proc = subprocess.run(
        [sys.executable, "-c", GREEN_CHILD, url],
        capture_output=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert proc.stdout.decode().strip() == "ok 80"


def test_sibling_schema_name_too_long_is_a_clear_error(tmp_path):
    long_url = "postgresql://h/d?schema=" + "s" * 60
    with pytest.raises(exception.ConfigError, match="schema"):
        open_catalog(make_conf(tmp_path, backend_url=long_url), name="expirer")


def test_the_expiry_queue_lives_in_a_schema_beside(url, pg):
    from storaged.objects.expiry import Entry
    from storaged.objects.expiry import ExpiryQueue

    queue = ExpiryQueue.beside(pg)
    try:
        assert queue.catalog.schema == pg.schema + "_expirer"
        entry = Entry(1700003700, "AUTH_a", "c", "o")
        queue.add(entry)
        (bucket,) = queue.buckets(1800000000)
        assert list(queue.due(bucket, 1800000000)) == [entry]
        assert pg.list_accounts() == []  # not in the objects' catalog
        queue.remove(entry)
        assert queue.drop_if_empty(bucket, 1800000000)
    finally:
        queue.close()
        with admin(url) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{pg.schema}_expirer" CASCADE')
