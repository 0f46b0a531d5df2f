"""Who may do what: tempauth's authorization, with container and account ACLs.

:meth:`Access.authorize` decides for each request, and for each request a
feature makes on a client's behalf (a copy's source and destination, a bulk
operation's items), as Swift's tempauth ``authorize`` decides, in its order:

1. an account outside the ``AUTH_`` namespace: nobody;
2. a ``.reseller_admin``: owner of every account (but the dot accounts);
3. an ``.admin`` of the account: its owner (account PUT and DELETE aside);
4. the container's ACL (:mod:`storaged.api.acl`), ``X-Container-Read``
   for GET and HEAD (of objects, and of the container: its listing),
   ``X-Container-Write`` for object PUT, POST and DELETE; container
   writes have none: a referrer designation lets in object reads (and
   listings with ``.rlistings``), a group lets in its members;
5. the account's ACL: ``admin`` makes an owner, ``read-write`` may do
   anything under the account but change it, ``read-only`` may read.

Anything else is refused: **401** when no user is known (anonymous), else
**403**.  Owners see and set the owner-only headers (ACLs, sync settings,
temp URL keys); :attr:`~storaged.api.auth.Identity.acl_owner` carries an
ownership an account ACL gave.

A large object's segments are read for whoever reads the manifest: a
request remembers who it acts as (:meth:`Access.remember`), and the large
object code asks :func:`read_check` whether that caller may list a segment
container (a dynamic large object's) or read its objects, with the
caller's own ``Referer``, as Swift's sub-requests for segments are
authorized.

Owners are decided without I/O; only a non-owner's request costs a look at
the container's or the account's metadata.  Container-sync senders and
requests let in by a URL signature (TempURL, FormPost) were checked when
they were identified, for their own account.
"""

from __future__ import annotations

from collections.abc import Callable
import dataclasses
import functools
from typing import Any
from typing import Final
from urllib import parse as urlparse

from storaged import concurrency
from storaged import exception
from storaged.api import acl
from storaged.api import routes
from storaged.api import tempurl
from storaged.api.auth import ACCOUNT_PREFIX
from storaged.api.auth import ADMIN
from storaged.api.auth import RESELLER_ADMIN
from storaged.api.auth import Identity
from storaged.api.protocol import HTTPError
from storaged.api.protocol import Request
from storaged.api.protocol import error
from storaged.objects.repository import ObjectRepository

#: Methods that only read.
READS: Final = frozenset({"GET", "HEAD"})
#: Where a request keeps its read check (:meth:`Access.remember`).
READ_CHECK_KEY: Final = "storaged.read_check"

#: ``check(account, container, listing)``: raises the refusal
#: (:class:`HTTPError`) when the caller may not read there.
ReadCheck = Callable[[str, str, bool], None]


def read_check(req: Request) -> ReadCheck | None:
    """The check a request's segment reads go through (None: not authorized here)."""
    check = req.environ.get(READ_CHECK_KEY)
    return check if callable(check) else None


def refused(ident: Identity, account: str) -> HTTPError:
    """The answer to a request ``ident`` may not make: 401 anonymous, else 403."""
    if ident.is_anonymous:
        realm = urlparse.quote(account or "unknown", safe="")
        return error(401, headers=[("Www-Authenticate", 'Swift realm="%s"' % realm)])
    return error(403)


def check_account_acl_header(req: Request) -> None:
    """Refuse a bad ``X-Account-Access-Control`` on any request, as tempauth.

    :raises HTTPError: 400 with tempauth's text.
    """
    value = req.header_text(acl.ACCOUNT_ACL, strict=False)
    if value is None:
        return
    problem = acl.check_account_acl(value)
    if problem:
        raise error(400, "X-Account-Access-Control invalid: %s\n\nInput: %s\n"
                    % (problem, value), content_type="text/plain; charset=UTF-8")


