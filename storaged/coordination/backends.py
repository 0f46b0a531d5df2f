"""What storaged knows about each coordination back end.

tooz gives group membership on every back end; its locks are left aside
because each of them falls short somewhere (no fencing token, lock files
and znodes never removed, one etcd lease per attempt, a lock expiring
silently under its holder).  This module holds, per back end:

* how the ``[coordination]`` TTLs become tooz driver options, and which
  URLs are refused (:func:`check_url`, :func:`validate_conf`);
* the lock primitives storaged uses instead of tooz's
  (:class:`LockBackend` and one subclass per back end), all *try-lock*
  operations: the caller polls, so that no back end call ever waits for a
  lock;
* listing what exists on the back end (:meth:`LockBackend.list_locks`).

Lock layout and fencing tokens, per back end:

``file://DIR``
    ``DIR/locks/<stored name>``, locked with ``flock``; the file is removed
    by its holder on release (a waiter that then gets the lock on the
    removed file notices that the path no longer names it and tries again),
    so no lock file outlives its lock.  No fencing token: the kernel drops a
    dead holder's lock at once and never takes it from a live one.
``redis://``
    ``storaged:coord:lock:<stored name>`` holding ``<member> <token>``, with
    Redis' own expiry; the token is ``max(last token + 1, server time in
    microseconds)`` kept in ``storaged:coord:fence`` (the scheme of the
    state store's leases), set in the same script as the lock.
``etcd3+http(s)://``
    key ``storaged/coord/locks/<stored name>`` attached to **one** lease per
    process, kept alive by the heartbeat and revoked on stop; the token is
    the key's create revision.
``zookeeper://``
    ephemeral znode ``/storaged/locks/<stored name>`` of the coordinator's
    session (no sequential contender nodes, no parent znode per name); the
    token is the znode's ``czxid``.

Tokens are integers that grow for every new holder of a name on one back
end, like the state store's lease tokens; compare them only with tokens of
the same name from the same back end.
"""

from __future__ import annotations

import abc
import collections
from collections.abc import Callable
import contextlib
import dataclasses
import errno
import fcntl
import math
import os
import re
import time
from typing import Any
from typing import Final
import urllib.parse
import uuid

from oslo_config import cfg

from storaged import concurrency
from storaged import exception
from storaged.coordination import errors

FILE: Final = "file"
REDIS: Final = "redis"
ETCD: Final = "etcd"
ZOOKEEPER: Final = "zookeeper"

#: URL scheme -> back end kind.
SCHEMES: Final = {
    "file": FILE,
    "redis": REDIS,
    "etcd3+http": ETCD,
    "etcd3+https": ETCD,
    "zookeeper": ZOOKEEPER,
    "kazoo": ZOOKEEPER,
}

#: tooz schemes storaged refuses, and why.
REFUSED: Final = {
    "ipc": "the ipc driver has no membership and no try-lock with common "
    "sysv_ipc builds, and deadlocks under eventlet",
    "memcached": "memcached may evict a lock under memory pressure, counts "
    "expiry in whole seconds and cannot wait for a lock with a timeout",
    "mysql": "the mysql driver has no group membership",
    "postgresql": "the postgresql driver has no group membership and only "
    "65536 lock keys (deprecated in tooz)",
    "kubernetes": "the kubernetes driver is deprecated in tooz and untested",
    "etcd": "etcd v2 was removed from tooz; use etcd3+http://",
    "etcd3": "use etcd3+http:// or etcd3+https://",
    "consul": "consul was removed from tooz",
    "zake": "zake (a fake ZooKeeper) was removed from tooz",
}

#: URL query options storaged sets itself, and from which option.
RESERVED_PARAMS: Final = {
    "timeout": "lock_ttl and membership_ttl",
    "lock_timeout": "lock_ttl",
    "membership_timeout": "membership_ttl",
    "socket_timeout": "the TTLs (a third of the smaller one)",
    "socket_connect_timeout": "the TTLs (a third of the smaller one)",
    "executor": "itself (calls run on the heartbeat thread)",
}

_SECRET_PARAM_RE: Final = re.compile(
    r"((?:^|[?&;])[A-Za-z_]*(?:password|passwd|secret|token)=)[^&;]*", re.I
)
_USERINFO_RE: Final = re.compile(r"^([A-Za-z0-9+.-]+://)([^@/]*@)")

