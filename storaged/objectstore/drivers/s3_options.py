"""The options of the ``s3`` driver (one group per ``s3`` back end).

Sizes are written with binary units (``5M`` is 5 MiB): :class:`ByteSize`.
"""

from __future__ import annotations

import re
from typing import Any

from oslo_config import cfg
from oslo_config import types

KiB = 1024
MiB = 1024 * KiB

#: smallest part S3 accepts (all but the last part of an upload).
MIN_PART_SIZE = 5 * MiB
#: largest part S3 accepts.
MAX_PART_SIZE = 5 * 1024 * MiB

_UNITS = {"": 1, "K": KiB, "M": MiB, "G": 1024 * MiB, "T": 1024 * 1024 * MiB}
_SIZE = re.compile(r"\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*\Z", re.IGNORECASE)


class ByteSize(types.ConfigType):
    """A size in bytes, written with an optional binary unit: ``5M``, ``1G``."""

    def __init__(self, min: int = 0, max: int | None = None) -> None:
        super().__init__(type_name="byte size")
        self.min = min
        self.max = max

    def __call__(self, value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            n = value
        else:
            match = _SIZE.match(str(value))
            if not match:
                raise ValueError(f"{value!r} is not a size such as 5M or 1G")
            n = int(match.group(1)) * _UNITS[match.group(2).upper()]
        if n < self.min:
            raise ValueError(f"{value!r} is less than {self.min} bytes")
        if self.max is not None and n > self.max:
            raise ValueError(f"{value!r} is more than {self.max} bytes")
        return n

    def __repr__(self) -> str:
        return f"ByteSize(min={self.min}, max={self.max})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ByteSize) and (self.min, self.max) == (
            other.min,
            other.max,
        )

    def __hash__(self) -> int:
        return hash((self.min, self.max))

    def _formatter(self, value: Any) -> str:
        return str(value)


