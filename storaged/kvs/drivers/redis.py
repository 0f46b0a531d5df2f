"""The shared state store: a Redis server every node points at.

URL: ``redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]``, or ``rediss://`` for
TLS, which also takes ``?ssl_ca_certs=PATH``, ``ssl_certfile``,
``ssl_keyfile``, ``ssl_cert_reqs=none|optional|required`` and
``ssl_check_hostname=true|false``.  Characters such as ``@``, ``/`` or
``:`` in a password must be percent-encoded.  Nothing is sent until the
first operation; an unreachable server makes that operation fail with
:class:`~storaged.exception.KVSBackendError`.

Layout
    Every key storaged writes starts with ``storaged:``: values under
    ``storaged:kv:<key>`` as ``<version>:<JSON>``, leases under
    ``storaged:lock:<name>`` holding the token, with Redis' own expiry
    (``PX``), and ``storaged:fence``, the last token handed out.  Point
    several storaged clusters at different database numbers, not at one.
    Redis Cluster is not supported (a fenced write touches the value and
    the lock key in one script).

Atomicity and fencing
    Everything that reads and then writes is a Lua script, registered once
    and run with EVALSHA, so Redis runs it without interleaving anything
    else: a write under a lease checks the lock key's token and writes in
    the same script; acquisition hands out
    ``max(last token + 1, server time in microseconds)``, so tokens keep
    growing even if ``storaged:fence`` was lost with a non-persistent server.
    Expiry is judged by the server's clock.

Durability
    Whatever the server is configured for: with ``appendonly yes`` and
    ``appendfsync always`` an acknowledged write survives a crash of the
    server; with ``everysec`` about one second may be lost; without
    persistence, a restart loses everything.

Failures
    Connection problems and timeouts (``[kvs] timeout`` for both connecting
    and each reply) raise :class:`~storaged.exception.KVSBackendError`.
    Nothing is retried automatically: a script that ran but whose reply was
    lost must not run twice.  The next operation opens a new connection.

Concurrency
    redis-py's connection pool is shared by all threads; under eventlet the
    sockets are green, so call the store from green threads directly.
"""

from __future__ import annotations

from collections.abc import Iterator
import math
import re
from types import TracebackType
from typing import Any
from typing import Final
import urllib.parse

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from storaged import exception
from storaged.kvs import base

NAMESPACE: Final = "storaged:"
_KV: Final = NAMESPACE + "kv:"
_LOCK: Final = NAMESPACE + "lock:"
_FENCE: Final = NAMESPACE + "fence"
_PAGE: Final = 500

_TLS_OPTIONS: Final = {
    "ssl_ca_certs": str,
    "ssl_certfile": str,
    "ssl_keyfile": str,
    "ssl_cert_reqs": ("none", "optional", "required"),
    "ssl_check_hostname": ("true", "false"),
}

# KEYS: n value keys [, lock key]   ARGV: n, ttl ms or 0, token or '', n JSON
_SET_SCRIPT: Final = """
local n = tonumber(ARGV[1])
if ARGV[3] ~= '' and redis.call('GET', KEYS[n + 1]) ~= ARGV[3] then
  return 0
end
local now = redis.call('TIME')
local first = tonumber(now[1]) * 1000000 + tonumber(now[2])
for i = 1, n do
  local version = first
  local old = redis.call('GET', KEYS[i])
  if old then
    local colon = string.find(old, ':', 1, true)
    local previous = colon and tonumber(string.sub(old, 1, colon - 1))
    if previous then version = previous + 1 end
  end
  local value = string.format('%.0f', version) .. ':' .. ARGV[3 + i]
  if ARGV[2] == '0' then
    redis.call('SET', KEYS[i], value)
  else
    redis.call('SET', KEYS[i], value, 'PX', ARGV[2])
  end
end
return 1
"""

# KEYS: n value keys, lock key   ARGV: n, token
_DELETE_FENCED_SCRIPT: Final = """
local n = tonumber(ARGV[1])
if redis.call('GET', KEYS[n + 1]) ~= ARGV[2] then
  return -1
end
local deleted = 0
for i = 1, n do
  deleted = deleted + redis.call('DEL', KEYS[i])
end
return deleted
"""

# KEYS: key   ARGV: expected version or '' (absent), ttl ms or 0, JSON
_CAS_SCRIPT: Final = """
local old = redis.call('GET', KEYS[1])
local found = ''
if old then
  local colon = string.find(old, ':', 1, true) or 1
  found = string.sub(old, 1, colon - 1)
end
if found ~= ARGV[1] then
  return {0, found}
end
local version
if old then
  version = tonumber(found) + 1
else
  local now = redis.call('TIME')
  version = tonumber(now[1]) * 1000000 + tonumber(now[2])
end
local text = string.format('%.0f', version)
if ARGV[2] == '0' then
  redis.call('SET', KEYS[1], text .. ':' .. ARGV[3])
else
  redis.call('SET', KEYS[1], text .. ':' .. ARGV[3], 'PX', ARGV[2])
end
return {1, text}
"""

