"""Symlinks, as Swift's ``symlink`` middleware makes and follows them.

A link is a zero-byte object naming another (:mod:`.symlink_meta` says
how it is stored, and how listings show it):

* ``PUT`` with ``X-Symlink-Target: <container>/<object>`` (and
  ``X-Symlink-Target-Account``) and no body makes one; with
  ``X-Symlink-Target-Etag`` a **static** link, whose target is looked up
  at once: it must exist (else 409) and have that ETag (else 409), and its
  size is kept (``X-Symlink-Target-Bytes``).  A container-sync sender's
  static link is taken as sent (its target may not have arrived yet), as
  Swift's ``container_sync`` lets it be.
* ``GET`` and ``HEAD`` follow it: the answer is the target's, with
  ``Content-Location: /v1/<account>/<container>/<object>`` (also on a 404
  or 403 of the target).  A link to a link is followed too, up to
  :data:`SYMLOOP_MAX` links (409 past it); a static link's target must
  still have its ETag (409).  ``?symlink=get`` answers the link itself,
  with its ``X-Symlink-Target*`` headers.
* ``POST`` updates the link's own metadata and answers 307 with
  ``Location`` (the target); ``POST`` with ``X-Symlink-Target`` is 400.
* ``DELETE`` removes the link, never the target.
* A server-side copy of a link copies the target; with ``?symlink=get``
  it copies the link.

:class:`SymlinkObjectHandler` is the object handler with links: the
facade (:class:`~storaged.api.handlers.Handlers`) builds it in place of the
plain :class:`~storaged.api.handlers.objects.ObjectHandler`, so that every
object request (direct, a copy's, a bulk request's, the versioning's)
meets links as in Swift's pipeline, where ``symlink`` sits just above the
proxy.

Following a link is a request made on the client's behalf: each target is
read through ``dispatch`` (:meth:`~storaged.api.handlers.Handlers.dispatch`),
with every check a direct request gets, the caller's read access to the
target first.  Each such hop is marked (:data:`HOP_KEY` in its environ):
the handler answering it looks the name up and tells what it found
(a link is reported, not followed; an object is answered as usual), and
:meth:`SymlinkObjectHandler._follow` decides.  For example, with
``c/a -> c/b -> c/o``, a ``GET /v1/AUTH_x/c/a`` finds the link ``a``,
dispatches ``GET /v1/AUTH_x/c/b`` (a hop: it reports the link ``b``),
then ``GET /v1/AUTH_x/c/o`` (a hop: an object, answered with its data),
and answers that with ``Content-Location: /v1/AUTH_x/c/o``.

A copy's two sub-requests are made by the copier, which keeps only an
object's own headers: for ``?symlink=get`` the source's link headers reach
the destination's PUT through :data:`COPY_KEY`, a dict the facade puts in
the copy's environ (:func:`share_copy_source`) and that both sub-requests'
environs share.
"""

from __future__ import annotations

from collections.abc import Callable
import hashlib
import io
from typing import Any
from typing import Final
from urllib import parse as urlparse

from storaged import exception
from storaged.api import body as body_mod
from storaged.api import errors
from storaged.api import routes
from storaged.api.auth import Identity
from storaged.api.handlers import quotas
from storaged.api.handlers import slo_manifest as sm
from storaged.api.handlers import symlink_meta as lm
from storaged.api.handlers.common import Settings
from storaged.api.handlers.common import run
from storaged.api.handlers.copy import is_copy
from storaged.api.handlers.objectmeta import clean_content_type
from storaged.api.handlers.objectmeta import request_content_type
from storaged.api.handlers.objectmeta import request_metadata
from storaged.api.handlers.objects import ObjectHandler
from storaged.api.protocol import HTML
from storaged.api.protocol import HTTPError
from storaged.api.protocol import Request
from storaged.api.protocol import Response
from storaged.api.protocol import error
from storaged.api.protocol import last_modified
from storaged.api.protocol import text_to_wsgi
from storaged.api.routes import Route
from storaged.catalog import Timestamp
from storaged.objects.repository import ObjectInfo
from storaged.objects.repository import ObjectRepository

#: A request made on a client's behalf (``Handlers.dispatch``).
Dispatch = Callable[[Request, Route, Identity], Response]

