"""Accounts in the PostgreSQL catalog: their metadata.

An account's containers and totals are read from the ``containers`` table
(see :mod:`.catalog`); what cannot be derived from them, the account's
metadata (``X-Account-Meta-*``), is a row of ``accounts``, made by the
account's first update.  Each update locks the row and merges one key at a
time, last writer wins, as :mod:`storaged.catalog.account` describes.
"""

from __future__ import annotations

from collections.abc import Mapping
import json
from types import TracebackType
from typing import Any
from typing import Self

from storaged import exception
from storaged.catalog import names
from storaged.catalog.account import AccountRecord
from storaged.catalog.metadata import check_account_metadata
from storaged.catalog.metadata import dump_stored
from storaged.catalog.metadata import live_values
from storaged.catalog.metadata import merge_entries
from storaged.catalog.postgresql.connection import Conn
from storaged.catalog.postgresql.connection import Connections
from storaged.catalog.timestamp import Timestamp
from storaged.catalog.timestamp import TimestampLike
from storaged.catalog.timestamp import parse_timestamp


class PostgresAccountBroker:
    """One account's metadata in the PostgreSQL catalog.

    :param conns: the catalog's connections.
    :param account: the account's name (checked by the caller).
    :param limits: the metadata limits.
    """

    def __init__(
        self,
        conns: Connections,
        account: str,
        *,
        limits: names.Limits = names.DEFAULT_LIMITS,
    ) -> None:
        self._conns = conns
        self.account = account
        self.limits = limits

    def __repr__(self) -> str:
        return f"<PostgresAccountBroker {self.account}>"

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
        """Nothing to release: connections go back to the pool after each call."""

    def _row(self, conn: Conn) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = conn.execute(
            "SELECT created_at, metadata FROM accounts WHERE account = %s",
            (self.account,),
        ).fetchone()
        return row

    def exists(self) -> bool:
        """Tell whether the account has a record (it had metadata once)."""
        return self._conns.read(self._row) is not None

    def info(self) -> AccountRecord:
        """Read the account's metadata.

        :raises storaged.exception.AccountNotFound: the account never had
            metadata.
        """
        row = self._conns.read(self._row)
        if row is None:
            raise exception.AccountNotFound(account=self.account)
        stored = json.loads(row[1])
        return AccountRecord(
            account=self.account,
            created_at=Timestamp(row[0]),
            metadata=live_values(stored),
            metadata_timestamps={k: Timestamp(v[1]) for k, v in stored.items()},
        )

    def update_metadata(
        self, updates: Mapping[str, str], timestamp: TimestampLike | None = None
    ) -> bool:
        """Merge metadata into the account's (Swift's account POST).

        :returns: whether anything changed.
        :raises storaged.exception.InvalidName: a bad key or value.
        :raises storaged.exception.MetadataTooLarge: over the limits once merged.
        """
        ts = parse_timestamp(timestamp)
        meta = check_account_metadata(updates, self.limits)
        if not meta:
            return False

        def work(conn: Conn) -> bool:
            conn.execute(
                "INSERT INTO accounts (account, created_at) VALUES (%s, %s) "
                "ON CONFLICT (account) DO NOTHING",
                (self.account, Timestamp.now().internal),
            )
            row = conn.execute(
                "SELECT metadata FROM accounts WHERE account = %s FOR UPDATE",
                (self.account,),
            ).fetchone()
            assert row is not None
            current = json.loads(row[0])
            merged = merge_entries(current, meta, ts)
            if merged == current:
                return False
            names.check_user_metadata_totals(
                live_values(merged),
                kind="account metadata",
                prefix=names.ACCOUNT_META_PREFIX,
                limits=self.limits,
            )
            conn.execute(
                "UPDATE accounts SET metadata = %s WHERE account = %s",
                (dump_stored(merged), self.account),
            )
            return True

        return self._conns.transaction(work)