REDIS_LOCK_PREFIX: Final = "storaged:coord:lock:"
REDIS_FENCE_KEY: Final = "storaged:coord:fence"
ETCD_LOCK_PREFIX: Final = "storaged/coord/locks/"
ZK_LOCK_PATH: Final = "/storaged/locks"
FILE_LOCK_DIR: Final = "locks"


def mask_url(url: str) -> str:
    """Return ``url`` with its password and secret parameters masked."""
    def userinfo(match: re.Match[str]) -> str:
        user, colon, _password = match.group(2).partition(":")
        return match.group(1) + (user + ":***@" if colon else match.group(2))

    masked = _USERINFO_RE.sub(userinfo, url)
    return _SECRET_PARAM_RE.sub(r"\1***", masked)


def kind_of(url: str) -> str:
    """Return the back end kind (``file``, ``redis``, ``etcd``, ``zookeeper``).

    :raises ValueError: unknown or refused scheme, with the reason.
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if not scheme:
        raise ValueError("not a URL (expected SCHEME://...): %r" % mask_url(url))
    if scheme in SCHEMES:
        return SCHEMES[scheme]
    if scheme in REFUSED:
        raise ValueError("back end %r refused: %s" % (scheme, REFUSED[scheme]))
    raise ValueError(
        "unknown back end %r (use one of: %s)"
        % (scheme, ", ".join(sorted(SCHEMES)))
    )


def check_url(url: str, *, eventlet: bool) -> str:
    """Check a coordination URL for storaged's use.

    :param eventlet: whether the process runs on the eventlet backend.
    :returns: the back end kind.
    :raises ValueError: what is wrong, in one sentence.
    """
    kind = kind_of(url)
    parsed = urllib.parse.urlsplit(url)
    params = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
    for name in sorted(params):
        if name in RESERVED_PARAMS:
            raise ValueError(
                "URL option %r is set by storaged from %s; remove it from the URL"
                % (name, RESERVED_PARAMS[name])
            )
    if kind == FILE:
        if parsed.netloc:
            raise ValueError(
                "file:// URL must name an absolute directory "
                "(file:///path, three slashes), not host %r" % parsed.netloc
            )
        if not parsed.path or not os.path.isabs(parsed.path):
            raise ValueError("file:// URL must name an absolute directory")
    if kind == ZOOKEEPER:
        handler = params.get("handler", ["threading"])[-1]
        if handler != "threading":
            raise ValueError(
                "ZooKeeper handler %r refused: only the threading handler is "
                "supported (the eventlet handler is deprecated)" % handler
            )
        if eventlet:
            raise ValueError(
                "ZooKeeper needs the threading concurrency backend: its client "
                "runs threads of its own, which eventlet turns into green "
                "threads that a blocked process starves; set [DEFAULT] "
                "concurrency_backend = threading for this daemon"
            )
    return kind


@dataclasses.dataclass(frozen=True)
class Settings:
    """The coordination settings of one coordinator, checked.

    Built by :func:`settings_from_conf`.
    """

    url: str
    kind: str
    heartbeat_interval: float
    lock_ttl: int
    membership_ttl: int
    initial_reconnect_backoff: float
    max_reconnect_backoff: float
    outage_log_interval: float
    lock_timeout: float
    partitions: int
    settle_time: float
    file_single_host: bool

    @property
    def masked_url(self) -> str:
        """The URL with secrets masked, for logs and errors."""
        return mask_url(self.url)

    @property
    def effective_lock_ttl(self) -> float:
        """Seconds a silent holder keeps its locks on this back end.

        ZooKeeper has one session for locks and membership, whose timeout
        is the smaller TTL.  On ``file://`` locks never expire (``inf``).
        """
        if self.kind == FILE:
            return math.inf
        if self.kind == ZOOKEEPER:
            return float(min(self.lock_ttl, self.membership_ttl))
        return float(self.lock_ttl)

    @property
    def lock_margin(self) -> float:
        """Seconds by which a holder gives up before the back end's expiry.

        Covers clock rate differences and the time a holder takes to notice.
        """
        ttl = min(self.lock_ttl, self.membership_ttl)
        return max(0.2, 0.1 * ttl)

    @property
    def io_timeout(self) -> float:
        """Socket / request timeout for back end calls.

        A third of the smaller TTL (at least 1 s), so that a hung call never
        keeps the heartbeat thread past a TTL.
        """
        return max(1.0, min(self.lock_ttl, self.membership_ttl) / 3.0)

    def tooz_options(self) -> dict[str, Any]:
        """Options passed to ``tooz.coordination.get_coordinator``.

        They take precedence over the URL's own query options.
        """
        if self.kind == FILE:
            return {"timeout": self.membership_ttl, "executor": "sync"}
        if self.kind == REDIS:
            return {
                "timeout": self.lock_ttl,
                "lock_timeout": self.lock_ttl,
                "membership_timeout": self.membership_ttl,
                "socket_timeout": self.io_timeout,
                "socket_connect_timeout": self.io_timeout,
                "executor": "sync",
            }
        if self.kind == ETCD:
            return {
                "timeout": math.ceil(self.io_timeout),
                "lock_timeout": self.lock_ttl,
                "membership_timeout": self.membership_ttl,
                "executor": "sync",
            }
        return {"timeout": min(self.lock_ttl, self.membership_ttl)}


def settings_from_conf(conf: cfg.ConfigOpts, url: str | None = None) -> Settings:
    """Read and check the ``[coordination]`` options.

    :param url: use this back end URL instead of ``backend_url``.
    :raises storaged.exception.ConfigError: a bad value or combination,
        naming the option (the caller adds the file).
    """
    group = conf.coordination
    url = url or group.backend_url
    try:
        kind = check_url(url, eventlet=_uses_eventlet(conf))
    except ValueError as err:
        raise exception.ConfigError(
            str(err), group="coordination", option="backend_url"
        ) from err
    smallest = min(group.lock_ttl, group.membership_ttl)
    if group.heartbeat_interval > smallest / 3.0:
        raise exception.ConfigError(
            "must be at most a third of the smaller of lock_ttl (%s) and "
            "membership_ttl (%s): %s > %.3g"
            % (group.lock_ttl, group.membership_ttl, group.heartbeat_interval,
               smallest / 3.0),
            group="coordination",
            option="heartbeat_interval",
        )
    if group.max_reconnect_backoff < group.initial_reconnect_backoff:
        raise exception.ConfigError(
            "must not be smaller than initial_reconnect_backoff (%s)"
            % group.initial_reconnect_backoff,
            group="coordination",
            option="max_reconnect_backoff",
        )
    settle = group.settle_time
    if settle is None:
        settle = float(max(group.lock_ttl, group.membership_ttl))
    return Settings(
        url=url,
        kind=kind,
        heartbeat_interval=group.heartbeat_interval,
        lock_ttl=group.lock_ttl,
        membership_ttl=group.membership_ttl,
        initial_reconnect_backoff=group.initial_reconnect_backoff,
        max_reconnect_backoff=group.max_reconnect_backoff,
        outage_log_interval=group.outage_log_interval,
        lock_timeout=group.lock_timeout,
        partitions=group.partitions,
        settle_time=settle,
        file_single_host=group.file_single_host,
    )


def _uses_eventlet(conf: cfg.ConfigOpts) -> bool:
    try:
        return concurrency.backend() == concurrency.EVENTLET
    except RuntimeError:
        return bool(conf.concurrency_backend == concurrency.EVENTLET)


def validate_conf(conf: cfg.ConfigOpts, sources: Any = None) -> None:
    """Check the ``[coordination]`` options, for ``prepare_service``.

    Refuses an unknown or unfit back end, TTL options in the URL, a
    heartbeat longer than a third of a TTL, ZooKeeper under eventlet.

    :param sources: where options were set (unused: the caller adds the file).
    :raises storaged.exception.ConfigError: with group and option set.
    """
    settings_from_conf(conf)


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

    kind: str = ""
    #: whether locks carry fencing tokens
    gives_tokens: bool = True

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


def prepare_driver(driver: Any, settings: Settings) -> None:
    """Adjust a tooz driver before it is started.

    Redis: redis-py 6 and later retry a failed command ten times with a
    backoff of up to a second each, and tooz retries connection errors
    fifteen times on top: a heartbeat against a server that is down would
    take minutes instead of failing at once.  The client tooz makes gets no
    retries; the heartbeat thread is what retries, with its own backoff.
    """
    if settings.kind != REDIS:
        return
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    make_client = getattr(driver, "_make_client", None)
    if make_client is None:  # pragma: no cover - depends on the tooz version
        raise errors.CoordinationError(
            reason="this tooz version's redis driver cannot be adjusted; "
            "storaged supports tooz 9.x"
        )

    def make_without_retries(*args: Any, **kwargs: Any) -> Any:
        client = make_client(*args, **kwargs)
        client.set_retry(Retry(NoBackoff(), 0))
        return client

    driver._make_client = make_without_retries


def _tooz_attr(driver: Any, name: str) -> Any:
    """Return a tooz driver's client attribute, or fail clearly."""
    try:
        return getattr(driver, name)
    except AttributeError:  # pragma: no cover - depends on the tooz version
        raise errors.CoordinationError(
            reason="this tooz version's %s has no %r; storaged supports tooz 9.x"
            % (type(driver).__name__, name)
        ) from None


