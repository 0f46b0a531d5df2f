"""Fills: single flight, admission and the writer of a cache entry.

**A miss** of a whole object is *single flight* across threads and
processes.  Each reader creates a file of its own in ``incomplete/``
(``O_CREAT|O_EXCL`` under a private name), takes an exclusive ``flock`` on
it, and publishes it as ``incomplete/<id>`` with a rename that never
replaces (``renameat2(RENAME_NOREPLACE)``; ``link`` where that is missing):

* the one whose rename succeeds is the *writer*; its file is locked before
  anyone can see it.  It checks admission (size limit, free space),
  reserves the space (``fallocate``), fetches the
  object from the back end once and streams it to its caller while
  appending it to the file.  After the last byte it ``fsync``\\ s the file,
  **re-reads the file** and compares its digest with the digest the catalog
  recorded (the md5 ETag) or, when there is none, with the sha256 of the
  bytes received, records the metadata and renames the file into place
  without replacing anything (``renameat2(RENAME_NOREPLACE)``).  Any failure
  moves the file to ``invalid/`` with the error recorded (truncated to 0
  bytes when the failure was about space or the back end, so that failed
  fills never hold space the cache needs); the caller is still served, the
  data came from the back end;
* every other reader (its rename failed: the name exists) removes its own
  file and is a *follower* (:mod:`storaged.cache.follow`);
* a file in ``incomplete/`` whose lock is free belongs to a dead writer
  (SIGKILL): the next reader removes it, holding its lock, and fills anew;
  the cleaner removes those no reader came for.

Admission measures the cache through the ``measure`` callable and, when it
is full, prunes through the ``make_room`` callable the cache was given
(:class:`~storaged.cache.directory.CacheDirectory`): this module does not
know the pruner.
"""

from __future__ import annotations

from collections.abc import Iterator
import ctypes
import ctypes.util
import dataclasses
import errno
import fcntl
import hashlib
import logging
import os
import time
from typing import Any

import tenacity

from storaged import concurrency
from storaged.cache import checks
from storaged.cache import usage
from storaged.cache.directory import CREATE_FLAGS
from storaged.cache.directory import POLL_FIRST
from storaged.cache.directory import POLL_MAX
from storaged.cache.directory import READ_FLAGS
from storaged.cache.directory import SPACE_ERRORS
from storaged.cache.directory import close_fd
from storaged.cache.directory import same_file
from storaged.cache.directory import try_lock
from storaged.cache.entries import DIGEST_ALGO
from storaged.cache.entries import Entries
from storaged.cache.entries import Hit
from storaged.cache.layout import INCOMPLETE
from storaged.cache.layout import new_token
from storaged.cache.metadata import EntryMeta
from storaged.cache.ref import CacheRef
from storaged.cache.ref import Fetch
from storaged.cache.ref import FillFailed
from storaged.common import retry
from storaged.objectstore.drivers import fsutil

LOG = logging.getLogger(__name__)

#: attempts to claim a fill before reading from the back end directly
_CLAIM_ATTEMPTS = 50


# -- space reservation ------------------------------------------------------

_FALLOC_FL_KEEP_SIZE = 1


def _load_fallocate() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return None
    fn = getattr(libc, "fallocate", None)
    if fn is not None:
        fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
        fn.restype = ctypes.c_int
    return fn


_fallocate = _load_fallocate()


def reserve_space(fd: int, size: int) -> bool:
    """Reserve ``size`` bytes for ``fd`` without changing its length.

    ``FALLOC_FL_KEEP_SIZE`` keeps the file's length at what was written, so
    followers reading the growing file never see reserved zeros.

    :returns: False where the filesystem cannot reserve (nothing done).
    :raises OSError: ENOSPC and the like.
    """
    if _fallocate is None or size <= 0:
        return False
    if _fallocate(fd, _FALLOC_FL_KEEP_SIZE, 0, size) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
        return False
    raise OSError(err, os.strerror(err))


def _write_all(fd: int, data: bytes, hashers: list[Any]) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
    checks.update(hashers, data)


@dataclasses.dataclass
class Claim:
    """What a reader got when it asked to fill an entry."""

    role: str  # "writer", "follower", "hit", "retry", "bypass"
    fd: int | None = None
    hit: Hit | None = None
    reason: str = ""


