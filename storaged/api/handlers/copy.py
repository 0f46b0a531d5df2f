"""Server-side copy, as Swift's ``copy`` middleware does it.

Two requests copy an object without its data travelling through the
client:

* ``PUT /v1/a/c2/o2`` with ``X-Copy-From: c/o`` (and ``X-Copy-From-Account``
  for another account), with an empty body;
* ``COPY /v1/a/c/o`` with ``Destination: c2/o2`` (and ``Destination-Account``),
  which is turned into the PUT above.

Header values are percent-decoded; a leading ``/`` is optional.  The copy
is two sub-requests on the :class:`~storaged.api.handlers.objects.ObjectHandler`,
each made with the caller's identity, as Swift's middleware makes them
through its proxy: a GET of the source (so that a large object's content,
or ``?multipart-manifest=get`` its manifest, and the caller's ``Range`` and
conditional headers apply as on a GET), whose body streams into a PUT of
the destination.  Each side is refused exactly when a direct GET or PUT by
the caller would be.

What the destination keeps (``storaged.api.handlers.objectmeta`` decides
what an object keeps at all):

* the source's ``X-Object-Meta-*`` and allowed headers
  (``Content-Encoding``...), overridden by the request's; with
  ``X-Fresh-Metadata: true`` only the request's;
* ``Content-Type``: the request's if it has one, else the source's;
* the source's ETag is checked against the copied data, unless the source
  answered a range (206) or is a large object (its ETag is not its data's).

For example ``COPY /v1/AUTH_a/c/o`` with ``Destination: /c2/new%20name`` and
``X-Object-Meta-Color: red`` reads ``c/o`` (say it has
``X-Object-Meta-Color: blue`` and ``X-Object-Meta-Size: 3``), writes
``c2/new name`` with ``Color: red`` and ``Size: 3``, and answers 201 with
``X-Copied-From: c/o``, ``X-Copied-From-Account: AUTH_a``,
``X-Copied-From-Last-Modified`` and the destination's metadata.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Iterator
import io
from typing import Any
from typing import Final
from urllib import parse as urlparse

from storaged.api import routes
from storaged.api import unsupported
from storaged.api.access import Access
from storaged.api.auth import Identity
from storaged.api.handlers.common import TRUE_VALUES
from storaged.api.handlers.common import Settings
from storaged.api.handlers.objectmeta import OBJECT_HEADERS
from storaged.api.handlers.objectmeta import request_content_type
from storaged.api.handlers.objects import ObjectHandler
from storaged.api.protocol import HTML
from storaged.api.protocol import Request
from storaged.api.protocol import Response
from storaged.api.protocol import error
from storaged.api.protocol import text_to_wsgi
from storaged.catalog import Limits

#: Request headers that ask for the copy, dropped from the destination's PUT.
COPY_HEADERS: Final = (
    "X-Copy-From", "X-Copy-From-Account", "Destination", "Destination-Account",
)
_ALLOWED: Final = frozenset(name.lower() for name in OBJECT_HEADERS)


def is_copy(req: Request) -> bool:
    """Tell whether an object request is a server-side copy."""
    return req.method == "COPY" or (
        req.method == "PUT" and bool(req.header("X-Copy-From"))
    )


def _environ_key(name: str) -> str:
    key = name.upper().replace("-", "_")
    return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key


def _path_header(req: Request, name: str) -> tuple[str, str]:
    """Return ``(container, object)`` of ``X-Copy-From`` or ``Destination``.

    As Swift's ``check_path_header``: percent-decoded, ``/`` prepended when
    missing, then exactly ``/<container>/<object>`` (the object may hold
    slashes).  Returns WSGI strings (the bytes, as latin-1).

    :raises HTTPError: 412 naming the expected form.
    """
    value = urlparse.unquote(req.header(name) or "", encoding="latin-1")
    if not value.startswith("/"):
        value = "/" + value
    _empty, container, obj = [*value.split("/", 2), "", ""][:3]
    if not container or not obj:
        raise error(412, "%s header must be of the form "
                         "<container name>/<object name>" % name, content_type=HTML)
    return container, obj


def _account_header(req: Request, name: str) -> str:
    """Return an account header's value, percent-decoded (a WSGI string).

    :raises HTTPError: 412 for an empty name or one with a slash, as Swift.
    """
    value = urlparse.unquote(req.header(name) or "", encoding="latin-1")
    if not value:
        raise error(412, "Account name cannot be empty", content_type=HTML)
    if "/" in value:
        raise error(412, "Account name cannot contain slashes", content_type=HTML)
    return value


def _quote(wsgi: str) -> str:
    return urlparse.quote(wsgi, safe="/", encoding="latin-1")


def _kept(name: str) -> bool:
    """Tell whether a source header is one the destination inherits."""
    lower = name.lower()
    # X-Delete-At too: Swift's copy keeps every header but a few.
    return (lower.startswith("x-object-meta-") or lower in _ALLOWED
            or lower == "x-delete-at")


class _ChunkReader:
    """A file-like ``read(n)`` over a response body's chunks."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._pending = b""

    def read(self, size: int = -1) -> bytes:
        if not self._pending:
            self._pending = next(self._chunks, b"")
        if size is None or size < 0 or size >= len(self._pending):
            data, self._pending = self._pending, b""
        else:
            data, self._pending = self._pending[:size], self._pending[size:]
        return data


