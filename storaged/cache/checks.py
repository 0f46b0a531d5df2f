"""Digest checks: of a stream handed to a reader, and of a fill's file on disk.

A checked stream holds its last chunk back until what was handed out matched
the digests the catalog records, so a reader that stops at the expected
length never takes a bad object for a good one.
"""

from __future__ import annotations

from collections.abc import Iterator
import hashlib
import os
from typing import Any

from storaged import concurrency
from storaged import exception
from storaged.cache.ref import CacheRef

MiB = 1024 * 1024

#: bytes re-read at a time when the file of a fill is checked
_CHECK_BLOCK = 4 * MiB


def update(hashers: list[Any], data: bytes) -> None:
    """Feed ``data`` to every hasher (blocking: run it off the hub)."""
    for h in hashers:
        h.update(data)


def check_stream(hashers: list[Any], ref: CacheRef, seen: int, n: int) -> None:
    """Check that ``n`` bytes were seen and hash to what the catalog records.

    :raises storaged.exception.CorruptObject: they did not.
    """
    if seen != n:
        raise exception.CorruptObject(
            what=ref.source, reason="%d of %d bytes were received" % (seen, n))
    for h in hashers:
        expected = ref.expected[h.name].lower()
        if h.hexdigest() != expected:
            raise exception.CorruptObject(
                what=ref.source,
                reason="its %s is %s, the catalog records %s"
                % (h.name, h.hexdigest(), expected),
            )


def checked(chunks: Iterator[bytes], n: int, ref: CacheRef) -> Iterator[bytes]:
    """Yield ``chunks``; the last one only if the digests match."""
    hashers = [hashlib.new(algo) for algo in ref.expected]
    seen = 0
    try:
        for chunk in chunks:
            concurrency.run_blocking(update, hashers, chunk)
            seen += len(chunk)
            if seen >= n:
                check_stream(hashers, ref, seen, n)
            yield chunk
        if seen < n:
            check_stream(hashers, ref, seen, n)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def digests_match(hashers: dict[str, Any], ref: CacheRef) -> bool:
    """Tell whether ``hashers`` (by algorithm) match the catalog's digests.

    False when there is nothing to compare: no digest vouches for the data.
    """
    if not hashers:
        return False
    return all(
        h.hexdigest() == ref.expected[algo].lower() for algo, h in hashers.items()
    )


def file_digests(fd: int, n: int, algos: set[str]) -> dict[str, str]:
    """Hash the first ``n`` bytes of the file open as ``fd`` (from disk)."""
    hashers = {algo: hashlib.new(algo) for algo in algos}
    pos = 0
    while pos < n:
        data = os.pread(fd, min(_CHECK_BLOCK, n - pos), pos)
        if not data:
            break
        for h in hashers.values():
            h.update(data)
        pos += len(data)
    return {algo: h.hexdigest() for algo, h in hashers.items()}
