"""The ``swift`` driver: object data in an OpenStack Swift cluster.

A location is ``swift://CONTAINER/OBJECT_ID``: the container holding the
object in the account the driver authenticates to (the account is not part
of it).  With ``container_seed = N`` the container is ``<container>_XX..``
(the first N hex digits of the sha256 of the object id).

**Adding** an object takes one of three paths, all of them ending with the
object's name appearing at once, never partly written:

* a known size up to ``chunk_size``, or an unknown size that ends within
  one segment: the data is read into memory, hashed, and sent in one
  ``PUT`` with ``If-None-Match: *`` and the digest in its metadata
  (``X-Object-Meta-Storaged-*``); retried like any request;
* a known size up to ``large_object_size``: streamed in one ``PUT`` with a
  ``Content-Length`` (a short or long stream is cut off before its last byte
  goes out, so Swift keeps nothing), then the digest is recorded by a
  ``POST``; an add killed between the two leaves an object without a digest,
  which verified reads refuse and ``scrub --reclaim`` removes after
  ``orphan_grace``;
* larger (or of unknown size beyond one segment): a static large object.
  Segments of ``large_object_chunk_size`` go to ``<container>_segments`` as
  ``OBJECT_ID/TIMESTAMP-UPLOAD/NNNNNNNN``, each held in memory (so it can be
  sent again), then the manifest is ``PUT`` last, with ``If-None-Match: *``
  and the digest.  A failed add deletes its segments; a killed one leaves
  them without a manifest, which ``scrub --reclaim`` removes after
  ``orphan_grace``.

An id already taken answers 412 to ``If-None-Match: *``:
:class:`~storaged.exception.ObjectExists`.  Every add records a fresh upload
id with the object, so that a ``PUT`` retried after its answer was lost can
tell its own object from someone else's.

**Reading** is a ``GET`` (with ``Range`` for a part); a verified read
hashes the whole object with the recorded algorithm and holds the last
chunk back until the digest matched.  **Deleting** removes the object (the
manifest first, for a large object, so it disappears at once), then its
segments.  **Scrub** is in :mod:`~storaged.objectstore.drivers.swift_scrub`;
requests, auth and retries in :mod:`~storaged.objectstore.drivers.swift_client`;
an add's stream and a read's chunks in
:mod:`~storaged.objectstore.drivers.swift_data`; the options in
:mod:`~storaged.objectstore.drivers.swift_opts`.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import hashlib
import json
import logging
import re
import ssl
import time
from typing import Any
from urllib import parse as urlparse
import uuid

from oslo_config import cfg

from storaged import exception
from storaged.objectstore import hashing
from storaged.objectstore import names
from storaged.objectstore.capabilities import Capability
from storaged.objectstore.driver import AddResult
from storaged.objectstore.driver import ChunkIterator
from storaged.objectstore.driver import Driver
from storaged.objectstore.driver import InvalidRange
from storaged.objectstore.driver import ScrubReport
from storaged.objectstore.driver import Source
from storaged.objectstore.drivers import swift_client
from storaged.objectstore.drivers import swift_scrub
from storaged.objectstore.drivers.swift_client import META
from storaged.objectstore.drivers.swift_client import AuthError
from storaged.objectstore.drivers.swift_client import Response
from storaged.objectstore.drivers.swift_client import SwiftClient
from storaged.objectstore.drivers.swift_client import SwiftHTTPError
from storaged.objectstore.drivers.swift_client import SwiftTransportError
from storaged.objectstore.drivers.swift_client import quote
from storaged.objectstore.drivers.swift_data import Feed
from storaged.objectstore.drivers.swift_data import SwiftChunks
from storaged.objectstore.drivers.swift_opts import MAX_SEGMENTS
from storaged.objectstore.drivers.swift_opts import OPTIONS
from storaged.objectstore.drivers.swift_opts import parse_size

__all__ = ["META", "OPTIONS", "SwiftStore", "parse_size"]

LOG = logging.getLogger(__name__)

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)\s*\Z")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)\s*\Z")
_CONTAINER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,255}\Z")


class SwiftStore(Driver):
    """Objects in a Swift cluster; verified reads; scrub; large objects as SLO."""

    OPTIONS = OPTIONS
    CAPABILITIES = (
        Capability.READ
        | Capability.WRITE
        | Capability.DELETE
        | Capability.RANGE_READ
        | Capability.REUSABLE
        | Capability.THREAD_SAFE
        | Capability.VERIFY_READ
        | Capability.SCRUB
    )
    SCHEMES = ("swift",)
    BLOCKING_IO = False  # a network client: green under eventlet

    @classmethod
    def check_conf(cls, conf: cfg.ConfigOpts, backend_id: str) -> None:
        group = conf[backend_id]

        def fail(option: str, problem: str) -> exception.ConfigError:
            return exception.ConfigError(problem, group=backend_id, option=option)

        if not group.auth_url:
            raise fail("auth_url", "is required (Swift's v1 auth URL or Keystone's)")
        if not group.user:
            raise fail("user", "is required")
        if group.key is None:
            raise fail("key", "is required")
        v3 = group.auth_version == "3"
        if v3 and not group.project_name and ":" not in group.user:
            raise fail(
                "project_name",
                "is required with auth_version = 3 (or give user as PROJECT:USER)",
            )
        parse_size(group.large_object_size, backend_id, "large_object_size")
        parse_size(group.large_object_chunk_size, backend_id, "large_object_chunk_size")
        cafile = group.https_ca_certificates_file
        if cafile:
            if group.https_insecure:
                raise fail(
                    "https_ca_certificates_file",
                    "is set while https_insecure is on: certificates would not "
                    "be verified at all; turn https_insecure off",
                )
            if not cafile.startswith("/"):
                raise fail("https_ca_certificates_file", f"{cafile!r} is not absolute")

    def __init__(self, conf: cfg.ConfigOpts, backend_id: str) -> None:
        super().__init__(conf, backend_id)
        group = conf[backend_id]
        self._container = str(group.container)
        self._seed = int(group.container_seed)
        self._create = bool(group.create_container_on_put)
        self._large = parse_size(
            group.large_object_size, backend_id, "large_object_size"
        )
        self._segment = parse_size(
            group.large_object_chunk_size, backend_id, "large_object_chunk_size"
        )
        self._chunk_size = int(group.chunk_size)
        self.orphan_grace = float(group.orphan_grace)
        try:
            tls = ssl.create_default_context(
                cafile=group.https_ca_certificates_file or None
            )
        except (OSError, ssl.SSLError) as err:
            raise exception.ConfigError(
                f"cannot load {group.https_ca_certificates_file}: {err}",
                group=backend_id,
                option="https_ca_certificates_file",
            ) from err
        if group.https_insecure:
            tls.check_hostname = False
            tls.verify_mode = ssl.CERT_NONE
        settings = swift_client.AuthSettings(
            auth_url=str(group.auth_url),
            auth_version=str(group.auth_version),
            user=str(group.user),
            key=str(group.key),
            project_name=group.project_name,
            project_domain_name=str(group.project_domain_name),
            user_domain_name=str(group.user_domain_name),
            region_name=group.region_name,
            endpoint_type=str(group.endpoint_type),
            service_type=str(group.service_type),
        )
        self.client = SwiftClient(
            settings,
            tls,
            float(group.connect_timeout),
            float(group.read_timeout),
            int(group.retries),
        )
        self._known: set[str] = set()

    def close(self) -> None:
        """Close the kept-alive connections."""
        self.client.close()

    # -- errors ----------------------------------------------------------------

    @contextlib.contextmanager
    def errors(self, what: str) -> Iterator[None]:
        """Translate the client's errors into storaged errors, naming ``what``."""
        try:
            yield
        except SwiftHTTPError as err:
            raise self._translate(err, what) from err
        except SwiftTransportError as err:
            raise exception.BackendUnavailable(
                backend=self.backend_id, reason=f"{what}: {err.reason}"
            ) from err
        except AuthError as err:
            raise exception.BackendUnavailable(
                backend=self.backend_id, reason=f"authentication failed: {err}"
            ) from err

    def _translate(self, err: SwiftHTTPError, what: str) -> exception.StoreError:
        status = err.status
        reason = f"{what}: HTTP {status} {err.reason}"
        if status in (404, 410):
            return exception.ObjectNotFound(what=what)
        if status == 412:
            return exception.ObjectExists(what=what)
        if status in (413, 507):
            return exception.StorageFull(backend=self.backend_id, reason=reason)
        if status == 416:
            return InvalidRange(what=what, reason="beyond the end of the object")
        if status in (401, 403):
            return exception.BackendUnavailable(
                backend=self.backend_id, reason=f"{reason} (not authorized)"
            )
        if status >= 500 or status in swift_client.RETRY_STATUSES:
            return exception.BackendUnavailable(backend=self.backend_id, reason=reason)
        return exception.StoreError(reason=f"back end {self.backend_id}: {reason}")

    # -- names -----------------------------------------------------------------

    def container_for(self, object_id: str) -> str:
        """Return the container that takes a new object ``object_id``."""
        if not self._seed:
            return self._container
        digest = hashlib.sha256(object_id.encode()).hexdigest()
        return f"{self._container}_{digest[: self._seed]}"

    def location(self, container: str, object_id: str) -> str:
        return f"swift://{container}/{object_id}"

    def parse_location(self, location: str) -> tuple[str, str]:
        """Return ``(container, object id)`` of a location, or refuse it."""
        rest = location.split("://", 1)[1]
        container, sep, object_id = rest.partition("/")
        problem = None
        if not sep or not _CONTAINER.match(container):
            problem = "expected swift://CONTAINER/OBJECT_ID"
        else:
            problem = names.object_id_problem(object_id)
        if problem:
            raise exception.InvalidLocation(
                backend=self.backend_id, reason=f"{location[:200]}: {problem}"
            )
        return container, object_id

    # -- containers ------------------------------------------------------------

    def ensure_container(self, container: str) -> None:
        """Make sure ``container`` exists (create it if allowed), once."""
        if container in self._known:
            return
        with self.errors(f"container {container}"):
            if self._create:
                self.client.request("PUT", quote(container))
            else:
                resp = self.client.request("HEAD", quote(container), ok=(404,))
                if resp.status == 404:
                    raise exception.BackendUnavailable(
                        backend=self.backend_id,
                        reason=f"container {container} does not exist and "
                        "create_container_on_put is off: create it, or turn "
                        "the option on",
                    )
        self._known.add(container)

    # -- add -------------------------------------------------------------------

    def _add(
        self,
        object_id: str,
        stream: Source,
        size: int | None,
        hashing_algo: str,
        checksum_algo: str | None,
    ) -> AddResult:
        container = self.container_for(object_id)
        self.ensure_container(container)
        hashers = [hashing.new(hashing_algo)]
        if checksum_algo is not None and checksum_algo != hashing_algo:
            hashers.append(hashing.new(checksum_algo))
        feed = Feed(object_id, stream, size, self._chunk_size, hashers)
        upload = f"{time.time():.6f}-{uuid.uuid4().hex}"
        path = f"{quote(container)}/{quote(object_id)}"
        what = f"{container}/{object_id}"

        def meta() -> dict[str, str]:
            headers = {
                "X-Object-Meta-Storaged-Algo": hashing_algo,
                "X-Object-Meta-Storaged-Digest": hashers[0].hexdigest(),
                "X-Object-Meta-Storaged-Size": str(feed.taken),
                "X-Object-Meta-Storaged-Upload": upload,
            }
            if checksum_algo is not None:
                headers["X-Object-Meta-Storaged-Checksum"] = (
                    f"{checksum_algo}:{hashers[-1].hexdigest()}"
                )
            return headers

        try:
            if size is not None and size <= self._chunk_size:
                data = feed.take(size)
                feed.check_end()
                self._put_new(path, what, data, meta(), upload)
            elif size is None:
                data = feed.take(min(self._large, self._segment))
                if feed.at_end():
                    self._put_new(path, what, data, meta(), upload)
                else:
                    self._add_large(
                        object_id, container, feed, None, upload, data, meta
                    )
            elif size <= self._large:
                self._stream_put(path, what, feed, size, upload, meta)
            else:
                self._add_large(object_id, container, feed, size, upload, b"", meta)
        except exception.ObjectNotFound as err:
            # A 404 to a PUT: the container went away since this process
            # made sure of it.
            self._known.discard(container)
            self._known.discard(container + "_segments")
            raise exception.BackendUnavailable(
                backend=self.backend_id,
                reason=f"container {container} (or its _segments) no longer "
                "exists; the next add makes sure of it again",
            ) from err
        checksum = None
        if checksum_algo is not None:
            checksum = hashers[-1].hexdigest()
        return AddResult(
            location=self.location(container, object_id),
            size=feed.taken,
            checksum=checksum,
            multihash=hashers[0].hexdigest(),
            metadata={"backend": self.backend_id},
            hashing_algo=hashing_algo,
            backend=self.backend_id,
        )

    def _put_new(
        self,
        path: str,
        what: str,
        body: bytes,
        headers: dict[str, str],
        upload: str,
        query: str = "",
    ) -> None:
        """PUT an object that must not exist yet; tell a lost answer apart."""
        send = {"If-None-Match": "*", "Content-Length": str(len(body)), **headers}
        with self.errors(what):
            try:
                self.client.request("PUT", path, send, body, query=query)
            except SwiftHTTPError as err:
                if err.status == 412 and err.attempts > 1 and self._ours(path, upload):
                    return  # an earlier try stored it; its answer was lost
                raise

    def _ours(self, path: str, upload: str) -> bool:
        resp = self.client.request("HEAD", path, ok=(404,))
        return resp.status // 100 == 2 and resp.headers.get(META + "upload") == upload

    def _stream_put(
        self, path: str, what: str, feed: Feed, size: int, upload: str, meta: Any
    ) -> None:
        """PUT a known size as it comes, then record its digest."""

        def body() -> Iterator[bytes]:
            # The last piece goes out only once the stream is known to end
            # there: Swift never gets a complete body of the wrong data.
            held = b""
            for piece in feed.pieces(size):
                if held:
                    yield held
                held = piece
            feed.check_end()
            if held:
                yield held

        headers = {
            "If-None-Match": "*",
            "Content-Length": str(size),
            "X-Object-Meta-Storaged-Upload": upload,
        }
        try:
            with self.errors(what):
                self.client.request("PUT", path, headers, body())
        except exception.BackendUnavailable:
            # No answer: Swift may have stored it all the same.
            with contextlib.suppress(
                exception.StoreError, swift_client.SwiftClientError
            ):
                if self._ours(path, upload):
                    self._remove(path, what)
            raise
        try:
            with self.errors(what):
                self.client.request("POST", path, meta())
        except BaseException:
            with contextlib.suppress(exception.StoreError):
                self._remove(path, what)
            raise

    def _add_large(
        self,
        object_id: str,
        container: str,
        feed: Feed,
        size: int | None,
        upload: str,
        first: bytes,
        meta: Any,
    ) -> None:
        """Write segments, then the manifest (see the module docstring)."""
        if size is not None and -(-size // self._segment) > MAX_SEGMENTS:
            raise exception.StoreError(
                reason=f"back end {self.backend_id}: {size} bytes would take more "
                f"than {MAX_SEGMENTS} segments of {self._segment} bytes; raise "
                "large_object_chunk_size"
            )
        segments = container + "_segments"
        self.ensure_container(segments)
        prefix = f"{object_id}/{upload}"
        written: list[str] = []
        manifest: list[dict[str, Any]] = []
        try:
            data = first + feed.take(self._segment - len(first))
            while data:
                if len(manifest) >= MAX_SEGMENTS:
                    raise exception.StoreError(
                        reason=f"back end {self.backend_id}: more than "
                        f"{MAX_SEGMENTS} segments; raise large_object_chunk_size"
                    )
                name = f"{prefix}/{len(manifest):08d}"
                seg_path = f"{quote(segments)}/{quote(name)}"
                with self.errors(f"{segments}/{name}"):
                    resp = self.client.request(
                        "PUT", seg_path, {"Content-Length": str(len(data))}, data
                    )
                written.append(seg_path)
                manifest.append(
                    {
                        "path": f"/{segments}/{name}",
                        "etag": resp.headers.get("etag", "").strip('"'),
                        "size_bytes": len(data),
                    }
                )
                data = feed.take(self._segment)
            feed.check_end()
            body = json.dumps(manifest).encode()
            self._put_new(
                f"{quote(container)}/{quote(object_id)}",
                f"{container}/{object_id}",
                body,
                meta(),
                upload,
                query="multipart-manifest=put",
            )
        except BaseException:
            self._discard(written)
            raise

    def _discard(self, paths: list[str]) -> None:
        """Delete what a failed add wrote (what cannot be is left to scrub)."""
        for path in paths:
            try:
                self.client.request("DELETE", path, ok=(404,))
            except swift_client.SwiftClientError as err:
                LOG.warning(
                    "back end %s: could not delete %s after a failed add (%s); "
                    "scrub --reclaim removes it later",
                    self.backend_id,
                    path,
                    err,
                )

    # -- read ------------------------------------------------------------------

    def _get_size(self, location: str) -> int:
        container, object_id = self.parse_location(location)
        with self.errors(location):
            resp = self.client.request("HEAD", f"{quote(container)}/{quote(object_id)}")
        return int(resp.headers.get("content-length", "0"))

    def _get(
        self,
        location: str,
        offset: int,
        length: int | None,
        chunk_size: int | None,
        verify: bool,
    ) -> tuple[ChunkIterator, int]:
        container, object_id = self.parse_location(location)
        path = f"{quote(container)}/{quote(object_id)}"
        if length == 0:
            size = self._get_size(location)
            if offset > size:
                raise InvalidRange(
                    what=location, reason=f"offset {offset} is beyond its {size} bytes"
                )
            return SwiftChunks(self, location, None, 0, 1), 0
        headers: dict[str, str] = {}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            headers["Range"] = f"bytes={offset}-{end}"
        with self.errors(location):
            resp = self.client.request("GET", path, headers, stream=True, ok=(416,))
        try:
            skip, n = self._body_range(location, resp, offset, length)
            check = self.recorded(location, resp.headers) if verify else None
            chunks = SwiftChunks(
                self, location, resp, n, chunk_size or self._chunk_size, skip, check
            )
        except BaseException:
            resp.release()
            raise
        return chunks, n

    def recorded(self, what: str, headers: dict[str, str]) -> tuple[str, str, int]:
        """Return ``(algo, digest, size)`` recorded with an object.

        :raises storaged.exception.CorruptObject: none recorded, or unusable.
        """
        algo = headers.get(META + "algo")
        digest = headers.get(META + "digest")
        size = headers.get(META + "size", "")
        if not algo or not digest or not size.isdigit():
            raise exception.CorruptObject(
                what=what, reason="no recorded digest (an add that did not finish?)"
            )
        if algo not in hashing.ALLOWED_ALGORITHMS:
            raise exception.CorruptObject(
                what=what, reason=f"recorded algorithm {algo!r} is not allowed"
            )
        actual = headers.get("content-length")
        if actual is not None and actual != size:
            raise exception.CorruptObject(
                what=what, reason=f"{actual} bytes stored, {size} recorded"
            )
        return algo, digest, int(size)

    def _body_range(
        self, location: str, resp: Response, offset: int, length: int | None
    ) -> tuple[int, int]:
        """Return (bytes to skip, bytes to hand out) of a GET's body."""
        if resp.status == 416:
            match = _UNSATISFIED_RANGE.match(resp.headers.get("content-range", ""))
            total = int(match.group(1)) if match else self._get_size(location)
            if offset == total:
                return 0, 0  # offset == size: nothing left, not an error
            raise InvalidRange(
                what=location, reason=f"offset {offset} is beyond its {total} bytes"
            )
        if resp.status == 206:
            match = _CONTENT_RANGE.match(resp.headers.get("content-range", ""))
            if not match or int(match.group(1)) != offset:
                raise exception.BackendUnavailable(
                    backend=self.backend_id,
                    reason=f"{location}: bad Content-Range in a 206 answer",
                )
            return 0, int(match.group(2)) - offset + 1
        total = int(resp.headers.get("content-length", "0"))
        if offset > total:
            raise InvalidRange(
                what=location, reason=f"offset {offset} is beyond its {total} bytes"
            )
        n = total - offset if length is None else min(length, total - offset)
        return offset, n

    # -- delete ----------------------------------------------------------------

    def _delete(self, location: str) -> None:
        container, object_id = self.parse_location(location)
        self._remove(f"{quote(container)}/{quote(object_id)}", location)

    def _remove(self, path: str, what: str) -> None:
        """Delete an object; a large object's manifest first, then segments."""
        with self.errors(what):
            head = self.client.request("HEAD", path)
            try:
                self.client.request("DELETE", path)
            except SwiftHTTPError as err:
                if not (err.status == 404 and err.attempts > 1):
                    raise  # (a retried DELETE whose first try did it is fine)
        if head.headers.get("x-static-large-object", "").lower() != "true":
            return
        container = path.split("/", 1)[0]
        upload = head.headers.get(META + "upload")
        object_id = urlparse.unquote(path.split("/", 1)[1])
        if upload:
            self.delete_segments(
                urlparse.unquote(container) + "_segments", f"{object_id}/{upload}/"
            )

    def delete_segments(self, segments: str, prefix: str) -> list[str]:
        """Delete the segments under ``prefix``; return their names."""
        removed = []
        for entry in self.listing(segments, prefix=prefix):
            name = entry["name"]
            try:
                self.client.request(
                    "DELETE", f"{quote(segments)}/{quote(name)}", ok=(404,)
                )
            except swift_client.SwiftClientError as err:
                LOG.warning(
                    "back end %s: could not delete segment %s/%s (%s)",
                    self.backend_id, segments, name, err,
                )  # fmt: skip
                continue
            removed.append(f"{segments}/{name}")
        return removed

    def listing(
        self, container: str = "", prefix: str = "", limit: int = 1000
    ) -> Iterator[dict[str, Any]]:
        """Yield the entries of a container (or of the account), page by page."""
        marker = ""
        while True:
            query = urlparse.urlencode(
                {"format": "json", "prefix": prefix, "marker": marker, "limit": limit}
            )
            with self.errors(f"listing of {container or 'the account'}"):
                resp = self.client.request(
                    "GET", quote(container), query=query, ok=(404,)
                )
            if resp.status == 404 or resp.status == 204:
                return
            try:
                page = json.loads(resp.body or b"[]")
            except ValueError as err:
                raise exception.BackendUnavailable(
                    backend=self.backend_id,
                    reason=f"unreadable listing of {container}: {err}",
                ) from err
            if not page:
                return
            yield from page
            marker = page[-1].get("name") or page[-1].get("subdir") or ""
            if not marker:
                return

    # -- checks ----------------------------------------------------------------

    def _verify_store(self) -> None:
        """Authenticate and reach the account (and the container, if needed)."""
        with self.errors("the account"):
            self.client.request("HEAD", "")
        if not self._create and not self._seed:
            with self.errors(f"container {self._container}"):
                resp = self.client.request("HEAD", quote(self._container), ok=(404,))
            if resp.status == 404:
                raise exception.BackendUnavailable(
                    backend=self.backend_id,
                    reason=f"container {self._container} does not exist and "
                    "create_container_on_put is off",
                )

    def _scrub(self, reclaim: bool, report: ScrubReport) -> None:
        swift_scrub.Scrubber(self).scrub(reclaim, report)

    # (scrub reaches these)
    @property
    def container_name(self) -> str:
        return self._container

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def chunk_size(self) -> int:
        return self._chunk_size