#: Links followed at most in a row (Swift's default ``symloop_max``).
SYMLOOP_MAX: Final = lm.SYMLOOP_MAX
#: The environ key of a hop: a dict with the ETag the target must have
#: (``want``) and, once answered, what was found (``found``).
HOP_KEY: Final = "storaged.symlink.hop"
#: The environ key of a copy: the source link's headers, for the PUT.
COPY_KEY: Final = "storaged.symlink.copy"
#: An empty object's ETag: every link's own.
EMPTY_ETAG: Final = hashlib.md5(b"", usedforsecurity=False).hexdigest()
#: Swift's symlink answers are plain text.
TEXT: Final = "text/plain"

_TARGET_FORM: Final = ("X-Symlink-Target header must be of the form "
                       "<container name>/<object name>")
_POST_BODY: Final = ("The requested POST was applied to a symlink. POST "
                     "directly to the target to apply requested metadata.")
#: Client headers a static link's check of its target does not carry
#: (Swift makes that HEAD afresh).
_NOT_FOR_CHECK: Final = (
    "HTTP_IF_MATCH", "HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE",
    "HTTP_IF_UNMODIFIED_SINCE", "HTTP_RANGE",
)


class _LinkConflict(HTTPError):
    """A 409 of the links themselves (not a target's own answer)."""


def _conflict(body: str, location: str = "") -> _LinkConflict:
    headers = [("Content-Location", location)] if location else []
    return _LinkConflict(Response(409, body.encode("utf-8"), headers,
                                  content_type=TEXT))


def share_copy_source(req: Request) -> None:
    """Let a copy's PUT see its source's link headers (:data:`COPY_KEY`)."""
    if is_copy(req):
        req.environ[COPY_KEY] = {}


def normalize_etag(value: str | None) -> str | None:
    """Return an ETag without its quotes, as Swift's ``normalize_etag``."""
    if value is None:
        return None
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        return value[1:-1]
    return value


def _quote(wsgi: str) -> str:
    return urlparse.quote(wsgi, safe="/", encoding="latin-1")


def _unquote(value: str) -> str:
    return urlparse.unquote(value, encoding="latin-1")


