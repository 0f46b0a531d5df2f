"""Versioned writes, as Swift's ``versioned_writes`` (its two legacy modes).

A container names an archive container in the same account with one of
two headers (a PUT or POST of the container; an empty value, or
``X-Remove-Versions-Location`` / ``X-Remove-History-Location``, turns it
off):

* ``X-Versions-Location`` (stack mode): a DELETE of an object puts its
  newest archived version back in its place (and removes that version from
  the archive); with none archived, it deletes;
* ``X-History-Location`` (history mode): a DELETE archives the current
  version, writes a zero-byte *delete marker* (type
  :data:`DELETE_MARKER_CONTENT_TYPE`) to the archive, and deletes.

In both modes a PUT over an existing object (a COPY or ``X-Copy-From`` onto
it, an SLO manifest's PUT alike) first copies the current version into the
archive as ``<3 hex digits of the name's length in UTF-8 bytes><name>/<its
timestamp>``.  A POST changes metadata only and archives nothing.  For
example, with ``X-Versions-Location: arch`` on ``c``, two PUTs of ``c/o``
leave the second in ``c/o`` and the first as ``arch/001o/1700000000.00000``;
a DELETE of ``c/o`` then copies that back to ``c/o`` and deletes it from
``arch``; a second DELETE deletes ``c/o``.

The container keeps the archive's name as its client sent it, under the
header's own name (``X-Versions-Location`` or ``X-History-Location``, never
both: setting one clears the other, as Swift's two system metadata keys
do), so HEAD and GET show it as Swift does.  The archive container is the
value, percent-decoded, up to its first ``/``.

Archive writes are requests made on the client's behalf through
:meth:`Handlers.dispatch <storaged.api.handlers.Handlers.dispatch>` (a COPY
with ``multipart-manifest=get`` and ``symlink=get``, so that a large
object's manifest and a symlink are archived as themselves, then a DELETE;
a PUT for a delete marker).  As Swift's middleware makes them
*pre-authorized*, they act as the account's owner: a user allowed to write
the versioned container has its versions archived even without access to
the archive container (Swift's ``test_versioning_container_acl``).  They
carry a mark in their environ (:data:`SUB_REQUEST`) so that they are not
versioned themselves, as Swift's go to the pipeline right of the
middleware.  A failed archive write fails the client's request: 412 when
the archive answered 4xx (a missing archive container, say), 503 otherwise,
as Swift.

**Concurrency.** Two PUTs of one name at once must not lose a version.
Each versioned write (PUT, and the DELETE's reads and writes) holds the
name's lock (:class:`~storaged.api.handlers.name_lock.NameLocks`, a
``flock`` shared by the node's workers) from reading the current version
to the end of its own write, so the second writer archives what the first
wrote.  Between nodes sharing one catalog the lock does not reach: there
the catalog's last writer wins, as in Swift (which has no lock at all).

Object versioning (``X-Versions-Enabled``) is not offered: see
``docs/api.rst``.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
import io
import logging
import os
from typing import Any
from typing import Final
from urllib import parse as urlparse

from storaged import exception
from storaged.api import errors
from storaged.api import routes
from storaged.api.auth import ADMIN
from storaged.api.auth import Identity
from storaged.api.handlers.common import run
from storaged.api.handlers.name_lock import NameLocks
from storaged.api.protocol import HTML
from storaged.api.protocol import PLAIN
from storaged.api.protocol import HTTPError
from storaged.api.protocol import Request
from storaged.api.protocol import Response
from storaged.api.protocol import error
from storaged.api.protocol import text_to_wsgi
from storaged.api.routes import Route
from storaged.catalog import Timestamp
from storaged.objects.repository import ObjectInfo
from storaged.objects.repository import ObjectRepository

LOG = logging.getLogger(__name__)

#: The container headers (and metadata keys) naming the archive container.
VERSIONS_LOCATION: Final = "X-Versions-Location"
HISTORY_LOCATION: Final = "X-History-Location"
#: Their removal headers (any non-empty value removes).
REMOVE_HEADERS: Final = ("X-Remove-Versions-Location", "X-Remove-History-Location")
#: The type of a delete marker written in history mode.
DELETE_MARKER_CONTENT_TYPE: Final = "application/x-deleted;swift_versions_deleted=1"
#: What ``/info`` says under ``versioned_writes``.
INFO: Final = {"allowed_flags": [VERSIONS_LOCATION.lower(), HISTORY_LOCATION.lower()]}
#: Environ key marking a request this module made (never versioned again).
SUB_REQUEST: Final = "storaged.versioned_writes"
#: Archived versions listed at a time while looking for the newest.
PAGE: Final = 1000

Handler = Callable[[Request, Route, Identity], Response]


def container_updates(req: Request) -> dict[str, str]:
    """Return the container metadata a PUT or POST's versioning headers ask for.

    As Swift's middleware: both locations non-empty is a 400; an empty one
    of the two is ignored when the other is set; an empty value or a
    removal header clears the setting; a value with a ``/`` is a 412.

    :raises HTTPError: 400 both modes at once, 412 a bad container name.
    """
    versions = req.header_text(VERSIONS_LOCATION)
    history = req.header_text(HISTORY_LOCATION)
    if versions is not None and history is not None:
        if not history:
            history = None
        elif versions:
            raise error(400, "Only one of %s or %s may be specified" % (
                VERSIONS_LOCATION.lower(), HISTORY_LOCATION.lower()),
                content_type=PLAIN)
        else:
            versions = None
    value = versions if versions is not None else history
    if value:
        if "/" in value:
            raise error(412, "Container name cannot contain slashes",
                        content_type=HTML)
        if versions is not None:
            return {VERSIONS_LOCATION: value, HISTORY_LOCATION: ""}
        return {VERSIONS_LOCATION: "", HISTORY_LOCATION: value}
    if value is not None or any(req.header(name) for name in REMOVE_HEADERS):
        return {VERSIONS_LOCATION: "", HISTORY_LOCATION: ""}
    return {}


def versions_prefix(name: str) -> str:
    """Return the archive's prefix for an object name (``008myobject/``)."""
    return "%03x%s/" % (len(name.encode("utf-8")), name)


