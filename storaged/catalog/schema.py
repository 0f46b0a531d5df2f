"""The catalog's sqlite schemas and their migrations.

Each kind of database (a container, an account, the account index) has a
list of migrations; migration ``n`` takes a database from version ``n`` to
``n + 1``, and the version is kept in ``PRAGMA user_version``.  A new
database is built by running every migration from version 0, so there is
one path to the current schema, and an old database is brought forward the
same way when it is opened, in one ``BEGIN IMMEDIATE`` transaction (another
process may be doing the same at the same time; the version is read again
under the lock).

A database is made in a temporary file and renamed into place only once
its schema is complete, so a database file in place at version 0 can only
be a damaged one (an empty file opens as an empty database in sqlite); the
catalog treats it as corrupt.  A version above the newest one known here
means a newer storaged wrote it: the database is left alone and an error
raised.

To change a schema, append a migration (never edit a released one) and add
a test that opens a database of the previous version.
"""

from __future__ import annotations

import dataclasses
import sqlite3

from storaged import exception


@dataclasses.dataclass(frozen=True)
class Schema:
    """A kind of database: its name and its migrations, oldest first.

    :param name: what the database is, for messages.
    :param migrations: ``migrations[n]`` holds the statements that take a
        database from version ``n`` to ``n + 1``.
    :param check: a cheap query that reads the main table, run when a
        database is opened to catch a damaged schema early.
    """

    name: str
    migrations: tuple[tuple[str, ...], ...]
    check: str

    @property
    def version(self) -> int:
        """The newest version, the one a database is brought to."""
        return len(self.migrations)