class FileLocks(LockBackend):
    """``flock`` on ``DIR/locks/<key>``; no lock file outlives its use.

    Protocol: a holder removes the file while it still holds the lock, and
    whoever then gets the lock on the removed file sees that the path no
    longer names it (or names a new file) and tries again.

    Creating and removing a file costs two journal updates, expensive on a
    busy filesystem for a name locked over and over.  So a released file
    is kept, unlocked, with its descriptor, for a name that may come back
    soon (at most :attr:`IDLE_MAX` names); :meth:`tidy` (every heartbeat)
    removes those idle for a heartbeat interval, the same way: locked,
    checked, removed, closed.  A lock file of a free name therefore lasts
    at most about one heartbeat.
    """

    kind = FILE
    gives_tokens = False
    #: names whose released file is kept for a while
    IDLE_MAX = 64

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        base = urllib.parse.urlsplit(self.settings.url).path
        self.directory = os.path.join(base, FILE_LOCK_DIR)
        # key -> (fd, dev, ino, path, released at); descriptors NOT locked
        self._idle: collections.OrderedDict[str, tuple[int, int, int, str, float]] = (
            collections.OrderedDict()
        )
        self._idle_lock = concurrency.native_module("threading").Lock()

    def start(self) -> None:
        os.makedirs(self.directory, exist_ok=True)

    @staticmethod
    def _names(fd: int, path: str) -> tuple[int, int] | None:
        """(dev, ino) of ``fd`` if ``path`` still names its file, else None."""
        mine = os.fstat(fd)
        try:
            now = os.stat(path)
        except FileNotFoundError:
            return None
        if (now.st_dev, now.st_ino) != (mine.st_dev, mine.st_ino):
            return None
        return mine.st_dev, mine.st_ino

    def try_acquire(self, key: str) -> Held | None:
        path = os.path.join(self.directory, key)
        with self._idle_lock:
            idle = self._idle.pop(key, None)
        if idle is not None:
            fd = idle[0]
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # another process has it
                return None
            except BaseException:
                os.close(fd)
                raise
            names = self._names(fd, path)
            if names is not None:
                return Held(key, None, (fd, names[0], names[1], path), self)
            os.close(fd)  # removed by another process meanwhile
        for _attempt in range(3):
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except FileNotFoundError:
                os.makedirs(self.directory, exist_ok=True)
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            except BaseException:
                os.close(fd)
                raise
            names = self._names(fd, path)
            if names is None:
                os.close(fd)
                continue
            return Held(key, None, (fd, names[0], names[1], path), self)
        return None

    def _still_ours(self, held: Held) -> bool:
        _fd, dev, ino, path = held.data
        try:
            now = os.stat(path)
        except FileNotFoundError:
            return False
        return (now.st_dev, now.st_ino) == (dev, ino)

    def release(self, held: Held) -> bool:
        fd, dev, ino, path = held.data
        if not self._still_ours(held):
            os.close(fd)
            return False
        fcntl.flock(fd, fcntl.LOCK_UN)
        now = time.monotonic()
        with self._idle_lock:
            previous = self._idle.pop(held.key, None)
            self._idle[held.key] = (fd, dev, ino, path, now)
            evicted = [previous] if previous is not None else []
            while len(self._idle) > self.IDLE_MAX:
                evicted.append(self._idle.popitem(last=False)[1])
        for entry in evicted:
            self._remove(entry)
        return True

    @staticmethod
    def _remove(entry: tuple[int, int, int, str, float]) -> None:
        """Remove an idle lock file if it is free and still ours, close it."""
        fd, dev, ino, path, _when = entry
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # taken meanwhile: its holder removes it
        else:
            try:
                now = os.stat(path)
                if (now.st_dev, now.st_ino) == (dev, ino):
                    os.unlink(path)
            except FileNotFoundError:
                pass
        finally:
            os.close(fd)

    def tidy(self, older_than: float) -> None:
        with self._idle_lock:
            stale = [k for k, e in self._idle.items() if e[4] <= older_than]
            entries = [self._idle.pop(k) for k in stale]
        for entry in entries:
            self._remove(entry)

    def abandon(self, held: Held) -> None:
        # The kernel holds the lock as long as the descriptor is open.
        fd, _dev, _ino, path = held.data
        try:
            if self._still_ours(held):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        finally:
            os.close(fd)

    def refresh(self, held: list[Held]) -> set[str]:
        return {h.key for h in held if not self._still_ours(h)}

    def list_locks(self) -> list[str]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        free = set()
        with self._idle_lock:
            # A file kept for reuse may meanwhile be locked by another
            # process: only those whose lock can be had are free.
            for key, (fd, *_rest) in self._idle.items():
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                fcntl.flock(fd, fcntl.LOCK_UN)
                free.add(key)
        return sorted(n for n in names if not n.startswith(".") and n not in free)

    def close(self, reachable: bool = True) -> None:
        self.tidy(math.inf)