class VersionedWrites:
    """Archives an object's versions on PUT and DELETE, as Swift's middleware.

    :param service: the object service (containers' settings, current
        versions and archive listings are read from it).
    :param dispatch: answers a request as if it came from a client
        (``Handlers.dispatch``): every archive write goes through it.
    :param locks: the per-name locks (see the module's docstring); by
        default under the catalog's ``locks/`` directory.
    """

    def __init__(
        self, service: ObjectRepository, dispatch: Handler,
        locks: NameLocks | None = None,
    ) -> None:
        self.service = service
        self.dispatch = dispatch
        self._locks = locks

    @property
    def locks(self) -> NameLocks:
        """The per-name locks (made when first needed)."""
        if self._locks is None:
            self._locks = NameLocks(
                os.path.join(self.service.catalog.path, "locks"))
        return self._locks

    def handle(
        self, req: Request, route: Route, ident: Identity, app: Handler
    ) -> Response:
        """Answer an object request through ``app``, versioning it if it must be."""
        if req.method not in ("PUT", "DELETE") or req.environ.get(SUB_REQUEST):
            return app(req, route, ident)
        a, c, o = route.account, route.container, route.obj
        try:
            info = run(self.service.container_info, a, c)
        except exception.ContainerNotFound:
            return app(req, route, ident)
        archive, history = _location(info.metadata)
        if not archive:
            return app(req, route, ident)
        with self.locks.hold(a, c, o):
            if req.method == "PUT":
                self._archive_current(req, route, archive)
                return app(req, route, ident)
            if history:
                self._archive_current(req, route, archive)
                self._write_marker(req, route, archive)
                return app(req, route, ident)
            return self._pop(req, route, ident, archive, app)

    # -- the steps ------------------------------------------------------------

    def _archive_current(self, req: Request, route: Route, archive: str) -> None:
        """Copy the current version (if any) into the archive container."""
        current = run(self._head_or_none, route.account, route.container, route.obj)
        if current is None:
            return
        name = versions_prefix(route.obj) + current.timestamp.internal
        resp = self._copy(req, route.account, (route.container, route.obj),
                          (archive, name))
        _check(resp)

    def _write_marker(self, req: Request, route: Route, archive: str) -> None:
        """Write a delete marker named after now in the archive container."""
        name = versions_prefix(route.obj) + Timestamp.now().internal
        resp = self._call(req, "PUT", route.account, archive, name, headers={
            "CONTENT_TYPE": DELETE_MARKER_CONTENT_TYPE, "CONTENT_LENGTH": "0"})
        _check(resp)

    def _pop(
        self, req: Request, route: Route, ident: Identity, archive: str,
        app: Handler,
    ) -> Response:
        """Stack mode's DELETE: restore the newest archived version, as Swift.

        Delete markers (left by history mode) count: the newest being a
        marker, the current object (if there is one) is deleted; if there is
        none, the version below the marker is restored and the marker
        removed.
        """
        a, c, o = route.account, route.container, route.obj
        versions = self._newest_first(a, archive, versions_prefix(o))
        for previous in versions:
            if previous.content_type == DELETE_MARKER_CONTENT_TYPE:
                if run(self._head_or_none, a, c, o) is not None:
                    break  # delete what is there
                for older in versions:
                    if older.content_type == DELETE_MARKER_CONTENT_TYPE:
                        break
                    if self._restore(req, route, archive, older.name):
                        gone = self._call(req, "DELETE", a, archive, older.name)
                        if gone.status != 404:
                            _check(gone)
                        break
                return self._final_delete(req, a, archive, previous.name)
            if not self._restore(req, route, archive, previous.name):
                continue  # gone meanwhile: the next older one
            return self._final_delete(req, a, archive, previous.name)
        return app(req, route, ident)

    def _restore(
        self, req: Request, route: Route, archive: str, version: str
    ) -> bool:
        """Copy an archived version back in place; False if it is gone."""
        resp = self._copy(req, route.account, (archive, version),
                          (route.container, route.obj))
        if resp.status == 404:
            return False
        _check(resp)
        return True

    def _final_delete(
        self, req: Request, account: str, archive: str, version: str
    ) -> Response:
        """Delete an archived version: its answer is the DELETE's (Swift's)."""
        sub, route = self._sub_request(req, "DELETE", account, archive, version)
        return self.dispatch(sub, route, _pre_authorized(account))

    # -- reading ---------------------------------------------------------------

    def _head_or_none(self, a: str, c: str, o: str) -> ObjectInfo | None:
        try:
            return self.service.head_object(a, c, o)
        except exception.ObjectNotFound:
            return None

    def _newest_first(self, account: str, archive: str, prefix: str) -> Iterator[Any]:
        """Yield the archived versions of a name, newest first, page by page."""
        marker = ""
        while True:
            try:
                page = run(self.service.list_objects, account, archive,
                           prefix=prefix, marker=marker, reverse=True, limit=PAGE)
            except exception.ContainerNotFound:
                return
            if not page:
                return
            yield from page
            marker = page[-1].name

    # -- sub-requests ---------------------------------------------------------

    def _copy(
        self, req: Request, account: str, source: tuple[str, str],
        dest: tuple[str, str],
    ) -> Response:
        """Server-side copy of an object as itself (manifest, symlink)."""
        destination = urlparse.quote("%s/%s" % dest, safe="/")
        return self._call(
            req, "COPY", account, *source,
            query={"multipart-manifest": "get", "symlink": "get"},
            headers={"HTTP_DESTINATION": destination},
        )

    def _call(
        self, req: Request, method: str, account: str, container: str, obj: str,
        query: dict[str, str] | None = None, headers: dict[str, str] | None = None,
    ) -> Response:
        """Answer a sub-request; an error is returned, not raised."""
        try:
            sub, route = self._sub_request(req, method, account, container, obj,
                                           query, headers)
            resp = self.dispatch(sub, route, _pre_authorized(account))
        except HTTPError as err:
            resp = err.response
        except exception.StoragedError as err:
            resp = errors.to_http(err).response
        _close(resp)
        return resp

    def _sub_request(
        self, req: Request, method: str, account: str, container: str, obj: str,
        query: dict[str, str] | None = None, headers: dict[str, str] | None = None,
    ) -> tuple[Request, Route]:
        path = "/v1/%s/%s/%s" % (account, container, obj)
        environ = {
            key: value for key, value in req.environ.items()
            if not key.startswith("HTTP_") and key not in (
                "CONTENT_TYPE", "CONTENT_LENGTH", "storaged.body", "wsgi.input",
                "QUERY_STRING", "PATH_INFO", "REQUEST_METHOD", "headers_raw",
            )
        }
        environ.update({
            "REQUEST_METHOD": method,
            "PATH_INFO": text_to_wsgi(path),
            "QUERY_STRING": urlparse.urlencode(query or {}),
            "CONTENT_LENGTH": "0",
            "wsgi.input": io.BytesIO(b""),
            SUB_REQUEST: True,
        })
        environ.update(headers or {})
        route = routes.route(path, self.service.catalog.limits)
        return Request(environ, path, req.request_id), route


