"""In-process state store, for tests only.

Same semantics as the real drivers (expiry, versions, fencing tokens), kept
in a dict guarded by one lock.  ``memory://`` gives a private, empty store;
``memory://NAME`` gives the store of that name, shared by every handle in
the process (data lives until the process exits), so a test can "reopen"
it.  Nothing is durable.  Deliberately not an entry point: a configuration
file cannot select it.
"""

from __future__ import annotations

from collections.abc import Iterator
import re
import time
from typing import Final

from storaged import concurrency
from storaged.kvs import base

_NAME_RE: Final = re.compile(r"^[A-Za-z0-9._-]{0,128}$")
_PAGE: Final = 500


class _Data:
    """The contents of one memory store."""

    def __init__(self) -> None:
        # Native: callers under eventlet enter through run_blocking's pool.
        self.lock = concurrency.native_lock()
        #: stored key -> (JSON text, version, expires_at or None)
        self.values: dict[str, tuple[str, int, float | None]] = {}
        #: stored lock name -> (token, expires_at); 0 once released
        self.locks: dict[str, tuple[int, float]] = {}
        #: highest token of a lock record that was purged
        self.fence_floor = 0


_named: dict[str, _Data] = {}
_named_lock = concurrency.native_lock()


class MemoryKVS(base.KeyValueStore):
    """A :class:`~storaged.kvs.base.KeyValueStore` in this process's memory."""

    schemes = ("memory",)

    @classmethod
    def parse_url(cls, url: str) -> str:
        """Return the store name of ``memory://[NAME]`` (empty: private)."""
        if not url.startswith("memory://"):
            raise ValueError("memory URL has the form memory://[NAME]")
        name = url[len("memory://") :]
        if not _NAME_RE.match(name):
            raise ValueError(
                "memory URL name: use up to 128 letters, digits, '.', '_' or '-'"
            )
        return name

    def __init__(
        self,
        url: str = "memory://",
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
        name = self.parse_url(url)
        if not name:
            self._data = _Data()
        else:
            with _named_lock:
                self._data = _named.setdefault(name, _Data())

    def __repr__(self) -> str:
        return f"<MemoryKVS at {id(self._data):#x}>"

    def _check(self) -> _Data:
        if self._closed:
            raise self._closed_error()
        return self._data

    @staticmethod
    def _live(entry: tuple[str, int, float | None] | None, now: float) -> bool:
        return entry is not None and (entry[2] is None or entry[2] > now)

    @staticmethod
    def _fence_ok(data: _Data, fence: base.Fence | None, now: float) -> bool:
        if fence is None:
            return True
        held = data.locks.get(fence[0])
        return held is not None and held[0] == fence[1] and held[1] > now

    @staticmethod
    def _put(data: _Data, key: str, raw: str, ttl: float | None, now: float) -> int:
        old = data.values.get(key)
        version = old[1] + 1 if old is not None else base.now_us(now)
        data.values[key] = (raw, version, None if ttl is None else now + ttl)
        return version

    def _get(self, key: str) -> str | None:
        data = self._check()
        with data.lock:
            entry = data.values.get(key)
            if entry is None or not self._live(entry, time.time()):
                return None
            return entry[0]

    def _get_versioned(self, key: str) -> tuple[str, int] | None:
        data = self._check()
        with data.lock:
            entry = data.values.get(key)
            if entry is None or not self._live(entry, time.time()):
                return None
            return entry[0], entry[1]

    def _get_multi(self, keys: list[str]) -> list[str | None]:
        data = self._check()
        now = time.time()
        with data.lock:
            out: list[str | None] = []
            for key in keys:
                entry = data.values.get(key)
                out.append(
                    entry[0] if entry is not None and self._live(entry, now) else None
                )
            return out

    def _set(
        self, key: str, raw: str, ttl: float | None, fence: base.Fence | None
    ) -> None:
        self._set_multi([(key, raw)], ttl, fence)

    def _set_multi(
        self, items: list[tuple[str, str]], ttl: float | None, fence: base.Fence | None
    ) -> None:
        data = self._check()
        with data.lock:
            now = time.time()
            if not self._fence_ok(data, fence, now):
                raise base.FenceRejected()
            for key, raw in items:
                self._put(data, key, raw, ttl, now)

    def _delete(self, key: str, fence: base.Fence | None) -> bool:
        data = self._check()
        with data.lock:
            now = time.time()
            if not self._fence_ok(data, fence, now):
                raise base.FenceRejected()
            entry = data.values.pop(key, None)
            return self._live(entry, now)

    def _delete_multi(self, keys: list[str], fence: base.Fence | None) -> None:
        data = self._check()
        with data.lock:
            if not self._fence_ok(data, fence, time.time()):
                raise base.FenceRejected()
            for key in keys:
                data.values.pop(key, None)

    def _compare_and_set(
        self, key: str, expected: int | None, raw: str, ttl: float | None
    ) -> tuple[bool, int | None]:
        data = self._check()
        with data.lock:
            now = time.time()
            entry = data.values.get(key)
            found = entry[1] if entry is not None and self._live(entry, now) else None
            if found != expected:
                return False, found
            return True, self._put(data, key, raw, ttl, now)

    def _scan(self, prefix: str) -> Iterator[tuple[str, str]]:
        data = self._check()
        after: str | None = None
        while True:
            with data.lock:
                now = time.time()
                keys = sorted(
                    k
                    for k, entry in data.values.items()
                    if k.startswith(prefix)
                    and (after is None or k > after)
                    and self._live(entry, now)
                )[:_PAGE]
                page = [(k, data.values[k][0]) for k in keys]
            yield from page
            if len(page) < _PAGE:
                return
            after = page[-1][0]

    def _purge_expired(self) -> int:
        data = self._check()
        with data.lock:
            now = time.time()
            dead = [k for k, e in data.values.items() if not self._live(e, now)]
            for key in dead:
                del data.values[key]
            free = [n for n, (_, exp) in data.locks.items() if exp <= now]
            for name in free:
                data.fence_floor = max(data.fence_floor, data.locks.pop(name)[0])
            return len(dead)

    def _acquire(self, name: str, ttl: float) -> int | None:
        data = self._check()
        with data.lock:
            now = time.time()
            held = data.locks.get(name)
            if held is not None and held[1] > now:
                return None
            last = held[0] if held is not None else data.fence_floor
            token = max(last + 1, base.now_us(now))
            data.locks[name] = (token, now + ttl)
            return token

    def _refresh(self, name: str, token: int, ttl: float) -> bool:
        data = self._check()
        with data.lock:
            now = time.time()
            held = data.locks.get(name)
            if held is None or held[0] != token or held[1] <= now:
                return False
            data.locks[name] = (token, now + ttl)
            return True

    def _release(self, name: str, token: int) -> bool:
        data = self._check()
        with data.lock:
            held = data.locks.get(name)
            if held is None or held[0] != token or held[1] <= time.time():
                return False
            data.locks[name] = (token, 0.0)
            return True
