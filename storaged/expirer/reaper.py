"""One pending expiry handled: the object deleted if it still expires then.

The delete is conditional, as Swift's expirer makes it with
``X-If-Delete-At``: the object must still carry the entry's
``X-Delete-At``.  It is a tombstone at the expiry's own timestamp, so that
a write made after the expiry (a newer timestamp) always wins, two
expirers handling the same entry apply it once (the second finds a row
as new as its delete), and container sync sends it as any delete.

Example: ``AUTH_a/c/o`` written at ``1700000000.00000`` with ``X-Delete-At:
1700003600``; its entry comes due.  The object still says ``1700003600``:
a tombstone at ``1700003600.00000`` replaces it and the entry is dropped
(*reaped*).  Had the object been rewritten at ``1700001000`` without an
expiry, or with another, the entry would be dropped alone (*stale*).
"""

from __future__ import annotations

from typing import Final

from storaged import exception
from storaged.catalog import Timestamp
from storaged.objects import expiry
from storaged.objects.repository import ObjectRepository

#: Outcomes of :func:`reap`.
REAPED: Final = "reaped"
STALE: Final = "stale"


def reap(
    objects: ObjectRepository, queue: expiry.ExpiryQueue, entry: expiry.Entry
) -> str:
    """Delete an expired object if the entry still applies; drop the entry.

    Runs in a thread (it reads and writes sqlite and object data).

    :param objects: the object service, without expiry's filter (an expired
        object must be seen to be deleted).
    :returns: :data:`REAPED` or :data:`STALE`.
    :raises storaged.exception.StoragedError: the delete failed; the entry
        stays for the next pass.
    """
    try:
        info = objects.head_object(entry.account, entry.container, entry.obj)
    except (exception.ObjectNotFound, exception.ContainerNotFound,
            exception.InvalidName):
        queue.remove(entry)
        return STALE
    if expiry.delete_at_of(info.metadata) != entry.delete_at:
        queue.remove(entry)
        return STALE
    when = Timestamp(entry.delete_at)
    if info.timestamp >= when:
        # Written (by a sync sender) with an expiry already past: deleted
        # just after its own write instead.
        when = Timestamp(info.timestamp, offset=1)
    try:
        applied = objects.delete_object(
            entry.account, entry.container, entry.obj, when
        )
    except exception.ContainerNotFound:
        applied = False
    queue.remove(entry)
    return REAPED if applied else STALE
