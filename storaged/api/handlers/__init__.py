"""Account, container and object requests, answered as Swift answers them.

:class:`Handlers` is what :mod:`storaged.api.app` calls: it builds one
handler per resource, each given its collaborators, and passes each request
on.  Each handler gets the :class:`~storaged.api.protocol.Request`, its
:class:`~storaged.api.routes.Route` and the caller's
:class:`~storaged.api.auth.Identity`, calls the object service (always
through :func:`~storaged.api.handlers.common.run`: every call reads or
writes sqlite or disk) and returns a :class:`~storaged.api.protocol.Response`.
Errors are raised (:class:`~storaged.api.protocol.HTTPError`, or a storaged
exception that :mod:`storaged.api.errors` maps to a status).

The modules:

* :mod:`.account`, :mod:`.container`, :mod:`.objects`: one per resource;
* :mod:`.copy`: server-side copy (COPY, PUT with ``X-Copy-From``), through
  the object handler;
* :mod:`.dlo`, :mod:`.slo` (with :mod:`.slo_put`, :mod:`.slo_delete`,
  :mod:`.slo_manifest`): large objects, read through :mod:`.segments`;
  :mod:`.objects` hands manifests to them;
* :mod:`.bulk_delete`: ``?bulk-delete``, each name deleted through the
  container and object handlers; :mod:`.extract`: ``?extract-archive``;
* :mod:`.objectmeta`: an object's headers, stored and sent back;
* :mod:`.versioned_writes` (with :mod:`.name_lock`): Swift's
  ``X-Versions-Location`` and ``X-History-Location``, around the object
  handler's PUT and DELETE (the copier's PUT and bulk deletes' included);
* :mod:`.symlink` (with :mod:`.symlink_meta`): Swift's symlinks; the
  object handler itself is its :class:`~.symlink.SymlinkObjectHandler`,
  which follows a link through :meth:`Handlers.dispatch`;
* :mod:`.quotas`: container and account quotas (Swift's
  ``container_quotas``, ``account_quotas``), checked before an object PUT
  reads its body;
* :mod:`.metadata`: Swift's checks of the user metadata a request sends;
* :mod:`.conditions`: ETags, conditional requests, ``Range``;
* :mod:`.listing`: listing formats, parameters and rendering;
* :mod:`.common`: :class:`Settings` and what several modules share.

A feature that builds on plain object requests (server-side copy, large
objects) gets a module of its own beside :mod:`.objects`, and a place here.

Statuses, for a quick look (details in ``docs/api.rst``):

========================  ===========================================================
account GET / HEAD        200 (204 empty plain listing) / 204; 406 / 400 Accept
account POST              204; 400 bad metadata or over Swift's limits; 403 a
                          quota set by other than a reseller admin
container PUT             201 created, 202 existed; 400 bad policy, metadata or quota
container POST            204 (moves Last-Modified); 400 bad metadata or quota;
                          404 missing
container HEAD / GET      204 / 200 (204 empty plain listing); 404 missing; 406
container DELETE          204; 404 missing; 409 not empty
object PUT                201; 202 older than the stored one (sync); 404 no container;
                          411 no length; 413 too large or over a quota;
                          422 ETag mismatch;
                          499 client gone; 408 client too slow
object GET / HEAD         200, 206 range(s), 304 / 412 conditions, 416 bad range; 404
object POST               202; 404 missing; 409 older than the stored one (sync)
object DELETE             204; 404 missing; 409 older than the stored one (sync)
manifest PUT (SLO)        201; 400 bad manifest or segments; 413 too many segments
                          or too large; 422 ETag mismatch; 202 with heartbeat=on
large object GET / HEAD   200, 206, 304 / 412, 416 as an object's; 409 first
                          segment missing or changed
manifest DELETE (SLO)     200, the outcome in the body (Swift's bulk delete)
bulk delete, extraction   200, the outcome in the body; spaces while working
object COPY, PUT copy     201; 412 bad Destination / X-Copy-From; 400 body; 403 an
                          account the caller may not use; 404 source or
                          container; 413 source too large
========================  ===========================================================
"""

from __future__ import annotations

from typing import cast

from storaged.api import routes
from storaged.api import tempurl
from storaged.api import unsupported
from storaged.api.access import Access
from storaged.api.auth import Identity
from storaged.api.formpost import FormPost
from storaged.api.formpost import is_form_post
from storaged.api.handlers.account import AccountHandler
from storaged.api.handlers.bulk_delete import BulkDelete
from storaged.api.handlers.bulk_delete import is_bulk_delete
from storaged.api.handlers.common import DRAIN_LIMIT
from storaged.api.handlers.common import POLICY
from storaged.api.handlers.common import Settings
from storaged.api.handlers.container import ContainerHandler
from storaged.api.handlers.copy import Copier
from storaged.api.handlers.copy import is_copy
from storaged.api.handlers.extract import Extractor
from storaged.api.handlers.extract import is_extract
from storaged.api.handlers.objects import ObjectHandler
from storaged.api.handlers.quotas import check_account_setting
from storaged.api.handlers.symlink import SymlinkObjectHandler
from storaged.api.handlers.symlink import share_copy_source
from storaged.api.handlers.versioned_writes import VersionedObjects
from storaged.api.handlers.versioned_writes import VersionedWrites
from storaged.api.protocol import Request
from storaged.api.protocol import Response
from storaged.api.routes import Route
from storaged.objects.repository import ObjectRepository
from storaged.sync import realms as realms_mod

