"""Account requests: HEAD and GET (totals, metadata, the listing of containers), POST.

Accounts exist implicitly, as with Swift's ``account_autocreate``: an
account the catalog does not know answers with zero totals and an empty
listing, and its first POST stores its metadata.

Who may read and POST: its owners (``.admin`` users, reseller admins, the
``admin`` of its ACL), and readers its ACL names (:mod:`storaged.api.access`
decided before).  Only owners see and set the owner-only headers, the
account ACL (``X-Account-Access-Control``) among them; container-sync
senders never reach accounts.
"""

from __future__ import annotations

from typing import Final

from storaged import exception
from storaged.api import acl
from storaged.api.auth import Identity
from storaged.api.handlers.common import run
from storaged.api.handlers.common import vary_accept
from storaged.api.handlers.listing import CONTENT_TYPES
from storaged.api.handlers.listing import listing_format
from storaged.api.handlers.listing import listing_params
from storaged.api.handlers.listing import render_listing
from storaged.api.handlers.metadata import check_metadata
from storaged.api.handlers.metadata import metadata_updates
from storaged.api.handlers.metadata import over_limit
from storaged.api.protocol import Headers
from storaged.api.protocol import Request
from storaged.api.protocol import Response
from storaged.api.protocol import error
from storaged.api.routes import Route
from storaged.objects.repository import ObjectRepository

#: Account headers only an account owner sees and sets (Swift's proxy
#: keeps them in ``swift_owner_headers``).
OWNER_HEADERS: Final = frozenset({
    "X-Account-Meta-Temp-Url-Key", "X-Account-Meta-Temp-Url-Key-2",
})


class AccountHandler:
    """Answers ``/v1/<account>``.

    :param service: the object service.
    """

    def __init__(self, service: ObjectRepository) -> None:
        self.service = service

    def handle(self, req: Request, route: Route, ident: Identity) -> Response:
        """Account HEAD, GET (listing of containers) and POST (metadata)."""
        if req.method in ("GET", "HEAD"):
            return self._get(req, route, ident.owns(route.account))
        if req.method == "POST":
            return self._post(req, route, ident.owns(route.account))
        raise error(405, headers=[("Allow", "GET, HEAD, POST")])

    def _get(self, req: Request, route: Route, owner: bool) -> Response:
        fmt = listing_format(req)
        params = listing_params(req)
        totals, metadata = run(self._account_state, route.account)
        headers = Headers([
            ("X-Account-Container-Count", str(totals[0])),
            ("X-Account-Object-Count", str(totals[1])),
            ("X-Account-Bytes-Used", str(totals[2])),
        ])
        for key, value in sorted(metadata.items()):
            if key == acl.ACCOUNT_ACL:
                continue
            if owner or key not in OWNER_HEADERS:
                headers[key] = value
        account_acl = acl.format_account_acl(metadata.get(acl.ACCOUNT_ACL, ""))
        if owner and account_acl:
            headers[acl.ACCOUNT_ACL] = account_acl
        vary_accept(req, headers)
        if req.method == "HEAD":
            return Response(204, b"", headers, content_type=CONTENT_TYPES[fmt])
        entries = run(self.service.list_containers, route.account, **params)
        return render_listing(fmt, "account", route.account, entries, headers)

    def _post(self, req: Request, route: Route, owner: bool) -> Response:
        """Set, update and remove ``X-Account-Meta-*``; 204 as Swift's proxy."""
        check_metadata(req, "account", self.service.catalog.limits)
        updates = metadata_updates(req, "account")
        if not owner:
            for key in OWNER_HEADERS:
                updates.pop(key, None)
        account_acl = req.header_text(acl.ACCOUNT_ACL, strict=False)
        if owner and account_acl is not None:
            # Checked already (:func:`storaged.api.access.check_account_acl_header`).
            updates[acl.ACCOUNT_ACL] = acl.format_account_acl(account_acl)
        try:
            run(self.service.update_account_metadata, route.account, updates)
        except exception.MetadataTooLarge as err:
            raise over_limit(err) from err
        return Response(204, b"")

    def _account_state(
        self, account: str
    ) -> tuple[tuple[int, int, int], dict[str, str]]:
        """Return the totals and the metadata of an account (one trip to the pool)."""
        return self._account_totals(account), self.service.account_metadata(account)

    def _account_totals(self, account: str) -> tuple[int, int, int]:
        try:
            info = self.service.catalog.account_info(account)
        except exception.AccountNotFound:
            # Accounts exist implicitly (Swift's account_autocreate).
            return 0, 0, 0
        return info.container_count, info.object_count, info.bytes_used
