"""The state store contract: a key-value store with fenced leases.

Every driver subclasses :class:`KeyValueStore`.  The public methods live
here, once: they validate and mangle keys, encode values as JSON, check
leases locally and turn the drivers' answers into storaged exceptions.  A
driver implements a handful of primitives (``_get``, ``_set`` ...) that work
on stored keys and JSON text and must each be *one atomic step* on the back
end: one sqlite statement or transaction, one Redis command or Lua script.

Keys
    Non-empty ``str`` without NUL that encodes to UTF-8 (no lone
    surrogates).  A key longer than :data:`MAX_KEY_LENGTH` characters is
    stored under a fixed-length form, :func:`mangle_key`: its first
    :data:`MANGLED_PREFIX_LENGTH` characters, ``#`` and the SHA-256 of the
    whole key.  The readable prefix keeps :meth:`KeyValueStore.scan` working
    for prefixes up to that length, the digest keeps distinct long keys
    apart, and as a mangled key is longer than any key stored as is, the
    two forms never collide.  Every driver uses this same function.

Values
    Anything :func:`json.dumps` accepts (dict, list, str, int, float, bool,
    None); they come back as JSON would give them (tuples become lists).
    NaN and infinities are refused with ``ValueError``.

Versions
    Each write of a key gives it a new, larger version.  A key created
    anew (never written, deleted, or expired) starts from the back end's
    clock in microseconds rather than from 1, so a key that is deleted and
    created again does not repeat versions a slow reader may still hold:
    :meth:`KeyValueStore.compare_and_set` is not fooled by that ABA.

Leases and fencing
    :meth:`KeyValueStore.lock` gives a :class:`Lease` with a *fencing
    token*: an integer, strictly larger for every new holder of a name, kept
    by the back end (it survives a restart of the store).  A write passed
    ``lease=`` succeeds only if, atomically with the write and by the back
    end's clock, the lock still holds that token and has not expired.
    Worked example, with a 0.3 s lease::

        t=0.0  A: lease_a = store.lock("sync/c1", ttl=0.3)      token 101
        t=0.1  A stalls (GC pause, blocked disk, SIGSTOP ...)
        t=0.3  the back end lets the lease expire
        t=0.4  B: lease_b = store.lock("sync/c1", ttl=30)       token 102
               B: store.set("sync/c1/point", 900, lease=lease_b)   ok
        t=0.6  A wakes: store.set("sync/c1/point", 500, lease=lease_a)
               -> LeaseLost; nothing is written, 900 stands
               A: lease_a.release() -> False; B's lock is untouched

    The holder also keeps a local, conservative deadline on the monotonic
    clock (counted from *before* the acquisition request was sent); once it
    has passed, writes under the lease are refused without asking the back
    end, and :attr:`Lease.valid` is false.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
import json
import logging
import time
from types import TracebackType
from typing import Any
from typing import Final
from typing import TypeVar

import tenacity

from storaged import concurrency
from storaged import exception
from storaged import metrics as metrics_mod
from storaged.common import retry
from storaged.kvs.keys import mangle_key
from storaged.kvs.keys import shown
from storaged.kvs.keys import validate_prefix

T = TypeVar("T")

LOG = logging.getLogger(__name__)

#: A value the store accepts and returns: JSON data.
Value = Any

#: (stored lock name, token) of the lease a write is fenced by.
Fence = tuple[str, int]

_SLEEP_FIRST: Final = 0.002
_SLEEP_MAX: Final = 0.05


class FenceRejected(exception.KVSError):
    """Raised by a driver primitive when the lease check of a write fails.

    Private to the drivers and :class:`KeyValueStore`, which turns it into
    :class:`storaged.exception.LeaseLost`.
    """

    msg_fmt = "the lease check of a write failed"


def check_ttl(ttl: float | None, what: str = "ttl") -> float | None:
    """Check a time to live in seconds: ``None`` (no expiry) or positive."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        raise TypeError(f"{what} must be a number of seconds, not {ttl!r}")
    if not ttl > 0 or ttl == float("inf"):
        raise ValueError(f"{what} must be a positive number of seconds, not {ttl!r}")
    return float(ttl)


