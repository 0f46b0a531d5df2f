"""What the handler modules share: the ``[api]`` settings, constants, helpers.

Only what more than one resource module needs lives here (the storage
policy, the truth values of a header, the trip to the thread pool, the
``X-Timestamp`` of a container-sync sender); a resource's own constants
stay in its module.
"""

from __future__ import annotations

from collections.abc import Callable
import dataclasses
from typing import Any
from typing import Final
from typing import TypeVar

from storaged import concurrency
from storaged.api.auth import Identity
from storaged.api.protocol import Headers
from storaged.api.protocol import Request
from storaged.api.protocol import error
from storaged.catalog import Timestamp

T = TypeVar("T")

#: The one storage policy, as ``/info`` lists it.
POLICY: Final = "Policy-0"
#: A body left unread beyond this makes the server close the connection
#: rather than read (and drop) the rest.
DRAIN_LIMIT: Final = 64 * 1024
#: Values of a boolean header or query parameter that mean yes.
TRUE_VALUES: Final = frozenset({"true", "1", "yes", "on", "t", "y"})


@dataclasses.dataclass(frozen=True)
class Settings:
    """What the handlers need from ``[api]``.

    :ivar max_object_size: largest PUT, in bytes.
    :ivar chunk_size: bytes read from an upload at a time.
    :ivar client_timeout: seconds a client may stay silent.
    :ivar verify_reads: verify whole objects while sending them.
    :ivar public_url: base of ``X-Storage-Url`` (built from the request if empty).
    :ivar allowed_sync_hosts: hosts allowed in a full-URL ``X-Container-Sync-To``.
    """

    max_object_size: int = 5 * 1024 * 1024 * 1024 + 2
    chunk_size: int = 256 * 1024
    client_timeout: float = 60.0
    verify_reads: bool = True
    public_url: str = ""
    allowed_sync_hosts: tuple[str, ...] = ("127.0.0.1",)


def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a service call off the hub (:func:`storaged.concurrency.run_blocking`)."""
    return concurrency.run_blocking(fn, *args, **kwargs)


def sync_timestamp(req: Request, ident: Identity) -> Timestamp | None:
    """Return ``X-Timestamp`` when honoured (container-sync senders only).

    A user's ``X-Timestamp`` is ignored, as Swift's gatekeeper does.

    :raises HTTPError: 400 for a sender's value that is not a timestamp.
    """
    if not ident.is_sync:
        return None
    value = req.header("X-Timestamp")
    if value is None:
        return None
    try:
        return Timestamp(value)
    except ValueError as err:
        raise error(
            400, "X-Timestamp should be a UNIX timestamp float value; was %r"
            % value
        ) from err


def vary_accept(req: Request, headers: Headers) -> None:
    """Add ``Vary: Accept`` to a listing's answer when ``Accept`` chose its format.

    As Swift's ``listing_formats``: not when ``?format=`` did.
    """
    if "format" not in req.query:
        headers["Vary"] = "Accept"
