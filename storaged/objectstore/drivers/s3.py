"""The ``s3`` driver: object data in an S3 bucket, through boto3.

One back end is one bucket; an object is the key named after its id, and
its location is ``s3://BUCKET/ID``.  The digest of the data travels with it
as user metadata, so that verified reads and scrub check what comes back::

    BUCKET/ID                    the object; x-amz-meta-storaged-algo and
                                 x-amz-meta-storaged-digest (one PUT), or
                                 x-amz-meta-storaged-record (multipart)
    BUCKET/.digests/ID           digest record of a multipart object (JSON)

Object ids never start with ``.`` (:mod:`storaged.objectstore.names`), so
the records can never be mistaken for objects.

**Adding** (:mod:`~storaged.objectstore.drivers.s3_write`): a HEAD first
(an existing id is :class:`~storaged.exception.ObjectExists`), then the
data is read and hashed in order.  Up to ``multipart_threshold`` bytes it is
buffered and sent with one PUT, its digest in the PUT's metadata.  Above,
it becomes a multipart upload: parts of ``multipart_chunk_size`` are sent by
up to ``max_concurrency`` threads while the next part is read.  S3 takes an
object's metadata when the upload starts, before the digest is known, and
cannot change it afterwards without copying the data; so the digest of a
multipart object goes to its record, written after the last part and
*before* the upload is completed.  A failed add aborts its upload; a killed
one leaves an incomplete upload (invisible, but billed) and maybe a record
of no object, both of which scrub reports and, once ``orphan_grace`` old,
reclaims.

The HEAD and the PUT are two requests: two adds of one id at once can both
pass the HEAD, and the last one to finish wins.  S3's conditional PUT
(``If-None-Match: *``) would close the gap, but is not portable: AWS has it
since 2024, Swift 2.30's ``s3api`` refuses it (501), other services vary.
storaged's ids are fresh UUIDs, so the race needs a caller that reuses an
id on purpose.

**Reading** sends a GET, with a ``Range`` for ranged reads.  A verified read
checks the digest (from the metadata, or the record) at the end and holds
the last chunk back until it matched, as the ``file`` driver does.

Errors of boto3 and botocore become storaged errors in one place
(:meth:`S3Store.errors`); no message carries a credential.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import json
import logging
import re
import time
from typing import Any
from urllib import parse as urlparse

from oslo_config import cfg

from storaged import concurrency
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
from storaged.objectstore.drivers.s3_layout import META_ALGO
from storaged.objectstore.drivers.s3_layout import META_DIGEST
from storaged.objectstore.drivers.s3_layout import META_RECORD
from storaged.objectstore.drivers.s3_layout import RECORD_PREFIX
from storaged.objectstore.drivers.s3_layout import NoDigest
from storaged.objectstore.drivers.s3_layout import hash_update
from storaged.objectstore.drivers.s3_options import OPTIONS

LOG = logging.getLogger(__name__)


_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")


def _boto(backend_id: str | None = None) -> tuple[Any, Any, Any]:
    """Return ``(boto3, botocore.config, botocore.exceptions)``.

    boto3 is imported here, not with the module: without it the options
    stay listed (sample configuration) and only an ``s3`` back end fails.

    :raises storaged.exception.ConfigError: boto3 is not installed.
    """
    try:
        import boto3
        from botocore import config as botocore_config
        from botocore import exceptions as botocore_exceptions
    except ImportError as err:
        raise exception.ConfigError(
            f"the s3 back end type needs boto3 (pip install 'storaged[s3]'): {err}",
            group=backend_id,
        ) from err
    return boto3, botocore_config, botocore_exceptions


def _code(err: Any) -> tuple[str, int, str]:
    """Return the error code, HTTP status and message of a ClientError."""
    response = getattr(err, "response", None) or {}
    error = response.get("Error") or {}
    status = int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
    return str(error.get("Code") or status), status, str(error.get("Message") or "")


_NOT_FOUND = frozenset({"NoSuchKey", "NotFound", "404", "NoSuchUpload"})
_DENIED = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "403",
    }
)
_FULL = frozenset({"EntityTooLarge", "QuotaExceeded", "413", "507"})
_TRANSIENT = frozenset(
    {"SlowDown", "RequestTimeout", "ServiceUnavailable", "InternalError", "429"}
)


class S3Store(Driver):
    """Objects in an S3 bucket."""

    OPTIONS = OPTIONS
    CAPABILITIES = (
        Capability.READ_WRITE
        | Capability.RANGE_READ
        | Capability.VERIFY_READ
        | Capability.SCRUB
        | Capability.REUSABLE
        | Capability.THREAD_SAFE
    )
    SCHEMES = ("s3",)
    BLOCKING_IO = False  # a network client: green under eventlet

    @classmethod
    def check_conf(cls, conf: cfg.ConfigOpts, backend_id: str) -> None:
        group = conf[backend_id]

        def error(option: str, problem: str) -> exception.ConfigError:
            return exception.ConfigError(problem, group=backend_id, option=option)

        _boto(backend_id)
        if not group.bucket:
            raise error("bucket", "is required: the bucket that holds the objects")
        if not _BUCKET.match(group.bucket) or ".." in group.bucket:
            raise error(
                "bucket",
                f"{group.bucket!r} is not a DNS-compatible bucket name (3 to 63 "
                "lower-case letters, digits, '.' and '-')",
            )
        if bool(group.access_key) != bool(group.secret_key):
            missing = "secret_key" if group.access_key else "access_key"
            raise error(
                missing,
                "is not set while the other key is: set both access_key and "
                "secret_key, or neither to use the AWS credential chain",
            )
        if group.endpoint_url:
            parts = urlparse.urlsplit(group.endpoint_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise error(
                    "endpoint_url",
                    f"{group.endpoint_url!r} is not an http:// or https:// URL",
                )
        cafile = group.https_ca_certificates_file
        if cafile:
            if group.https_insecure:
                raise error(
                    "https_ca_certificates_file",
                    "is set while https_insecure is on: certificates would not "
                    "be verified at all; turn https_insecure off",
                )
            if not cafile.startswith("/"):
                raise error(
                    "https_ca_certificates_file", f"{cafile!r} is not an absolute path"
                )

    def __init__(self, conf: cfg.ConfigOpts, backend_id: str) -> None:
        super().__init__(conf, backend_id)
        boto3, botocore_config, self._exc = _boto(backend_id)
        group = conf[backend_id]
        self.bucket: str = group.bucket
        self.chunk_size = int(group.chunk_size)
        self.multipart_threshold = int(group.multipart_threshold)
        self.part_size = int(group.multipart_chunk_size)
        self.max_concurrency = int(group.max_concurrency)
        self.orphan_grace = int(group.orphan_grace)
        self._create_bucket = bool(group.create_bucket_on_put)
        self._region = group.region_name
        # Held across the bucket's creation; taken from the hub's thread and
        # from the pool's (the API runs store calls there): shared, never green.
        self._bucket_lock = concurrency.shared_lock()
        config = botocore_config.Config(
            region_name=group.region_name,
            s3={"addressing_style": group.addressing_style},
            connect_timeout=group.connect_timeout,
            read_timeout=group.read_timeout,
            retries={"total_max_attempts": group.retries + 1, "mode": "standard"},
            request_checksum_calculation=group.request_checksum_calculation,
            response_checksum_validation=group.request_checksum_calculation,
            # parts of one upload plus the reads other threads serve
            max_pool_connections=max(32, 2 * self.max_concurrency),
            user_agent_extra="storaged",
        )
        verify: bool | str = True
        if group.https_insecure:
            verify = False
            LOG.warning(
                "back end %s: https_insecure is on: the S3 endpoint's "
                "certificate is not verified",
                backend_id,
            )
        elif group.https_ca_certificates_file:
            verify = group.https_ca_certificates_file
        # A session is not thread-safe, the client it makes is: one client
        # serves every thread of the process.
        session = boto3.session.Session(
            aws_access_key_id=group.access_key or None,
            aws_secret_access_key=group.secret_key or None,
            region_name=group.region_name,
        )
        try:
            self.client = session.client(
                "s3",
                endpoint_url=group.endpoint_url or None,
                config=config,
                verify=verify,
            )
        except (self._exc.BotoCoreError, ValueError) as err:
            raise exception.ConfigError(
                f"cannot build the S3 client: {err}", group=backend_id
            ) from err

    # -- errors ----------------------------------------------------------------

    @contextlib.contextmanager
    def errors(self, what: str) -> Iterator[None]:
        """Turn boto3 and botocore errors about ``what`` into storaged errors."""
        try:
            yield
        except exception.StoragedError:
            raise
        except self._exc.ClientError as err:
            raise self._client_error(err, what) from err
        except self._exc.NoCredentialsError as err:
            raise exception.StoreError(
                reason=f"back end {self.backend_id}: no S3 credentials: set "
                "access_key and secret_key, or provide them the AWS way "
                "(AWS_ACCESS_KEY_ID, ~/.aws/credentials, an instance role)"
            ) from err
        except (self._exc.BotoCoreError, OSError) as err:
            raise exception.BackendUnavailable(
                backend=self.backend_id, reason=f"{what}: {err}"
            ) from err

    def _client_error(self, err: Any, what: str) -> exception.StoreError:
        code, status, message = _code(err)
        if code == "NoSuchBucket":
            return exception.BackendUnavailable(
                backend=self.backend_id,
                reason=f"bucket {self.bucket} does not exist",
            )
        if code in _NOT_FOUND:
            return exception.ObjectNotFound(what=what)
        if code in _DENIED:
            return exception.StoreError(
                reason=f"back end {self.backend_id}: access denied ({code}) to "
                f"bucket {self.bucket}: check access_key, secret_key and the "
                "bucket's permissions"
            )
        if code in _FULL:
            return exception.StorageFull(
                backend=self.backend_id, reason=f"{what}: {code} {message}".strip()
            )
        if code in ("InvalidRange", "416"):
            return InvalidRange(what=what, reason=message or code)
        if code in ("NotImplemented", "501"):
            # Not worth retrying. The usual cause: a service older than S3's
            # flexible checksums, sent an aws-chunked body over HTTPS.
            return exception.StoreError(
                reason=f"back end {self.backend_id}: {what}: the service does not "
                f"implement this request ({message or code}); for services "
                "without S3's flexible checksums, set "
                "request_checksum_calculation = when_required"
            )
        if status >= 500 or code in _TRANSIENT:
            return exception.BackendUnavailable(
                backend=self.backend_id, reason=f"{what}: {code} {message}".strip()
            )
        return exception.StoreError(
            reason=f"back end {self.backend_id}: {what}: {code} {message}".strip()
        )

    def is_missing_bucket(self, err: exception.StoreError) -> bool:
        """Tell whether ``err`` came from a missing bucket."""
        cause = err.__cause__
        return isinstance(cause, self._exc.ClientError) and (
            _code(cause)[0] == "NoSuchBucket"
        )

    # -- locations and the bucket ------------------------------------------------

    def location(self, object_id: str) -> str:
        """Return the location of the object ``object_id``."""
        return f"s3://{self.bucket}/{object_id}"

    def _key(self, location: str) -> str:
        rest = location.partition("://")[2]
        bucket, _, key = rest.partition("/")
        if bucket != self.bucket:
            raise exception.InvalidLocation(
                backend=self.backend_id,
                reason=f"bucket {bucket!r} is not this back end's ({self.bucket})",
            )
        problem = names.object_id_problem(key)
        if problem is not None:
            raise exception.InvalidLocation(
                backend=self.backend_id, reason=f"object id {problem}"
            )
        return key

    def create_bucket(self) -> bool:
        """Create the bucket if ``create_bucket_on_put`` allows it.

        :returns: whether the bucket may now exist (the caller tries again).
        """
        if not self._create_bucket:
            return False
        with self._bucket_lock, self.errors(f"bucket {self.bucket}"):
            args: dict[str, Any] = {"Bucket": self.bucket}
            if self._region and self._region != "us-east-1":
                args["CreateBucketConfiguration"] = {"LocationConstraint": self._region}
            try:
                self.client.create_bucket(**args)
            except self._exc.ClientError as err:
                if _code(err)[0] not in (
                    "BucketAlreadyOwnedByYou",
                    "BucketAlreadyExists",
                ):
                    raise
            LOG.info("back end %s: created bucket %s", self.backend_id, self.bucket)
        return True

    # -- operations ----------------------------------------------------------------

    def head(self, object_id: str) -> dict[str, Any] | None:
        """Return the HEAD answer of an object, or None if there is none."""
        try:
            with self.errors(object_id):
                result: dict[str, Any] = self.client.head_object(
                    Bucket=self.bucket, Key=object_id
                )
                return result
        except exception.ObjectNotFound:
            return None

    def _add(
        self,
        object_id: str,
        stream: Source,
        size: int | None,
        hashing_algo: str,
        checksum_algo: str | None,
    ) -> AddResult:
        from storaged.objectstore.drivers import s3_write

        return s3_write.Upload(self, object_id, size, hashing_algo, checksum_algo).run(
            stream
        )

    def _get_size(self, location: str) -> int:
        key = self._key(location)
        found = self.head(key)
        if found is None:
            raise exception.ObjectNotFound(what=location)
        return int(found["ContentLength"])

    def _get(
        self,
        location: str,
        offset: int,
        length: int | None,
        chunk_size: int | None,
        verify: bool,
    ) -> tuple[ChunkIterator, int]:
        key = self._key(location)
        chunk = chunk_size or self.chunk_size
        if length == 0:
            size = self._get_size(location)
            if offset > size:
                raise InvalidRange(
                    what=location, reason=f"offset {offset} is beyond its {size} bytes"
                )
            return S3Chunks(self, location, None, 0, chunk), 0
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            args["Range"] = f"bytes={offset}-{end}"
        try:
            with self.errors(location):
                resp = self.client.get_object(**args)
        except InvalidRange:
            # S3 refuses a range that starts at the end; that one is empty.
            size = self._get_size(location)
            if offset == size:
                return S3Chunks(self, location, None, 0, chunk), 0
            raise InvalidRange(
                what=location, reason=f"offset {offset} is beyond its {size} bytes"
            ) from None
        body = resp["Body"]
        try:
            n = int(resp["ContentLength"])
            if "Range" in args and not resp.get("ContentRange"):
                raise exception.BackendUnavailable(
                    backend=self.backend_id,
                    reason=f"{location}: the service ignored the Range header",
                )
            check = self.recorded(key, resp.get("Metadata") or {}) if verify else None
        except BaseException:
            body.close()
            raise
        return S3Chunks(self, location, body, n, chunk, check), n

    def recorded(self, key: str, metadata: dict[str, str]) -> tuple[str, str]:
        """Return ``(algo, digest)`` recorded for an object.

        :raises storaged.exception.CorruptObject: no digest, or a bad one.
        """
        meta = {k.lower(): v for k, v in metadata.items()}
        algo = meta.get(META_ALGO)
        digest = meta.get(META_DIGEST)
        if algo and not digest and meta.get(META_RECORD):
            try:
                with self.errors(key):
                    resp = self.client.get_object(
                        Bucket=self.bucket, Key=RECORD_PREFIX + key
                    )
                    with contextlib.closing(resp["Body"]) as body:
                        raw = body.read()
                record = json.loads(raw)
                digest = record["digest"] if record.get("algo") == algo else None
            except exception.ObjectNotFound:
                raise exception.CorruptObject(
                    what=self.location(key), reason="its digest record is missing"
                ) from None
            except (ValueError, TypeError, KeyError):
                digest = None
        if not algo:
            raise NoDigest(what=self.location(key), reason="it has no recorded digest")
        if not digest or algo not in hashing.ALLOWED_ALGORITHMS:
            raise exception.CorruptObject(
                what=self.location(key), reason="no valid recorded digest"
            )
        return algo, str(digest)

    def _delete(self, location: str) -> None:
        key = self._key(location)
        found = self.head(key)
        if found is None:
            raise exception.ObjectNotFound(what=location)
        meta = {k.lower(): v for k, v in (found.get("Metadata") or {}).items()}
        with self.errors(location):
            self.client.delete_object(Bucket=self.bucket, Key=key)
            # The object goes first: a crash in between leaves a record of
            # no object (which scrub reclaims), never an object without one.
            if meta.get(META_RECORD):
                self.client.delete_object(Bucket=self.bucket, Key=RECORD_PREFIX + key)

    def _verify_store(self) -> None:
        try:
            with self.errors(f"bucket {self.bucket}"):
                self.client.head_bucket(Bucket=self.bucket)
        except exception.ObjectNotFound as err:
            if self._create_bucket:
                return  # created by the first add
            raise exception.BackendUnavailable(
                backend=self.backend_id,
                reason=f"bucket {self.bucket} does not exist "
                "(create it, or set create_bucket_on_put)",
            ) from err

    def _scrub(self, reclaim: bool, report: ScrubReport) -> None:
        from storaged.objectstore.drivers import s3_write

        s3_write.scrub(self, reclaim, time.time(), report)

    def close(self) -> None:
        """Close the client's connections."""
        close = getattr(self.client, "close", None)
        if callable(close):
            close()