class Access:
    """Authorizes requests against users, groups and ACLs.

    :param service: the object service (the ACLs are kept in the catalog).
    """

    def __init__(self, service: ObjectRepository) -> None:
        self.service = service

    def authorize(self, req: Request, route: routes.Route, ident: Identity) -> Identity:
        """Return who ``req`` acts as, once allowed; refuse it otherwise.

        :returns: ``ident``, or a copy whose account ACL made it an owner.
        :raises HTTPError: 400 a bad account ACL header, 401 or 403.
        """
        account = route.account
        if ident.is_sync or ident.via:
            if ident.account != account:
                raise error(403)
            return ident
        check_account_acl_header(req)
        if not account.startswith(ACCOUNT_PREFIX):
            raise refused(ident, account)
        method = req.method
        dot_account = account[len(ACCOUNT_PREFIX):].startswith(".")
        if RESELLER_ADMIN in ident.groups and not dot_account:
            return ident
        if (ident.user and ADMIN in ident.groups and account == ident.account
                and (method not in ("PUT", "DELETE") or route.container)):
            return ident
        if method == "OPTIONS":
            return ident
        if route.kind != routes.ACCOUNT:
            container_acl = self._container_acl(route, method)
            if container_acl.referrer_allowed(req.header("Referer")) and (
                    route.kind == routes.OBJECT or container_acl.listings):
                return ident
            if container_acl.grants(ident.acl_groups):
                return ident
        account_acl = self._account_acl(account)
        if account_acl is not None and ident.user:
            groups = ident.acl_groups
            if groups & account_acl.admin:
                return dataclasses.replace(ident, acl_owner=account)
            if groups & account_acl.read_write and (route.container or method in READS):
                return ident
            if groups & account_acl.read_only and method in READS:
                return ident
        raise refused(ident, account)

    def remember(self, req: Request, ident: Identity) -> None:
        """Have the reads made for ``req``'s caller authorized as theirs.

        The check keeps what it needs of the request (its ``Referer``, a
        temporary URL's grant), never the request itself: the environ
        holding the check must not hold itself, or every body that keeps the
        check (a large object's) would live until a garbage collection.
        """
        env = {"REQUEST_METHOD": "GET"}
        referer = req.environ.get("HTTP_REFERER")
        if referer is not None:
            env["HTTP_REFERER"] = referer
        grant = req.environ.get(tempurl.ENVIRON_KEY)
        req.environ[READ_CHECK_KEY] = functools.partial(
            self._check_read, env, grant, ident, req.request_id)

    def _check_read(
        self, env: dict[str, Any], grant: tempurl.Grant | None, ident: Identity,
        request_id: str, account: str, container: str, listing: bool,
    ) -> None:
        """Authorize a GET of ``container`` (``listing``) or of an object in it.

        A temporary URL's segments must be within its grant (the container
        of a container key), as Swift's ``authorize_same_container`` holds
        them.
        """
        if ident.via == "tempurl" and grant is not None and not grant.covers(
                account, container):
            raise error(401)
        path = "/v1/%s/%s" % (account, container)
        route = routes.Route(routes.CONTAINER, account, container)
        if not listing:
            path += "/segment"
            route = dataclasses.replace(route, kind=routes.OBJECT, obj="segment")
        self.authorize(Request(dict(env), path, request_id), route, ident)

    def _container_acl(self, route: routes.Route, method: str) -> acl.ContainerAcl:
        """The ACL that applies: read or write, or none for container writes."""
        if route.kind == routes.CONTAINER and method not in READS:
            return acl.ContainerAcl()
        header = acl.READ_ACL if method in READS else acl.WRITE_ACL
        try:
            info = concurrency.run_blocking(
                self.service.container_info, route.account, route.container)
        except exception.ContainerNotFound:
            return acl.ContainerAcl()
        return acl.ContainerAcl.parse(info.metadata.get(header))

    def _account_acl(self, account: str) -> acl.AccountAcl | None:
        metadata = concurrency.run_blocking(self.service.account_metadata, account)
        return acl.AccountAcl.parse(metadata.get(acl.ACCOUNT_ACL))
