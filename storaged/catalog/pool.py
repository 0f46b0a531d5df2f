"""A bounded, per-process pool of open container brokers.

Opening a container database costs far more than using it: sqlite opens
the file, its WAL and its shared memory (three descriptors), the WAL mode
and the schema are checked, and closing the last connection checkpoints
and removes the WAL, which the next open makes again.  Measured on one
container (3,000 ``get_object`` calls): about 200-400 µs per call when
each call opens and closes its broker, about 20 µs on a broker kept open.
So the object service leases brokers from this pool instead of opening one
per request, and a long-running process holds at most ``size`` of them
open (three descriptors each) instead of one per request until garbage
collection.

Leases are counted: the least recently used broker is closed when the pool
is over its size, or, if some thread is still using it, as soon as that
thread returns it; a lease never sees its broker closed under it.  Brokers
are safe to share between threads (their database guards its connection
with a native lock), and a broker whose database was moved away (reclaimed,
quarantined) notices on its next use and reopens, so keeping one open
changes nothing a caller sees.  Example::

    pool = BrokerPool(catalog.container, size=32)
    with pool.lease("AUTH_test", "photos") as broker:
        broker.get_object("cat.jpg")
    pool.close()
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
import contextlib
import dataclasses
import os
from typing import Final

from storaged import concurrency
from storaged.catalog.broker import ContainerBroker

#: Brokers a process keeps open by default (three descriptors each).
DEFAULT_POOL_SIZE: Final = 32


@dataclasses.dataclass
class _Entry:
    broker: ContainerBroker
    pid: int
    users: int = 0


class BrokerPool:
    """Container brokers kept open, least recently used closed first.

    :param open_broker: makes the broker of ``(account, container)``
        (names already checked, or checked by it).
    :param size: how many brokers stay open when nobody uses them; 0
        closes each broker when its lease ends.
    """

    def __init__(
        self,
        open_broker: Callable[[str, str], ContainerBroker],
        size: int = DEFAULT_POOL_SIZE,
    ) -> None:
        if size < 0:
            raise ValueError("size must be 0 or more")
        self._open = open_broker
        self.size = size
        # Native: taken briefly by green threads and by the native threads
        # that run blocking calls, never held across I/O.
        self._lock = concurrency.native_module("threading").Lock()
        # Insertion order is recency: the first entry is the least recent.
        self._entries: dict[tuple[str, str], _Entry] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    @contextlib.contextmanager
    def lease(self, account: str, container: str) -> Iterator[ContainerBroker]:
        """Lend the broker of a container for the duration of a block."""
        key = (account, container)
        pid = os.getpid()
        with self._lock:
            entry = self._take(key, pid)
        if entry is None:
            # Made outside the lock (cheap: the database opens lazily).
            fresh = _Entry(self._open(account, container), pid)
            with self._lock:
                entry = self._take(key, pid)
                if entry is None:
                    entry = self._entries[key] = fresh
                    entry.users += 1
        with self._lock:
            retired = self._over_size()
        for old in retired:
            old.broker.close()
        try:
            yield entry.broker
        finally:
            with self._lock:
                entry.users -= 1
                detached = self._entries.get(key) is not entry
                close = entry.users == 0 and (detached or self.size == 0)
                if close and not detached:
                    del self._entries[key]
            if close:
                entry.broker.close()

    def _take(self, key: tuple[str, str], pid: int) -> _Entry | None:
        """Count a lease of the pooled entry, most recent now; caller locks.

        An entry made before a fork is forgotten, not closed: the database
        leaves the parent's connection alone in this process.
        """
        entry = self._entries.pop(key, None)
        if entry is None or entry.pid != pid:
            return None
        self._entries[key] = entry
        entry.users += 1
        return entry

    def _over_size(self) -> list[_Entry]:
        """Drop the least recent entries past ``size``; return the idle ones.

        Caller holds the lock.  An entry in use is dropped too: its last
        lease closes it.
        """
        idle = []
        while len(self._entries) > max(self.size, 1):
            key = next(iter(self._entries))
            entry = self._entries.pop(key)
            if entry.users == 0:
                idle.append(entry)
        return idle

    def discard(self, account: str, container: str) -> None:
        """Close a container's pooled broker now, if it is idle."""
        with self._lock:
            entry = self._entries.get((account, container))
            if entry is None or entry.users:
                return
            del self._entries[(account, container)]
        entry.broker.close()

    def close(self) -> None:
        """Close every idle broker; those in use close when returned."""
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:
            if entry.users == 0:
                entry.broker.close()
