"""Requests whose meaning storaged cannot honour yet: refused, never ignored.

Swift's middlewares give some headers and query parameters a meaning that
changes what a request does: ``X-Delete-At`` makes an object expire,
``X-Container-Read`` opens a container to others.  Storing the request as if
the header were not there would answer 2xx for something that did not happen
(an object that never expires, a container that stays private).  Until
a feature exists, its request is refused with **501 Not Implemented** and a
body that names the header, before anything is read or written.

The table is the audit: each entry names what it refuses and why.  An
empty value of a container header is Swift's way of removing the setting,
which is honoured trivially (there is nothing to remove), so only
non-empty values are refused there.
"""

from __future__ import annotations

import dataclasses
from typing import Final

from storaged.api import routes
from storaged.api.protocol import Request
from storaged.api.protocol import error


@dataclasses.dataclass(frozen=True)
class Unsupported:
    """A header (or query parameter) that storaged refuses where it applies.

    :ivar name: the header's name, or the query parameter's (``?name``).
    :ivar kinds: the resources it applies to (:data:`storaged.api.routes`).
    :ivar methods: the methods it changes the meaning of.
    :ivar feature: what it would ask for, for the error's body.
    :ivar empty_ok: an empty value (Swift's "remove") is accepted.
    :ivar only: refused only with this value (case-insensitive); any other
        value means nothing to Swift either.
    """

    name: str
    kinds: frozenset[str]
    methods: frozenset[str]
    feature: str
    empty_ok: bool = False
    only: str = ""

    @property
    def is_query(self) -> bool:
        return self.name.startswith("?")


_OBJ: Final = frozenset({routes.OBJECT})
_CONT: Final = frozenset({routes.CONTAINER})
_ACCT: Final = frozenset({routes.ACCOUNT})
_WRITE: Final = frozenset({"PUT", "POST"})

#: Everything refused, in the order checked.
UNSUPPORTED: Final[tuple[Unsupported, ...]] = (
    # Object versioning (versioned_writes' legacy modes are offered).
    Unsupported("X-Versions-Enabled", _CONT, _WRITE, "object versioning",
                empty_ok=True),
)


def check(req: Request, kind: str) -> None:
    """Refuse ``req`` when it asks for a feature storaged does not have.

    A server-side copy's PUT of its destination is checked too (a COPY
    carries the headers of that PUT).

    :param kind: the resource the request is for (``routes.OBJECT`` ...).
    :raises HTTPError: 501 naming the header or parameter and the feature.
    """
    for entry in UNSUPPORTED:
        if kind not in entry.kinds or req.method not in entry.methods:
            continue
        if entry.is_query:
            value = req.query.get(entry.name[1:])
        else:
            value = req.header(entry.name)
        if value is None or (entry.empty_ok and not value.strip()):
            continue
        if entry.only and value.strip().lower() != entry.only:
            continue
        raise error(
            501, "%s is not supported: %s is not available on this server"
            % (entry.name.lstrip("?"), entry.feature)
        )
