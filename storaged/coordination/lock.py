"""Locks of the coordinator: one name, several names, and a decorator.

A :class:`Lock` is obtained from :meth:`Coordinator.lock
<storaged.coordination.Coordinator.lock>` and used as a context manager::

    with coordinator.lock("sync-" + container) as lock:
        for row in rows:
            lock.check()          # raises LockLost once the lock is lost
            push(row, fence=lock.token)

Unlike a bare tooz lock, it knows when it is lost.  Its holder keeps a
deadline, :attr:`Lock.valid_until`, moved forward by every successful
refresh (each heartbeat)::

    valid_until = start of the last successful refresh + TTL - margin

so the holder gives up *before* the back end lets anyone else take the
name.  When the deadline passes, when the back end reports the lock gone,
or when the connection is lost, :attr:`Lock.lost` turns true, the
:meth:`Lock.on_lost` callbacks run (on the heartbeat thread) and the
coordinator's ``lost_locks`` counter grows.

Names
    Any non-empty string.  The name stored on the back end is the name with
    characters outside ``A-Z a-z 0-9 - _ . : @ + = , ~`` percent-encoded; if
    that is longer than :data:`MAX_STORED_NAME` characters, it is replaced by
    its first 20 characters, ``#`` and 40 hex digits of the SHA-256 of the
    name (:func:`stored_name`).  Hashed names stay distinct, fit every back
    end (file names, znodes) and never collide with a name stored as is
    (those never contain ``#``).
"""

from __future__ import annotations

from collections.abc import Callable
import dataclasses
import functools
import hashlib
import inspect
import logging
from types import TracebackType
from typing import TYPE_CHECKING
from typing import Any
from typing import Final
from typing import Protocol
from typing import TypeVar
import urllib.parse

from storaged.coordination import errors

if TYPE_CHECKING:
    from storaged.coordination.backends import Held

LOG = logging.getLogger(__name__)

#: Stored names longer than this are hashed.
MAX_STORED_NAME: Final = 64
_HASH_PREFIX: Final = 20
_SAFE: Final = "-_.:@+=,"

F = TypeVar("F", bound=Callable[..., Any])


def stored_name(name: str) -> str:
    """Return the form of a lock name stored on the back end.

    :raises ValueError: ``name`` is not a non-empty string.
    """
    if not isinstance(name, str) or not name:
        raise ValueError("a lock name must be a non-empty string, not %r" % (name,))
    quoted = urllib.parse.quote(name, safe=_SAFE, errors="surrogatepass")
    if quoted.startswith("."):
        # "." and ".." are not file names; hidden files are not listed.
        quoted = "%2E" + quoted[1:]
    if len(quoted) <= MAX_STORED_NAME:
        return quoted
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:40]
    prefix = quoted[:_HASH_PREFIX]
    cut = prefix.rfind("%", len(prefix) - 2)
    if cut != -1:
        prefix = prefix[:cut]  # never split a %XX escape
    return prefix + "#" + digest


def shown_name(stored: str) -> str:
    """Return a stored name as a person would write it.

    A hashed name comes back as stored (``prefix#digest``).
    """
    if "#" in stored:
        return stored
    return urllib.parse.unquote(stored)


class LockOwner(Protocol):
    """What a :class:`Lock` asks of the coordinator that made it.

    :class:`~storaged.coordination.Coordinator` implements it; the lock
    knows nothing else of it.  The owner keeps the state of each lock it
    holds in the lock's public fields (:attr:`Lock.hold`,
    :attr:`Lock.generation`, :attr:`Lock.held_since`, :attr:`Lock.marked_lost`,
    :attr:`Lock.lost_callbacks`, plus ``token``, ``valid_until`` and
    ``acquired_at``), changing them under its own mutex.
    """

    def now(self) -> float:
        """Return the owner's monotonic clock."""
        ...

    def timeout_for(self, blocking: bool, timeout: float | None) -> float:
        """Return how long an acquisition may wait (0 when not blocking)."""
        ...

    def acquire_lock(self, lock: Lock, blocking: bool, timeout: float | None) -> bool:
        """Take ``lock`` on the back end; tell whether it was taken."""
        ...

    def release_lock(self, lock: Lock) -> bool:
        """Release ``lock``; ``True`` if it was held and not lost."""
        ...

    def add_lost_callback(self, lock: Lock, callback: Callable[[Lock], None]) -> None:
        """Call ``callback(lock)`` when ``lock`` is lost (at once if it is)."""
        ...


