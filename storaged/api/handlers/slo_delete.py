"""``DELETE ?multipart-manifest=delete``: a static large object and its segments.

As Swift's ``slo`` middleware (through its ``bulk`` deleter): the manifest
is read, its segments (and, breadth first, those of nested manifests) are
deleted, then the manifests themselves.  The answer is always ``200 OK``;
its body, in the format ``Accept`` asks for, tells what happened::

    Number Deleted: 3
    Number Not Found: 0
    Response Body:
    Response Status: 200 OK
    Errors:

A segment already gone counts as not found; one that could not be
deleted is listed under ``Errors`` and makes the ``Response Status`` a
``400 Bad Request`` (``502 Bad Gateway`` for a server error).  Deleting
an object that is not a manifest this way deletes nothing and answers
``400 Bad Request`` with ``Not an SLO manifest``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from storaged import exception
from storaged.api import errors
from storaged.api.handlers import slo_manifest as sm
from storaged.api.handlers.common import run
from storaged.api.handlers.slo import StaticLargeObjects
from storaged.api.handlers.slo import is_manifest
from storaged.api.protocol import HTTPError
from storaged.api.protocol import Request
from storaged.api.protocol import Response
from storaged.api.routes import Route


class _Failed(exception.StoragedError):
    """A manifest that could not be read: reported, not deleted.

    Raised with ``status`` (the status Swift reports) and ``reason``.
    """

    msg_fmt = "%(reason)s"

    @property
    def status(self) -> int:
        return int(self.kwargs.get("status", 500))


class ManifestDelete:
    """Deletes a static large object's segments, then its manifest.

    :param reader: reads manifests.
    """

    def __init__(self, reader: StaticLargeObjects) -> None:
        self.reader = reader

    def delete(self, req: Request, route: Route) -> Response:
        """Answer ``DELETE ?multipart-manifest=delete``."""
        fmt = sm.best_format(req.header("Accept"))
        tally = sm.DeleteTally()
        try:
            if fmt is None:
                raise _Failed(status=406, reason="")
            for name, problem in self._to_delete(route.account, route.container,
                                                 route.obj):
                if problem is not None:
                    if problem.status == 404:
                        tally.data["Number Not Found"] += 1
                    else:
                        tally.failed.append([sm.quote(name), problem.message])
                    continue
                tally.count(name, self._delete_one(route.account, name))
            tally.finish()
        except _Failed as err:
            tally.refuse(err.status, err.message)
        return Response(200, tally.body(fmt), content_type=fmt or "text/plain")

    def _to_delete(
        self, account: str, container: str, obj: str
    ) -> Iterator[tuple[str, _Failed | None]]:
        """Yield ``/container/object`` names to delete, manifests last."""
        queue: list[dict[str, Any]] = [
            {"sub_slo": True, "name": "/%s/%s" % (container, obj)}
        ]
        while queue:
            if len(queue) > sm.MAX_MANIFEST_SEGMENTS * 10:
                raise _Failed(status=400,
                              reason="Too many buffered slo segments to delete.")
            entry = queue.pop(0)
            if "data" in entry:
                continue
            if entry.get("sub_slo"):
                try:
                    queue.extend(self._segments_of(account, entry["name"]))
                except _Failed as err:
                    entry["error"] = err
                queue.append({"name": entry["name"], "error": entry.get("error")})
                continue
            yield entry["name"], entry.get("error")

    def _segments_of(self, account: str, name: str) -> list[dict[str, Any]]:
        container, _sep, obj = name.lstrip("/").partition("/")
        try:
            info = run(self.reader.service.head_object, account, container, obj)
        except (exception.ObjectNotFound, exception.ContainerNotFound) as err:
            raise _Failed(status=404, reason="SLO manifest not found") from err
        except exception.StoragedError as err:
            raise _Failed(status=500,
                          reason="Unable to load SLO manifest or segment.") from err
        if not is_manifest(info.metadata):
            raise _Failed(status=400, reason="Not an SLO manifest")
        try:
            _info, entries = self.reader.entries(account, container, obj)
        except (HTTPError, exception.StoragedError) as err:
            raise _Failed(status=500, reason="Unable to load SLO manifest") from err
        if not isinstance(entries, list):
            raise _Failed(status=500, reason="Unable to load SLO manifest")
        return [dict(e) for e in entries if isinstance(e, dict)]

    def _delete_one(self, account: str, name: str) -> int:
        container, _sep, obj = name.lstrip("/").partition("/")
        try:
            applied = run(self.reader.service.delete_object, account, container, obj)
        except (exception.ObjectNotFound, exception.ContainerNotFound):
            return 404
        except exception.StoragedError as err:
            return errors.to_http(err).response.status
        return 204 if applied else 409
