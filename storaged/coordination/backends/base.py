"""What every lock back end shares: the hold, the try-lock interface, errors.

Each back end family has its own module beside this one (:mod:`.file`,
:mod:`.redis`, :mod:`.etcd`, :mod:`.zookeeper`), registered as an entry
point of ``storaged.coordination.locks`` named after its kind, as tooz has
its drivers; what sets one apart for the rest of the coordination layer is
a method or attribute here (:meth:`LockBackend.prepare_driver`,
:meth:`LockBackend.ttl_limit`, :attr:`LockBackend.gives_tokens`), never
its class.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
import contextlib
import dataclasses
import errno
import math
import os
from typing import Any

from storaged.coordination import errors
from storaged.coordination.backends.settings import Settings

# -- errors ----------------------------------------------------------------


def _unavailable_types() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the back end cannot be reached" (lazy imports)."""
    import tooz

    found: list[type[BaseException]] = [tooz.ToozError, OSError, TimeoutError]
    with contextlib.suppress(ImportError):
        import redis

        found.append(redis.RedisError)
    with contextlib.suppress(ImportError):
        from etcd3gw import exceptions as etcd_exc

        found.append(etcd_exc.Etcd3Exception)
    with contextlib.suppress(ImportError):
        from kazoo import exceptions as kazoo_exc
        from kazoo.handlers import threading as kazoo_threading

        found.append(kazoo_exc.KazooException)
        found.append(kazoo_threading.KazooTimeoutError)
    return tuple(found)


_UNAVAILABLE: tuple[type[BaseException], ...] | None = None


def unavailable_types() -> tuple[type[BaseException], ...]:
    """Return the exception types a back end call may fail with."""
    global _UNAVAILABLE
    if _UNAVAILABLE is None:
        _UNAVAILABLE = _unavailable_types()
    return _UNAVAILABLE


# -- lock primitives -------------------------------------------------------


@dataclasses.dataclass
class Held:
    """A lock held on the back end: what releasing and checking it needs.

    :ivar key: the stored lock name.
    :ivar token: fencing token, or ``None`` on ``file://``.
    :ivar data: back end specific (file descriptor and inode, stored value,
        znode path and session).
    :ivar backend: the lock back end that took it (a reconnection makes a
        new one; a lock is always released through its own).
    :ivar since: :func:`time.monotonic` time from which the back end counts
        the lock's TTL, if earlier than the acquisition request (a lock on
        an etcd lease lives as long as the lease, refreshed before).
    """

    key: str
    token: int | None
    data: Any
    backend: LockBackend
    since: float | None = None


class LockBackend(abc.ABC):
    """Try-lock primitives of one back end, over a started tooz driver.

    Every method may raise the back end's own errors; the coordinator
    translates them (:func:`unavailable_types`).

    :param driver: the started tooz driver (its client is reused).
    :param settings: the coordinator's settings.
    :param member_id: this coordinator's member id (stored with each lock).
    :param on_lost: called with a reason when the back end reports, outside
        any call, that every lock of this back end is lost (a ZooKeeper
        session expiring); it must return quickly.
    """

    #: the back end kind (a value of ``settings.SCHEMES``), which is also
    #: the name of its entry point
    kind: str = ""
    #: whether locks carry fencing tokens
    gives_tokens: bool = True

    @classmethod  # noqa: B027 (optional hook)
    def prepare_driver(cls, driver: Any, settings: Settings) -> None:
        """Adjust a tooz driver of this kind before it is started.

        Called before :meth:`start` of the driver, and before this class
        is instantiated on it.  Nothing by default.
        """

    def __init__(
        self,
        driver: Any,
        settings: Settings,
        member_id: str,
        on_lost: Callable[[str], None],
    ) -> None:
        self.driver = driver
        self.settings = settings
        self.member_id = member_id
        self.on_lost = on_lost

    def start(self) -> None:  # noqa: B027 (optional hook)
        """Prepare the back end (directories, parent znodes)."""

    @abc.abstractmethod
    def try_acquire(self, key: str) -> Held | None:
        """Take ``key`` if it is free: return the hold, or ``None``."""

    @abc.abstractmethod
    def release(self, held: Held) -> bool:
        """Release a hold; ``False`` if it was no longer ours."""

    @abc.abstractmethod
    def refresh(self, held: list[Held]) -> set[str]:
        """Extend every hold's lifetime; return the keys found lost."""

    @abc.abstractmethod
    def list_locks(self) -> list[str]:
        """List the stored names of all locks held, by anyone."""

    def check_connected(self) -> None:  # noqa: B027 (optional hook)
        """Raise at once if the client knows it is not connected.

        Called before every back end call, so that no call waits for a
        connection to come back.
        """

    def tidy(self, older_than: float) -> None:  # noqa: B027 (optional hook)
        """Remove what was kept for reuse and unused since ``older_than``.

        Called on every heartbeat with a :func:`time.monotonic` time.
        """

    def close(self, reachable: bool = True) -> None:  # noqa: B027 (optional hook)
        """Give back what the back end keeps for this process (leases).

        :param reachable: ``False`` when the back end is known to be down:
            then only local resources are freed.
        """

    def abandon(self, held: Held) -> None:  # noqa: B027 (optional hook)
        """Forget a hold without talking to the back end (it is gone)."""

    def ttl_limit(self) -> float:
        """Return how long, at most, a lock outlives its last refresh.

        In seconds; the coordinator counts a lock as valid for the smaller
        of this and ``lock_ttl``.  Unbounded by default: the back end keeps
        a lock for ``lock_ttl``.  Read on every acquisition, so no I/O.
        """
        return math.inf


def tooz_attr(driver: Any, name: str) -> Any:
    """Return a tooz driver's client attribute, or fail clearly."""
    try:
        return getattr(driver, name)
    except AttributeError:  # pragma: no cover - depends on the tooz version
        raise errors.CoordinationError(
            reason="this tooz version's %s has no %r; storaged supports tooz 9.x"
            % (type(driver).__name__, name)
        ) from None


def errno_text(err: BaseException) -> str:
    """Describe a back end error in a few words (no secrets, no traceback)."""
    if isinstance(err, OSError) and err.errno is not None:
        code = errno.errorcode.get(err.errno, err.errno)
        return "%s (%s)" % (os.strerror(err.errno), code)
    text = str(err) or type(err).__name__
    return text.splitlines()[0][:300]
