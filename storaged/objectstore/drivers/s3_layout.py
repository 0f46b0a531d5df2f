"""What the s3 driver's modules share: key layout, metadata names, hashing.

The driver (:mod:`.s3`) and its writer (:mod:`.s3_write`) both import
this module; the writer never imports the driver (no import cycle): it sees
it through :class:`.s3_write.WritingStore`.
"""

from __future__ import annotations

from typing import Any

from storaged import concurrency
from storaged import exception

#: prefix of the digest records of multipart objects.
RECORD_PREFIX = ".digests/"
#: user metadata (``x-amz-meta-...``) an object is written with.
META_ALGO = "storaged-algo"
META_DIGEST = "storaged-digest"
META_RECORD = "storaged-record"

#: data at least this long is hashed in the thread pool under eventlet (a
#: MiB of sha256 takes milliseconds the hub would stall for otherwise).
HASH_OFFLOAD = 256 * 1024


def hash_update(hashers: list[Any], data: bytes) -> None:
    """Feed ``data`` to each hash, off the eventlet hub when it is large."""
    if len(data) >= HASH_OFFLOAD:
        concurrency.run_blocking(_update_all, hashers, data)
    else:
        _update_all(hashers, data)


def _update_all(hashers: list[Any], data: bytes) -> None:
    for h in hashers:
        h.update(data)


class NoDigest(exception.CorruptObject):
    """An object without storaged's metadata: not written by this driver."""