def _location(metadata: Any) -> tuple[str, bool]:
    """Return a container's archive container and whether it is history mode."""
    value = metadata.get(VERSIONS_LOCATION) or ""
    history = False
    if not value:
        value = metadata.get(HISTORY_LOCATION) or ""
        history = bool(value)
    return urlparse.unquote(value).split("/")[0], history


def _pre_authorized(account: str) -> Identity:
    """The identity of a sub-request Swift would make pre-authorized."""
    return Identity(".versioned_writes", account, frozenset({ADMIN}))


def _check(resp: Response) -> None:
    """Fail the client's request for a failed archive write, as Swift."""
    if 200 <= resp.status < 300:
        return
    if 400 <= resp.status < 500:
        raise error(412)
    raise error(503)


def _close(resp: Response) -> None:
    close = getattr(resp.body, "close", None)
    if close is not None:
        close()


class VersionedObjects:
    """The object handler with its PUTs and DELETEs versioned.

    Stands where the :class:`~storaged.api.handlers.objects.ObjectHandler`
    stood, so that every object request (a copy's PUT, a bulk delete's
    DELETE) is versioned as Swift versions what passes through its
    middleware; anything else is the object handler's own.

    :param objects: the object handler.
    :param versioning: what versions its writes.
    """

    def __init__(self, objects: Any, versioning: VersionedWrites) -> None:
        self.objects = objects
        self.versioning = versioning

    def __getattr__(self, name: str) -> Any:
        return getattr(self.objects, name)

    def handle(self, req: Request, route: Route, ident: Identity) -> Response:
        """Answer an object request, versioned."""
        return self.versioning.handle(req, route, ident, self.objects.handle)