# KEYS: lock key, fence counter   ARGV: ttl ms
_ACQUIRE_SCRIPT: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return false
end
local now = redis.call('TIME')
local token = tonumber(now[1]) * 1000000 + tonumber(now[2])
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
if last and last >= token then
  token = last + 1
end
local text = string.format('%.0f', token)
redis.call('SET', KEYS[2], text)
redis.call('SET', KEYS[1], text, 'PX', ARGV[1])
return text
"""

# KEYS: lock key   ARGV: token, ttl ms
_REFRESH_SCRIPT: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: lock key   ARGV: token
_RELEASE_SCRIPT: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

_PARAM_RE: Final = re.compile(r"^[A-Za-z_]{1,40}$")
_GLOB_SPECIAL: Final = re.compile(r"([\\*?\[\]])")


def _ms(seconds: float | None) -> str:
    """Redis ``PX`` argument: whole milliseconds rounded up, '0' for none."""
    if seconds is None:
        return "0"
    return str(max(1, math.ceil(seconds * 1000)))


def _split(stored: str | bytes) -> tuple[str, int]:
    """Split ``<version>:<JSON>`` into the JSON text and the version."""
    if isinstance(stored, bytes):  # the client decodes; typing cannot know
        stored = stored.decode("utf-8")
    version, _, raw = stored.partition(":")
    try:
        return raw, int(version)
    except ValueError:
        raise exception.KVSError(
            reason=f"a value in the {NAMESPACE} namespace was not written by storaged"
        ) from None


class _Errors:
    """Translate redis-py failures into :class:`KVSBackendError`.

    The message names the server (never the password) and redis-py's
    reason.
    """

    def __init__(self, backend: str) -> None:
        self.backend = backend

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, redis.RedisError):
            raise exception.KVSBackendError(
                backend=self.backend,
                reason=f"{type(exc).__name__}: {exc}",
            ) from exc


class RedisKVS(base.KeyValueStore):
    """A :class:`~storaged.kvs.base.KeyValueStore` on a Redis server."""

    schemes = ("redis", "rediss")

    @classmethod
    def parse_url(cls, url: str) -> dict[str, Any]:
        """Return redis-py connection arguments for a ``redis(s)://`` URL.

        The messages never quote the URL: a password with unencoded special
        characters would spill into whichever part gets quoted.
        """
        form = "redis://[:PASSWORD@]HOST[:PORT][/DB]"
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port
        except ValueError:
            raise ValueError(
                "redis URL port must be a number from 1 to 65535"
            ) from None
        if parts.scheme not in cls.schemes:
            raise ValueError(f"redis URL has the form {form} (rediss:// for TLS)")
        if parts.fragment:
            raise ValueError(
                "redis URL must not have a #fragment (write a '#' in a password as %23)"
            )
        if not parts.hostname:
            raise ValueError(f"redis URL names no host ({form})")
        if port == 0:
            raise ValueError("redis URL port must be a number from 1 to 65535")
        path = parts.path.strip("/")
        if path and not path.isdigit():
            raise ValueError("redis URL database must be a number (/0, /1 ...)")
        userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else None
        if userinfo is not None and ":" not in userinfo:
            raise ValueError(
                "redis URL: put the password after a colon (redis://:PASSWORD@HOST "
                "or redis://USER:PASSWORD@HOST)"
            )
        username = urllib.parse.unquote(parts.username) if parts.username else None
        password = urllib.parse.unquote(parts.password) if parts.password else None
        kwargs: dict[str, Any] = {
            "host": parts.hostname,
            "port": port or 6379,
            "db": int(path) if path else 0,
            "username": username,
            "password": password,
            "ssl": parts.scheme == "rediss",
        }
        known = ", ".join(sorted(_TLS_OPTIONS))
        for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
            allowed = _TLS_OPTIONS.get(name)
            if allowed is None:
                shown = repr(name) if _PARAM_RE.match(name) else "(unprintable)"
                raise ValueError(
                    f"redis URL parameter {shown} is not known (rediss:// takes "
                    f"{known})"
                )
            if parts.scheme != "rediss":
                raise ValueError(f"redis URL parameter {name} needs rediss:// (TLS)")
            if isinstance(allowed, tuple) and value not in allowed:
                raise ValueError(
                    f"redis URL parameter {name} must be one of {', '.join(allowed)}"
                )
            kwargs[name] = value == "true" if name == "ssl_check_hostname" else value
        return kwargs

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        sqlite_synchronous: str = "normal",
        default_lock_ttl: float = 30.0,
    ) -> None:
        super().__init__(
            url,
            timeout=timeout,
            sqlite_synchronous=sqlite_synchronous,
            default_lock_ttl=default_lock_ttl,
        )
        kwargs = self.parse_url(url)
        self.server = "{}:{}/{}".format(kwargs["host"], kwargs["port"], kwargs["db"])
        self._errors = _Errors("redis " + self.server)
        self._client = redis.Redis(
            **kwargs,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            decode_responses=True,
            retry=Retry(NoBackoff(), 0),
        )
        self._set_script = self._client.register_script(_SET_SCRIPT)
        self._delete_fenced_script = self._client.register_script(_DELETE_FENCED_SCRIPT)
        self._cas_script = self._client.register_script(_CAS_SCRIPT)
        self._acquire_script = self._client.register_script(_ACQUIRE_SCRIPT)
        self._refresh_script = self._client.register_script(_REFRESH_SCRIPT)
        self._release_script = self._client.register_script(_RELEASE_SCRIPT)

    #: redis-py's sockets and locks are green under eventlet: its calls run
    #: on the hub's thread (from the pool's threads, two of them waiting on
    #: one of its green locks hang).
    blocking_io = False

    def __repr__(self) -> str:
        return f"<RedisKVS {self.server}>"

    def _redis(self) -> redis.Redis:
        if self._closed:
            raise self._closed_error()
        return self._client

    def close(self) -> None:
        """Close the connection pool."""
        super().close()
        try:
            self._client.close()
        except redis.RedisError:
            pass

    # -- primitives ---------------------------------------------------------

    def _get(self, key: str) -> str | None:
        with self._errors:
            stored = self._redis().get(_KV + key)
        return None if stored is None else _split(stored)[0]

    def _get_versioned(self, key: str) -> tuple[str, int] | None:
        with self._errors:
            stored = self._redis().get(_KV + key)
        return None if stored is None else _split(stored)

    def _get_multi(self, keys: list[str]) -> list[str | None]:
        with self._errors:
            found = self._redis().mget([_KV + key for key in keys])
        return [None if stored is None else _split(stored)[0] for stored in found]

    def _set(
        self, key: str, raw: str, ttl: float | None, fence: base.Fence | None
    ) -> None:
        self._set_multi([(key, raw)], ttl, fence)

    def _set_multi(
        self, items: list[tuple[str, str]], ttl: float | None, fence: base.Fence | None
    ) -> None:
        keys = [_KV + key for key, _ in items]
        token = ""
        if fence is not None:
            keys.append(_LOCK + fence[0])
            token = str(fence[1])
        args: list[str | int] = [len(items), _ms(ttl), token]
        args.extend(raw for _, raw in items)
        with self._errors:
            done = self._set_script(keys=keys, args=args, client=self._redis())
        if not done:
            raise base.FenceRejected()

    def _delete(self, key: str, fence: base.Fence | None) -> bool:
        with self._errors:
            if fence is None:
                return bool(self._redis().delete(_KV + key))
            deleted = self._delete_fenced_script(
                keys=[_KV + key, _LOCK + fence[0]],
                args=[1, fence[1]],
                client=self._redis(),
            )
        if deleted < 0:
            raise base.FenceRejected()
        return bool(deleted)

    def _delete_multi(self, keys: list[str], fence: base.Fence | None) -> None:
        stored = [_KV + key for key in keys]
        with self._errors:
            if fence is None:
                self._redis().delete(*stored)
                return
            deleted = self._delete_fenced_script(
                keys=[*stored, _LOCK + fence[0]],
                args=[len(stored), fence[1]],
                client=self._redis(),
            )
        if deleted < 0:
            raise base.FenceRejected()

    def _compare_and_set(
        self, key: str, expected: int | None, raw: str, ttl: float | None
    ) -> tuple[bool, int | None]:
        with self._errors:
            ok, version = self._cas_script(
                keys=[_KV + key],
                args=["" if expected is None else str(expected), _ms(ttl), raw],
                client=self._redis(),
            )
        return bool(ok), int(version) if version else None

    def _scan(self, prefix: str) -> Iterator[tuple[str, str]]:
        pattern = _KV + _GLOB_SPECIAL.sub(r"\\\1", prefix) + "*"
        with self._errors:
            names = sorted(self._redis().scan_iter(match=pattern, count=1000))
        skip = len(_KV)
        for start in range(0, len(names), _PAGE):
            page = names[start : start + _PAGE]
            with self._errors:
                found = self._redis().mget(page)
            for name, stored in zip(page, found, strict=True):
                if stored is not None:  # expired or deleted since SCAN
                    yield name[skip:], _split(stored)[0]

    def _purge_expired(self) -> int:
        # Redis removes expired keys by itself; lock keys vanish on release.
        return 0

    def _acquire(self, name: str, ttl: float) -> int | None:
        with self._errors:
            token = self._acquire_script(
                keys=[_LOCK + name, _FENCE], args=[_ms(ttl)], client=self._redis()
            )
        return None if token is None else int(token)

    def _refresh(self, name: str, token: int, ttl: float) -> bool:
        with self._errors:
            done = self._refresh_script(
                keys=[_LOCK + name], args=[token, _ms(ttl)], client=self._redis()
            )
        return bool(done)

    def _release(self, name: str, token: int) -> bool:
        with self._errors:
            done = self._release_script(
                keys=[_LOCK + name], args=[token], client=self._redis()
            )
        return bool(done)
