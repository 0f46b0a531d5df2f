"""Object expiry on the wire, as Swift's proxy and object server answer it.

* ``X-Delete-After: <seconds>`` on a PUT or POST becomes ``X-Delete-At:
  now + seconds`` (it wins over an ``X-Delete-At`` sent beside it);
  ``X-Delete-At`` is kept as ten digits, clamped to ``9999999999``
  (:func:`request_expiry`).  A value that is not an integer is a 400
  ``Non-integer X-Delete-After`` / ``Non-integer X-Delete-At``; a time not
  after now a 400 ``X-Delete-After in past`` / ``X-Delete-At in past``.
  A container-sync sender's ``X-Delete-At`` may be in the past (the object
  expired on its way, as Swift's replication may bring one).
* A POST replaces an object's metadata, its expiry with it: a POST
  without ``X-Delete-At`` (or with ``X-Remove-Delete-At``, which means
  nothing more to Swift) leaves the object without one.
* The object keeps ``X-Delete-At`` and sends it back on GET and HEAD.
  From that second on it is 404 for every read, write of metadata, copy or
  large-object segment (:class:`storaged.objects.expiry.ExpiringObjects`);
  its row stays listed until ``storaged-expirer`` reaps it.
* ``DELETE`` with ``X-If-Delete-At`` (:func:`check_delete`): 400 ``Bad
  X-If-Delete-At header value`` for a non-integer, 404 without an object,
  412 ``X-If-Delete-At and X-Delete-At do not match`` unless the object
  expires at that time, else 204 even once expired.  A plain DELETE of an
  expired object deletes its row and answers 404, as Swift's object
  server does.
* ``X-Open-Expired`` is ignored: Swift's ``allow_open_expired`` is off by
  default and storaged does not offer it.
"""

from __future__ import annotations

import time

from storaged import exception
from storaged.api.auth import Identity
from storaged.api.handlers.common import run
from storaged.api.protocol import HTML
from storaged.api.protocol import Request
from storaged.api.protocol import error
from storaged.objects import expiry
from storaged.objects.repository import ObjectRepository

__all__ = ["check_delete", "request_expiry"]


def request_expiry(req: Request, ident: Identity) -> dict[str, str]:
    """Return the ``X-Delete-At`` a PUT or POST gives the object, if any.

    :raises HTTPError: 400 with Swift's plain-text body for a value that is
        not an integer or a time not after now.
    """
    now = time.time()
    after = req.header("X-Delete-After")
    if after is not None:
        try:
            seconds = int(after)
        except ValueError:
            raise error(400, "Non-integer X-Delete-After") from None
        delete_at = expiry.normalize_delete_at(now + seconds)
        if delete_at <= now:
            raise error(400, "X-Delete-After in past")
        return {expiry.DELETE_AT: expiry.format_delete_at(delete_at)}
    value = req.header("X-Delete-At")
    if value is None:
        return {}
    try:
        delete_at = expiry.normalize_delete_at(int(value))
    except ValueError:
        raise error(400, "Non-integer X-Delete-At") from None
    if delete_at <= now and not ident.is_sync:
        raise error(400, "X-Delete-At in past")
    return {expiry.DELETE_AT: expiry.format_delete_at(delete_at)}


def check_delete(
    req: Request, service: ObjectRepository, a: str, c: str, o: str
) -> bool:
    """Check a DELETE's ``X-If-Delete-At``; tell whether the object expired.

    :returns: True when the object is there but expired and the request
        did not name its expiry (the delete goes on, answered 404).
    :raises HTTPError: 400, 404 or 412 as Swift's object server.
    """
    wanted = req.header("X-If-Delete-At")
    if_delete_at: int | None = None
    if wanted is not None:
        try:
            if_delete_at = int(wanted)
        except ValueError:
            raise error(400, "Bad X-If-Delete-At header value",
                        content_type=HTML) from None
    head = getattr(service, "head_any", service.head_object)
    try:
        info = run(head, a, c, o)
    except exception.ObjectNotFound:
        if if_delete_at is not None:
            raise error(404) from None
        return False
    if if_delete_at is not None:
        if (expiry.delete_at_of(info.metadata) or 0) != if_delete_at:
            raise error(412, "X-If-Delete-At and X-Delete-At do not match",
                        content_type=HTML)
        return False
    return expiry.is_expired(info.metadata)