class SymlinkObjectHandler(ObjectHandler):
    """The object handler, with symlinks.

    :param service: the object service.
    :param settings: the ``[api]`` settings.
    :param dispatch: answers a request made on the client's behalf.
    :param symloop_max: links followed at most in a row.
    """

    def __init__(
        self,
        service: ObjectRepository,
        settings: Settings,
        dispatch: Dispatch,
        symloop_max: int = SYMLOOP_MAX,
    ) -> None:
        super().__init__(service, settings)
        self.dispatch = dispatch
        self.symloop_max = symloop_max

    def handle(self, req: Request, route: Route, ident: Identity) -> Response:
        """Object requests, links made, followed and shown as Swift does."""
        method = req.method
        if method in ("GET", "HEAD"):
            if HOP_KEY in req.environ:
                return self._hop(req, route, ident)
            if req.query.get("symlink") == "get":
                return self._get_link(req, route, ident)
            return self._get(req, route, ident)
        if method == "PUT":
            self._take_copied_link(req)
            if req.header("X-Symlink-Target") is not None:
                return self._put_link(req, route, ident)
        elif method == "POST":
            return self._post(req, route, ident)
        return super().handle(req, route, ident)

    def _lookup(self, a: str, c: str, o: str) -> ObjectInfo | None:
        try:
            return run(self.service.head_object, a, c, o)
        except (exception.ObjectNotFound, exception.ContainerNotFound,
                exception.AccountNotFound):
            return None

    # -- GET and HEAD -------------------------------------------------------------

    def _get(self, req: Request, route: Route, ident: Identity) -> Response:
        """A GET or HEAD: answered as an object's unless it is a link's.

        A link is always empty, so only an answer with the empty object's
        ETag (a 200, or a condition's or a range's error) costs a second
        look at the name: every other read costs what it did without links.
        """
        failed: HTTPError | None = None
        resp: Response | None = None
        try:
            resp = super().handle(req, route, ident)
            etag = resp.headers.get("Etag")
        except HTTPError as err:
            if err.response.status not in (304, 412, 416):
                raise
            failed, etag = err, err.response.headers.get("Etag")
        info = None
        if normalize_etag(etag) == EMPTY_ETAG:
            info = self._lookup(route.account, route.container, route.obj)
        if info is None or not lm.is_link(info.metadata):
            if failed is not None:
                raise failed
            assert resp is not None
            return resp
        if resp is not None:
            close = getattr(resp.body, "close", None)
            if close is not None:
                close()
        followed, _info, _where = self._follow(req, route, ident, info, True)
        return followed

    def _get_link(self, req: Request, route: Route, ident: Identity) -> Response:
        """``?symlink=get``: the object itself, a link with its target headers."""
        copied = req.environ.get(COPY_KEY)
        resp = super().handle(req, route, ident)
        info = self._lookup(route.account, route.container, route.obj)
        if info is not None and lm.is_link(info.metadata) and resp.status < 300:
            headers = lm.link_headers(info.metadata)
            resp.headers.update(headers)
            if copied is not None:
                copied.update(headers)
        return resp

    def _hop(self, req: Request, route: Route, ident: Identity) -> Response:
        """Answer one hop of a link being followed (:data:`HOP_KEY`).

        A link is only reported; an object is answered, once its ETag is
        the one the previous link wants (a mismatch trumps the request's
        conditions, as in Swift).
        """
        hop = req.environ[HOP_KEY]
        info = self._lookup(route.account, route.container, route.obj)
        hop["found"] = info
        if info is not None and lm.is_link(info.metadata):
            return Response(200, b"")
        want = hop.get("want")
        if info is not None and want and want != info.etag:
            raise _conflict(
                "Object Etag %r does not match X-Symlink-Target-Etag header %r"
                % (info.etag, want), hop.get("where", ""))
        return super().handle(req, route, ident)

    def _follow(
        self, req: Request, route: Route, ident: Identity, link: ObjectInfo,
        dynamic: bool, want: str | None = None, check: bool = False,
    ) -> tuple[Response, ObjectInfo | None, str]:
        """Follow ``link`` (at ``route``'s account) to what it names.

        :param dynamic: follow dynamic links too (a static link's check
            follows only static ones, as Swift's).
        :param want: the ETag ``link`` must lead to (a static link's).
        :param check: a static link's check at its PUT: each hop is a HEAD
            without the request's headers.
        :returns: the last target's answer, what it is, and its path.
        :raises HTTPError: a link's 409 (past :attr:`symloop_max` links, or
            a static link's ETag not found), or the target's error with its
            ``Content-Location``.
        """
        account = _quote(text_to_wsgi(route.account))
        hops = 0
        where = ""
        while True:
            target_etag = link.metadata.get(lm.ETAG)
            if want and want != (target_etag or link.etag):
                raise _conflict("X-Symlink-Target-Etag headers do not match", where)
            if hops >= self.symloop_max:
                raise _conflict("Too many levels of symbolic links, maximum "
                                "allowed is %d" % self.symloop_max)
            hops += 1
            account = link.metadata.get(lm.ACCOUNT) or account
            where = "/v1/%s/%s" % (account, str(link.metadata[lm.TARGET]).lstrip("/"))
            want = target_etag
            resp, found = self._read(req, ident, where, want,
                                     "HEAD" if check else req.method, not check)
            if found is not None and lm.is_link(found.metadata) and (
                dynamic or found.metadata.get(lm.ETAG)
            ):
                link = found
                continue
            if found is not None and want and want != found.etag:
                # A dynamic link not followed: its own ETag is the one seen.
                raise _conflict(
                    "Object Etag %r does not match X-Symlink-Target-Etag header "
                    "%r" % (found.etag, want), where)
            resp.headers["Content-Location"] = where
            return resp, found, where

    def _read(
        self, req: Request, ident: Identity, where: str, want: str | None,
        method: str, keep_headers: bool,
    ) -> tuple[Response, ObjectInfo | None]:
        """Dispatch one hop to ``where`` (a quoted ``/v1/...`` path).

        :raises HTTPError: its error, with ``Content-Location: where``.
        """
        path_info = _unquote(where)
        path = routes.decode_path(path_info)
        route = routes.route(path, self.service.catalog.limits)
        env = {k: v for k, v in req.environ.items()
               if k not in ("headers_raw", "storaged.body", "HTTP_TRANSFER_ENCODING",
                            "CONTENT_LENGTH", COPY_KEY)}
        query = {k: v for k, v in req.query.items() if k != "symlink"}
        if not keep_headers:
            for key in _NOT_FOR_CHECK:
                env.pop(key, None)
            query = {}
        hop: dict[str, Any] = {"want": want, "found": None, "where": where}
        env.update({
            "REQUEST_METHOD": method,
            "PATH_INFO": path_info,
            "QUERY_STRING": urlparse.urlencode(query),
            "wsgi.input": io.BytesIO(b""),
            HOP_KEY: hop,
        })
        sub = Request(env, path, req.request_id)
        try:
            resp = self.dispatch(sub, route, ident)
        except exception.StoragedError as err:
            http = errors.to_http(err)
            if not isinstance(http, _LinkConflict):
                http.response.headers["Content-Location"] = where
            if http is err:
                raise
            raise http from err
        return resp, hop["found"]

    # -- PUT ------------------------------------------------------------------

    def _take_copied_link(self, req: Request) -> None:
        """Give a copy's PUT its source link's headers (``?symlink=get``)."""
        copied = req.environ.get(COPY_KEY)
        if not copied or req.query.get("symlink") != "get":
            return
        for name, value in copied.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            req.environ.setdefault(key, text_to_wsgi(value))

    def _put_link(self, req: Request, route: Route, ident: Identity) -> Response:
        a, c, o = route.account, route.container, route.obj
        quotas.check_upload(self.service, a, c, req.content_length or 0)
        self._check_empty_body(req)
        target, account, etag = _target_of(req, route)
        stored = {lm.TARGET: target}
        if account is not None:
            stored[lm.ACCOUNT] = account
        where = "/v1/%s/%s" % (account or _quote(text_to_wsgi(a)), target)
        stored[lm.PATH] = where
        content_type = request_content_type(req)
        if ident.is_sync:
            # Taken as sent (Swift's container_sync overrides the check).
            if etag:
                stored[lm.ETAG] = etag
                stored[lm.BYTES] = req.header("X-Symlink-Target-Bytes") or "0"
            for name, value in stored.items():
                key = "HTTP_" + name.upper().replace("-", "_")
                req.environ[key] = text_to_wsgi(value)
            if content_type is None and not etag:
                req.environ["CONTENT_TYPE"] = "application/symlink"
            return super().handle(req, route, ident)
        if etag:
            found = self._check_target(req, ident, where, etag)
            stored[lm.ETAG] = etag
            size = found.metadata.get(sm.SYSMETA_SIZE) if sm.is_slo(found.metadata) \
                else None
            stored[lm.BYTES] = str(size or found.size)
            if sm.is_slo(found.metadata) and sm.SYSMETA_ETAG in found.metadata:
                stored[lm.SLO_ETAG] = found.metadata[sm.SYSMETA_ETAG]
            if content_type is None:
                content_type = clean_content_type(found.content_type)
        meta = request_metadata(req, ident)
        meta.update(stored)
        if_none_match = req.header("If-None-Match")
        if if_none_match is not None:
            if if_none_match.strip() != "*":
                raise error(400, "If-None-Match only supports *")
            if self._lookup(a, c, o) is not None:
                raise error(412)
        result = run(
            self.service.put_object, a, c, o, io.BytesIO(b""), 0,
            content_type=content_type or "application/symlink", metadata=meta,
        )
        info = result.info
        return Response(201, b"", [
            ("Etag", info.etag),
            ("Last-Modified", last_modified(info.timestamp)),
            ("X-Timestamp", info.timestamp.normal),
        ], content_type="text/html; charset=UTF-8")

    def _check_empty_body(self, req: Request) -> None:
        """Refuse a body (400), as Swift: a link is zero bytes."""
        length = req.content_length
        if length is None:
            reader = body_mod.BodyReader(
                req.environ["wsgi.input"], None, self.settings.max_object_size,
                self.settings.client_timeout)
            req.environ["storaged.body"] = reader
            has_body = reader.read(1) != b""
        else:
            has_body = length != 0
        if has_body:
            raise error(400, "Symlink requests require a zero byte body",
                        content_type=TEXT)

    def _check_target(
        self, req: Request, ident: Identity, where: str, etag: str
    ) -> ObjectInfo:
        """Look a static link's target up, as Swift does at its PUT.

        :returns: what the ETag was checked against (the object, or the
            dynamic link at the end of static ones).
        :raises HTTPError: 409 missing or another ETag; the target's
            error status (a 403 ...).
        """
        try:
            resp, found = self._read(req, ident, where, etag, "HEAD", False)
            if found is not None and lm.is_link(found.metadata) and found.metadata.get(
                lm.ETAG
            ):
                target_route = routes.route(
                    routes.decode_path(_unquote(where)), self.service.catalog.limits)
                resp, found, _where = self._follow(
                    req, target_route, ident, found, False, etag, check=True)
            elif found is not None and etag != found.etag:
                raise _conflict(
                    "Object Etag %r does not match X-Symlink-Target-Etag header %r"
                    % (found.etag, etag), where)
        except _LinkConflict:
            raise
        except HTTPError as err:
            if err.response.status == 404:
                raise _conflict(
                    "X-Symlink-Target does not exist",
                    err.response.headers.get("Content-Location") or where,
                ) from None
            raise error(err.response.status) from None
        if found is None or resp.status >= 300:
            raise error(resp.status if resp.status >= 300 else 404)
        return found

    # -- POST -----------------------------------------------------------------

    def _post(self, req: Request, route: Route, ident: Identity) -> Response:
        if req.header("X-Symlink-Target") is not None:
            raise error(400, "A PUT request is required to set a symlink target",
                        content_type=TEXT)
        a, c, o = route.account, route.container, route.obj
        current = self._lookup(a, c, o)
        if current is None or not lm.is_link(current.metadata) or ident.is_sync:
            return super().handle(req, route, ident)
        # The link keeps being one: its reserved keys stay with the new
        # metadata (Swift's object server keeps system metadata on POST).
        meta = request_metadata(req, ident)
        meta.update((k, v) for k, v in current.metadata.items() if k in lm.KEYS)
        applied = run(self.service.update_object_metadata, a, c, o,
                      Timestamp.now(), meta, request_content_type(req))
        if applied is None:
            raise error(404)
        if not applied:
            raise error(409)
        account = current.metadata.get(lm.ACCOUNT) or _quote(text_to_wsgi(a))
        headers = [("Location", "/v1/%s/%s" % (
            account, str(current.metadata[lm.TARGET]).lstrip("/")))]
        if current.metadata.get(lm.ETAG):
            headers.append(("X-Symlink-Target-Etag", str(current.metadata[lm.ETAG])))
        return Response(307, _POST_BODY.encode("utf-8"), headers,
                        content_type="text/html; charset=UTF-8")