def _check_wait(timeout: float) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"timeout must be a number of seconds, not {timeout!r}")
    if not 0 <= timeout < float("inf"):
        raise ValueError("timeout must be a finite number of seconds >= 0")
    return float(timeout)


def encode_value(value: Value) -> str:
    """Encode a value as compact JSON (``ValueError``/``TypeError`` if not JSON)."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def decode_value(raw: str, key: str) -> Value:
    """Decode a stored value; a value that is not JSON is a back end fault."""
    try:
        return json.loads(raw)
    except ValueError as err:
        raise exception.KVSError(
            reason=f"the value stored under {shown(key)} is not JSON: {err}"
        ) from err


def now_us(now: float) -> int:
    """Return a wall-clock time in whole microseconds (seed of versions, tokens)."""
    return int(now * 1_000_000)


class Lease:
    """A time-limited, fenced hold on a lock name.

    Obtained from :meth:`KeyValueStore.lock`; pass it as ``lease=`` to
    writes that must only happen while it is held.  Use it as a context
    manager to release it on exit.

    :ivar name: the lock name, as given to :meth:`KeyValueStore.lock`.
    :ivar token: the fencing token; strictly larger for every new holder of
        ``name``, across processes and restarts of the store.
    :ivar ttl: the lease length in seconds (from the last acquisition or
        refresh).
    :ivar expires_at: local deadline on :func:`time.monotonic`; computed
        from the moment the request was sent, so it never runs later than
        the back end's own expiry.

    The constructor's ``stored_name`` is the lock name as stored (see
    :func:`mangle_key`), when the caller has already computed it.
    """

    def __init__(
        self,
        store: KeyValueStore,
        name: str,
        token: int,
        ttl: float,
        expires_at: float,
        *,
        stored_name: str | None = None,
    ) -> None:
        self.name = name
        self.token = token
        self.ttl = ttl
        self.expires_at = expires_at
        self._store = store
        self._stored_name = stored_name or mangle_key(name, "lock name")
        self._released = False

    @property
    def valid(self) -> bool:
        """Whether the lease is held, as far as this process can tell.

        Local view only: ``True`` does not prove the back end still agrees
        (a fenced write does), ``False`` means: stop acting under it.
        """
        return not self._released and time.monotonic() < self.expires_at

    @property
    def remaining(self) -> float:
        """Seconds left before the local deadline (0 when no longer valid)."""
        if self._released:
            return 0.0
        return max(0.0, self.expires_at - time.monotonic())

    def refresh(self, ttl: float | None = None) -> None:
        """Extend the lease by ``ttl`` seconds from now (default: its ttl).

        The back end extends it only if this lease still holds the lock.

        :raises storaged.exception.LeaseLost: the lease expired on the back
            end, was taken over, or was released.
        """
        new_ttl = check_ttl(self.ttl if ttl is None else ttl)
        assert new_ttl is not None
        if self._released:
            raise exception.LeaseLost(
                name=shown(self.name), token=self.token, reason="it was released"
            )
        start = time.monotonic()
        if not self._store._refresh(self._stored_name, self.token, new_ttl):
            self.expires_at = start
            raise exception.LeaseLost(
                name=shown(self.name),
                token=self.token,
                reason="it expired or was taken over before the refresh",
            )
        self.ttl = new_ttl
        self.expires_at = start + new_ttl

    def release(self) -> bool:
        """Give the lock up, if this lease still holds it.

        Never removes a lock another holder has taken since.  Releasing twice,
        or releasing a lost lease, is not an error.

        :returns: ``True`` if the lease was still held and is now released,
            ``False`` if it had already expired, been taken over or released.
        """
        if self._released:
            return False
        released = self._store._release(self._stored_name, self.token)
        self._released = True
        if not released:
            LOG.debug(
                "Lease on %s (token %s) was already lost at release",
                shown(self.name),
                self.token,
            )
        return released

    def fence(self) -> Fence:
        """Return what a fenced write checks, after the local checks.

        :raises storaged.exception.LeaseLost: released, or past its local
            deadline.
        """
        if self._released:
            raise exception.LeaseLost(
                name=shown(self.name), token=self.token, reason="it was released"
            )
        if time.monotonic() >= self.expires_at:
            raise exception.LeaseLost(
                name=shown(self.name),
                token=self.token,
                reason="its local deadline has passed",
            )
        return self._stored_name, self.token

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # A failure to release must not hide the body's own outcome: a lost
        # lease is reported by release() returning False, and if the back
        # end cannot be reached the lease simply runs out at its deadline.
        try:
            self.release()
        except exception.KVSBackendError:
            LOG.warning(
                "Could not release the lease on %s (token %s); it will "
                "expire by itself within %.1fs",
                shown(self.name),
                self.token,
                self.ttl,
                exc_info=True,
            )

    def __repr__(self) -> str:
        state = "valid" if self.valid else "lost"
        return (
            f"<Lease {shown(self.name)} token={self.token} ttl={self.ttl:.3g} {state}>"
        )


#: state store operations: a local sqlite write to a slow network round trip
OP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
              1.0, 2.5, 5.0, 10.0)


def declare_metrics(metrics: metrics_mod.Metrics) -> None:
    """Declare the state store's metrics."""
    metrics.histogram("kvs_operation_duration_seconds", "Seconds a state store "
                      "operation took, by operation and driver (failed ones "
                      "included).", ["op", "driver"], buckets=OP_BUCKETS)


