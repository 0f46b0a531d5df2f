"""Static large object manifest PUTs (``?multipart-manifest=put``).

As Swift's ``slo`` middleware: the JSON list is checked
(:func:`.slo_manifest.parse_put`), each segment object is looked up once
(with the caller's rights: segments are in the caller's account), and the
problems (missing, ``Etag Mismatch``, ``Size Mismatch``, too small,
unsatisfiable range) are answered in one 400 in the format ``Accept``
asks for.  The manifest is stored in Swift's internal form with
``X-Static-Large-Object: True``, a ``Content-Type`` carrying
``swift_bytes=<total>`` and the large object's size and ETag as system
metadata; the answer's ``Etag`` is the large object's, in quotes.

``?heartbeat=on`` answers 202 at once, sends a space every
:data:`~.slo_manifest.YIELD_FREQUENCY` seconds while the segments are
checked, and then the final status and ETag in the body.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
import dataclasses
import datetime
import hashlib
import io
import json
import math
import mimetypes
import time
from typing import Any

from storaged import exception
from storaged.api import body as body_mod
from storaged.api import errors
from storaged.api.access import ReadCheck
from storaged.api.access import read_check
from storaged.api.auth import Identity
from storaged.api.handlers import slo_manifest as sm
from storaged.api.handlers import symlink_meta
from storaged.api.handlers.common import TRUE_VALUES
from storaged.api.handlers.common import run
from storaged.api.handlers.conditions import quote_etag
from storaged.api.handlers.objectmeta import clean_content_type
from storaged.api.handlers.objectmeta import request_content_type
from storaged.api.handlers.objectmeta import request_metadata
from storaged.api.handlers.slo import StaticLargeObjects
from storaged.api.handlers.slo import is_manifest
from storaged.api.protocol import STATUSES
from storaged.api.protocol import HTTPError
from storaged.api.protocol import Request
from storaged.api.protocol import Response
from storaged.api.protocol import error
from storaged.api.protocol import last_modified
from storaged.api.protocol import status_line
from storaged.api.routes import Route


@dataclasses.dataclass(frozen=True)
class _Head:
    """What a manifest PUT learns of one segment object."""

    size: int
    etag: str
    content_type: str
    modified: str
    sub_slo: bool


@dataclasses.dataclass(frozen=True)
class SegmentProblems:
    """Segments that do not match the manifest: a 400 listing them.

    :ivar problems: ``[quoted name, problem]`` pairs, in manifest order.
    """

    problems: list[list[str]]


class ManifestPut:
    """Checks and stores manifests.

    :param reader: reads manifests (a nested one's size and ETag).
    :param client_timeout: seconds a client may stay silent.
    """

    def __init__(self, reader: StaticLargeObjects, client_timeout: float) -> None:
        self.reader = reader
        self.client_timeout = client_timeout

    def put(self, req: Request, route: Route, ident: Identity) -> Response:
        """Store a manifest (``PUT ?multipart-manifest=put``)."""
        a, c, o = route.account, route.container, route.obj
        length = req.content_length
        if length is None and not req.chunked:
            raise error(411)
        if length is not None and length > sm.MAX_MANIFEST_SIZE:
            raise error(413, "Manifest File > %d bytes" % sm.MAX_MANIFEST_SIZE)
        reader = body_mod.BodyReader(
            req.environ["wsgi.input"], length, sm.MAX_MANIFEST_SIZE + 1,
            self.client_timeout,
        )
        req.environ["storaged.body"] = reader
        raw = _read_up_to(reader, sm.MAX_MANIFEST_SIZE)
        parsed = sm.parse_put(raw, c, o)
        if sum(1 for s in parsed if "path" in s) > sm.MAX_MANIFEST_SEGMENTS:
            raise error(413, "Number of object-backed segments must be <= %d"
                        % sm.MAX_MANIFEST_SEGMENTS)
        fmt = sm.best_format(req.header("Accept")) or "text/plain"
        meta = request_metadata(req, ident)
        ctype = request_content_type(req)
        run(self.reader.service.container_info, a, c)  # 404 before any segment HEAD
        if_none_match = req.header("If-None-Match")
        if if_none_match is not None:
            if if_none_match.strip() != "*":
                raise error(400, "If-None-Match only supports *")
            try:
                run(self.reader.service.head_object, a, c, o)
            except exception.ObjectNotFound:
                pass
            else:
                raise error(412)
        steps = self._put_steps(req, a, c, o, parsed, meta, ctype)
        if (req.query.get("heartbeat") or "").lower() in TRUE_VALUES:
            return _heartbeat_response(steps, fmt)
        for step in steps:
            if isinstance(step, SegmentProblems):
                raise HTTPError(Response(
                    400, sm.response_body(fmt, {}, step.problems, "upload"),
                    content_type=fmt,
                ))
            if isinstance(step, HTTPError):
                raise step
            if isinstance(step, Response):
                return step
        raise error(500)

    def _put_steps(
        self, req: Request, a: str, c: str, o: str, parsed: list[Any],
        meta: dict[str, str], ctype: str | None,
    ) -> Iterator[SegmentProblems | HTTPError | Response | None]:
        """Check the segments and store; yield None while busy, then the answer."""
        heads: dict[str, _Head | str] = {}
        check = read_check(req)
        for seg in parsed:
            if "path" in seg and seg["path"] not in heads:
                heads[seg["path"]] = self._head(a, seg["path"], check)
                yield None
        problems: list[list[str]] = []
        stored: list[dict[str, Any]] = []
        total = 0
        for index, seg in enumerate(parsed):
            if "data" in seg:
                stored.append(seg)
                total += len(base64.b64decode(seg["data"]))
                continue
            entry, n = _check_segment(seg, heads[seg["path"]], problems,
                                      index == len(parsed) - 1)
            if entry is not None:
                stored.append(entry)
                total += n
        if problems:
            yield SegmentProblems(problems)
            return
        etag = sm.slo_etag(stored)
        client_etag = (req.header("Etag") or "").strip().strip('"').lower()
        if client_etag and client_etag != etag:
            yield error(422)
            return
        data = json.dumps(stored).encode("utf-8")
        meta = dict(meta)
        meta[sm.SLO_HEADER] = "True"
        meta[sm.SYSMETA_ETAG] = etag
        meta[sm.SYSMETA_SIZE] = str(total)
        ctype = ctype or mimetypes.guess_type(o)[0] or "application/octet-stream"
        result = run(
            self.reader.service.put_object, a, c, o, io.BytesIO(data), len(data),
            content_type="%s;swift_bytes=%d" % (ctype, total), metadata=meta,
            etag=hashlib.md5(data, usedforsecurity=False).hexdigest(),
        )
        info = result.info
        yield Response(201, b"", [
            ("Etag", quote_etag(etag)),
            ("Last-Modified", last_modified(info.timestamp)),
            ("X-Timestamp", info.timestamp.normal),
        ], content_type="text/html; charset=UTF-8")

    def _head(
        self, account: str, path: str, check: ReadCheck | None = None,
    ) -> _Head | str:
        """Look a segment up: its size and ETag as a GET would answer them.

        :param check: the caller's read check: Swift HEADs each segment
            with a sub-request of the caller's, so one it may not read is
            a ``403 Forbidden`` problem.
        """
        container, _sep, name = path.lstrip("/").partition("/")
        where = (account, container, name)
        try:
            for _hop in range(symlink_meta.SYMLOOP_MAX + 1):
                # A segment that is a symlink counts as its target, as
                # Swift's HEAD of it passes its symlink middleware.
                if check is not None:
                    check(where[0], where[1], False)
                info = run(self.reader.service.head_object, *where)
                if not symlink_meta.is_link(info.metadata):
                    break
                where = symlink_meta.target_of(info.metadata, where[0])
            else:
                return status_line(409)
            size, etag = info.size, info.etag
            if is_manifest(info.metadata):
                size, etag, _entries = self.reader.size_and_etag(info)
        except (exception.StoragedError, HTTPError) as err:
            status = (err.response.status if isinstance(err, HTTPError)
                      else errors.to_http(err).response.status)
            return status_line(status)
        when = datetime.datetime.fromtimestamp(
            math.ceil(info.timestamp.timestamp), datetime.UTC)
        return _Head(size, etag, clean_content_type(info.content_type),
                     when.strftime("%Y-%m-%dT%H:%M:%S.%f"), is_manifest(info.metadata))


def _check_segment(
    seg: dict[str, Any], head: _Head | str, problems: list[list[str]], last: bool
) -> tuple[dict[str, Any] | None, int]:
    """Check one object segment against its HEAD; return its stored entry."""
    name = seg["path"]
    if isinstance(head, str):
        problems.append([sm.quote(name), head])
        return None, 0
    length = head.size
    rng = seg.get("range")
    text = None
    if rng is not None:
        span = sm.range_for_length(rng, head.size)
        if span is None:
            problems.append([sm.quote(name), "Unsatisfiable Range"])
        elif span != (0, head.size):
            text = "%d-%d" % (span[0], span[1] - 1)
            length = span[1] - span[0]
    if length < 1 and not last:
        problems.append([sm.quote(name),
                         "Too small; each segment must be at least 1 byte."])
    if seg.get("size_bytes") is not None and seg["size_bytes"] != head.size:
        problems.append([sm.quote(name), "Size Mismatch"])
    if seg.get("etag") is not None and seg["etag"] != head.etag:
        problems.append([sm.quote(name), "Etag Mismatch"])
    entry: dict[str, Any] = {
        "name": "/" + name.lstrip("/"),
        "bytes": head.size,
        "hash": head.etag,
        "content_type": head.content_type,
        "last_modified": head.modified,
    }
    if text is not None:
        entry["range"] = text
    if head.sub_slo:
        entry["sub_slo"] = True
    return entry, length


def _read_up_to(reader: body_mod.BodyReader, limit: int) -> bytes:
    parts = []
    left = limit
    while left > 0:
        data = reader.read(min(left, 65536))
        if not data:
            break
        parts.append(data)
        left -= len(data)
    return b"".join(parts)


def _heartbeat_response(steps: Iterator[Any], fmt: str) -> Response:
    """Answer 202 now; spaces while the segments are checked; then the result."""

    def chunks() -> Iterator[bytes]:
        yield b" "
        last = time.monotonic()
        data: dict[str, Any] = {}
        problems: list[list[str]] = []
        try:
            for step in steps:
                if step is None:
                    if time.monotonic() - last > sm.YIELD_FREQUENCY:
                        last = time.monotonic()
                        yield b" "
                    continue
                if isinstance(step, SegmentProblems):
                    problems = step.problems
                    resp = Response(400, None)
                elif isinstance(step, HTTPError):
                    resp = step.response
                else:
                    resp = step
                data["Response Status"] = status_line(resp.status)
                if resp.status // 100 == 2:
                    data["Etag"] = resp.headers["Etag"]
                    data["Last Modified"] = resp.headers["Last-Modified"]
                    data["Response Body"] = ""
                else:
                    data["Response Body"] = _reason(resp.status)
                break
        except HTTPError as err:
            data = {"Response Status": status_line(err.response.status),
                    "Response Body": _reason(err.response.status)}
        except exception.StoragedError as err:
            status = errors.to_http(err).response.status
            data = {"Response Status": status_line(status),
                    "Response Body": _reason(status)}
        yield b"\r\n\r\n" + sm.response_body(fmt, data, problems, "upload")

    response = Response(202, b"", content_type=fmt)
    response.body = chunks()
    response.length = 0
    del response.headers["Content-Length"]
    return response


def _reason(status: int) -> str:
    title, explanation = STATUSES.get(status, ("", ""))
    return "\n".join(p for p in (title, explanation) if p)