def _target_of(req: Request, route: Route) -> tuple[str, str | None, str | None]:
    """Return a link PUT's target, account and ETag, checked as Swift checks them.

    :returns: ``<container>/<object>`` and the account (None when not
        given), percent-encoded as stored, and the ETag without quotes.
    :raises HTTPError: 412 a target not ``<container>/<object>`` or a bad
        account; 400 the link itself, or an ETag Swift cannot keep.
    """
    value = _unquote(req.header("X-Symlink-Target") or "")
    if value.startswith("/"):
        raise error(412, _TARGET_FORM, content_type=TEXT)
    container, sep, obj = value.partition("/")
    if not sep or not container or not obj:
        raise error(412, _TARGET_FORM, content_type=HTML)
    account_value = req.header("X-Symlink-Target-Account")
    account = None
    if account_value is not None:
        account = _unquote(account_value)
        if not account:
            raise error(412, "Account name cannot be empty", content_type=HTML)
        if "/" in account:
            raise error(412, "Account name cannot contain slashes", content_type=HTML)
    own = (text_to_wsgi(route.account), text_to_wsgi(route.container),
           text_to_wsgi(route.obj))
    if (account or own[0], container, obj) == own:
        raise error(400, "Symlink cannot target itself", content_type=TEXT)
    etag = normalize_etag(req.header("X-Symlink-Target-Etag"))
    if etag and any(ch in etag for ch in ';"\\'):
        raise error(400, "Bad X-Symlink-Target-Etag format", content_type=TEXT)
    return (_quote("%s/%s" % (container, obj)),
            None if account is None else _quote(account), etag or None)
