"""What a read through the cache names: the object, its back end, the errors.

A :class:`CacheRef` is the cache's view of one object (back end, location,
size and the digests the catalog records); a :data:`Fetch` reads it from its
back end.  :func:`ref_for_row` makes the one from a catalog row.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
import dataclasses
from typing import Any
from urllib import parse as urlparse

from storaged import exception
from storaged.cache.layout import entry_id_for

#: ``fetch(offset, length, verify) -> (chunks, n)``: read from the back end
Fetch = Callable[[int, "int | None", bool], "tuple[Iterator[bytes], int]"]


class CacheError(exception.StoragedError):
    """The cache could not do what was asked."""

    msg_fmt = "Cache error: %(reason)s"


class FillFailed(CacheError):
    """A fill's file did not pass its checks; it went to ``invalid/``."""

    msg_fmt = "Cache fill of %(what)s failed: %(reason)s"


def _redact(location: str) -> str:
    """Return a location fit to show: no password, bounded length."""
    try:
        parts = urlparse.urlsplit(location)
        if parts.password is not None:
            host = parts.netloc.rsplit("@", 1)[-1]
            location = urlparse.urlunsplit(
                parts._replace(netloc="%s:***@%s" % (parts.username or "", host))
            )
    except ValueError:
        location = "<unparsable location>"
    return location if len(location) <= 300 else location[:300] + "..."


@dataclasses.dataclass(frozen=True)
class CacheRef:
    """One object as the cache sees it.

    :ivar backend: the back end id.
    :ivar location: where the back end keeps it.
    :ivar size: its size, as the catalog records it (None if unknown).
    :ivar expected: digests the catalog records, by algorithm (e.g.
        ``{"md5": etag}``); a fill is committed only if its file matches.
    :ivar name: what the object is called (``account/container/object``).
    """

    backend: str
    location: str
    size: int | None = None
    expected: Mapping[str, str] = dataclasses.field(default_factory=dict)
    name: str = ""

    @property
    def entry_id(self) -> str:
        """The id of this object's entry."""
        return entry_id_for(self.backend, self.location)

    @property
    def source(self) -> str:
        """What the entry is a copy of, for listings (no secrets)."""
        if self.name:
            return "%s:%s" % (self.backend, self.name)
        return "%s:%s" % (self.backend, _redact(self.location))


def ref_for_row(account: str, container: str, row: Any) -> CacheRef:
    """Return the cache's view of a catalog row (its md5 ETag is expected)."""
    expected = {"md5": row.etag.lower()} if row.etag else {}
    return CacheRef(
        row.backend, row.location, row.size, expected,
        name="%s/%s/%s" % (account, container, row.name),
    )
