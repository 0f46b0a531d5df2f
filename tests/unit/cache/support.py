"""Helpers of the cache tests (unit and functional) and of ``bench/cache.py``.

:class:`FakeBackend` is a back end double: objects in memory, every fetch
counted, optionally slow, broken half-way or serving other bytes than the
catalog expects.  :func:`seed_entries` writes committed entries directly,
with a chosen recorded last access, much faster than real fills.
"""

from __future__ import annotations

from collections.abc import Iterator
import hashlib
import os
import threading
import time

from storaged import exception
from storaged.cache import CacheRef
from storaged.cache import EntryMeta
from storaged.cache import ObjectCache


class FakeBackend:
    """Objects in memory behind the cache's ``fetch`` interface."""

    def __init__(self, backend_id: str = "slow", chunk: int = 64 * 1024) -> None:
        self.backend_id = backend_id
        self.chunk = chunk
        self.objects: dict[str, bytes] = {}
        #: what a fetch serves instead of the real data, by location
        self.served: dict[str, bytes] = {}
        self.fetches: list[tuple[str, int, int | None]] = []
        self.delay = 0.0
        #: the next ``fail_times`` fetches fail after sending this many bytes
        self.fail_after: int | None = None
        self.fail_times = 1 << 30
        self.ranged = True
        #: called with (location, bytes sent so far) before each chunk
        self.on_chunk = None
        self._lock = threading.Lock()

    def put(self, location: str, data: bytes, name: str = "") -> CacheRef:
        self.objects[location] = data
        return self.ref(location, name)

    def ref(self, location: str, name: str = "", md5: bool = True) -> CacheRef:
        data = self.objects[location]
        expected = {"md5": hashlib.md5(data).hexdigest()} if md5 else {}
        return CacheRef(self.backend_id, location, len(data), expected, name=name)

    def count(self, location: str | None = None) -> int:
        with self._lock:
            return sum(1 for f in self.fetches if location in (None, f[0]))

    def fetch_for(self, location: str):
        def fetch(offset: int, length: int | None, verify: bool):
            if (offset or length is not None) and not self.ranged:
                raise exception.StoreCapabilityError(
                    backend=self.backend_id, operation="read a range of an object")
            with self._lock:
                self.fetches.append((location, offset, length))
            data = self.served.get(location, self.objects[location])
            end = len(data) if length is None else offset + length
            body = data[offset:end]
            fail_at = None
            with self._lock:
                if self.fail_after is not None and self.fail_times > 0:
                    self.fail_times -= 1
                    fail_at = self.fail_after
            return self._chunks(location, body, fail_at), len(body)

        return fetch

    def _chunks(
        self, location: str, body: bytes, fail_at: int | None
    ) -> Iterator[bytes]:
        sent = 0
        for i in range(0, len(body), self.chunk):
            if self.on_chunk is not None:
                self.on_chunk(location, sent)
            if fail_at is not None and sent >= fail_at:
                raise exception.BackendUnavailable(
                    backend=self.backend_id, reason="connection reset")
            if self.delay:
                time.sleep(self.delay)
            piece = body[i:i + self.chunk]
            sent += len(piece)
            yield piece


def read_all(cache: ObjectCache, ref: CacheRef, fetch, **kw) -> bytes:
    """Read an object through the cache, whole; check the announced length."""
    chunks, n = cache.read(ref, fetch, **kw)
    try:
        data = b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    assert len(data) == n
    return data


def entry_name(i: int) -> str:
    """Return a valid entry id for test entry number ``i``."""
    return hashlib.sha256(b"entry-%d" % i).hexdigest()


def seed_entries(
    cache: ObjectCache, accesses: list[int], size: int, payload: bytes | None = None
) -> list[str]:
    """Write committed entries; entry i was last read at ``accesses[i]`` ns.

    :returns: the entry ids, in the order of ``accesses``.
    """
    data = payload if payload is not None else b"x" * size
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    ids = []
    for i, last in enumerate(accesses):
        entry_id = entry_name(i)
        fd = os.open(os.path.join(cache.cache_dir, entry_id),
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            os.write(fd, data)
            cache.meta.write(fd, entry_id, EntryMeta(
                size=len(data), digest=digest, source="seed:%d" % i,
                created=last, hits=0, last_access=last))
        finally:
            os.close(fd)
        ids.append(entry_id)
    return ids
