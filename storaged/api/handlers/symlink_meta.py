"""What makes an object a symlink: its reserved metadata, and its listing fields.

A symlink is a zero-byte object whose metadata names its target under
reserved keys, Swift's object system metadata (``X-Object-Sysmeta-*``).
Users never see them among an object's headers
(:func:`~storaged.api.handlers.objectmeta.object_headers` leaves system
metadata out) and cannot set them
(:func:`~storaged.api.handlers.objectmeta.request_metadata` takes system
metadata from container-sync senders only): a link is made by a PUT with
``X-Symlink-Target`` (:mod:`.symlink`), and shown with ``?symlink=get``.

The keys, as Swift names them:

* :data:`TARGET`: ``<container>/<object>``, percent-encoded as Swift
  stores it (``X-Symlink-Target: c/a%20b`` and ``c/a b`` store the same);
* :data:`ACCOUNT`: only when the PUT named an account
  (``X-Symlink-Target-Account``); else the link's own account is meant;
* :data:`ETAG`, :data:`BYTES`: a static link's target ETag and size.

and two of storaged's own, for listings only (never sent by sync, never
shown):

* :data:`PATH`: the ``symlink_path`` of the link's listing entry,
  ``/v1/<account>/<container>/<object>``;
* :data:`SLO_ETAG`: a static link to a static large object carries its
  ``slo_etag`` into listings, as Swift does.

Listings: Swift's container rows have no room for a link's target, so its
``symlink`` middleware packs it into the row's ETag as parameters
(``d41d8cd9...; symlink_target=c/o``) and unpacks them into each JSON
listing entry.  storaged's container rows carry every object's metadata
already (:class:`storaged.catalog.records.ObjectRow`, read by listings for
static large objects' sizes), so nothing is packed: the keys above are
stored with the object, and :func:`listing_fields` turns them into the
entry's ``symlink_path``, ``symlink_etag``, ``symlink_bytes`` (and
``slo_etag``).  The path is stored whole because a listing entry does not
know its account, and a link without :data:`ACCOUNT` points into the
account it is in: sync recomputes it on the receiving side.  XML and plain
listings show none of this, as in Swift.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from typing import Final
from urllib import parse as urlparse

#: ``<container>/<object>`` of the target, percent-encoded.
TARGET: Final = "X-Object-Sysmeta-Symlink-Target"
#: The target's account, percent-encoded, when the PUT named one.
ACCOUNT: Final = "X-Object-Sysmeta-Symlink-Target-Account"
#: A static link's target ETag (bare).
ETAG: Final = "X-Object-Sysmeta-Symlink-Target-Etag"
#: A static link's target size.
BYTES: Final = "X-Object-Sysmeta-Symlink-Target-Bytes"
#: storaged's own: the listing's ``symlink_path``.
PATH: Final = "X-Object-Sysmeta-Symlink-Path"
#: storaged's own: a static link to a static large object, its ``slo_etag``.
SLO_ETAG: Final = "X-Object-Sysmeta-Symlink-Slo-Etag"

#: The keys a link's ``?symlink=get`` shows, and sync sends, with the
#: client-facing header of each (Swift's ``symlink_sysmeta_to_usermeta``).
CLIENT_HEADERS: Final = (
    (TARGET, "X-Symlink-Target"),
    (ACCOUNT, "X-Symlink-Target-Account"),
    (ETAG, "X-Symlink-Target-Etag"),
    (BYTES, "X-Symlink-Target-Bytes"),
)
#: Links followed at most in a row (Swift's default ``symloop_max``).
SYMLOOP_MAX: Final = 2
#: Every reserved key of a link.
KEYS: Final = frozenset({TARGET, ACCOUNT, ETAG, BYTES, PATH, SLO_ETAG})


def is_link(metadata: Mapping[str, Any]) -> bool:
    """Tell whether an object's metadata is a symlink's."""
    return TARGET in metadata


def target_of(metadata: Mapping[str, Any], account: str) -> tuple[str, str, str]:
    """Return the account, container and object a link in ``account`` points to."""
    container, _sep, name = urlparse.unquote(str(metadata[TARGET])).partition("/")
    if ACCOUNT in metadata:
        account = urlparse.unquote(str(metadata[ACCOUNT]))
    return account, container, name


def link_headers(metadata: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Return a link's ``X-Symlink-Target*`` headers (none for an object)."""
    return [(header, str(metadata[key]))
            for key, header in CLIENT_HEADERS if key in metadata]


def listing_fields(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Return the JSON listing fields of a link (empty for an object)."""
    if not is_link(metadata):
        return {}
    fields: dict[str, Any] = {}
    if PATH in metadata:
        fields["symlink_path"] = metadata[PATH]
    if ETAG in metadata:
        fields["symlink_etag"] = metadata[ETAG]
        try:
            fields["symlink_bytes"] = int(metadata.get(BYTES, 0))
        except ValueError:
            fields["symlink_bytes"] = 0
    if SLO_ETAG in metadata:
        fields["slo_etag"] = '"%s"' % metadata[SLO_ETAG]
    return fields
