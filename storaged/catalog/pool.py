"""A bounded, per-process pool of open container brokers.

Opening a container database costs far more than using it: sqlite opens
the file, its WAL and its shared memory (three descriptors), the WAL mode
and the schema are checked, and closing the last connection checkpoints
and removes the WAL, which the next open makes again.  Measured on one
container (3,000 ``head_object`` calls of the object service): about
550 µs per call when each call opens and closes its broker, about 30 µs
with a broker kept open.
So the object service leases brokers from this pool instead of opening one
per request, and a long-running process holds at most ``size`` of them
open (three descriptors each) instead of one per request until garbage
collection.

A lease is exclusive: a broker is lent to one caller at a time, and
concurrent requests for one container get brokers (sqlite connections) of
their own, opened when no idle one is there, as they would without the
pool: a write waiting for another process's lock never holds up a read of
the same container in this process.  Only idle brokers are pooled; when
more than ``size`` are idle, the least recently returned is closed.  So a
process holds at most ``size`` idle brokers plus one per request in
flight.  A broker whose database was moved away (reclaimed, quarantined)
notices on its next use and reopens, so keeping one open changes nothing
a caller sees.  Example::

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
    key: tuple[str, str]
    broker: ContainerBroker
    pid: int


class BrokerPool:
    """Idle container brokers kept open, least recently returned closed first.

    :param open_broker: makes the broker of ``(account, container)``
        (names already checked, or checked by it).
    :param size: how many idle brokers stay open; 0 closes each broker
        when its lease ends.
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
        # Idle brokers, least recently returned first (a few dozen: a
        # linear search costs nothing next to a query).
        self._idle: list[_Entry] = []
        self._closed = False

    def __len__(self) -> int:
        """The number of idle brokers kept open."""
        with self._lock:
            return len(self._idle)

    @contextlib.contextmanager
    def lease(self, account: str, container: str) -> Iterator[ContainerBroker]:
        """Lend a broker of a container, to this caller alone, for a block."""
        key = (account, container)
        pid = os.getpid()
        with self._lock:
            entry = self._take(key, pid)
        if entry is None:
            # Made outside the lock (cheap: the database opens lazily).
            entry = _Entry(key, self._open(account, container), pid)
        try:
            yield entry.broker
        finally:
            retired = [entry]
            with self._lock:
                if not self._closed and self.size > 0:
                    self._idle.append(entry)
                    retired = self._idle[:-self.size] if len(
                        self._idle) > self.size else []
                    del self._idle[:len(retired)]
            for old in retired:
                old.broker.close()

    def _take(self, key: tuple[str, str], pid: int) -> _Entry | None:
        """Take the most recent idle broker of ``key``; caller locks.

        Brokers made before a fork are forgotten, not closed: the database
        leaves the parent's connection alone in this process.
        """
        if self._idle and self._idle[0].pid != pid:
            self._idle = [e for e in self._idle if e.pid == pid]
        for i in range(len(self._idle) - 1, -1, -1):
            if self._idle[i].key == key:
                return self._idle.pop(i)
        return None

    def close(self) -> None:
        """Close every idle broker; those lent are closed when returned."""
        with self._lock:
            entries, self._idle = self._idle, []
            self._closed = True
        for entry in entries:
            entry.broker.close()
