"""Container metadata: the sync and secret keys, and the per-key merge.

A container's metadata is stored as one JSON object in its
``container_info`` row, each key with the value and the timestamp of its
last update (:data:`StoredMetadata`).  Updates are merged one key at a
time, last writer wins; an empty value deletes a key, which keeps its
timestamp so that an older value cannot come back.  A change of
``X-Container-Sync-To`` resets every sync point, as in Swift.
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
#: What a secret value is shown as.
MASK: Final = "***"

#: Container metadata as stored: key -> ``[value, timestamp]`` (the
#: timestamp in internal form; an empty value marks a deleted key).
StoredMetadata: TypeAlias = dict[str, list[str]]


def stored_value(metadata: StoredMetadata, key: str) -> str:
    """Return the value of ``key`` in stored metadata, ``""`` if unset or deleted."""
    entry = metadata.get(key)
    return entry[0] if entry else ""


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
    merged = {k: list(v) for k, v in current.items()}
    for key, value in updates.items():
        old = merged.get(key)
        if old is None or ts > Timestamp(old[1]):
            merged[key] = [value, ts.internal]
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
    conn.execute(
        "UPDATE container_info SET metadata = ?",
        (json.dumps(merged, sort_keys=True, ensure_ascii=False),),
    )
    return True
