"""Container requests: PUT, POST, HEAD, GET (the listing of objects), DELETE.

Also the container's headers (:func:`container_headers`) and the metadata
changes a PUT or POST asks for, container-sync's settings included
(validated against the realms and the allowed sync hosts).
"""

from __future__ import annotations

from typing import Final

from storaged import exception
from storaged.api import acl
from storaged.api.auth import Identity
from storaged.api.handlers import quotas
from storaged.api.handlers import versioned_writes
from storaged.api.handlers.common import POLICY
from storaged.api.handlers.common import Settings
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
from storaged.api.protocol import last_modified
from storaged.api.routes import Route
from storaged.catalog import SECRET_KEYS
from storaged.catalog import SYNC_KEY_KEY
from storaged.catalog import SYNC_TO_KEY
from storaged.catalog import ContainerInfo
from storaged.objects.repository import ObjectRepository
from storaged.sync import realms as realms_mod

#: Container headers only an account owner sees and sets.
OWNER_HEADERS: Final = frozenset(
    SECRET_KEYS | {SYNC_TO_KEY, acl.READ_ACL, acl.WRITE_ACL})


class ContainerHandler:
    """Answers ``/v1/<account>/<container>``.

    :param service: the object service.
    :param realms: container-sync realms (to validate ``X-Container-Sync-To``).
    :param settings: the ``[api]`` settings.
    """

    def __init__(
        self,
        service: ObjectRepository,
        realms: realms_mod.Realms,
        settings: Settings,
    ) -> None:
        self.service = service
        self.realms = realms
        self.settings = settings

    def handle(self, req: Request, route: Route, ident: Identity) -> Response:
        """Container PUT, POST, HEAD, GET and DELETE."""
        method = req.method
        a, c = route.account, route.container
        if method in ("GET", "HEAD"):
            # Swift's listing_formats picks the format before anything else.
            fmt = listing_format(req)
            info = run(self.service.container_info, a, c)
            headers = container_headers(info, ident.owns(a))
            vary_accept(req, headers)
            if method == "HEAD":
                return Response(204, b"", headers, content_type=CONTENT_TYPES[fmt])
            params = listing_params(req)
            if "path" in req.query:  # Swift's; ``path=`` lists the top
                params["path"] = req.query["path"]
            entries = run(self.service.list_objects, a, c, **params)
            return render_listing(fmt, "container", c, entries, headers)
        if method == "PUT":
            quotas.check_container_settings(req)
            check_metadata(req, "container", self.service.catalog.limits)
            check_policy(req)
            updates = self._container_updates(req, ident, a)
            try:
                created = run(self.service.create_container, a, c, updates)
            except exception.MetadataTooLarge as err:
                raise over_limit(err) from err
            return Response(201 if created else 202, b"")
        if method == "POST":
            quotas.check_container_settings(req)
            check_metadata(req, "container", self.service.catalog.limits)
            updates = self._container_updates(req, ident, a)
            try:
                run(self.service.update_container_metadata, a, c, updates,
                    touch=True)
            except exception.MetadataTooLarge as err:
                raise over_limit(err) from err
            return Response(204, b"")
        if method == "DELETE":
            run(self.service.delete_container, a, c)
            return Response(204, b"")
        raise error(405, headers=[("Allow", "DELETE, GET, HEAD, POST, PUT")])

    def _container_updates(
        self, req: Request, ident: Identity, account: str
    ) -> dict[str, str]:
        """Metadata changes a container PUT or POST asks for.

        ``X-Container-Meta-*`` set, ``X-Remove-Container-Meta-*`` remove
        (a set wins over a removal of the same key, as in Swift's proxy);
        the sync headers (and temp URL keys) only from an owner, silently
        dropped from others as Swift does.
        """
        updates = metadata_updates(req, "container")
        updates.update(_acl_updates(req))
        if ident.owns(account):
            for key in (SYNC_TO_KEY, SYNC_KEY_KEY):
                text = req.header_text(key)
                if text is not None:
                    updates[key] = text.strip()
                if req.header("X-Remove-" + key[2:]) is not None:
                    updates[key] = ""
            sync_to = updates.get(SYNC_TO_KEY)
            if sync_to:
                realms_mod.parse_sync_to(
                    sync_to, self.realms, self.settings.allowed_sync_hosts
                )
                updates[SYNC_TO_KEY] = sync_to.rstrip("/")
        else:
            for key in OWNER_HEADERS:
                updates.pop(key, None)
        updates.update(versioned_writes.container_updates(req))
        return updates


def _acl_updates(req: Request) -> dict[str, str]:
    """The container ACLs a request sets, cleaned (``""`` removes one).

    ``X-Remove-Container-Read`` (``-Write``) removes one too, unless the
    same request sets it, as Swift's proxy has it.

    :raises HTTPError: 400 with Swift's reason for a bad ACL.
    """
    updates = {}
    for name in (acl.READ_ACL, acl.WRITE_ACL):
        value = req.header_text(name, strict=False)
        if value is None:
            if req.header("X-Remove-" + name[2:]) is not None:
                updates[name] = ""
            continue
        try:
            updates[name] = acl.clean_acl(name, value)
        except ValueError as err:
            raise error(400, str(err)) from err
    return updates


def container_headers(info: ContainerInfo, owner: bool) -> Headers:
    """Return a container's HEAD/GET headers; owner-only ones for owners only."""
    headers = Headers([
        ("X-Container-Object-Count", str(info.object_count)),
        ("X-Container-Bytes-Used", str(info.bytes_used)),
        ("X-Timestamp", info.created_at.normal),
        ("X-Put-Timestamp", info.put_timestamp.normal),
        ("Last-Modified", last_modified(info.put_timestamp)),
        ("X-Storage-Policy", POLICY),
    ])
    for key, value in sorted(info.metadata.items()):
        if key in OWNER_HEADERS and not owner:
            continue
        headers[key] = value
    return headers


def check_policy(req: Request) -> None:
    """Refuse an ``X-Storage-Policy`` that names no policy, as Swift's proxy.

    Names compare without regard to case; an empty value means the
    default.  storaged has one policy, so a container never changes policy
    (Swift's 409 for that cannot happen).

    :raises HTTPError: 400 ``Invalid X-Storage-Policy '<name>'``.
    """
    policy = req.header_text("X-Storage-Policy", strict=False)
    if policy and policy.upper() != POLICY.upper():
        raise error(400, "Invalid X-Storage-Policy '%s'" % policy)
