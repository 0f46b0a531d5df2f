"""The write path and the scrub of the ``s3`` driver.

:class:`Upload` is one add.  Worked example, ``multipart_threshold = 16M``,
``multipart_chunk_size = 8M``, ``max_concurrency = 2``, 40 MiB of unknown
size::

    HEAD BUCKET/ID                            404: the id is free
    read and hash 16 MiB (buffered)           still at most the threshold
    read 1 MiB more: over the threshold       CreateMultipartUpload
    parts 1, 2 (8 MiB each) start             two threads send them
    read 8 MiB: part 3 is ready               wait for part 1, send part 3
    ... end of data: part 5 (8 MiB)           wait for every part
    PUT BUCKET/.digests/ID                    {"algo", "digest", "size"}
    CompleteMultipartUpload                   the object appears, whole

The data is read and hashed in order, in the caller's thread; only the
sending of parts runs in parallel.  Any failure (the data, a part, a size
that does not match) waits for the parts in flight, then aborts the upload,
so that no part is left billed.

:func:`scrub` lists the bucket and re-reads every object with a verified
read; then it looks for records of no object and incomplete multipart
uploads (what killed writers leave).
"""

from __future__ import annotations

import collections
import contextlib
from contextlib import AbstractContextManager
import json
import logging
import time
from typing import Any
from typing import Protocol

from storaged import concurrency
from storaged import exception
from storaged.objectstore import hashing
from storaged.objectstore.driver import AddResult
from storaged.objectstore.driver import ChunkIterator
from storaged.objectstore.driver import ScrubFinding
from storaged.objectstore.driver import ScrubReport
from storaged.objectstore.driver import SizeMismatch
from storaged.objectstore.driver import Source
from storaged.objectstore.driver import iter_source
from storaged.objectstore.drivers import s3_layout
from storaged.objectstore.drivers.s3_layout import META_ALGO
from storaged.objectstore.drivers.s3_layout import META_DIGEST
from storaged.objectstore.drivers.s3_layout import META_RECORD
from storaged.objectstore.drivers.s3_layout import RECORD_PREFIX
from storaged.objectstore.drivers.s3_options import MAX_PART_SIZE


class WritingStore(Protocol):
    """What adds and scrubs need of the :class:`~.s3.S3Store` they work for.

    (A protocol, not the class: the driver module imports this one.)
    """

    bucket: str
    client: Any
    chunk_size: int
    multipart_threshold: int
    part_size: int
    max_concurrency: int
    orphan_grace: int

    @property
    def backend_id(self) -> str: ...

    def errors(self, what: str) -> AbstractContextManager[None]: ...

    def is_missing_bucket(self, err: exception.StoreError) -> bool: ...

    def location(self, object_id: str) -> str: ...

    def create_bucket(self) -> bool: ...

    def head(self, object_id: str) -> dict[str, Any] | None: ...

    def get(
        self,
        location: str,
        offset: int = 0,
        chunk_size: int | None = None,
        verify: bool = False,
        length: int | None = None,
    ) -> tuple[ChunkIterator, int]: ...

LOG = logging.getLogger(__name__)

#: seconds a request waits for a bucket it just created to be usable.
NEW_BUCKET_WAIT = 10.0

#: parts an upload is planned with (Swift's s3api default limit; AWS allows
#: 10,000, so this only makes parts of huge objects larger than needed).
MAX_PARTS = 1000
#: parts of an upload of unknown size after which parts grow by a chunk.
GROWTH_EVERY = 100