class Copier:
    """Answers COPY, and PUT with ``X-Copy-From``.

    :param objects: the object handler both sub-requests go to.
    :param settings: the ``[api]`` settings (the largest object).
    :param access: decides whether the caller may read the source and
        write the destination (and the source's segments).
    """

    def __init__(
        self, objects: ObjectHandler, settings: Settings, access: Access,
    ) -> None:
        self.objects = objects
        self.settings = settings
        self.access = access

    @property
    def limits(self) -> Limits:
        """The catalog's name limits: sub-request paths are checked with them."""
        return self.objects.service.catalog.limits

    def handle(self, req: Request, route: routes.Route, ident: Identity) -> Response:
        """Copy as the request asks; answer as Swift's middleware does."""
        if ident.is_sync:
            # A container-sync sender may write its own container's objects
            # with plain requests only (Swift's sync never sends copies).
            raise error(403)
        if (req.query.get("heartbeat") or "").lower() in TRUE_VALUES:
            raise error(501, "heartbeat is not supported: heartbeat responses "
                             "to copies are not available on this server")
        if req.method == "COPY":
            if not req.header("Destination"):
                raise error(412, "Destination header required", content_type=HTML)
            account = text_to_wsgi(route.account)
            dest_account = account
            if req.header("Destination-Account") is not None:
                dest_account = _account_header(req, "Destination-Account")
            container, obj = _path_header(req, "Destination")
            source = (account, text_to_wsgi(route.container), text_to_wsgi(route.obj))
            dest = (dest_account, container, obj)
        else:
            if req.content_length:
                raise error(400, "Copy requests require a zero byte body")
            dest = (text_to_wsgi(route.account), text_to_wsgi(route.container),
                    text_to_wsgi(route.obj))
            src_account = dest[0]
            if req.header("X-Copy-From-Account"):
                src_account = _account_header(req, "X-Copy-From-Account")
            source = (src_account, *_path_header(req, "X-Copy-From"))
        return self._copy(req, ident, source, dest)

    def _sub_request(
        self, req: Request, method: str, where: tuple[str, str, str],
        ident: Identity, query: dict[str, str],
    ) -> tuple[Request, routes.Route, Identity]:
        """Build a sub-request on ``where``, with the caller's headers.

        :returns: the request, its route, and who it acts as.
        :raises HTTPError: as a request to that path: 412 not UTF-8, 400
            a bad name, 401 or 403 a path the caller may not use so.
        """
        path_info = "/v1/%s/%s/%s" % where
        path = routes.decode_path(path_info)
        route = routes.route(path, self.limits)
        env = {k: v for k, v in req.environ.items()
               if k not in ("headers_raw", "storaged.body",
                            "HTTP_TRANSFER_ENCODING", "CONTENT_LENGTH")}
        for name in COPY_HEADERS:
            env.pop(_environ_key(name), None)
        env.update({
            "REQUEST_METHOD": method,
            "PATH_INFO": path_info,
            "QUERY_STRING": urlparse.urlencode(query),
            "wsgi.input": io.BytesIO(b""),
        })
        sub = Request(env, path, req.request_id)
        as_who = self.access.authorize(sub, route, ident)
        self.access.remember(sub, as_who)
        return sub, route, as_who

    def _copy(
        self, req: Request, ident: Identity,
        source: tuple[str, str, str], dest: tuple[str, str, str],
    ) -> Response:
        query = dict(req.query)
        manifest = query.get("multipart-manifest") == "get"
        get_query = dict(query, format="raw") if manifest else query
        get_req, get_route, reader = self._sub_request(
            req, "GET", source, ident, get_query)
        src = self.objects.handle(get_req, get_route, reader)
        if src.status >= 300:
            # Swift answers with the source's answer (304, 412, 416...).
            return src
        chunks = src.chunks()
        try:
            if src.length > self.settings.max_object_size:
                raise error(413)
            if manifest:
                if "X-Static-Large-Object" in src.headers:
                    query["multipart-manifest"] = "put"
                if "X-Object-Manifest" in src.headers:
                    del query["multipart-manifest"]
            put_req, put_route, writer = self._sub_request(
                req, "PUT", dest, ident, query)
            _merge_headers(req, src, put_req.environ, manifest)
            unsupported.check(put_req, routes.OBJECT)
            put_req.environ["wsgi.input"] = _ChunkReader(chunks)
            put_req.environ["CONTENT_LENGTH"] = str(src.length)
            result = self.objects.handle(put_req, put_route, writer)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        if 200 <= result.status < 300:
            result.headers.update(_copied_headers(source, src, put_req))
        return result