__all__ = ["DRAIN_LIMIT", "POLICY", "Handlers", "Settings"]


class Handlers:
    """The resource handlers, one per kind of path.

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
        self.access = Access(service)
        self.accounts = AccountHandler(service)
        self.containers = ContainerHandler(service, realms, settings)
        # Links are made and followed below every other feature (Swift's
        # pipeline order); following a link dispatches its target.
        self.objects: ObjectHandler = SymlinkObjectHandler(
            service, settings, self.dispatch)
        # Every object request, the copier's and bulk deletes' included,
        # goes through versioned writes (:mod:`.versioned_writes`).
        self.versioning = VersionedWrites(service, self.dispatch)
        self.objects = cast(ObjectHandler,
                            VersionedObjects(self.objects, self.versioning))
        self.copier = Copier(self.objects, settings, self.access)
        self.bulk_delete = BulkDelete(self._item, service,
                                      settings.client_timeout)
        self.extractor = Extractor(self.bulk_delete, settings.max_object_size)
        self.form_posts = FormPost(self.dispatch, service, settings.client_timeout)

    def account(self, req: Request, route: Route, ident: Identity) -> Response:
        """Answer a request for ``/v1/<account>``."""
        if ident.via == "formpost" and is_form_post(req):
            return self.form_posts.post(req, route)
        if is_bulk_delete(req):
            return self.bulk_delete.delete(req, route, ident)
        if is_extract(req):
            return self.extractor.extract(req, route, ident)
        if req.method in ("GET", "HEAD", "POST"):
            # Other methods are 405 for everybody, as in Swift.
            ident = self.access.authorize(req, route, ident)
        unsupported.check(req, route.kind)
        check_account_setting(req, ident)
        return self.accounts.handle(req, route, ident)

    def container(self, req: Request, route: Route, ident: Identity) -> Response:
        """Answer a request for ``/v1/<account>/<container>``."""
        if ident.via == "formpost" and is_form_post(req):
            return self.form_posts.post(req, route)
        if is_bulk_delete(req):
            return self.bulk_delete.delete(req, route, ident)
        if is_extract(req):
            return self.extractor.extract(req, route, ident)
        ident = self.access.authorize(req, route, ident)
        unsupported.check(req, route.kind)
        check_account_setting(req, ident)
        return self.containers.handle(req, route, ident)

    def obj(self, req: Request, route: Route, ident: Identity) -> Response:
        """Answer a request for ``/v1/<account>/<container>/<object>``."""
        if ident.via == "formpost" and is_form_post(req):
            return self.form_posts.post(req, route)
        share_copy_source(req)  # a copied link stays one (:mod:`.symlink`)
        if is_bulk_delete(req):
            return self.bulk_delete.delete(req, route, ident)
        if is_extract(req):
            return self.extractor.extract(req, route, ident)
        if not is_copy(req):
            # A copy's source and destination are authorized apart.
            ident = self.access.authorize(req, route, ident)
            self.access.remember(req, ident)
        unsupported.check(req, route.kind)
        check_account_setting(req, ident)
        if ident.via == "tempurl":
            return tempurl.finish(req, route, self._object(req, route, ident))
        return self._object(req, route, ident)

    def _object(self, req: Request, route: Route, ident: Identity) -> Response:
        if is_copy(req):
            return self.copier.handle(req, route, ident)
        return self.objects.handle(req, route, ident)

    def dispatch(self, req: Request, route: Route, ident: Identity) -> Response:
        """Answer a request for any resource, as if it came from the client.

        What a feature calls for a request it makes on the client's behalf
        (a symlink's target, a version archived): it passes through every
        check and feature a direct request does.
        """
        if route.kind == routes.ACCOUNT:
            return self.account(req, route, ident)
        if route.kind == routes.CONTAINER:
            return self.container(req, route, ident)
        return self.obj(req, route, ident)

    def _item(self, req: Request, route: Route, ident: Identity) -> Response:
        """Answer one item of a bulk request, as its direct request."""
        ident = self.access.authorize(req, route, ident)
        if route.kind == routes.CONTAINER:
            return self.containers.handle(req, route, ident)
        return self.objects.handle(req, route, ident)