class S3Chunks:
    """Chunks of a GET's body; with a digest to check, the last one waits.

    When verifying, each chunk is handed out only after the next one was
    read, so the last chunk leaves only once the digest of the whole object
    matched: a consumer never receives a complete corrupt object.
    """

    def __init__(
        self,
        store: S3Store,
        location: str,
        body: Any,
        length: int,
        chunk_size: int,
        check: tuple[str, str] | None = None,
    ) -> None:
        self._store = store
        self._location = location
        self._body = body
        self._length = length
        self._remaining = length
        self._chunk_size = chunk_size
        self._check = check
        self._hasher = hashing.new(check[0]) if check is not None else None
        self._pending: bytes | None = None
        if body is None and check is None:
            self._remaining = 0

    def __iter__(self) -> S3Chunks:
        return self

    def __enter__(self) -> S3Chunks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self) -> bytes:
        want = min(self._chunk_size, self._remaining)
        with self._store.errors(self._location):
            data: bytes = self._body.read(want)
        if not data:
            raise exception.BackendUnavailable(
                backend=self._store.backend_id,
                reason=f"{self._location}: the answer ended after "
                f"{self._length - self._remaining} of {self._length} bytes",
            )
        if self._hasher is not None:
            hash_update([self._hasher], data)
        self._remaining -= len(data)
        return data

    def __next__(self) -> bytes:
        if self._body is None:
            raise StopIteration
        try:
            if self._hasher is None:
                if self._remaining <= 0:
                    raise StopIteration
                return self._read()
            if self._pending is None:
                self._pending = self._read() if self._remaining else b""
            if self._remaining:
                out, self._pending = self._pending, self._read()
                return out
            out = self._pending
            self._verify()
            self.close()
            if not out:
                raise StopIteration
            return out
        except BaseException:
            self.close()
            raise

    def _verify(self) -> None:
        assert self._check is not None and self._hasher is not None
        if self._hasher.hexdigest() != self._check[1]:
            LOG.error(
                "back end %s: %s does not match its recorded %s",
                self._store.backend_id,
                self._location,
                self._check[0],
            )
            raise exception.CorruptObject(
                what=self._location,
                reason=f"{self._check[0]} does not match the recorded one",
            )

    def close(self) -> None:
        """Release the connection (safe to call more than once)."""
        body, self._body = self._body, None
        if body is not None:
            with contextlib.suppress(Exception):
                body.close()

    def __del__(self) -> None:
        self.close()
