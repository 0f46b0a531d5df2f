"""``PUT ?extract-archive=tar|tar.gz|tar.bz2``: containers and objects from a tar.

As Swift's ``bulk`` middleware: each regular file of the archive becomes an
object, put as a direct ``PUT`` by the same user would be; its first path
component names the container, created (``PUT``) when it does not exist
yet.  On a container or pseudo-directory path, the path is prefixed to each
name.  A file at the top of the archive on the account path names no
container and is skipped.  The archive is read as a stream, one member at a
time (never the whole body in memory).

The answer is ``200 OK`` at once; a space every
:data:`~storaged.api.handlers.bulk_delete.YIELD_FREQUENCY` seconds while
working (the XML declaration first for XML), then the outcome in the format
``Accept`` asks for::

    Number Files Created: 2
    Response Body:
    Response Status: 201 Created
    Errors:

A worked example: ``PUT /v1/AUTH_test/photos?extract-archive=tar`` of an
archive with ``a.jpg`` and ``2024/b.jpg`` creates ``photos/a.jpg`` and
``photos/2024/b.jpg``.  A failed file is listed under ``Errors`` with its
status and makes the ``Response Status`` 400 (502 for a server error);
more than :data:`MAX_CONTAINERS_PER_EXTRACTION` new containers, a broken
archive (``400 Invalid Tar File: ...``) or no file at all (``400 Invalid
Tar File: No Valid Files``) end the request; after
:data:`MAX_FAILED_EXTRACTIONS` failures the rest is not extracted.
"""

from __future__ import annotations

from collections.abc import Iterator
import logging
import tarfile
import time
from typing import Any
from typing import Final
import zlib

from storaged.api import body as body_mod
from storaged.api import routes
from storaged.api.auth import Identity
from storaged.api.handlers import bulk_delete as bd
from storaged.api.handlers import slo_manifest as sm
from storaged.api.protocol import Request
from storaged.api.protocol import Response
from storaged.api.protocol import error
from storaged.api.protocol import status_line

LOG = logging.getLogger(__name__)

#: Most containers one archive may create (``max_containers_per_extraction``).
MAX_CONTAINERS_PER_EXTRACTION: Final = 10000
#: Failures after which extraction stops (``max_failed_extractions``).
MAX_FAILED_EXTRACTIONS: Final = 1000
#: The archive formats, by ``?extract-archive`` value.
COMPRESSIONS: Final = {"tar": "", "tar.gz": "gz", "tar.bz2": "bz2"}


def is_extract(req: Request) -> bool:
    """Tell whether ``req`` asks for an archive extraction."""
    return "extract-archive" in req.query and req.method == "PUT"