# KEYS: lock key, fence key   ARGV: owner, ttl ms
_REDIS_ACQUIRE: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local token = math.max(last + 1, now)
local text = string.format('%d', token)
redis.call('SET', KEYS[2], text)
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. text, 'PX', ARGV[2])
return text
"""

# KEYS: lock keys   ARGV: ttl ms, then one stored value per key
# Returns the 1-based positions of the keys no longer ours.
_REDIS_REFRESH: Final = """
local lost = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i + 1] then
    redis.call('PEXPIRE', key, ARGV[1])
  else
    table.insert(lost, i)
  end
end
return lost
"""

# KEYS: lock key   ARGV: stored value
_REDIS_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLocks(LockBackend):
    """``SET`` with expiry and a fencing counter, over tooz's Redis client."""

    kind = REDIS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client = _tooz_attr(self.driver, "_client")
        self._acquire = self.client.register_script(_REDIS_ACQUIRE)
        self._refresh = self.client.register_script(_REDIS_REFRESH)
        self._release = self.client.register_script(_REDIS_RELEASE)
        self._owner = "%s/%s" % (self.member_id, uuid.uuid4().hex[:12])
        self._ttl_ms = int(self.settings.lock_ttl * 1000)

    def try_acquire(self, key: str) -> Held | None:
        token = self._acquire(
            keys=[REDIS_LOCK_PREFIX + key, REDIS_FENCE_KEY],
            args=[self._owner, self._ttl_ms],
        )
        if token is None:
            return None
        text = token.decode() if isinstance(token, bytes) else str(token)
        value = ("%s %s" % (self._owner, text)).encode()
        return Held(key, int(text), value, self)

    def release(self, held: Held) -> bool:
        done = self._release(keys=[REDIS_LOCK_PREFIX + held.key], args=[held.data])
        return bool(done)

    def refresh(self, held: list[Held]) -> set[str]:
        if not held:
            return set()
        lost = self._refresh(
            keys=[REDIS_LOCK_PREFIX + h.key for h in held],
            args=[self._ttl_ms, *[h.data for h in held]],
        )
        return {held[int(i) - 1].key for i in lost or ()}

    def list_locks(self) -> list[str]:
        found = []
        for raw in self.client.scan_iter(match=REDIS_LOCK_PREFIX + "*", count=500):
            name = raw.decode() if isinstance(raw, bytes) else raw
            found.append(name[len(REDIS_LOCK_PREFIX):])
        return sorted(found)