class Fills(Entries):
    """Single flight and the writer's side of a fill."""

    def _claim_loop(self, entry_id: str, ref: CacheRef) -> Claim:
        """Claim the fill of an entry until a role other than retry comes out."""
        claim: Claim = retry.retrying(
            retry=tenacity.retry_if_result(lambda got: got.role == "retry"),
            stop=tenacity.stop_after_attempt(_CLAIM_ATTEMPTS),
            wait=retry.wait_doubling(POLL_FIRST, POLL_MAX),
            sleep=concurrency.sleep,
        )(self._claim_once, entry_id, ref)
        if claim.role == "retry":
            self.count("bypass_busy")
            return Claim("bypass", reason="busy: the fill could not be claimed in time")
        if claim.role == "bypass":
            self.count("bypass_" + claim.reason.split(":", 1)[0])
        return claim

    def _claim_once(self, entry_id: str, ref: CacheRef) -> Claim:
        claim = concurrency.run_blocking(self._claim, entry_id, ref)
        if claim.role == "follower" and ref.size is None:
            close_fd(claim.fd)
            claim = Claim("bypass", reason="unknown_size: its size is unknown")
        return claim

    def _claim(self, entry_id: str, ref: CacheRef) -> Claim:
        """Become the writer of an entry, or follow its writer.

        The fill's file is created and locked under a private name, then
        published as ``incomplete/<id>`` by a rename that never replaces:
        exclusive, like ``O_EXCL``, and the name never names a file whose
        live writer has not locked it yet.
        """
        path = self.incomplete_path(entry_id)
        tmp = os.path.join(
            self.cache_dir, INCOMPLETE, ".%s.%s" % (entry_id[:16], new_token())
        )
        fd = os.open(tmp, CREATE_FLAGS, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # a private new file: never waits
            try:
                fsutil.rename_noreplace(tmp, path)
            except FileExistsError:
                os.unlink(tmp)
                close_fd(fd)
                return self._join(path, entry_id)
        except BaseException:
            close_fd(fd)
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        try:
            # The entry may have been committed since our hit check.
            hit = self._open_entry(entry_id, ref)
            if hit is not None:
                os.unlink(path)
                close_fd(fd)
                return Claim("hit", hit=hit)
            refusal = self._admit(ref.size)
            if refusal is not None:
                os.unlink(path)
                close_fd(fd)
                return Claim("bypass", reason="admission: " + refusal)
            if self.reserve and ref.size:
                try:
                    reserve_space(fd, ref.size)
                except OSError as err:
                    os.unlink(path)
                    close_fd(fd)
                    if err.errno in SPACE_ERRORS:
                        return Claim("bypass", reason="no_space: %s" % err)
                    raise
        except BaseException:
            close_fd(fd)
            raise
        return Claim("writer", fd=fd)

    def _join(self, path: str, entry_id: str) -> Claim:
        """Follow the writer of ``path``, or remove it if its writer died."""
        try:
            fd = os.open(path, READ_FLAGS)
        except FileNotFoundError:
            return Claim("retry")  # the fill ended just now
        try:
            if not try_lock(fd, fcntl.LOCK_SH):
                return Claim("follower", fd=fd)
            fcntl.flock(fd, fcntl.LOCK_UN)
            if not try_lock(fd, fcntl.LOCK_EX):
                close_fd(fd)
                return Claim("retry")
            if same_file(path, fd):
                # Still in incomplete/ and nobody holds it: its writer died
                # (a published fill is always locked by a live writer).
                os.unlink(path)
                self.count("reaped_dead_fills")
                LOG.warning("Removed the fill of cache entry %s left by a dead "
                            "writer", entry_id)
        except BaseException:
            close_fd(fd)
            raise
        close_fd(fd)
        return Claim("retry")

    # -- admission -------------------------------------------------------

    def _admit(self, size: int | None) -> str | None:
        """Say why a fill of ``size`` bytes must not start, or None."""
        if size is None:
            return "its size is unknown"
        if self.max_size and size > self.max_size:
            return "it is larger than max_size (%d bytes)" % self.max_size
        st = os.statvfs(self.cache_dir)
        free = st.f_bavail * st.f_frsize
        floor = self.min_free_space * st.f_blocks * st.f_frsize
        if free - size < floor:
            return "the filesystem has %d bytes free" % free
        if not self.max_size:
            return None
        with self._usage_lock:
            usage_now = self._current_usage()
            if usage_now + size > self.max_size and self._make_room(size):
                usage_now = self._current_usage(refresh=True)
            if (usage_now + size > self.max_size
                    and self._usage_age() > usage.USAGE_RECHECK):
                usage_now = self._current_usage(refresh=True)
            if usage_now + size > self.max_size:
                return "the cache is full (%d of %d bytes)" % (
                    usage_now, self.max_size)
            if self._usage is not None:  # a prune elsewhere may have just reset it
                self._usage = (self._usage[0], self._usage[1] + size)
        return None

    def _usage_age(self) -> float:
        if self._usage is None:
            return float("inf")
        return time.monotonic() - self._usage[0]

    def _current_usage(self, refresh: bool = False) -> int:
        now = time.monotonic()
        if refresh or self._usage is None or now - self._usage[0] > usage.USAGE_TTL:
            self._usage = (now, self._measure(self))
        return self._usage[1]

    def _make_room(self, size: int) -> bool:
        """Prune now if no other prune runs (at most once per USAGE_TTL)."""
        if self.shared_dir or self._room_maker is None:
            return False  # only passes holding the shared lease prune
        now = time.monotonic()
        if now - self._last_room_prune < usage.USAGE_TTL:
            return False
        self._last_room_prune = now
        return self._room_maker(self, size)

    # -- the writer ---------------------------------------------------------

    def _write(
        self, fd: int, entry_id: str, ref: CacheRef, fetch: Fetch, verify: bool
    ) -> tuple[Iterator[bytes], int]:
        """Fetch the object once; return the stream that fills the entry."""
        # With the catalog's digest the stream is checked here (below),
        # whatever the back end can do.
        try:
            chunks, n = fetch(0, None, verify and not ref.expected)
        except BaseException:
            concurrency.run_blocking(self._abandon, fd, entry_id)
            raise
        if ref.size is not None and n != ref.size:
            LOG.warning("Not caching %s: the back end returns %d bytes, the "
                        "catalog records %d", ref.source, n, ref.size)
            concurrency.run_blocking(self._abandon, fd, entry_id)
            self.count("bypass_size")
            if verify and ref.expected:
                return checks.checked(chunks, n, ref), n
            return chunks, n
        self.count("fills_started")
        return self._fill(fd, entry_id, ref, chunks, n, verify), n

    def _fill(
        self,
        fd: int,
        entry_id: str,
        ref: CacheRef,
        chunks: Iterator[bytes],
        n: int,
        verify: bool,
    ) -> Iterator[bytes]:
        """Yield the back end's chunks while appending them to the fill."""
        run = concurrency.run_blocking
        held: int | None = fd
        written = seen = 0
        # Without a digest from the catalog the file is compared with what
        # was received, so the received bytes are hashed as they go.
        hasher = None if ref.expected else hashlib.new(DIGEST_ALGO)
        stream = [hasher] if hasher is not None else []
        # A verified read checks what it hands out against the catalog.
        hashers = [hashlib.new(algo) for algo in ref.expected] if verify else []
        try:
            for chunk in chunks:
                seen += len(chunk)
                if held is None:
                    if hashers:
                        run(checks.update, hashers, chunk)
                else:
                    try:
                        run(_write_all, held, chunk, stream + hashers)
                        written += len(chunk)
                        if written > n:
                            raise FillFailed(
                                what=ref.source,
                                reason="the back end sent more than %d bytes" % n)
                    except (OSError, FillFailed) as err:
                        if hashers and written < seen:
                            # not hashed by the write
                            run(checks.update, hashers, chunk)
                        run(self._fail, held, entry_id, ref, err, False)
                        held = None
                    else:
                        if written == n:
                            # Commit before handing out the last chunk: a
                            # caller that stops once it has n bytes still
                            # leaves a complete entry behind.
                            run(self._commit_or_fail, held, entry_id, ref, n, hasher)
                            held = None
                if hashers and seen >= n:
                    checks.check_stream(hashers, ref, seen, n)
                yield chunk
            if hashers and seen < n:
                checks.check_stream(hashers, ref, seen, n)
            if held is not None:
                if written == n:
                    run(self._commit_or_fail, held, entry_id, ref, n, hasher)
                else:
                    short = FillFailed(what=ref.source, reason="the back end sent "
                                       "%d of %d bytes" % (written, n))
                    run(self._fail, held, entry_id, ref, short, False)
                held = None
        except GeneratorExit:
            if held is not None:
                # The caller went away: nothing is wrong with the data, but
                # nobody will send the rest.
                run(self._abandon, held, entry_id)
                held = None
                self.count("fills_abandoned")
            raise
        except BaseException as err:
            if held is not None:
                run(self._fail, held, entry_id, ref, err, False)
                held = None
            raise
        finally:
            if held is not None:
                run(self._abandon, held, entry_id)
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    def _commit_or_fail(
        self, fd: int, entry_id: str, ref: CacheRef, n: int, hasher: Any
    ) -> None:
        try:
            self._commit(fd, entry_id, ref, n, hasher)
        except FillFailed as err:
            self._fail(fd, entry_id, ref, err, True)
        except Exception as err:
            # Whatever went wrong, the caller's stream comes from the back
            # end and goes on; only the entry is given up.
            self._fail(fd, entry_id, ref, err, False)

    def _commit(
        self, fd: int, entry_id: str, ref: CacheRef, n: int, hasher: Any
    ) -> None:
        """Check the written file and rename it into place (the writer's lock held)."""
        os.fsync(fd)
        size = os.fstat(fd).st_size
        if size != n:
            raise FillFailed(
                what=ref.source,
                reason="the file holds %d bytes, %d were written" % (size, n),
            )
        digests = checks.file_digests(fd, n, {DIGEST_ALGO, *ref.expected})
        checked: dict[str, str] = {}
        for algo, expected in ref.expected.items():
            if digests[algo] != expected.lower():
                raise FillFailed(
                    what=ref.source,
                    reason="the file's %s is %s, the catalog records %s"
                    % (algo, digests[algo], expected),
                )
            checked[algo] = digests[algo]
        if hasher is not None and digests[DIGEST_ALGO] != hasher.hexdigest():
            raise FillFailed(
                what=ref.source,
                reason="the file's %s is %s, the data received had %s"
                % (DIGEST_ALGO, digests[DIGEST_ALGO], hasher.hexdigest()),
            )
        now = time.time_ns()
        meta = EntryMeta(
            size=n,
            digest="%s:%s" % (DIGEST_ALGO, digests[DIGEST_ALGO]),
            source=ref.source,
            created=now,
            checks=checked,
            hits=0,
            last_access=now,
        )
        self.meta.write(fd, entry_id, meta)
        try:
            fsutil.rename_noreplace(self.incomplete_path(entry_id),
                                    self.entry_path(entry_id))
        except FileExistsError:
            # Cannot happen with single flight, unless a file was put there
            # by hand; keep what is there.
            os.unlink(self.incomplete_path(entry_id))
            close_fd(fd)
            return
        except BaseException:
            self.meta.forget([entry_id])
            raise
        close_fd(fd)
        self.count("fills")
        LOG.debug("Cached %s as %s (%d bytes)", ref.source, entry_id, n)

    def _fail(
        self, fd: int, entry_id: str, ref: CacheRef, err: BaseException, keep: bool
    ) -> None:
        """Move a failed fill to ``invalid/`` with its error (lock held).

        :param keep: keep the data (a digest mismatch: it is evidence);
            otherwise the file is truncated to 0 bytes first, so a fill that
            failed for lack of space or because the back end failed holds
            no space.
        """
        self.count("fill_failures")
        text = str(err) or type(err).__name__
        if isinstance(err, OSError) and err.errno in SPACE_ERRORS:
            text = "no space left in the cache: %s" % (err.strerror or err)
        # The log line names the fill itself; the recorded error keeps the
        # whole message (an entry in invalid/ is named by its id only).
        reason = text
        if isinstance(err, FillFailed) and "reason" in err.kwargs:
            reason = str(err.kwargs["reason"])
        LOG.warning("Cache fill of %s (%s) failed: %s", ref.source, entry_id, reason)
        name, target = self._invalid_path(entry_id)
        try:
            if not keep:
                os.ftruncate(fd, 0)
            os.utime(fd)  # the grace period counts from the failure
            try:
                self.meta.record_error(fd, name, text)
            except OSError as rec_err:
                LOG.warning("Could not record the error of %s: %s", name, rec_err)
            os.rename(self.incomplete_path(entry_id), target)
        except OSError as move_err:
            LOG.warning("Could not move the failed fill %s to invalid/: %s",
                        entry_id, move_err)
            try:
                os.unlink(self.incomplete_path(entry_id))
            except OSError:
                pass
        finally:
            close_fd(fd)

    def _abandon(self, fd: int, entry_id: str) -> None:
        """Remove our own fill (lock held) and release it."""
        try:
            os.unlink(self.incomplete_path(entry_id))
        except FileNotFoundError:
            pass
        finally:
            close_fd(fd)
