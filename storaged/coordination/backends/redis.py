"""Locks on a Redis back end, over tooz's Redis client.

``redis://``
    ``storaged:coord:lock:<stored name>`` holding ``<member> <token>``, with
    Redis' own expiry; the token is ``max(last token + 1, server time in
    microseconds)`` kept in ``storaged:coord:fence`` (the scheme of the
    state store's leases), set in the same script as the lock.
"""

from __future__ import annotations

from typing import Any
from typing import Final
import uuid

from storaged.coordination import errors
from storaged.coordination.backends.base import Held
from storaged.coordination.backends.base import LockBackend
from storaged.coordination.backends.base import tooz_attr
from storaged.coordination.backends.settings import REDIS
from storaged.coordination.backends.settings import Settings

REDIS_LOCK_PREFIX: Final = "storaged:coord:lock:"
REDIS_FENCE_KEY: Final = "storaged:coord:fence"


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
        self.client = tooz_attr(self.driver, "_client")
        self._acquire = self.client.register_script(_REDIS_ACQUIRE)
        self._refresh = self.client.register_script(_REDIS_REFRESH)
        self._release = self.client.register_script(_REDIS_RELEASE)
        self._owner = "%s/%s" % (self.member_id, uuid.uuid4().hex[:12])
        self._ttl_ms = int(self.settings.lock_ttl * 1000)

    @classmethod
    def prepare_driver(cls, driver: Any, settings: Settings) -> None:
        """Take the retries out of the client tooz makes.

        redis-py 6 and later retry a failed command ten times with a
        backoff of up to a second each, and tooz retries connection errors
        fifteen times on top: a heartbeat against a server that is down
        would take minutes instead of failing at once.  The client tooz
        makes gets no retries; the heartbeat thread is what retries, with
        its own backoff.
        """
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

