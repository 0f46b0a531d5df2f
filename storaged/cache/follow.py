"""Followers: readers that stream another reader's fill as it is written.

A reader whose claim of a fill found it already published is a *follower*
(:mod:`storaged.cache.fill`): it opens the published file and streams
what is written so far, polling for more; it hands out the last chunk only
once the writer has committed and what it read matches the catalog's digest.
If the writer fails or stalls (``fill_wait_timeout``), the follower reads
the rest from the back end (a ranged read, or a whole read skipping what it
already sent) and checks the whole stream against the catalog's digest.

Worked example: a 10 MiB object, read in 1 MiB chunks while its writer has
written 4 MiB.  The follower hands out chunks 1-4, finds nothing more, sees
the writer's lock held and polls (2 ms, doubling up to 50 ms); as the
writer appends, chunks 5-9 go out; chunk 10 is held back until the writer's
lock is free and the file is the committed entry, then handed out.  Had
the writer died after 4 MiB, the follower would have fetched bytes from
4 MiB on from the back end and checked the md5 of all 10 MiB.
"""

from __future__ import annotations

from collections.abc import Iterator
import fcntl
import hashlib
import os
import time

from storaged import concurrency
from storaged import exception
from storaged.cache import checks
from storaged.cache.directory import POLL_FIRST
from storaged.cache.directory import POLL_MAX
from storaged.cache.directory import CacheDirectory
from storaged.cache.directory import close_fd
from storaged.cache.directory import same_file
from storaged.cache.directory import try_lock
from storaged.cache.ref import CacheRef
from storaged.cache.ref import Fetch


class Followers(CacheDirectory):
    """The follower's side of a fill."""

    def _writer_state(self, fd: int, entry_id: str) -> str:
        """Return ``writing``, ``committed``, ``orphaned`` or ``failed``."""
        if not try_lock(fd, fcntl.LOCK_SH):
            return "writing"
        fcntl.flock(fd, fcntl.LOCK_UN)
        if same_file(self.entry_path(entry_id), fd):
            return "committed"
        if same_file(self.incomplete_path(entry_id), fd):
            return "orphaned"  # its writer died
        return "failed"

    def _follow(
        self,
        fd: int,
        entry_id: str,
        ref: CacheRef,
        fetch: Fetch,
        verify: bool,
        chunk: int,
    ) -> Iterator[bytes]:
        """Stream another process's fill as it grows; see the module docstring."""
        run = concurrency.run_blocking
        assert ref.size is not None
        n = ref.size
        pos = 0
        hashers = {algo: hashlib.new(algo) for algo in ref.expected}
        last_progress = time.monotonic()
        delay = POLL_FIRST
        pending: bytes | None = None
        rest: Iterator[bytes] | None = None
        state = "writing"
        settled = False
        try:
            # One poll loop: read what the writer has written; when there is
            # nothing new (or only the outcome is missing: the last chunk is
            # pending), wait while the writer writes and has not stalled.
            while pos < n or pending is not None:
                if pos < n:
                    data: bytes = run(os.pread, fd, min(chunk, n - pos), pos)
                    if data:
                        for h in hashers.values():
                            h.update(data)
                        pos += len(data)
                        last_progress = time.monotonic()
                        delay = POLL_FIRST
                        if pos < n:
                            yield data
                        else:
                            pending = data  # the last chunk waits for the outcome
                        continue
                state = run(self._writer_state, fd, entry_id)
                if state == "writing" and (
                    time.monotonic() - last_progress < self.fill_wait_timeout
                ):
                    concurrency.sleep(delay)
                    delay = min(delay * 2, POLL_MAX)
                    continue
                if state != "writing" and not settled:
                    # The writer may have written its last bytes (and
                    # finished) between the read above and this look: read
                    # once more before taking the file as all there is.
                    settled = True
                    continue
                break
            if pending is not None:
                if state == "committed":
                    # The writer checked its file; this checks what this
                    # reader read of it (the same bytes, unless the file was
                    # tampered with).
                    if hashers and not checks.digests_match(hashers, ref):
                        raise exception.CorruptObject(
                            what=ref.source, reason="the data read from the "
                            "cache fill does not match the catalog's digest")
                    yield pending
                    return
                # The writer failed after writing everything: the bytes are
                # suspect unless the catalog's digest vouches for them.
                self.count("follow_fallbacks")
                if not checks.digests_match(hashers, ref):
                    raise exception.CorruptObject(
                        what=ref.source, reason="a cache fill failed after this "
                        "read began, and the data cannot be vouched for")
                yield pending
                return
            if pos >= n:
                return
            if state == "committed":
                raise exception.CorruptObject(
                    what="cache entry %s" % entry_id,
                    reason="it ends at %d of %d bytes" % (pos, n))
            # The writer failed, died or stalled: the rest from the back end.
            self.count("follow_fallbacks")
            fell_back_at = pos
            rest = self._fetch_rest(fetch, pos, verify and not hashers)
            tail = b""
            for data in rest:
                for h in hashers.values():
                    h.update(data)
                pos += len(data)
                if pos < n:
                    yield data
                else:
                    tail = data
            if pos != n:
                raise exception.CorruptObject(
                    what=ref.source,
                    reason="the back end sent %d of %d bytes" % (pos, n))
            if hashers and not checks.digests_match(hashers, ref):
                raise exception.CorruptObject(
                    what=ref.source, reason="the data does not match the "
                    "digest the catalog records")
            if verify and not hashers and fell_back_at:
                # Part came from the fill, part from a ranged read: no
                # digest covers the whole.
                raise exception.CorruptObject(
                    what=ref.source, reason="a cache fill failed after this "
                    "read began, and the data cannot be verified")
            if tail:
                yield tail
        finally:
            close_fd(fd)
            if rest is not None:
                close = getattr(rest, "close", None)
                if close is not None:
                    close()

    @staticmethod
    def _fetch_rest(fetch: Fetch, pos: int, verify: bool) -> Iterator[bytes]:
        """Read from byte ``pos`` to the end from the back end.

        :param verify: have the back end verify a whole read (``pos`` 0).
        """
        if pos == 0:
            return fetch(0, None, verify)[0]
        try:
            return fetch(pos, None, False)[0]
        except exception.StoreCapabilityError:
            pass
        # No ranged reads: read it all and drop the first pos bytes.
        chunks = fetch(0, None, False)[0]

        def skip() -> Iterator[bytes]:
            left = pos
            for data in chunks:
                if left >= len(data):
                    left -= len(data)
                    continue
                yield data[left:]
                left = 0

        return skip()