def _merge_headers(
    req: Request, src: Response, env: dict[str, Any], manifest: bool
) -> None:
    """Give the destination's PUT its headers, as Swift's middleware does.

    :param env: the PUT's environ, holding the request's headers already.
    """
    fresh = (req.header("X-Fresh-Metadata") or "").lower() in TRUE_VALUES
    if not fresh:
        for name, value in src.headers.items():
            key = _environ_key(name)
            if _kept(name) and key not in req.environ:
                env[key] = text_to_wsgi(value)
    dlo = "X-Object-Manifest" in src.headers
    if src.status == 200 and "X-Static-Large-Object" not in src.headers and (
        not dlo or manifest
    ):
        # Checked against the data; a range's or a large object's ETag is
        # not the md5 of what is copied.
        env["HTTP_ETAG"] = text_to_wsgi(src.headers.get("Etag") or "")
    if manifest and dlo:
        env["HTTP_X_OBJECT_MANIFEST"] = text_to_wsgi(src.headers["X-Object-Manifest"])
    if request_content_type(req) is None:
        # None when the client sent none (or asked for detection, which
        # the PUT then does from the destination's name).
        env["CONTENT_TYPE"] = text_to_wsgi(src.headers.get("Content-Type") or "")


def _copied_headers(
    source: tuple[str, str, str], src: Response, put_req: Request
) -> list[tuple[str, str]]:
    """Return the headers Swift adds to a successful copy's answer."""
    account, container, obj = source
    headers = [
        ("X-Copied-From-Account", _quote(account)),
        ("X-Copied-From", _quote("%s/%s" % (container, obj))),
    ]
    modified = src.headers.get("Last-Modified")
    if modified is not None:
        headers.append(("X-Copied-From-Last-Modified", modified))
    headers.extend(
        (name, value)
        for name, value in put_req.headers_with_prefix("X-Object-Meta-", strict=False)
    )
    return headers