OPTIONS = [
    cfg.StrOpt(
        "endpoint_url",
        help="""
URL of the S3 service, e.g. ``https://s3.example.org:8080``.

Unset to use AWS itself (the endpoint of ``region_name``). Set it for any
other S3 implementation (Ceph radosgw, Swift's s3api, MinIO, ...).

Related options:
    * ``region_name``, ``addressing_style``
""",
    ),
    cfg.StrOpt(
        "region_name",
        default="us-east-1",
        help="""
Region the bucket is in; requests are signed for it.

Related options:
    * ``endpoint_url``
""",
    ),
    cfg.StrOpt(
        "addressing_style",
        default="auto",
        choices=[
            ("auto", "virtual-hosted where the bucket name allows it, else path"),
            ("path", "http://ENDPOINT/BUCKET/KEY (most private S3 services)"),
            ("virtual", "http://BUCKET.ENDPOINT/KEY (needs wildcard DNS)"),
        ],
        help="How the bucket is named in request URLs.",
    ),
    cfg.StrOpt(
        "access_key",
        help="""
Access key id. Set both ``access_key`` and ``secret_key``, or neither: with
neither, boto3's usual credential chain is used (``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY``, ``~/.aws/credentials``, an instance or container
role, ...).

Related options:
    * ``secret_key``
""",
    ),
    cfg.StrOpt(
        "secret_key",
        secret=True,
        help="""
Secret access key that goes with ``access_key`` (never logged).

Related options:
    * ``access_key``
""",
    ),
    cfg.StrOpt(
        "bucket",
        help="""
Bucket that holds this back end's objects (required). Give the back end a
bucket of its own: scrub reports any key it did not write.

Possible values:
    * A DNS-compatible bucket name: 3 to 63 lower-case letters, digits,
      ``.`` and ``-``, starting and ending with a letter or digit

Related options:
    * ``create_bucket_on_put``
""",
    ),
    cfg.BoolOpt(
        "create_bucket_on_put",
        default=False,
        help="""
Create the bucket when an add finds it missing.

Off by default: a production bucket usually has a policy, a lifecycle rule
(abort incomplete multipart uploads) or a region chosen by its owner, and a
typo in ``bucket`` should fail loudly rather than fill a new bucket. When
on, the bucket is created in ``region_name``.

Related options:
    * ``bucket``, ``region_name``
""",
    ),
    cfg.Opt(
        "multipart_threshold",
        type=ByteSize(min=0, max=MAX_PART_SIZE),
        default="16M",
        help="""
Objects larger than this are written as multipart uploads.

Up to this size an add keeps the whole object in memory (its digest goes in
the PUT's headers, before the data), and sends it with one PUT. Above it,
parts are sent in parallel while the next ones are read.

Possible values:
    * A size with an optional unit (powers of 1024), e.g. ``16M``, ``100M``

Related options:
    * ``multipart_chunk_size``, ``max_concurrency``
""",
    ),
    cfg.Opt(
        "multipart_chunk_size",
        type=ByteSize(min=MIN_PART_SIZE, max=MAX_PART_SIZE),
        default="8M",
        help="""
Size of the parts of a multipart upload.

S3 refuses parts smaller than 5 MiB (but the last). An add holds up to
``max_concurrency + 1`` parts in memory. S3 services limit the parts of an
upload (AWS: 10,000; Swift's s3api: 1,000 by default): a larger object of
known size gets larger parts so that 1,000 are enough, and one of unknown
size gets larger parts as it grows (one more chunk size every 100 parts).

Possible values:
    * A size with an optional unit, at least ``5M``

Related options:
    * ``multipart_threshold``, ``max_concurrency``
""",
    ),
    cfg.IntOpt(
        "max_concurrency",
        default=10,
        min=1,
        max=64,
        help="""
Parts of one multipart upload sent at the same time.

Related options:
    * ``multipart_chunk_size``
""",
    ),
    cfg.StrOpt(
        "request_checksum_calculation",
        default="when_supported",
        choices=[
            ("when_supported", "checksums on every request that can take one"),
            ("when_required", "only where the operation requires one"),
        ],
        help="""
Which requests botocore sends with a CRC checksum of the data (in an
``aws-chunked`` body), and which responses it checks.

``when_supported`` (botocore's default) protects every upload in transit.
Over HTTPS, botocore sends that checksum as the trailer of an
``aws-chunked`` body, which services older than S3's flexible checksums
refuse (Swift 2.30's s3api answers 501 Not Implemented): set
``when_required`` for them. Over plain HTTP it goes in a
header, which they ignore. Objects are checked against storaged's own
digest on verified reads and scrubs either way.
""",
    ),
    cfg.StrOpt(
        "https_ca_certificates_file",
        help="""
CA certificates (PEM) used to verify an HTTPS endpoint, instead of the
system's.

Possible values:
    * An absolute path to a PEM file; unset to use the system CA store

Related options:
    * ``https_insecure``
""",
    ),
    cfg.BoolOpt(
        "https_insecure",
        default=False,
        help="""
DANGEROUS: do not verify the endpoint's HTTPS certificate.

Anyone on the network path could then read the credentials' signatures
and serve other data. Only for testing; use ``https_ca_certificates_file``
for private CAs instead.

Related options:
    * ``https_ca_certificates_file``
""",
    ),
    cfg.FloatOpt(
        "connect_timeout",
        default=10.0,
        min=0.1,
        max=600.0,
        help="Seconds to wait for a TCP (and TLS) connection to the endpoint.",
    ),
    cfg.FloatOpt(
        "read_timeout",
        default=60.0,
        min=0.1,
        max=3600.0,
        help="""
Seconds to wait for each read from the endpoint (not for a whole transfer).
""",
    ),
    cfg.IntOpt(
        "retries",
        default=3,
        min=0,
        max=20,
        help="""
Times a failed request is sent again (botocore's ``standard`` retry mode:
throttling, 5xx answers, timeouts, connection errors; with backoff). A read
that fails once its data is flowing is not retried: the caller gets the
error.
""",
    ),
    cfg.IntOpt(
        "chunk_size",
        default=MiB,
        min=4 * KiB,
        max=64 * MiB,
        help="Bytes read at a time, from the caller's data and from S3; the "
        "size of the chunks ``get`` yields.",
    ),
    cfg.IntOpt(
        "orphan_grace",
        default=86400,
        min=0,
        help="""
Seconds after which scrub takes an incomplete multipart upload, or a digest
record without its object, for what a dead writer left behind (and, when
asked to reclaim, aborts or deletes it). Younger ones count as writes in
progress. Keep it well above the time the largest add takes.
""",
    ),
]
