"""Account requests: HEAD (totals) and GET (the listing of containers).

Accounts exist implicitly, as with Swift's ``account_autocreate``: an
account the catalog does not know answers with zero totals and an empty
listing.
"""

from __future__ import annotations

from storaged import exception
from storaged.api.auth import Identity
from storaged.api.handlers.common import run
from storaged.api.handlers.listing import CONTENT_TYPES
from storaged.api.handlers.listing import listing_format
from storaged.api.handlers.listing import listing_params
from storaged.api.handlers.listing import render_listing
from storaged.api.protocol import Headers
from storaged.api.protocol import Request
from storaged.api.protocol import Response
from storaged.api.protocol import error
from storaged.api.routes import Route
from storaged.objects.repository import ObjectRepository


class AccountHandler:
    """Answers ``/v1/<account>``.

    :param service: the object service.
    """

    def __init__(self, service: ObjectRepository) -> None:
        self.service = service

    def handle(self, req: Request, route: Route, ident: Identity) -> Response:
        """Account HEAD and GET (listing of containers)."""
        if req.method not in ("GET", "HEAD"):
            raise error(405, headers=[("Allow", "GET, HEAD")])
        params = listing_params(req)
        fmt = listing_format(req)
        totals = run(self._account_totals, route.account)
        headers = Headers([
            ("X-Account-Container-Count", str(totals[0])),
            ("X-Account-Object-Count", str(totals[1])),
            ("X-Account-Bytes-Used", str(totals[2])),
        ])
        if req.method == "HEAD":
            return Response(204, b"", headers, content_type=CONTENT_TYPES[fmt])
        entries = run(self.service.list_containers, route.account, **params)
        return render_listing(fmt, "account", route.account, entries, headers)

    def _account_totals(self, account: str) -> tuple[int, int, int]:
        try:
            info = self.service.catalog.account_info(account)
        except exception.AccountNotFound:
            # Accounts exist implicitly (Swift's account_autocreate).
            return 0, 0, 0
        return info.container_count, info.object_count, info.bytes_used
