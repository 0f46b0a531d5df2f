"""Group commit: concurrent writes to one database share a transaction.

The callers of one process that change the same container database at the
same time (the API's requests, each on a native thread of the pool) would
each wait for the write lock and then pay a commit of their own: with
``synchronous = full`` a flush of the WAL each.  Instead each caller queues its
change; one of them, the leader, runs every queued change in one
transaction, each in a savepoint of its own (a change that fails is rolled
back alone and its caller gets the error), commits once, and hands every
caller its own result.

Durability is unchanged: a caller returns only after the commit that holds
its change (an error of the commit reaches every caller of the batch, none
of whose changes were committed).  Fairness: a leader serves the queue only
until its own change is committed, then passes the lead to the first
caller still waiting.  A batch holds at most :data:`MAX_BATCH` changes.

Callers wait on native primitives, as they waited for the database's
native lock: they run on native threads (the pool's, or the threading
backend's).  A green thread on the hub's thread that finds a batch running
waits for it, as it waited for that lock: for one batch, since a leader
never yields inside one (sqlite calls block).  After a fork the child
starts with an empty queue of its own.

One :class:`GroupCommit` serves every connection of a process to one
database (the catalog hands it to each of its brokers' databases); the
caller gives it the function that runs a batch on a connection.
"""

from __future__ import annotations

from collections.abc import Callable
import os
from typing import Any
from typing import Final
from typing import Generic
from typing import TypeVar

from storaged import concurrency

#: Changes run in one transaction at most.
MAX_BATCH: Final = 64

T = TypeVar("T")

_WAITING: Final = 0
_LEAD: Final = 1
_DONE: Final = 2


class Change(Generic[T]):
    """One caller's change: the function, then its result or its error."""

    __slots__ = ("error", "event", "fn", "result", "state")

    def __init__(self, fn: Callable[[Any], T]) -> None:
        self.fn = fn
        self.result: T | None = None
        self.error: BaseException | None = None
        self.state = _WAITING
        self.event = concurrency.native_event()


#: Runs a batch: sets each change's ``result`` or ``error`` (an exception it
#: raises is every change's error).
BatchRunner = Callable[[list[Change[Any]]], None]


class GroupCommit:
    """The queue of changes to one database in this process."""

    def __init__(self, max_batch: int = MAX_BATCH) -> None:
        self._max = max_batch
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._mutex = concurrency.native_lock()
        self._pending: list[Change[Any]] = []
        self._leading = False

    def submit(self, fn: Callable[[Any], T], run: BatchRunner) -> T:
        """Have ``fn(conn)`` run in a transaction shared with other callers.

        :param run: runs a batch (this caller's database and connection,
            should it lead).
        :returns: what ``fn`` returned, once its transaction is committed.
        :raises: what ``fn`` raised (its change alone rolled back), or what
            the transaction's begin or commit raised.
        """
        change: Change[T] = Change(fn)
        with self._mutex:
            if os.getpid() != self._pid:
                self._reset()
            self._pending.append(change)
            lead = not self._leading
            self._leading = True
        if not lead:
            change.event.wait()
        if change.state != _DONE:
            self._lead(change, run)
        if change.error is not None:
            raise change.error
        return change.result  # type: ignore[return-value]

    def _lead(self, mine: Change[Any], run: BatchRunner) -> None:
        while mine.state != _DONE:
            with self._mutex:
                batch = self._pending[: self._max]
                del self._pending[: self._max]
            try:
                run(batch)
            except BaseException as err:  # every caller of the batch gets it
                for change in batch:
                    change.error = err
            for change in batch:
                change.state = _DONE
                if change is not mine:
                    change.event.set()
        with self._mutex:
            if self._pending:
                successor = self._pending[0]
                successor.state = _LEAD
                successor.event.set()
            else:
                self._leading = False
