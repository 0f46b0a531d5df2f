"""The catalog's tables in PostgreSQL, made on first use.

One set of tables holds every container of the cluster, in the schema the
URL names (``search_path`` of every connection is set to it, so the
statements of this package name tables unqualified)::

    meta         name -> value: ``schema_version``
    containers   one row per container, live or deleted (until reclaimed):
                 the container's state, metadata JSON with per-key
                 timestamps, counts, and ``max_row``, the counter that gives
                 row ids.  Also the account index: listed by account.
    objects      one row per (container id, object name), live or
                 tombstone, with the ``row_id`` of its latest change
    sync_points  per (container id, worker)
    garbage      object data no row refers to any more, per container
    accounts     an account's metadata JSON with per-key timestamps

Name columns use the ``"C"`` collation: listings and markers compare names
by their UTF-8 bytes, as Swift (and the sqlite driver) do.  Timestamps are
kept as the fixed-width text of :attr:`Timestamp.internal
<storaged.catalog.timestamp.Timestamp.internal>`, which compares as the
timestamps do.

Several processes may start at once: the tables are made with
``CREATE ... IF NOT EXISTS`` in one transaction under an advisory lock,
and the schema version row is read back; a version this code does not know
is a :class:`~storaged.exception.CatalogError`, never a guess.
"""

from __future__ import annotations

from typing import Any
from typing import Final

from psycopg import sql

from storaged import exception

#: The version of the tables below.  A change appends a migration.
SCHEMA_VERSION: Final = 1

#: Arbitrary constant: the advisory lock taken while the tables are made.
SCHEMA_LOCK_KEY: Final = 0x5354_4341  # "STCA"

TABLES: Final = (
    """CREATE TABLE IF NOT EXISTS meta (
        name text PRIMARY KEY,
        value bigint NOT NULL
    )""",
    # ``db_id``: a random id of this incarnation of the container (a row
    # removed by reclaim and made again gets another), as the sqlite
    # driver's database id.  ``version`` goes up with every change;
    # ``max_row`` is the largest row id given (-1: none), bumped in the
    # writing transaction (see :mod:`.container`).
    """CREATE TABLE IF NOT EXISTS containers (
        id bigserial PRIMARY KEY,
        account text COLLATE "C" NOT NULL,
        container text COLLATE "C" NOT NULL,
        db_id text NOT NULL,
        created_at text NOT NULL,
        put_timestamp text COLLATE "C" NOT NULL DEFAULT '0000000000.00000',
        delete_timestamp text COLLATE "C" NOT NULL DEFAULT '0000000000.00000',
        status_changed_at text COLLATE "C" NOT NULL,
        object_count bigint NOT NULL DEFAULT 0,
        bytes_used bigint NOT NULL DEFAULT 0,
        metadata text NOT NULL DEFAULT '{}',
        sync boolean NOT NULL DEFAULT false,
        version bigint NOT NULL DEFAULT 0,
        max_row bigint NOT NULL DEFAULT -1,
        garbage_count bigint NOT NULL DEFAULT 0,
        UNIQUE (account, container)
    )""",
    "CREATE INDEX IF NOT EXISTS containers_sync ON containers (account, container) "
    "WHERE sync",
    "CREATE INDEX IF NOT EXISTS containers_garbage ON containers "
    "(account, container) WHERE garbage_count > 0",
    """CREATE TABLE IF NOT EXISTS objects (
        container_id bigint NOT NULL REFERENCES containers (id) ON DELETE CASCADE,
        name text COLLATE "C" NOT NULL,
        row_id bigint NOT NULL,
        created_at text COLLATE "C" NOT NULL,
        size bigint NOT NULL DEFAULT 0,
        content_type text NOT NULL DEFAULT '',
        etag text NOT NULL DEFAULT '',
        deleted boolean NOT NULL DEFAULT false,
        backend text NOT NULL DEFAULT '',
        location text NOT NULL DEFAULT '',
        metadata text NOT NULL DEFAULT '{}',
        PRIMARY KEY (container_id, name)
    )""",
    # The change log: rows after a sync point, in row id order.
    "CREATE UNIQUE INDEX IF NOT EXISTS objects_row_id "
    "ON objects (container_id, row_id)",
    # Listings read live names in order; reclaim reads old tombstones.
    "CREATE INDEX IF NOT EXISTS objects_live ON objects (container_id, name) "
    "WHERE NOT deleted",
    "CREATE INDEX IF NOT EXISTS objects_tombstones ON objects "
    "(container_id, created_at) WHERE deleted",
    """CREATE TABLE IF NOT EXISTS sync_points (
        container_id bigint NOT NULL REFERENCES containers (id) ON DELETE CASCADE,
        worker text NOT NULL,
        point1 bigint NOT NULL DEFAULT -1,
        point2 bigint NOT NULL DEFAULT -1,
        updated_at text NOT NULL,
        PRIMARY KEY (container_id, worker)
    )""",
    # ``id`` from one sequence: never given twice, so a collector that
    # forgets the entries it listed never forgets a newer one.  No cascade:
    # a container is only removed once it has no garbage left.
    """CREATE TABLE IF NOT EXISTS garbage (
        id bigserial PRIMARY KEY,
        container_id bigint NOT NULL REFERENCES containers (id),
        backend text NOT NULL,
        location text NOT NULL,
        added_at double precision NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS garbage_container ON garbage (container_id, id)",
    """CREATE TABLE IF NOT EXISTS accounts (
        account text COLLATE "C" PRIMARY KEY,
        created_at text NOT NULL,
        metadata text NOT NULL DEFAULT '{}'
    )""",
)


def ensure_schema(conn: Any, schema: str, where: str) -> None:
    """Make the tables in ``schema`` if missing, then check their version.

    ``conn`` is in autocommit mode, its ``search_path`` set to ``schema``.

    :param where: the server and schema, for messages.
    :raises storaged.exception.CatalogError: an unknown schema version.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
        exists = conn.execute(
            "SELECT to_regclass(%s)", (f'"{schema}".meta',)
        ).fetchone()
        if exists is None or exists[0] is None:
            conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))
            )
            for statement in TABLES:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO meta (name, value) VALUES ('schema_version', %s) "
                "ON CONFLICT (name) DO NOTHING",
                (SCHEMA_VERSION,),
            )
        row = conn.execute(
            "SELECT value FROM meta WHERE name = 'schema_version'"
        ).fetchone()
    version = None if row is None else int(row[0])
    if version != SCHEMA_VERSION:
        raise exception.CatalogError(
            reason=f"the catalog in {where} has schema version {version}; this "
            f"storaged knows version {SCHEMA_VERSION} (upgrade storaged, or "
            "point [catalog] backend_url at another schema)"
        )