def user_version(conn: sqlite3.Connection) -> int:
    """Return the schema version stored in the database header."""
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def migrate(conn: sqlite3.Connection, schema: Schema) -> int:
    """Bring the database on ``conn`` to ``schema.version``.

    ``conn`` must be in autocommit mode (``isolation_level=None``) and not
    in a transaction.

    :returns: the version the database had before.
    :raises storaged.exception.CatalogError: the database is newer than
        this code knows.
    """
    found = user_version(conn)
    if found == schema.version:
        return found
    if found > schema.version:
        raise exception.CatalogError(
            reason=f"{schema.name} database has schema version {found}, newer "
            f"than the {schema.version} this storaged knows; upgrade storaged"
        )
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = user_version(conn)
        for version in range(found, schema.version):
            for statement in schema.migrations[version]:
                conn.execute(statement)
            # PRAGMA takes no parameters; the value is an int we computed.
            conn.execute(f"PRAGMA user_version = {version + 1:d}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return found


# -- a container database ----------------------------------------------------

CONTAINER = Schema(
    name="container",
    check="SELECT account, container FROM container_info",
    migrations=(
        (
            # One row: the container itself (timestamps default to zero).
            # ``id`` is the random id of this database file (its file name);
            # ``version`` goes up by one with every write transaction and
            # orders the reports sent to the account index.
            """
            CREATE TABLE container_info (
                id TEXT NOT NULL,
                account TEXT NOT NULL,
                container TEXT NOT NULL,
                created_at TEXT NOT NULL,
                put_timestamp TEXT NOT NULL DEFAULT '0000000000.00000',
                delete_timestamp TEXT NOT NULL DEFAULT '0000000000.00000',
                status_changed_at TEXT NOT NULL DEFAULT '0000000000.00000',
                object_count INTEGER NOT NULL DEFAULT 0,
                bytes_used INTEGER NOT NULL DEFAULT 0,
                metadata TEXT NOT NULL DEFAULT '{}',
                version INTEGER NOT NULL DEFAULT 0
            )
            """,
            # One row per object name.  AUTOINCREMENT: a row id is never
            # used twice, even after the newest row was replaced or
            # reclaimed, so a sync point can never skip a later change.
            """
            CREATE TABLE objects (
                ROWID INTEGER PRIMARY KEY AUTOINCREMENT,
                name TEXT NOT NULL UNIQUE,
                created_at TEXT NOT NULL,
                size INTEGER NOT NULL DEFAULT 0,
                content_type TEXT NOT NULL DEFAULT '',
                etag TEXT NOT NULL DEFAULT '',
                deleted INTEGER NOT NULL DEFAULT 0,
                backend TEXT NOT NULL DEFAULT '',
                location TEXT NOT NULL DEFAULT '',
                metadata TEXT NOT NULL DEFAULT '{}'
            )
            """,
            # Listings read live names in order; reclaim reads old tombstones.
            "CREATE INDEX ix_objects_live_name ON objects (name) WHERE deleted = 0",
            "CREATE INDEX ix_objects_tombstone_age ON objects (created_at) "
            "WHERE deleted = 1",
            # Counts follow the rows, whatever code path changes them.
            """
            CREATE TRIGGER objects_insert AFTER INSERT ON objects
            WHEN new.deleted = 0
            BEGIN
                UPDATE container_info
                SET object_count = object_count + 1,
                    bytes_used = bytes_used + new.size;
            END
            """,
            """
            CREATE TRIGGER objects_delete AFTER DELETE ON objects
            WHEN old.deleted = 0
            BEGIN
                UPDATE container_info
                SET object_count = object_count - 1,
                    bytes_used = bytes_used - old.size;
            END
            """,
            # A change must get a new row id to show in the change log, so
            # rows are replaced (DELETE + INSERT), never updated in place.
            """
            CREATE TRIGGER objects_no_update BEFORE UPDATE ON objects
            BEGIN
                SELECT RAISE(ABORT, 'objects rows are replaced, never updated');
            END
            """,
            """
            CREATE TABLE sync_points (
                worker TEXT PRIMARY KEY,
                point1 INTEGER NOT NULL DEFAULT -1,
                point2 INTEGER NOT NULL DEFAULT -1,
                updated_at TEXT NOT NULL
            )
            """,
        ),
        (
            # Object data no longer referenced by any row: written in the
            # transaction that replaced the row, removed once the data is
            # deleted from its back end.  AUTOINCREMENT: an id is never
            # given twice, so a collector that forgets the entries it
            # listed can never forget a newer entry that took a freed id.
            # ``added_at``: seconds since the epoch (the wall clock).
            """
            CREATE TABLE garbage (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                backend TEXT NOT NULL,
                location TEXT NOT NULL,
                added_at REAL NOT NULL
            )
            """,
            # Kept in step by triggers, as object_count is; reported to
            # the account index so that a periodic job finds the
            # containers with data to delete without opening them all.
            "ALTER TABLE container_info "
            "ADD COLUMN garbage_count INTEGER NOT NULL DEFAULT 0",
            """
            CREATE TRIGGER garbage_insert AFTER INSERT ON garbage
            BEGIN
                UPDATE container_info SET garbage_count = garbage_count + 1;
            END
            """,
            """
            CREATE TRIGGER garbage_delete AFTER DELETE ON garbage
            BEGIN
                UPDATE container_info SET garbage_count = garbage_count - 1;
            END
            """,
        ),
    ),
)


# -- an account database -----------------------------------------------------

ACCOUNT = Schema(
    name="account",
    check="SELECT account, metadata FROM account_info",
    migrations=(
        (
            # One row: the account.  ``id`` is the random id of this
            # database file (its file name); ``metadata`` is JSON
            # ``{key: [value, timestamp]}`` as in ``container_info``.  The
            # account's containers and totals are in the account index:
            # only what cannot be derived from the containers lives here.
            """
            CREATE TABLE account_info (
                id TEXT NOT NULL,
                account TEXT NOT NULL,
                created_at TEXT NOT NULL,
                metadata TEXT NOT NULL DEFAULT '{}'
            )
            """,
        ),
    ),
)


# -- the account index -------------------------------------------------------

INDEX = Schema(
    name="account index",
    check="SELECT count(*) FROM containers WHERE account = ''",
    migrations=(
        (
            # One row per container on this node, live or deleted (until
            # its database is reclaimed).  ``db_id``/``db_created_at`` name
            # the container database the figures come from, ``version`` is
            # that database's write counter: a report is applied only if it
            # is from a newer database or a later version of the same one,
            # so reports that arrive out of order never roll figures back.
            """
            CREATE TABLE containers (
                account TEXT NOT NULL,
                container TEXT NOT NULL,
                db_id TEXT NOT NULL,
                db_created_at TEXT NOT NULL,
                version INTEGER NOT NULL,
                put_timestamp TEXT NOT NULL,
                delete_timestamp TEXT NOT NULL,
                status_changed_at TEXT NOT NULL,
                object_count INTEGER NOT NULL,
                bytes_used INTEGER NOT NULL,
                deleted INTEGER NOT NULL,
                sync INTEGER NOT NULL,
                PRIMARY KEY (account, container)
            ) WITHOUT ROWID
            """,
            "CREATE INDEX ix_containers_sync ON containers (account, container) "
            "WHERE sync = 1 AND deleted = 0",
        ),
        (
            # How many entries of unreferenced data each container database
            # holds, live or deleted: a periodic job lists those above zero.
            "ALTER TABLE containers ADD COLUMN garbage INTEGER NOT NULL DEFAULT 0",
            "CREATE INDEX ix_containers_garbage ON containers (account, container) "
            "WHERE garbage > 0",
        ),
    ),
)
