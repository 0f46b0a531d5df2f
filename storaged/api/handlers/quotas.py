"""Quotas, as Swift's ``container_quotas`` and ``account_quotas`` middlewares.

Settings are metadata:

* ``X-Container-Meta-Quota-Bytes`` and ``X-Container-Meta-Quota-Count``,
  set by whoever may set the container's metadata; a value that is not
  a non-negative integer is refused (400 ``Invalid bytes quota.`` /
  ``Invalid count quota.``);
* ``X-Account-Meta-Quota-Bytes``, set (or removed, with an empty value or
  ``X-Remove-Account-Meta-Quota-Bytes``) by a ``.reseller_admin`` only:
  anybody else sending it on a PUT, POST or COPY gets 403, whatever the
  path, as in Swift.  Swift 2.36's other account quotas
  (``X-Account-Quota-Bytes``, ``X-Account-Quota-Count`` and their per-policy
  forms) are not offered: 403 for others as in Swift, 501 for a reseller
  admin setting one.

An object PUT (a copy's destination, a manifest) that would take the
container or the account past a quota is refused with 413 ``Upload exceeds
quota.`` before its body is read.  Its size is what the request says, as
Swift's middlewares count it: the ``Content-Length`` (0 for a chunked
upload), the source's length for a copy, the manifest's own length for a
static large object manifest.  The container's count grows by one for
every PUT, an overwrite included.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from storaged import exception
from storaged.api.auth import RESELLER_ADMIN
from storaged.api.auth import Identity
from storaged.api.handlers.common import POLICY
from storaged.api.handlers.common import run
from storaged.api.protocol import HTML
from storaged.api.protocol import Request
from storaged.api.protocol import error
from storaged.objects.repository import ObjectRepository

CONTAINER_BYTES: Final = "X-Container-Meta-Quota-Bytes"
CONTAINER_COUNT: Final = "X-Container-Meta-Quota-Count"
ACCOUNT_BYTES: Final = "X-Account-Meta-Quota-Bytes"
#: Swift's body for an upload refused by a quota.
EXCEEDED: Final = "Upload exceeds quota."
#: Swift 2.36's other account quotas (kept as system metadata there), not
#: offered: refused with 501 from a reseller admin, 403 for anybody else.
OTHER_ACCOUNT_QUOTAS: Final = (
    "X-Account-Quota-Bytes",
    "X-Account-Quota-Count",
    "X-Account-Quota-Bytes-Policy-" + POLICY,
    "X-Account-Quota-Count-Policy-" + POLICY,
)


def check_container_settings(req: Request) -> None:
    """Refuse a container PUT or POST setting a quota that is not a number.

    :raises HTTPError: 400 ``Invalid bytes quota.`` or ``Invalid count quota.``
    """
    for name, what in ((CONTAINER_BYTES, "bytes"), (CONTAINER_COUNT, "count")):
        value = req.header(name)
        if value and not value.isdigit():
            raise error(400, "Invalid %s quota." % what, content_type=HTML)


def check_account_setting(req: Request, ident: Identity) -> None:
    """Let only a reseller admin set or remove the account's quota.

    :raises HTTPError: 403 for anybody else sending the header (or its
        removal), or one of :data:`OTHER_ACCOUNT_QUOTAS`; 400 for a value
        that is not a non-negative integer; 501 for a value of one of
        :data:`OTHER_ACCOUNT_QUOTAS`.
    """
    if req.method not in ("PUT", "POST", "COPY"):
        return
    value = req.header(ACCOUNT_BYTES)
    if req.header("X-Remove-" + ACCOUNT_BYTES[2:]):
        value = "0"  # a removal wins over a value, as in Swift
    others = [name for name in OTHER_ACCOUNT_QUOTAS
              if req.header(name) is not None or req.header("X-Remove-" + name[2:])]
    if RESELLER_ADMIN not in ident.groups:
        if value is not None or others:
            raise error(403)
        return
    if value and not value.isdigit():
        raise error(400)
    for name in others:
        if (req.header(name) or "").strip():  # removing one is trivially done
            raise error(501, "%s is not supported: only X-Account-Meta-Quota-Bytes"
                        " is available on this server" % name)


def check_upload(
    service: ObjectRepository, account: str, container: str, length: int
) -> None:
    """Refuse an object PUT of ``length`` bytes that would exceed a quota.

    A missing container is left to the PUT itself (its 404).

    :raises HTTPError: 413 ``Upload exceeds quota.``
    """
    if run(_exceeds, service, account, container, length):
        raise error(413, EXCEEDED, content_type=HTML)


def _exceeds(
    service: ObjectRepository, account: str, container: str, length: int
) -> bool:
    try:
        info = service.container_info(account, container)
    except exception.ContainerNotFound:
        return False
    limit = _quota(info.metadata, CONTAINER_BYTES)
    if limit is not None and limit < info.bytes_used + length:
        return True
    limit = _quota(info.metadata, CONTAINER_COUNT)
    if limit is not None and limit < info.object_count + 1:
        return True
    limit = _quota(service.account_metadata(account), ACCOUNT_BYTES)
    if limit is None:
        return False
    try:
        used = service.catalog.account_info(account).bytes_used
    except exception.AccountNotFound:
        used = 0
    return limit < used + length


def _quota(metadata: Mapping[str, str], name: str) -> int | None:
    """Return the quota ``name`` sets in ``metadata``, or None (none, or no number)."""
    wanted = name.lower()
    for key, value in metadata.items():
        if key.lower() == wanted:
            value = value.strip()
            return int(value) if value.isascii() and value.isdigit() else None
    return None
