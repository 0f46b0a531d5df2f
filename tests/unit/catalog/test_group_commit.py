"""Group commit: concurrent changes share a batch, each gets its own answer."""

from __future__ import annotations

import multiprocessing
import threading
import time

import pytest

from storaged.catalog.group_commit import GroupCommit
from storaged.catalog.timestamp import Timestamp

PATIENCE = 60.0  # seconds a thread may take to queue its change on a busy machine


def _wait_until(predicate, what):
    deadline = time.monotonic() + PATIENCE
    while not predicate():
        assert time.monotonic() < deadline, f"still not {what}"
        time.sleep(0.001)


def test_concurrent_changes_share_a_batch_and_get_their_own_results():
    group = GroupCommit()
    batches = []
    first = threading.Event()

    def run(batch):
        if not first.is_set():
            first.set()
            # The first batch (one change) is "committing": every other
            # caller queues meanwhile, and the next batch takes them all.
            _wait_until(lambda: len(group._pending) == 15, "fifteen queued")
        batches.append(len(batch))
        for change in batch:
            change.result = change.fn("conn") * 2

    results = {}

    def caller(n):
        results[n] = group.submit(lambda conn, n=n: n, run)

    threads = [threading.Thread(target=caller, args=(0,))]
    threads[0].start()
    first.wait(PATIENCE)
    threads += [threading.Thread(target=caller, args=(n,)) for n in range(1, 16)]
    for thread in threads[1:]:
        thread.start()
    for thread in threads:
        thread.join(PATIENCE)
    assert results == {n: 2 * n for n in range(16)}
    assert batches == [1, 15]
    assert group._pending == [] and not group._leading


def test_a_failed_change_fails_alone_a_failed_commit_fails_the_batch():
    group = GroupCommit()

    def run(batch):
        for change in batch:
            try:
                change.result = change.fn("conn")
            except ValueError as err:
                change.error = err

    def bad(conn):
        raise ValueError("this change only")

    with pytest.raises(ValueError, match="this change only"):
        group.submit(bad, run)
    assert group.submit(lambda conn: "fine", run) == "fine"

    def commit_fails(batch):
        raise OSError("the commit")

    with pytest.raises(OSError, match="the commit"):
        group.submit(lambda conn: "never returned", commit_fails)
    # The group is not left with a leader that is gone.
    assert group.submit(lambda conn: "again", run) == "again"


def test_the_lead_passes_on_once_the_leaders_change_is_done():
    group = GroupCommit(max_batch=1)
    ran_by = []

    def run(batch):
        ran_by.append(threading.current_thread().name)
        if len(ran_by) == 1:
            _wait_until(lambda: len(group._pending) == 3, "three queued")
        for change in batch:
            change.result = change.fn(None)

    threads = [threading.Thread(target=group.submit, args=(lambda c: 0, run),
                                name="caller-%d" % n) for n in range(4)]
    threads[0].start()
    _wait_until(lambda: ran_by, "a batch running")
    for thread in threads[1:]:
        thread.start()
    for thread in threads:
        thread.join(PATIENCE)
    # One change per batch: each caller ran its own batch, the first caller
    # did not serve the others.
    assert sorted(ran_by) == ["caller-%d" % n for n in range(4)]


def _submit_in_child(group, queue):
    queue.put(group.submit(lambda conn: "child", lambda batch: [
        setattr(c, "result", c.fn(None)) for c in batch]))


def test_a_forked_child_starts_with_a_queue_of_its_own():
    group = GroupCommit()
    group._leading = True  # a leader of the parent, mid-batch at the fork
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_submit_in_child, args=(group, queue))
    child.start()
    try:
        assert queue.get(timeout=PATIENCE) == "child"
    finally:
        child.join(PATIENCE)


def test_concurrent_puts_into_one_container_all_land(catalog):
    broker = catalog.container("AUTH_test", "busy")
    broker.create()
    errors = []

    def writer(n):
        try:
            # A broker of its own, as each request of the API has.
            mine = catalog.container("AUTH_test", "busy")
            for i in range(20):
                mine.put_object("o-%02d-%02d" % (n, i), Timestamp.now(), n, "t/p",
                                "e" * 32)
            mine.close()
        except Exception as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PATIENCE)
    assert errors == []
    names = [row.name for row in broker.list_objects()]
    assert names == sorted("o-%02d-%02d" % (n, i) for n in range(16) for i in range(20))
    info = broker.info()
    assert info.object_count == 320
    assert info.bytes_used == sum(20 * n for n in range(16))
    # Row ids stay one per change, in commit order: the sync log is whole.
    rows = broker.get_items_since(0, 1000)
    assert len(rows) == 320 and len({row.row_id for row in rows}) == 320