def _b64(data: str | bytes) -> str:
    import base64

    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")


class _EtcdLeaseGone(Exception):
    """The process' lock lease expired behind its back."""


class EtcdLocks(LockBackend):
    """Keys on one lease per process, over tooz's etcd3gw client."""

    kind = ETCD

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client = _tooz_attr(self.driver, "client")
        self._lease: Any = None
        self._lease_since = 0.0
        # Callers of several threads may need the lease at once: grant one.
        self._lease_lock = concurrency.native_module("threading").Lock()

    def _ensure_lease(self) -> tuple[Any, float]:
        """The lease and when its TTL last started counting (monotonic)."""
        with self._lease_lock:
            if self._lease is None:
                sent = time.monotonic()
                self._lease = self.client.lease(self.settings.lock_ttl)
                self._lease_since = sent
            return self._lease, self._lease_since

    def _drop_lease(self, lease: Any) -> bool:
        """Forget ``lease`` if it is still the current one."""
        with self._lease_lock:
            if self._lease is not lease:
                return False
            self._lease = None
            return True

    @property
    def lease_id(self) -> int | None:
        """The id of this process' lock lease, if it has one."""
        return None if self._lease is None else int(self._lease.id)

    def try_acquire(self, key: str) -> Held | None:
        from etcd3gw import exceptions as etcd_exc

        full = _b64(ETCD_LOCK_PREFIX + key)
        for _attempt in range(2):
            lease, since = self._ensure_lease()
            txn = {
                "compare": [
                    {"key": full, "result": "EQUAL", "target": "CREATE",
                     "create_revision": 0}
                ],
                "success": [
                    {"request_put": {"key": full, "value": _b64(self.member_id),
                                     "lease": lease.id}}
                ],
                "failure": [],
            }
            try:
                result = self.client.transaction(txn)
            except etcd_exc.Etcd3Exception as err:
                if "lease not found" not in (err.detail_text or "").lower():
                    raise
                # The lease expired (this process was silent for a TTL):
                # every lock on it is gone.  Start over on a new lease.
                if self._drop_lease(lease):
                    self.on_lost("the lock lease expired")
                continue
            if not result.get("succeeded"):
                return None
            return Held(key, int(result["header"]["revision"]), full, self, since)
        return None

    def release(self, held: Held) -> bool:
        txn = {
            "compare": [
                {"key": held.data, "result": "EQUAL", "target": "CREATE",
                 "create_revision": held.token}
            ],
            "success": [{"request_delete_range": {"key": held.data}}],
            "failure": [],
        }
        return bool(self.client.transaction(txn).get("succeeded"))

    def refresh(self, held: list[Held]) -> set[str]:
        # Kept alive on every heartbeat, held locks or not: a lock taken
        # later lives only as long as the lease's last refresh allows.
        lease = self._lease
        if lease is None:
            return {h.key for h in held}
        sent = time.monotonic()
        if lease.refresh() == -1:
            self._drop_lease(lease)
            return {h.key for h in held}
        with self._lease_lock:
            if self._lease is lease:
                self._lease_since = max(self._lease_since, sent)
        if not held:
            return set()
        txn = {
            "compare": [
                {"key": h.data, "result": "EQUAL", "target": "CREATE",
                 "create_revision": h.token}
                for h in held
            ],
            "success": [],
            "failure": [],
        }
        if self.client.transaction(txn).get("succeeded"):
            return set()
        lost = set()
        for h in held:
            found = self.client.get(ETCD_LOCK_PREFIX + h.key, metadata=True)
            if not found or int(found[0][1].get("create_revision", 0)) != h.token:
                lost.add(h.key)
        return lost

    def list_locks(self) -> list[str]:
        end = ETCD_LOCK_PREFIX[:-1] + chr(ord(ETCD_LOCK_PREFIX[-1]) + 1)
        found = self.client.get(
            ETCD_LOCK_PREFIX, metadata=True, range_end=end, keys_only=True
        )
        names = []
        for _value, meta in found:
            key = meta["key"]
            key = key.decode() if isinstance(key, bytes) else key
            names.append(key[len(ETCD_LOCK_PREFIX):])
        return sorted(names)

    def close(self, reachable: bool = True) -> None:
        with self._lease_lock:
            lease, self._lease = self._lease, None
        if lease is not None and reachable:
            lease.revoke()


