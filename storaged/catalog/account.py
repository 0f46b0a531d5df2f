"""Accounts: a small database per account, for what the index cannot derive.

The account index (:mod:`storaged.catalog.store`) is rebuilt from the
container databases whenever it is lost, so it holds nothing else.  An
account's metadata (Swift's ``X-Account-Meta-*``, set by an account POST)
has no other source: it lives in a database of its own, made by the
account's first update, under the hash of the account's name::

    accounts/<h[:2]>/<h>/<db id>.db     h = sha256("<account>")

The database is made like a container's (built in ``tmp/``, synced, renamed
into place under the directory lock: see :meth:`Database.create
<storaged.catalog.database.Database.create>`), so a crash leaves either no
database or a complete one.  Each update is one ``BEGIN IMMEDIATE``
transaction that reads the stored metadata and merges the update into it
one key at a time, last writer wins, as Swift's account server does (see
:mod:`storaged.catalog.metadata`).  With the timestamps of four updates::

    {"X-Account-Meta-Color": "blue"} at 1000    set
    {"X-Account-Meta-Color": "red"}  at  900    older than blue: ignored
    {"X-Account-Meta-Color": ""}     at 1100    removed (the key keeps 1100)
    {"X-Account-Meta-Color": "red"}  at 1050    older than the removal: ignored

An account without a database has no metadata: accounts exist implicitly,
as with Swift's ``account_autocreate``.
"""

from __future__ import annotations

from collections.abc import Mapping
import dataclasses
import json
import sqlite3
from types import TracebackType
from typing import Self

from storaged import exception
from storaged.catalog import names
from storaged.catalog.database import Database
from storaged.catalog.database import DatabaseMissing
from storaged.catalog.metadata import ACCOUNT_SECRET_KEYS
from storaged.catalog.metadata import MASK
from storaged.catalog.metadata import StoredMetadata
from storaged.catalog.metadata import check_account_metadata
from storaged.catalog.metadata import dump_stored
from storaged.catalog.metadata import live_values
from storaged.catalog.metadata import merge_entries
from storaged.catalog.timestamp import Timestamp
from storaged.catalog.timestamp import TimestampLike
from storaged.catalog.timestamp import parse_timestamp

# Times the first update makes the database again when it vanished
# (quarantined by another process) before the update could write.
_ATTEMPTS = 3


@dataclasses.dataclass(frozen=True)
class AccountRecord:
    """What an account's database holds.

    :ivar metadata: the keys that have a value (removed keys are left out).
    :ivar metadata_timestamps: the time of each key's last update, removed
        keys included.
    """

    account: str
    created_at: Timestamp
    metadata: Mapping[str, str]
    metadata_timestamps: Mapping[str, Timestamp]

    def __repr__(self) -> str:
        shown = {k: (MASK if k in ACCOUNT_SECRET_KEYS else v)
                 for k, v in self.metadata.items()}
        return "AccountRecord(account=%r, created_at=%s, metadata=%r)" % (
            self.account, self.created_at.internal, shown)


class AccountBroker:
    """One account's database (which may not exist yet).

    Every call is synchronous sqlite and file I/O; callers in green threads
    wrap them in :func:`storaged.concurrency.run_blocking`.

    :param db: the account's database.
    :param account: the account's name (checked by the caller).
    :param limits: the metadata limits.
    """

    def __init__(
        self,
        db: Database,
        account: str,
        *,
        limits: names.Limits = names.DEFAULT_LIMITS,
    ) -> None:
        self._db = db
        self.account = account
        self.limits = limits

    def __repr__(self) -> str:
        return f"<AccountBroker {self.account}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the database connection (a later call reopens it)."""
        self._db.close()

    @property
    def db(self) -> Database:
        """The database this broker works on."""
        return self._db

    def exists(self) -> bool:
        """Tell whether the account has a database."""
        return self._db.exists()

    def _read_row(self, conn: sqlite3.Connection) -> tuple[Timestamp, StoredMetadata]:
        row = conn.execute(
            "SELECT account, created_at, metadata FROM account_info"
        ).fetchone()
        if row is None:
            raise exception.CatalogError(
                reason=f"{self._db.directory} has no account_info row"
            )
        if row[0] != self.account:
            raise exception.CatalogError(
                reason=f"{self._db.directory} holds account {row[0]}, "
                f"not {self.account}"
            )
        return Timestamp(row[1]), json.loads(row[2])

    def info(self) -> AccountRecord:
        """Read the account's metadata.

        :raises storaged.exception.AccountNotFound: the account has no
            database (it never had metadata).
        :raises storaged.exception.CatalogCorrupt: damaged, now quarantined.
        """
        try:
            with self._db.read() as conn:
                created_at, stored = self._read_row(conn)
        except DatabaseMissing as err:
            raise exception.AccountNotFound(account=self.account) from err
        return AccountRecord(
            account=self.account,
            created_at=created_at,
            metadata=live_values(stored),
            metadata_timestamps={k: Timestamp(v[1]) for k, v in stored.items()},
        )

    def update_metadata(
        self, updates: Mapping[str, str], timestamp: TimestampLike | None = None
    ) -> bool:
        """Merge metadata into the account's (Swift's account POST).

        Keys are header names (``X-Account-Meta-Color``), case-insensitive,
        stored in canonical case.  Each key is updated only if
        ``timestamp`` is newer than the key's; an empty value removes the
        key.  The database is made first when the account has none.

        :returns: whether anything changed.
        :raises storaged.exception.InvalidName: a bad key or value (nothing
            is written, no database made).
        :raises storaged.exception.MetadataTooLarge: the user metadata would
            exceed the limits once merged (nothing is written).
        """
        ts = parse_timestamp(timestamp)
        meta = check_account_metadata(updates, self.limits)
        if not meta:
            return False
        for _attempt in range(_ATTEMPTS):
            self._db.create(self._init)
            try:
                return self._merge(meta, ts)
            except DatabaseMissing:
                continue  # quarantined meanwhile: start afresh
        raise exception.CatalogBusy(
            path=self._db.directory, reason="the database kept being replaced"
        )

    def _init(self, conn: sqlite3.Connection, db_id: str) -> None:
        conn.execute(
            "INSERT INTO account_info (id, account, created_at) VALUES (?, ?, ?)",
            (db_id, self.account, Timestamp.now().internal),
        )

    def _merge(self, meta: Mapping[str, str], ts: Timestamp) -> bool:
        with self._db.write() as conn:
            _created_at, current = self._read_row(conn)
            merged = merge_entries(current, meta, ts)
            if merged == current:
                return False
            names.check_user_metadata_totals(
                live_values(merged),
                kind="account metadata",
                prefix=names.ACCOUNT_META_PREFIX,
                limits=self.limits,
            )
            conn.execute("UPDATE account_info SET metadata = ?", (dump_stored(merged),))
            return True