class Locker(Protocol):
    """What :func:`synchronized` needs: something that makes :class:`MultiLock`."""

    def locks(
        self, *names: str, blocking: bool = True, timeout: float | None = None
    ) -> MultiLock:
        """Return a lock on several names, taken in sorted order."""
        ...


@dataclasses.dataclass(frozen=True)
class LockInfo:
    """What this process holds: one entry of :meth:`Coordinator.held_locks`.

    :ivar name: the lock name as given.
    :ivar token: fencing token, ``None`` where the back end has none.
    :ivar acquired_at: wall-clock time of the acquisition.
    :ivar valid_until: :func:`time.monotonic` deadline.
    :ivar lost: whether the lock is lost.
    """

    name: str
    token: int | None
    acquired_at: float
    valid_until: float
    lost: bool


class Lock:
    """A named, exclusive, non-reentrant lock of a :class:`Coordinator`.

    :ivar name: the lock name as given.
    :ivar key: the name as stored on the back end (:func:`stored_name`).
    :ivar token: the fencing token of the current hold, or ``None`` (not
        held, or a ``file://`` back end).
    :ivar valid_until: :func:`time.monotonic` time after which the lock is
        lost unless refreshed (``inf`` on ``file://``: kernel locks never
        expire under a live holder).
    :ivar acquired_at: wall-clock time of the acquisition, or ``None``.
    :ivar hold: the back end's record of the current hold, or ``None``.
    :ivar generation: the owner's connection generation of that hold.
    :ivar held_since: :meth:`LockOwner.now` time of the acquisition.
    :ivar marked_lost: why the owner marked the lock lost, or ``None``.
    :ivar lost_callbacks: the :meth:`on_lost` callbacks.

    The last five, with ``token``, ``valid_until`` and ``acquired_at``, are
    written by the :class:`LockOwner` only, under its mutex.
    """

    def __init__(
        self,
        coordinator: LockOwner,
        name: str,
        *,
        blocking: bool = True,
        timeout: float | None = None,
    ) -> None:
        self.name = name
        self.key = stored_name(name)
        self.blocking = blocking
        self.timeout = timeout
        self.token: int | None = None
        self.valid_until = 0.0
        self.acquired_at: float | None = None
        self._owner = coordinator
        # State below is changed by the owner, under its mutex.
        self.hold: Held | None = None
        self.generation = -1
        self.held_since = 0.0
        self.marked_lost: str | None = None
        self.lost_callbacks: list[Callable[[Lock], None]] = []

    # -- state --------------------------------------------------------------

    @property
    def held(self) -> bool:
        """Whether this object holds the lock (lost or not)."""
        return self.hold is not None

    @property
    def lost(self) -> bool:
        """Whether the lock was lost while held (until the next acquire)."""
        if self.marked_lost is not None:
            return True
        return self.hold is not None and self._owner.now() > self.valid_until

    @property
    def lost_reason(self) -> str | None:
        """Why the lock was lost, if it was."""
        if self.marked_lost is None and self.lost:
            return "not refreshed in time"
        return self.marked_lost

    def check(self) -> None:
        """Raise :class:`LockLost` if the lock is lost or not held.

        Call it before each step done under the lock.
        """
        if self.hold is None and self.marked_lost is None:
            raise errors.LockLost(
                name=self.name, token=self.token, reason="it is not held"
            )
        if self.lost:
            raise errors.LockLost(
                name=self.name, token=self.token, reason=self.lost_reason
            )

    def on_lost(self, callback: Callable[[Lock], None]) -> None:
        """Call ``callback(lock)`` when the lock is lost.

        Callbacks run once per loss, on the heartbeat thread; they must be
        quick (set an event, cancel a task).  A callback added while the
        lock is already lost runs at once, in the caller's thread.
        """
        self._owner.add_lost_callback(self, callback)

    # -- acquire / release -------------------------------------------------

    def acquire(
        self, blocking: bool | None = None, timeout: float | None = None
    ) -> bool:
        """Take the lock.

        :param blocking: wait for it (default: as given to ``lock()``).
        :param timeout: seconds to wait (default: as given to ``lock()``,
            else ``[coordination] lock_timeout``); never forever.
        :returns: whether it was acquired.
        :raises CoordinationUnavailable: the back end cannot be reached
            (raised at once, not after the timeout).
        :raises CoordinationError: already held by this object, or the
            coordinator is not running.
        """
        return self._owner.acquire_lock(
            self,
            self.blocking if blocking is None else blocking,
            self.timeout if timeout is None else timeout,
        )

    def release(self) -> bool:
        """Release the lock.

        :returns: ``True`` if it was held and not lost until now.
        """
        return self._owner.release_lock(self)

    def __enter__(self) -> Lock:
        if not self.acquire():
            raise errors.LockAcquireTimeout(
                name=self.name,
                timeout=self._owner.timeout_for(self.blocking, self.timeout),
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "lost" if self.lost else "held" if self.hold else "free"
        return "<Lock %s token=%s %s>" % (self.name, self.token, state)


class MultiLock:
    """Several locks taken in sorted name order, released in reverse.

    Every process that locks an overlapping set of names takes them in the
    same order, so two of them can never wait for each other.  The timeout
    covers the whole set; if one name cannot be had, those already taken
    are released.
    """

    def __init__(
        self,
        coordinator: LockOwner,
        names: tuple[str, ...],
        *,
        blocking: bool = True,
        timeout: float | None = None,
    ) -> None:
        if not names:
            raise ValueError("locks() needs at least one name")
        self.names = sorted(set(names))
        self.blocking = blocking
        self.timeout = timeout
        self._owner = coordinator
        self.locks = [
            Lock(coordinator, n, blocking=blocking, timeout=timeout) for n in self.names
        ]

    @property
    def tokens(self) -> dict[str, int | None]:
        """Fencing token of each name."""
        return {lock.name: lock.token for lock in self.locks}

    @property
    def lost(self) -> bool:
        """Whether any of the locks is lost."""
        return any(lock.lost for lock in self.locks)

    def check(self) -> None:
        """Raise :class:`LockLost` if any of the locks is lost or not held."""
        for lock in self.locks:
            lock.check()

    def on_lost(self, callback: Callable[[Lock], None]) -> None:
        """Call ``callback(lock)`` when any of the locks is lost."""
        for lock in self.locks:
            lock.on_lost(callback)

    def acquire(
        self, blocking: bool | None = None, timeout: float | None = None
    ) -> bool:
        """Take every lock, in sorted order; all or nothing.

        :returns: whether all were acquired.
        """
        blocking = self.blocking if blocking is None else blocking
        total = self._owner.timeout_for(
            blocking, self.timeout if timeout is None else timeout
        )
        deadline = self._owner.now() + total
        taken: list[Lock] = []
        try:
            for lock in self.locks:
                left = max(0.0, deadline - self._owner.now())
                if not lock.acquire(blocking=blocking, timeout=left):
                    break
                taken.append(lock)
            else:
                return True
        except BaseException:
            for lock in reversed(taken):
                lock.release()
            raise
        for lock in reversed(taken):
            lock.release()
        return False

    def release(self) -> bool:
        """Release every lock, in reverse order.

        :returns: ``True`` if all were held and none was lost.
        """
        ok = True
        for lock in reversed(self.locks):
            ok = lock.release() and ok
        return ok

    def __enter__(self) -> MultiLock:
        if not self.acquire():
            raise errors.LockAcquireTimeout(
                name=", ".join(self.names),
                timeout=self._owner.timeout_for(self.blocking, self.timeout),
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def synchronized(
    *name_formats: str,
    blocking: bool = True,
    timeout: float | None = None,
    coordinator: Locker | None = None,
) -> Callable[[F], F]:
    """Run the decorated function under one or more coordination locks.

    Each format is filled, with :meth:`str.format`, from the call's
    arguments by name, plus ``f_name`` (the function's name)::

        class Syncer:
            def __init__(self, coordinator):
                self.coordinator = coordinator

            @synchronized("{f_name}-{container}", "account-{account}")
            def sync(self, account, container):
                ...

    Several names are locked in sorted order (see :class:`MultiLock`).

    :param blocking: wait for the locks; if ``False`` and one is taken,
        :class:`LockAcquireTimeout` is raised at once.
    :param timeout: seconds to wait (default ``[coordination]
        lock_timeout``).
    :param coordinator: the coordinator; by default the ``coordinator``
        attribute of the call's first argument (``self``).
    :raises LockAcquireTimeout: the locks were not acquired in time.
    """
    if not name_formats:
        raise ValueError("synchronized() needs at least one lock name format")

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            fields = dict(bound.arguments)
            fields["f_name"] = fn.__name__
            names = [fmt.format(**fields) for fmt in name_formats]
            coord = coordinator
            if coord is None and args:
                coord = getattr(args[0], "coordinator", None)
            if coord is None:
                raise errors.CoordinationError(
                    reason="@synchronized %s: no coordinator given and the first "
                    "argument has no 'coordinator' attribute" % fn.__qualname__
                )
            with coord.locks(*names, blocking=blocking, timeout=timeout):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