class _Timed:
    """Time one state store operation into this process's metrics."""

    __slots__ = ("_driver", "_op", "_start")

    def __init__(self, op: str, driver: str) -> None:
        self._op = op
        self._driver = driver
        self._start = 0.0

    def __enter__(self) -> None:
        self._start = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        m = metrics_mod.process()
        if "kvs_operation_duration_seconds" not in m:
            declare_metrics(m)
        m.observe("kvs_operation_duration_seconds", time.monotonic() - self._start,
                  op=self._op, driver=self._driver)


class KeyValueStore(abc.ABC):
    """A key-value store with expiry, compare-and-set and fenced leases.

    Build one with :func:`storaged.kvs.open_store` or
    :func:`storaged.kvs.get_store`; close it with :meth:`close` or by
    using it as a context manager.  Safe to share between threads.

    :param url: the back end's URL (its scheme picked the driver).
    :param timeout: seconds to wait for the back end on each operation.
    :param sqlite_synchronous: ``normal`` or ``full`` (sqlite only).
    :param default_lock_ttl: lease length of :meth:`lock` without ``ttl``.
    """

    #: URL schemes the driver serves.
    schemes: tuple[str, ...] = ()
    #: Whether the driver's I/O blocks the process (sqlite, libpq) rather
    #: than yield to other green threads (Redis's patched sockets, memory).
    blocking_io: bool = True

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        sqlite_synchronous: str = "normal",
        default_lock_ttl: float = 30.0,
    ) -> None:
        timeout_checked = check_ttl(timeout, "timeout")
        ttl_checked = check_ttl(default_lock_ttl, "default_lock_ttl")
        assert timeout_checked is not None and ttl_checked is not None
        if sqlite_synchronous not in ("normal", "full"):
            raise ValueError(
                "sqlite_synchronous must be 'normal' or 'full', "
                f"not {sqlite_synchronous!r}"
            )
        self.timeout = timeout_checked
        self.default_lock_ttl = ttl_checked
        self.sqlite_synchronous = sqlite_synchronous
        self._closed = False

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` (an operation of this store) as its I/O needs.

        Under eventlet a blocking driver's call goes to the native thread
        pool (:func:`~storaged.concurrency.run_blocking`); a green one runs
        here, where its locks and sockets belong.
        """
        if self.blocking_io:
            return concurrency.run_blocking(fn, *args, **kwargs)
        return fn(*args, **kwargs)

    # -- construction -------------------------------------------------------

    @classmethod
    @abc.abstractmethod
    def parse_url(cls, url: str) -> Any:
        """Check a URL for this driver without opening anything.

        :returns: what the driver needs from the URL.
        :raises ValueError: one line saying what is wrong, no password.
        """

    def _timed(self, op: str) -> _Timed:
        """Time an operation: ``with self._timed("get"): ...``."""
        return _Timed(op, self.schemes[0] if self.schemes else type(self).__name__)

    # -- reading ------------------------------------------------------------

    def get(self, key: str) -> Value:
        """Return the value of ``key``.

        :raises storaged.exception.KVSNotFound: missing or expired.
        """
        stored = mangle_key(key)
        with self._timed("get"):
            raw = self._get(stored)
        if raw is None:
            raise exception.KVSNotFound(key=shown(key))
        return decode_value(raw, key)

    def get_versioned(self, key: str) -> tuple[Value, int]:
        """Return ``(value, version)`` of ``key``, for :meth:`compare_and_set`.

        :raises storaged.exception.KVSNotFound: missing or expired.
        """
        stored = mangle_key(key)
        with self._timed("get_versioned"):
            found = self._get_versioned(stored)
        if found is None:
            raise exception.KVSNotFound(key=shown(key))
        return decode_value(found[0], key), found[1]

    def get_multi(self, keys: Iterable[str]) -> dict[str, Value]:
        """Return the values of several keys, read in one request.

        :returns: ``{key: value}`` in the order of ``keys``.
        :raises storaged.exception.KVSNotFound: naming the first key (in the
            order given) that is missing or expired.
        """
        wanted = list(keys)
        stored = [mangle_key(k) for k in wanted]
        if not stored:
            return {}
        with self._timed("get_multi"):
            raws = self._get_multi(stored)
        result: dict[str, Value] = {}
        for key, raw in zip(wanted, raws, strict=True):
            if raw is None:
                raise exception.KVSNotFound(key=shown(key))
            result[key] = decode_value(raw, key)
        return result

    def scan(self, prefix: str = "") -> Iterator[tuple[str, Value]]:
        """Yield ``(stored key, value)`` of the live keys starting with ``prefix``.

        Sorted by key (code point order).  Long keys appear in their mangled
        form (see :func:`mangle_key`); a prefix may therefore be at most
        :data:`MANGLED_PREFIX_LENGTH` characters long.  The listing is read
        in pages: it is not a snapshot, keys written meanwhile may or may
        not appear.

        :raises storaged.exception.InvalidName: bad or too long prefix.
        """
        validate_prefix(prefix)  # now, not when the caller starts iterating
        return self._decoded(prefix)

    def _decoded(self, prefix: str) -> Iterator[tuple[str, Value]]:
        for stored, raw in self._scan(prefix):
            yield stored, decode_value(raw, stored)

    # -- writing ------------------------------------------------------------

    def set(
        self,
        key: str,
        value: Value,
        *,
        ttl: float | None = None,
        lease: Lease | None = None,
    ) -> None:
        """Store ``value`` under ``key``.

        :param ttl: seconds until the key expires (default: never).
        :param lease: write only if this lease still holds its lock.
        :raises storaged.exception.LeaseLost: the lease is no longer held;
            nothing was written.
        """
        stored = mangle_key(key)
        raw = encode_value(value)
        ttl = check_ttl(ttl)
        fence = lease.fence() if lease is not None else None
        try:
            with self._timed("set"):
                self._set(stored, raw, ttl, fence)
        except FenceRejected:
            raise self._lost(lease) from None

    def set_multi(
        self,
        mapping: Mapping[str, Value],
        *,
        ttl: float | None = None,
        lease: Lease | None = None,
    ) -> None:
        """Store several values atomically: all of them or none.

        :raises storaged.exception.LeaseLost: as :meth:`set`.
        """
        items = [(mangle_key(k), encode_value(v)) for k, v in mapping.items()]
        ttl = check_ttl(ttl)
        fence = lease.fence() if lease is not None else None
        if not items:
            return
        try:
            with self._timed("set_multi"):
                self._set_multi(items, ttl, fence)
        except FenceRejected:
            raise self._lost(lease) from None

    def delete(self, key: str, *, lease: Lease | None = None) -> None:
        """Delete ``key`` in one request.

        :raises storaged.exception.KVSNotFound: it did not exist (or had
            expired).
        :raises storaged.exception.LeaseLost: as :meth:`set`.
        """
        stored = mangle_key(key)
        fence = lease.fence() if lease is not None else None
        try:
            with self._timed("delete"):
                existed = self._delete(stored, fence)
        except FenceRejected:
            raise self._lost(lease) from None
        if not existed:
            raise exception.KVSNotFound(key=shown(key))

    def delete_multi(self, keys: Iterable[str], *, lease: Lease | None = None) -> None:
        """Delete several keys atomically; missing keys are ignored.

        :raises storaged.exception.LeaseLost: as :meth:`set`.
        """
        stored = [mangle_key(k) for k in keys]
        fence = lease.fence() if lease is not None else None
        if not stored:
            return
        try:
            with self._timed("delete_multi"):
                self._delete_multi(stored, fence)
        except FenceRejected:
            raise self._lost(lease) from None

    def compare_and_set(
        self,
        key: str,
        expected_version: int | None,
        value: Value,
        *,
        ttl: float | None = None,
    ) -> int:
        """Store ``value`` only if ``key`` is still at ``expected_version``.

        :param expected_version: the version read with
            :meth:`get_versioned`, or ``None``: the key must not exist.
        :returns: the new version.
        :raises storaged.exception.KVSConflict: the key is at another
            version, exists when it should not, or does not exist.
        """
        if expected_version is not None and (
            isinstance(expected_version, bool) or not isinstance(expected_version, int)
        ):
            raise TypeError("expected_version must be an int or None")
        stored = mangle_key(key)
        raw = encode_value(value)
        ttl = check_ttl(ttl)
        with self._timed("compare_and_set"):
            ok, version = self._compare_and_set(stored, expected_version, raw, ttl)
        if not ok:
            raise exception.KVSConflict(
                key=shown(key),
                expected="absent" if expected_version is None else expected_version,
                found="absent" if version is None else version,
            )
        assert version is not None
        return version

    def purge_expired(self) -> int:
        """Remove expired keys (and free lock records) from the back end.

        Expired keys are already invisible; this reclaims their space.

        :returns: how many expired keys were removed (0 where the back end
            expires keys by itself).
        """
        with self._timed("purge_expired"):
            return self._purge_expired()

    # -- locks --------------------------------------------------------------

    def lock(
        self,
        name: str,
        ttl: float | None = None,
        *,
        blocking: bool = True,
        timeout: float | None = None,
    ) -> Lease:
        """Acquire a lease on ``name``.

        Not re-entrant: a second ``lock`` of a held name waits like any
        other holder would.

        :param ttl: lease length in seconds (default: ``default_lock_ttl``).
            Hold it longer with :meth:`Lease.refresh`.
        :param blocking: if false, fail at once when the name is held.
        :param timeout: how long to keep trying, in seconds (default: the
            ttl); never forever.
        :raises storaged.exception.LockTimeout: not acquired in time.
        """
        stored = mangle_key(name, "lock name")
        lease_ttl = check_ttl(self.default_lock_ttl if ttl is None else ttl)
        assert lease_ttl is not None
        wait = 0.0
        if blocking:
            wait = lease_ttl if timeout is None else _check_wait(timeout)
        deadline = time.monotonic() + wait

        def attempt() -> Lease | None:
            start = time.monotonic()
            with self._timed("lock_attempt"):
                token = self._acquire(stored, lease_ttl)
            if token is None:
                return None
            return Lease(
                self, name, token, lease_ttl, start + lease_ttl, stored_name=stored
            )

        # Jittered, growing sleeps: contenders do not retry in step, and a
        # short hold is noticed quickly.
        lease = retry.retrying(
            retry=tenacity.retry_if_result(lambda got: got is None),
            stop=retry.stop_at(deadline, time.monotonic),
            wait=retry.wait_doubling(
                _SLEEP_FIRST, _SLEEP_MAX, jitter=(0.5, 1.5),
                deadline=deadline, clock=time.monotonic,
            ),
            sleep=concurrency.sleep,
        )(attempt)
        if lease is None:
            raise exception.LockTimeout(name=shown(name), timeout=wait)
        return lease

    # -- life cycle ---------------------------------------------------------

    def close(self) -> None:
        """Release the back end's connections.  Idempotent."""
        self._closed = True

    def __enter__(self) -> KeyValueStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _closed_error(self) -> exception.KVSError:
        return exception.KVSError(reason="the state store has been closed")

    @staticmethod
    def _lost(lease: Lease | None) -> exception.LeaseLost:
        assert lease is not None
        lease.expires_at = min(lease.expires_at, time.monotonic())
        return exception.LeaseLost(
            name=shown(lease.name),
            token=lease.token,
            reason="the back end no longer has it (expired or taken over); "
            "nothing was written",
        )

    # -- driver primitives: each one atomic on the back end ----------------

    @abc.abstractmethod
    def _get(self, key: str) -> str | None:
        """Return the JSON text of a live key, or ``None``."""

    @abc.abstractmethod
    def _get_versioned(self, key: str) -> tuple[str, int] | None:
        """Return ``(JSON text, version)`` of a live key, or ``None``."""

    @abc.abstractmethod
    def _get_multi(self, keys: list[str]) -> list[str | None]:
        """Return the JSON texts of live keys, ``None`` for missing ones."""

    @abc.abstractmethod
    def _set(self, key: str, raw: str, ttl: float | None, fence: Fence | None) -> None:
        """Write one key; raise :class:`FenceRejected` if the fence fails."""

    @abc.abstractmethod
    def _set_multi(
        self, items: list[tuple[str, str]], ttl: float | None, fence: Fence | None
    ) -> None:
        """Write several keys atomically; :class:`FenceRejected` as ``_set``."""

    @abc.abstractmethod
    def _delete(self, key: str, fence: Fence | None) -> bool:
        """Delete a key; return whether a live key was there."""

    @abc.abstractmethod
    def _delete_multi(self, keys: list[str], fence: Fence | None) -> None:
        """Delete several keys atomically."""

    @abc.abstractmethod
    def _compare_and_set(
        self, key: str, expected: int | None, raw: str, ttl: float | None
    ) -> tuple[bool, int | None]:
        """Conditional write: ``(True, new version)`` or ``(False, found)``.

        ``found`` is the version the key is at, ``None`` if absent.
        """

    @abc.abstractmethod
    def _scan(self, prefix: str) -> Iterator[tuple[str, str]]:
        """Yield ``(stored key, JSON text)`` of live keys, sorted by key."""

    @abc.abstractmethod
    def _purge_expired(self) -> int:
        """Drop expired keys and free lock records; return keys dropped."""

    @abc.abstractmethod
    def _acquire(self, name: str, ttl: float) -> int | None:
        """Take a free or expired lock: return the new token, or ``None``."""

    @abc.abstractmethod
    def _refresh(self, name: str, token: int, ttl: float) -> bool:
        """Extend a lock still held with ``token``; return whether it was."""

    @abc.abstractmethod
    def _release(self, name: str, token: int) -> bool:
        """Free a lock still held with ``token``; return whether it was."""
