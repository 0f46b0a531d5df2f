"""Which coordination URLs storaged accepts, and its settings per back end.

How the ``[coordination]`` TTLs become tooz driver options, and which URLs
are refused (:func:`check_url`, :func:`settings_from_conf`); :class:`Settings`
is what every other part of the coordination layer reads.  :data:`SCHEMES`
maps each accepted scheme to a back end kind, and each kind has a lock back
end in the ``storaged.coordination.locks`` entry points (``setup.cfg``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from typing import Any
from typing import Final
import urllib.parse

from oslo_config import cfg

from storaged import concurrency
from storaged import exception

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

