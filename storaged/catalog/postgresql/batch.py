"""Group commit of row writes: concurrent PUTs and DELETEs share a transaction.

A PUT's or DELETE's row costs one round trip (:data:`.base.PUT_ROW`, sent
with the lock of its container's row and the commit in one pipeline), and
the commit waits for the server's WAL flush.  The callers of one process
that write rows at the same time (the API's requests, each on a thread of
the pool) would each pay that wait, one after the other when they write to
one container, since its row's lock is held until the commit.  Instead they
queue their writes (:class:`storaged.catalog.group_commit.GroupCommit`, the
sqlite catalog's queue): one of them, the leader, sends every queued write
in one pipeline, one transaction, one commit, and hands each caller its
answer.

- **Locks in one order.** The batch first locks the row of every container
  it writes to, sorted by (account, container), then sends the writes in the
  callers' order.  Every batch of every node takes its locks in that order,
  so two batches never wait on each other in a circle; a deadlock with any
  other transaction is rolled back by the server and run again (see
  :meth:`.connection.Connections.transaction`).
- **Each caller its own answer.** A write that the server declines (an older
  timestamp, a deleted container) declines alone: that is in the results of
  its own statement.  A statement that *fails* rolls the whole pipeline back:
  then each write of the batch is run again in a transaction of its own, so
  only its caller sees the error.  An error that is not the statements'
  (the server unreachable, a lock wait past ``[catalog] timeout``) reaches
  every caller of the batch, none of whose writes was committed.
- **Durability unchanged.** A caller returns after the commit that holds its
  row; row ids stay in commit order (each write takes the next one of its
  container under the container's lock).
"""

from __future__ import annotations

from typing import Any
from typing import Final
from typing import cast

from storaged import exception
from storaged.catalog.group_commit import Change
from storaged.catalog.postgresql.base import PUT_ROW
from storaged.catalog.postgresql.base import SELECT_STATE
from storaged.catalog.postgresql.connection import Conn
from storaged.catalog.postgresql.connection import Connections

#: What a write answers: its container's row as locked (None: no such
#: container) and whether the row was written.
Answer = tuple[tuple[Any, ...] | None, bool]

_LOCK: Final = SELECT_STATE + " FOR UPDATE"


class RowWrite:
    """One caller's write: the container's names and the row's parameters.

    Called with a connection in pipeline mode, it sends its statement and
    returns the cursor to read once the pipeline is done.
    """

    __slots__ = ("key", "names", "params")

    def __init__(self, names: dict[str, str], params: dict[str, Any]) -> None:
        self.names = names
        self.key = (names["account"], names["container"])
        self.params = params

    def __call__(self, conn: Conn) -> Any:
        return conn.execute(PUT_ROW, self.params)


def write_row(
    conns: Connections, names: dict[str, str], params: dict[str, Any]
) -> Answer:
    """Write a PUT's or DELETE's row in a transaction shared with other callers.

    :param names: ``account`` and ``container``.
    :param params: :data:`.base.PUT_ROW`'s parameters (``names`` among them).
    :returns: the container's row as locked and whether the row was written.
    :raises storaged.exception.CatalogError: the write failed (alone), or the
        batch's transaction could not be run or committed.
    """
    answer: Answer = conns.group.submit(
        RowWrite(names, params), lambda batch: run_batch(conns, batch)
    )
    return answer


def run_batch(conns: Connections, batch: list[Change[Any]]) -> None:
    """Run a batch of :class:`RowWrite` changes: one transaction, or each alone.

    Sets each change's ``result`` (an :data:`Answer`) or ``error``.
    """
    try:
        answers = _run(conns, [_write_of(change) for change in batch])
    except exception.CatalogBusy:
        raise
    except exception.CatalogError:
        if len(batch) == 1:
            raise
        for change in batch:
            try:
                change.result = _run(conns, [_write_of(change)])[0]
            except exception.CatalogError as err:
                change.error = err
        return
    for change, answer in zip(batch, answers, strict=True):
        change.result = answer


def _write_of(change: Change[Any]) -> RowWrite:
    return cast(RowWrite, change.fn)


def _run(conns: Connections, writes: list[RowWrite]) -> list[Answer]:
    keys = sorted({write.key for write in writes})
    names = {write.key: write.names for write in writes}

    def work(conn: Conn) -> tuple[dict[tuple[str, str], Any], list[Any]]:
        locking = {key: conn.execute(_LOCK, names[key]) for key in keys}
        return locking, [write(conn) for write in writes]

    locking, writing = conns.transaction(work, batch=True)
    rows = {key: cursor.fetchone() for key, cursor in locking.items()}
    return [
        (rows[write.key], cursor.fetchone() is not None)
        for write, cursor in zip(writes, writing, strict=True)
    ]
