"""Account and container metadata: the per-key merge, the sync and secret keys.

Metadata is stored as one JSON object in the ``container_info`` (or
``account_info``) row, each key with the value and the timestamp of its
last update (:data:`StoredMetadata`), as Swift stores it.  Updates are
merged one key at a time, last writer wins (:func:`merge_entries`); an
empty value deletes a key, which keeps its timestamp so that an older value
cannot come back.  A change of ``X-Container-Sync-To`` resets every sync
point of the container, as in Swift.
"""

from __future__ import annotations

from collections.abc import Mapping
import json
import sqlite3
from typing import Final
from typing import TypeAlias

from storaged.catalog import names
from storaged.catalog.timestamp import Timestamp

#: Container metadata keys that configure container sync (Swift's headers).
SYNC_TO_KEY: Final = "X-Container-Sync-To"
SYNC_KEY_KEY: Final = "X-Container-Sync-Key"
#: Container metadata whose values are secrets: masked in reprs and dumps.
SECRET_KEYS: Final = frozenset(
    {SYNC_KEY_KEY, "X-Container-Meta-Temp-Url-Key", "X-Container-Meta-Temp-Url-Key-2"}
)
#: Account metadata whose values are secrets (the temporary URL keys).
ACCOUNT_SECRET_KEYS: Final = frozenset(
    {"X-Account-Meta-Temp-Url-Key", "X-Account-Meta-Temp-Url-Key-2"}
)
#: What a secret value is shown as.
MASK: Final = "***"

#: Container metadata as stored: key -> ``[value, timestamp]`` (the
#: timestamp in internal form; an empty value marks a deleted key).
StoredMetadata: TypeAlias = dict[str, list[str]]


def stored_value(metadata: StoredMetadata, key: str) -> str:
    """Return the value of ``key`` in stored metadata, ``""`` if unset or deleted."""
    entry = metadata.get(key)
    return entry[0] if entry else ""


def live_values(metadata: StoredMetadata) -> dict[str, str]:
    """Return the keys of stored metadata that have a value, with their values."""
    return {k: v[0] for k, v in metadata.items() if v[0]}


def merge_entries(
    current: StoredMetadata, updates: Mapping[str, str], ts: Timestamp
) -> StoredMetadata:
    """Return ``current`` with ``updates`` made at ``ts`` merged in.

    Each key is taken only if ``ts`` is newer than the key's timestamp, so
    updates applied in any order end the same.  ``current`` is not changed.
    """
    merged = {k: list(v) for k, v in current.items()}
    for key, value in updates.items():
        old = merged.get(key)
        if old is None or ts > Timestamp(old[1]):
            merged[key] = [value, ts.internal]
    return merged


def dump_stored(metadata: StoredMetadata) -> str:
    """Return stored metadata as the JSON text its column holds."""
    return json.dumps(metadata, sort_keys=True, ensure_ascii=False)


def check_account_metadata(
    metadata: Mapping[str, str], limits: names.Limits
) -> dict[str, str]:
    """Validate account metadata headers; return them in canonical case.

    :raises storaged.exception.InvalidName: a bad key or value.
    """
    return names.validate_metadata(
        metadata,
        kind="account metadata",
        prefix=names.ACCOUNT_META_PREFIX,
        limits=limits,
    )


def check_container_metadata(
    metadata: Mapping[str, str], limits: names.Limits
) -> dict[str, str]:
    """Validate container metadata headers; return them in canonical case.

    :raises storaged.exception.InvalidName: a bad key or value.
    """
    return names.validate_metadata(
        metadata,
        kind="container metadata",
        prefix=names.CONTAINER_META_PREFIX,
        limits=limits,
    )


def merge_metadata(
    conn: sqlite3.Connection,
    current: StoredMetadata,
    updates: Mapping[str, str],
    ts: Timestamp,
    limits: names.Limits,
) -> bool:
    """Merge ``updates`` at ``ts`` into the metadata, inside a write transaction.

    Each key is taken only if ``ts`` is newer than the key's.  Writes the
    merged metadata to ``container_info`` and, when the effective
    ``X-Container-Sync-To`` changes, forgets every sync point.

    :param current: the metadata as read in this transaction.
    :returns: whether anything changed.
    :raises storaged.exception.InvalidName: the user metadata would exceed
        the limits.
    """
    merged = merge_entries(current, updates, ts)
    if merged == current:
        return False
    names.check_user_metadata_totals(
        {k: v[0] for k, v in merged.items()},
        kind="container metadata",
        prefix=names.CONTAINER_META_PREFIX,
        limits=limits,
    )
    old_sync_to = stored_value(current, SYNC_TO_KEY)
    new_sync_to = merged[SYNC_TO_KEY][0] if SYNC_TO_KEY in merged else ""
    if old_sync_to != new_sync_to:
        # A new target: everything must be pushed again (as Swift does).
        conn.execute("DELETE FROM sync_points")
    conn.execute("UPDATE container_info SET metadata = ?", (dump_stored(merged),))
    return True