class Upload:
    """One add: one PUT up to the threshold, a multipart upload above.

    :param store: the driver (its client, bucket and options).
    :param object_id: the id (already validated).
    :param size: the declared size, or None.
    """

    def __init__(
        self,
        store: WritingStore,
        object_id: str,
        size: int | None,
        hashing_algo: str,
        checksum_algo: str | None,
    ) -> None:
        self.store = store
        self.object_id = object_id
        self.size = size
        self.algo = hashing_algo
        self.hashers = [hashing.new(hashing_algo)]
        if checksum_algo is not None and checksum_algo != hashing_algo:
            self.hashers.append(hashing.new(checksum_algo))
        self.checksum_algo = checksum_algo
        self.written = 0
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []
        self.in_flight: collections.deque[tuple[int, concurrency.Task]] = (
            collections.deque()
        )
        self.part_size = store.part_size
        if size is not None:
            # Parts large enough for the whole object in MAX_PARTS.
            need = -(-size // MAX_PARTS)
            self.part_size = min(max(self.part_size, need), MAX_PART_SIZE)

    # -- the add ----------------------------------------------------------------

    def run(self, stream: Source) -> AddResult:
        """Read ``stream``, send it, return what was stored."""
        store = self.store
        if store.head(self.object_id) is not None:
            raise exception.ObjectExists(what=store.location(self.object_id))
        threshold = store.multipart_threshold
        multipart = self.size is not None and self.size > threshold
        pending: list[bytes] = []
        pending_len = 0
        try:
            for chunk in iter_source(stream, store.chunk_size, self.size):
                self._take(chunk)
                pending.append(chunk)
                pending_len += len(chunk)
                if not multipart and pending_len > threshold:
                    multipart = True
                if multipart:
                    if self.upload_id is None:
                        self._start()
                    pending, pending_len = self._send_full_parts(pending, pending_len)
            self._check_size(final=True)
            if not multipart:
                return self._put_whole(b"".join(pending))
            if self.upload_id is None:
                self._start()
            if pending_len or (not self.parts and not self.in_flight):
                self._send_part(b"".join(pending))
            self._wait_all()
            return self._complete()
        except BaseException:
            if self.upload_id is not None:
                self._abort()
            raise

    def _take(self, chunk: bytes) -> None:
        self.written += len(chunk)
        self._check_size(final=False)
        s3_layout.hash_update(self.hashers, chunk)

    def _check_size(self, final: bool) -> None:
        if self.size is None:
            return
        if self.written > self.size:
            raise SizeMismatch(
                what=self.object_id, reason=f"declared {self.size} bytes, got more"
            )
        if final and self.written != self.size:
            raise SizeMismatch(
                what=self.object_id,
                reason=f"declared {self.size} bytes, got {self.written}",
            )

    def _result(self, metadata: dict[str, Any]) -> AddResult:
        checksum = None
        if self.checksum_algo is not None:
            checksum = self.hashers[-1].hexdigest()
        return AddResult(
            location=self.store.location(self.object_id),
            size=self.written,
            checksum=checksum,
            multihash=self.hashers[0].hexdigest(),
            metadata=metadata,
            hashing_algo=self.algo,
            backend=self.store.backend_id,
        )

    def _with_bucket(self, call: Any, **kwargs: Any) -> Any:
        """Make a request; create the bucket and retry if it is missing.

        A bucket just created may still be reported missing for a moment
        (Swift's proxy caches a container's absence for a few seconds; S3
        services have been eventually consistent about new buckets): the
        request is tried again for up to :data:`NEW_BUCKET_WAIT` seconds.
        """
        store = self.store
        try:
            with store.errors(self.object_id):
                return call(Bucket=store.bucket, **kwargs)
        except exception.BackendUnavailable as err:
            if not (store.is_missing_bucket(err) and store.create_bucket()):
                raise
        deadline = time.monotonic() + NEW_BUCKET_WAIT
        delay = 0.1
        while True:
            try:
                with store.errors(self.object_id):
                    return call(Bucket=store.bucket, **kwargs)
            except exception.BackendUnavailable as err:
                if not store.is_missing_bucket(err) or time.monotonic() >= deadline:
                    raise
            concurrency.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _put_whole(self, data: bytes) -> AddResult:
        metadata = {META_ALGO: self.algo, META_DIGEST: self.hashers[0].hexdigest()}
        self._with_bucket(
            self.store.client.put_object,
            Key=self.object_id,
            Body=data,
            ContentLength=len(data),
            Metadata=metadata,
        )
        return self._result({})

    # -- multipart ----------------------------------------------------------------

    def _start(self) -> None:
        resp = self._with_bucket(
            self.store.client.create_multipart_upload,
            Key=self.object_id,
            Metadata={META_ALGO: self.algo, META_RECORD: "1"},
        )
        self.upload_id = str(resp["UploadId"])

    def _next_part_size(self) -> int:
        number = len(self.parts) + len(self.in_flight) + 1
        if self.size is not None:
            return self.part_size
        return min(self.part_size * (1 + (number - 1) // GROWTH_EVERY), MAX_PART_SIZE)

    def _send_full_parts(
        self, pending: list[bytes], pending_len: int
    ) -> tuple[list[bytes], int]:
        """Send every whole part ``pending`` holds; return what is left.

        Each byte is copied once into its part: only the chunk that straddles
        a part boundary is split.
        """
        want = self._next_part_size()
        while pending_len >= want:
            taken, n, i = [], 0, 0
            while n < want:
                piece = pending[i]
                if n + len(piece) > want:
                    cut = want - n
                    taken.append(piece[:cut])
                    pending[i] = piece[cut:]
                    n = want
                    break
                taken.append(piece)
                n += len(piece)
                i += 1
            del pending[:i]
            self._send_part(taken[0] if len(taken) == 1 else b"".join(taken))
            pending_len -= want
            want = self._next_part_size()
        return pending, pending_len

    def _send_part(self, data: bytes) -> None:
        while len(self.in_flight) >= self.store.max_concurrency:
            self._wait_oldest()
        number = len(self.parts) + len(self.in_flight) + 1
        task = concurrency.spawn(self._upload_part, number, data)
        self.in_flight.append((number, task))

    def _upload_part(self, number: int, data: bytes) -> str:
        store = self.store
        with store.errors(self.object_id):
            resp = store.client.upload_part(
                Bucket=store.bucket,
                Key=self.object_id,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=data,
                ContentLength=len(data),
            )
        return str(resp["ETag"])

    def _wait_oldest(self) -> None:
        number, task = self.in_flight[0]
        etag = task.wait()
        self.in_flight.popleft()
        self.parts.append({"ETag": etag, "PartNumber": number})

    def _wait_all(self) -> None:
        while self.in_flight:
            self._wait_oldest()

    def _complete(self) -> AddResult:
        store = self.store
        record = {
            "format": 1,
            "id": self.object_id,
            "algo": self.algo,
            "digest": self.hashers[0].hexdigest(),
            "size": self.written,
        }
        raw = json.dumps(record, separators=(",", ":")).encode()
        with store.errors(self.object_id):
            # The record goes first: the object must never exist without it.
            store.client.put_object(
                Bucket=store.bucket,
                Key=RECORD_PREFIX + self.object_id,
                Body=raw,
                ContentLength=len(raw),
            )
            store.client.complete_multipart_upload(
                Bucket=store.bucket,
                Key=self.object_id,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": self.parts},
            )
        self.upload_id = None
        return self._result({"parts": str(len(self.parts))})

    def _abort(self) -> None:
        """Wait for the parts in flight, then abort the upload (best effort)."""
        for _number, task in self.in_flight:
            with contextlib.suppress(BaseException):
                task.wait()
        self.in_flight.clear()
        store = self.store
        try:
            with store.errors(self.object_id):
                store.client.abort_multipart_upload(
                    Bucket=store.bucket, Key=self.object_id, UploadId=self.upload_id
                )
        except exception.StoreError as err:
            LOG.warning(
                "back end %s: could not abort the upload of %s (scrub will): %s",
                store.backend_id,
                self.object_id,
                err,
            )
        self.upload_id = None


# -- scrub -----------------------------------------------------------------------


def scrub(store: WritingStore, reclaim: bool, now: float, report: ScrubReport) -> None:
    """Check every object of the bucket into ``report``; find what dead writers left."""
    records: dict[str, float] = {}
    objects: set[str] = set()
    client = store.client
    with store.errors(f"bucket {store.bucket}"):
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket)
        for page in pages:
            for item in page.get("Contents", []):
                key = str(item["Key"])
                if key.startswith(RECORD_PREFIX):
                    records[key[len(RECORD_PREFIX) :]] = item[
                        "LastModified"
                    ].timestamp()
                    continue
                objects.add(key)
                _check_object(store, key, report)
    for object_id, modified in sorted(records.items()):
        if object_id in objects:
            continue
        if _young(store, now - modified):
            report.in_progress += 1  # an add between its record and completion
            continue
        where = store.location(RECORD_PREFIX + object_id)
        report.orphans.append(ScrubFinding(where, "digest record of no object"))
        if reclaim:
            _reclaim(
                store,
                report,
                where,
                client.delete_object,
                Key=RECORD_PREFIX + object_id,
            )
    with store.errors(f"bucket {store.bucket}"):
        pages = client.get_paginator("list_multipart_uploads").paginate(
            Bucket=store.bucket
        )
        uploads = [u for page in pages for u in page.get("Uploads", [])]
    for upload in uploads:
        age = now - upload["Initiated"].timestamp()
        if _young(store, age):
            report.in_progress += 1
            continue
        where = f"{store.location(upload['Key'])} (upload {upload['UploadId']})"
        report.orphans.append(
            ScrubFinding(where, f"incomplete multipart upload, {age:.0f} s old")
        )
        if reclaim:
            _reclaim(
                store,
                report,
                where,
                client.abort_multipart_upload,
                Key=upload["Key"],
                UploadId=upload["UploadId"],
            )
    LOG.info("scrub: %s", report.summary())


def _young(store: WritingStore, age: float) -> bool:
    """Tell whether something ``age`` seconds old is within the grace period.

    S3 listings give times rounded (s3api: up to the next second), so an age
    can come out slightly negative: a grace of 0 still takes everything.
    """
    return store.orphan_grace > 0 and age < store.orphan_grace


def _check_object(store: WritingStore, key: str, report: ScrubReport) -> None:
    location = store.location(key)
    read = 0
    try:
        chunks, _n = store.get(location, verify=True)
        try:
            for chunk in chunks:
                read += len(chunk)
        finally:
            chunks.close()
    except s3_layout.NoDigest:
        report.orphans.append(ScrubFinding(location, "not written by storaged"))
    except exception.CorruptObject as err:
        report.corrupt.append(ScrubFinding(location, str(err)))
    except exception.InvalidLocation:
        report.orphans.append(ScrubFinding(location, "not an object id"))
    except exception.ObjectNotFound:
        pass  # deleted since the listing
    except exception.StoreError as err:
        report.errors.append(ScrubFinding(location, str(err)))
    else:
        report.count_checked(read)
        return
    report.bytes_checked += read


def _reclaim(
    store: WritingStore, report: ScrubReport, where: str, call: Any, **kwargs: Any
) -> None:
    try:
        with store.errors(where):
            call(Bucket=store.bucket, **kwargs)
    except exception.ObjectNotFound:
        pass  # gone meanwhile
    except exception.StoreError as err:
        report.errors.append(ScrubFinding(where, str(err)))
        return
    report.reclaimed.append(where)