class Extractor:
    """Creates objects (and containers) from a tar archive.

    :param deleter: the bulk deleter, whose item dispatch, limits and
        heartbeat this shares.
    :param max_object_size: largest file an archive may hold.
    """

    def __init__(self, deleter: bd.BulkDelete, max_object_size: int) -> None:
        self.deleter = deleter
        self.max_object_size = max_object_size

    def extract(self, req: Request, route: routes.Route, ident: Identity) -> Response:
        """Answer ``PUT ?extract-archive``: 200 now, the outcome in the body."""
        kind = (req.query.get("extract-archive") or "").lower().strip(".")
        if kind not in COMPRESSIONS:
            raise error(400, "Unsupported archive format")
        fmt = sm.best_format(req.header("Accept"))
        base = "/".join(p for p in (route.container, route.obj) if p).rstrip("/")
        response = Response(200, b"", content_type=fmt or "text/plain")
        response.body = self._chunks(req, route.account, ident, fmt, base,
                                     COMPRESSIONS[kind])
        response.length = 0
        del response.headers["Content-Length"]
        return response

    def _chunks(
        self, req: Request, account: str, ident: Identity, fmt: str | None,
        base: str, compression: str,
    ) -> Iterator[bytes]:
        to_yield = b" "
        if fmt and fmt.endswith("/xml"):
            to_yield = b'<?xml version="1.0" encoding="UTF-8"?>\n'
        separator = b""
        last_yield = time.monotonic()
        data: dict[str, Any] = {"Response Status": status_line(201),
                                "Response Body": "", "Number Files Created": 0}
        failed: list[list[str]] = []
        self.bad_gateway = False
        try:
            if fmt is None:
                raise bd.Refused(status=406, reason=bd.default_body(406))
            length = req.content_length
            if length is None and not req.chunked:
                raise bd.Refused(status=411, reason=bd.default_body(411))
            reader = body_mod.BodyReader(req.environ["wsgi.input"], length,
                                         1 << 62, self.deleter.client_timeout)
            req.environ["storaged.body"] = reader
            tar = _open(reader, compression)
            seen: set[str] = set()
            created = [0]
            while len(failed) < MAX_FAILED_EXTRACTIONS:
                if time.monotonic() - last_yield > self.deleter.yield_frequency:
                    last_yield = time.monotonic()
                    yield to_yield
                    to_yield, separator = b" ", b"\r\n\r\n"
                member = tar.next()
                if member is None:
                    break
                if not member.isfile():
                    continue
                if self._one(req, account, ident, tar, member, base, seen,
                             created, failed):
                    data["Number Files Created"] += 1
            if failed:
                data["Response Status"] = status_line(502 if self.bad_gateway
                                                      else 400)
            elif not data["Number Files Created"]:
                data["Response Status"] = status_line(400)
                data["Response Body"] = "Invalid Tar File: No Valid Files"
        except bd.Refused as err:
            data["Response Status"] = status_line(err.status)
            data["Response Body"] = err.message
        except (tarfile.TarError, zlib.error, EOFError, OSError) as err:
            data["Response Status"] = status_line(400)
            data["Response Body"] = "Invalid Tar File: %s" % err
        except Exception:
            LOG.exception("Error in extract archive (request %s)", req.request_id)
            data["Response Status"] = status_line(500)
        yield separator + sm.response_body(fmt, data, failed, "extract")

    def _one(
        self, req: Request, account: str, ident: Identity, tar: tarfile.TarFile,
        member: tarfile.TarInfo, base: str, seen: set[str], created: list[int],
        failed: list[list[str]],
    ) -> bool:
        """Put one file (creating its container first); True if created."""
        longest = bd.max_path_length(self.deleter.limits)
        name = member.name
        if name.startswith("./"):
            name = name[2:]
        name = name.lstrip("/")
        if base:
            name = base + "/" + name
        if "/" not in name:
            return False  # a file at the top names no container
        shown = sm.quote(_text(name)[:longest])
        if "\x00" in name or not _is_utf8(name):
            failed.append([shown, status_line(412)])
            return False
        if member.size > self.max_object_size:
            failed.append([shown, status_line(413)])
            return False
        container = name.split("/", 1)[0]
        container_failure = None
        if container not in seen:
            status = self._ensure_container(req, account, ident, container)
            if status == 201:
                created[0] += 1
                if created[0] > MAX_CONTAINERS_PER_EXTRACTION:
                    raise bd.Refused(status=400, reason="More than %d containers "
                                     "to create from tar."
                                     % MAX_CONTAINERS_PER_EXTRACTION)
            elif status // 100 != 2:
                container_failure = [sm.quote(("/v1/%s/%s" % (account, container))
                                              [:longest]), status_line(status)]
        stream = tar.extractfile(member)
        status = self.deleter.subrequest(
            req, account, ident, "PUT", name, stream, member.size,
        )
        seen.add(container)
        if status // 100 == 2:
            return True
        if container_failure:
            failed.append(container_failure)
        self.bad_gateway = self.bad_gateway or status // 100 == 5
        failed.append([shown, status_line(status)])
        return False

    def _ensure_container(
        self, req: Request, account: str, ident: Identity, container: str
    ) -> int:
        """HEAD the container, PUT it if missing: 204, 201 or a failure."""
        status = self.deleter.subrequest(req, account, ident, "HEAD", container)
        if status // 100 == 2:
            return 204
        if status != 404:
            return status
        status = self.deleter.subrequest(req, account, ident, "PUT", container)
        return 201 if status // 100 == 2 else status


def _open(reader: body_mod.BodyReader, compression: str) -> tarfile.TarFile:
    """Open the archive as a stream (``r|``): members are read in order."""
    source: Any = reader  # read() is all a stream needs
    if compression == "gz":
        return tarfile.open(mode="r|gz", fileobj=source)
    if compression == "bz2":
        return tarfile.open(mode="r|bz2", fileobj=source)
    return tarfile.open(mode="r|", fileobj=source)


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeError:
        return False
    return True


def _text(name: str) -> str:
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