class ZooKeeperLocks(LockBackend):
    """Ephemeral znodes of the coordinator's session, over tooz's kazoo client."""

    kind = ZOOKEEPER

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client = _tooz_attr(self.driver, "_coord")
        self._session: int | None = None
        self._session_lost = False

    def start(self) -> None:
        self.client.ensure_path(ZK_LOCK_PATH)
        self._session = self._session_id()
        self.client.add_listener(self._state_changed)

    def check_connected(self) -> None:
        # kazoo queues a request made while it reconnects and waits, without
        # a timeout, for the connection to come back.
        if self.client.state != "CONNECTED" or self._session_lost:
            from kazoo import exceptions as kazoo_exc

            raise kazoo_exc.ConnectionLoss(
                "ZooKeeper connection %s" % str(self.client.state).lower()
            )

    def close(self, reachable: bool = True) -> None:
        # A client that is not connected is stopped first: tooz's stop then
        # fails fast instead of waiting for the connection to leave groups.
        if not reachable or self.client.state != "CONNECTED":
            self.client.stop()

    def _session_id(self) -> int | None:
        client_id = self.client.client_id
        return None if client_id is None else int(client_id[0])

    def _state_changed(self, state: str) -> bool:
        # Called on kazoo's thread; only flag it and tell the coordinator.
        if state == "LOST":
            self._session_lost = True
            self.on_lost("the ZooKeeper session expired")
            return True  # remove the listener: this session is over
        return False

    def try_acquire(self, key: str) -> Held | None:
        from kazoo import exceptions as kazoo_exc

        path = ZK_LOCK_PATH + "/" + key
        for _attempt in range(2):
            try:
                created, stat = self.client.create(
                    path, self.member_id.encode(), ephemeral=True, include_data=True
                )
            except kazoo_exc.NodeExistsError:
                return None
            except kazoo_exc.NoNodeError:
                self.client.ensure_path(ZK_LOCK_PATH)
                continue
            session = self._session_id()
            return Held(key, int(stat.czxid), (created, session), self)
        return None

    def _ours(self, held: Held, stat: Any) -> bool:
        _path, session = held.data
        return (
            stat is not None
            and int(stat.czxid) == held.token
            and int(stat.ephemeralOwner) == session
        )

    def release(self, held: Held) -> bool:
        from kazoo import exceptions as kazoo_exc

        path, _session = held.data
        stat = self.client.exists(path)
        if not self._ours(held, stat):
            return False
        try:
            self.client.delete(path, version=stat.version)
        except (kazoo_exc.NoNodeError, kazoo_exc.BadVersionError):
            return False
        return True

    def refresh(self, held: list[Held]) -> set[str]:
        if (
            self._session_lost
            or self.client.state != "CONNECTED"
            or self._session_id() != self._session
        ):
            return {h.key for h in held}
        pending = [(h, self.client.exists_async(h.data[0])) for h in held]
        timeout = self.settings.io_timeout
        return {
            h.key for h, result in pending
            if not self._ours(h, result.get(timeout=timeout))
        }

    def list_locks(self) -> list[str]:
        from kazoo import exceptions as kazoo_exc

        try:
            return sorted(self.client.get_children(ZK_LOCK_PATH))
        except kazoo_exc.NoNodeError:
            return []

    def session_timeout(self) -> float:
        """The session timeout the server granted, in seconds."""
        granted = getattr(self.client, "_session_timeout", None)
        if granted:
            return float(granted) / 1000.0
        return self.settings.effective_lock_ttl


_LOCK_BACKENDS: Final[dict[str, type[LockBackend]]] = {
    FILE: FileLocks,
    REDIS: RedisLocks,
    ETCD: EtcdLocks,
    ZOOKEEPER: ZooKeeperLocks,
}


def make_lock_backend(
    driver: Any, settings: Settings, member_id: str, on_lost: Callable[[str], None]
) -> LockBackend:
    """Build and start the lock back end matching ``settings.kind``."""
    backend = _LOCK_BACKENDS[settings.kind](driver, settings, member_id, on_lost)
    backend.start()
    return backend


def errno_text(err: BaseException) -> str:
    """Describe a back end error in a few words (no secrets, no traceback)."""
    if isinstance(err, OSError) and err.errno is not None:
        code = errno.errorcode.get(err.errno, err.errno)
        return "%s (%s)" % (os.strerror(err.errno), code)
    text = str(err) or type(err).__name__
    return text.splitlines()[0][:300]
