"""storaged's exceptions as HTTP answers.

One table, most specific class first.  A status with a ``True`` flag sends
the exception's message as a plain-text body (it names what was wrong with
the request and holds no secret: storaged's messages never do); the others
send Swift's body for the status, the details staying in the log.

Anything not a :class:`~storaged.exception.StoragedError` is a bug: the
application answers 500 and logs the traceback with the request id.  An
:class:`~storaged.api.protocol.HTTPError` is a StoragedError too, but one a
handler already made into an answer: it is sent as it is.
"""

from __future__ import annotations

from typing import Final

from storaged import exception
from storaged.api import body
from storaged.api.protocol import HTTPError
from storaged.api.protocol import error
from storaged.catalog import TimestampConflict
from storaged.objects.repository import EtagMismatch
from storaged.objectstore.driver import InvalidRange
from storaged.objectstore.driver import SizeMismatch
from storaged.sync.realms import InvalidSyncTo

#: (exception class, status, send the message as the body)
MAPPING: Final[tuple[tuple[type[exception.StoragedError], int, bool], ...]] = (
    (EtagMismatch, 422, False),
    (body.ClientDisconnect, 499, False),
    (body.ClientTimeout, 408, False),
    (body.RequestTooLarge, 413, False),
    (SizeMismatch, 499, False),
    (InvalidRange, 416, False),
    (InvalidSyncTo, 400, True),
    (exception.InvalidName, 400, True),
    (exception.AccountNotFound, 404, False),
    (exception.ContainerNotFound, 404, False),
    (exception.ObjectNotFound, 404, False),
    (exception.ContainerNotEmpty, 409, False),
    (TimestampConflict, 409, False),
    (exception.InsufficientStorage, 507, False),
    (exception.RetryableError, 503, False),
    (exception.CorruptObject, 503, False),
    (exception.CatalogCorrupt, 503, False),
    (exception.UnknownBackend, 503, False),
    (exception.StoreCapabilityError, 503, False),
)


def status_for(err: exception.StoragedError) -> int:
    """Return the HTTP status that answers ``err``."""
    if isinstance(err, HTTPError):
        return err.response.status
    for cls, status, _text in MAPPING:
        if isinstance(err, cls):
            return status
    return 500


def to_http(err: exception.StoragedError) -> HTTPError:
    """Return the :class:`HTTPError` that answers ``err``.

    An :class:`HTTPError` is its own answer.
    """
    if isinstance(err, HTTPError):
        return err
    for cls, status, text in MAPPING:
        if isinstance(err, cls):
            return error(status, str(err) if text else None)
    return error(500)
