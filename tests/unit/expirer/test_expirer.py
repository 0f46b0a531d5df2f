"""The expirer's pass: due entries reaped once, stale ones dropped, work split."""

from __future__ import annotations

import io
import logging
import time

import pytest

from storaged import exception
from storaged.catalog import Timestamp
from storaged.common.daemon import PassContext
from storaged.expirer import reaper
from storaged.expirer.daemon import ExpirerWorker
from storaged.objects import expiry
from storaged.objects.repository import ObjectRepository
from tests.unit.api.conftest import make_conf

#: Far enough ahead that the objects' own PUTs (made when each test runs,
#: whatever the time the module was loaded) stay older than their expiry.
DELETE_AT = int(time.time()) + 10 * 86400


@pytest.fixture
def objects(tmp_path):
    repo = ObjectRepository.from_conf(make_conf(tmp_path))
    repo.create_container("AUTH_a", "c")
    yield repo
    repo.close()


@pytest.fixture
def api(objects):
    """The service as storaged-api has it: expiring writes are queued."""
    return expiry.ExpiringObjects(objects, expiry.ExpiryQueue.beside(objects.catalog))


def put(api, name, delete_at=DELETE_AT):
    meta = {} if delete_at is None else {"X-Delete-At": "%010d" % delete_at}
    api.put_object("AUTH_a", "c", name, io.BytesIO(b"data"), 4, metadata=meta)


class Group:
    """A coordinator stand-in: a fixed membership."""

    def __init__(self, me, members):
        self.member_id = me
        self.members = members

    def start(self):
        pass

    def stop(self):
        pass

    def join_group(self, group, capabilities):
        pass

    def get_members(self, group):
        return {m: {} for m in self.members}


def worker(objects, api, coordinator=None, now=DELETE_AT + 1):
    return ExpirerWorker(objects, api.queue, coordinator, concurrency=4,
                         batch_size=7, clock=lambda: now)


def run(w):
    ctx = PassContext("expirer")
    w.run_pass(ctx)
    return ctx.stats.counters


def names(objects):
    return sorted(o.name for o in objects.list_objects("AUTH_a", "c"))


def test_due_objects_are_deleted_at_their_expiry(objects, api, caplog):
    put(api, "gone")
    put(api, "later", DELETE_AT + 5000)
    put(api, "kept", None)
    caplog.set_level(logging.INFO, logger="storaged.expirer.daemon")
    counters = run(worker(objects, api))
    assert counters["reaped"] == 1 and counters["failed"] == 0
    assert names(objects) == ["kept", "later"]
    with objects.catalog.broker("AUTH_a", "c") as broker:
        rows = {r.name: r for r in broker.get_items_since(0, 100)}
    assert rows["gone"].deleted
    assert rows["gone"].created_at == Timestamp(DELETE_AT)
    assert "expirer pass: reaped 1, stale 0, failed 0 in" in caplog.text
    # Handled: a second pass finds nothing.
    assert run(worker(objects, api))["reaped"] == 0


def test_stale_entries_are_dropped_and_the_object_kept(objects, api):
    put(api, "rewritten")
    put(api, "rewritten", None)  # no expiry any more
    put(api, "moved")
    put(api, "moved", DELETE_AT + 9000)  # another expiry
    put(api, "deleted")
    objects.delete_object("AUTH_a", "c", "deleted")
    counters = run(worker(objects, api))
    assert (counters["reaped"], counters["stale"]) == (0, 3)
    assert names(objects) == ["moved", "rewritten"]
    now = DELETE_AT + 1
    assert [e for b in api.queue.buckets(now) for e in api.queue.due(b, now)] == []


def test_written_after_its_expiry_it_is_deleted_just_after_its_write(objects, api):
    put(api, "o")
    entry = expiry.Entry(DELETE_AT, "AUTH_a", "c", "o")
    # Written again after the expiry, with the same X-Delete-At (sync).
    objects.put_object("AUTH_a", "c", "o", io.BytesIO(b"new"), 3,
                       metadata={"X-Delete-At": "%010d" % DELETE_AT},
                       timestamp=Timestamp(DELETE_AT + 10))
    assert reaper.reap(objects, api.queue, entry) == reaper.REAPED
    with pytest.raises(exception.ObjectNotFound):
        objects.head_object("AUTH_a", "c", "o")


def test_two_expirers_split_the_work_and_reap_each_object_once(objects, api):
    for i in range(40):
        put(api, "o%02d" % i, DELETE_AT - i)
    members = ["node-a:expirer", "node-b:expirer"]
    one = run(worker(objects, api, Group(members[0], members)))
    two = run(worker(objects, api, Group(members[1], members)))
    assert one["reaped"] + two["reaped"] == 40
    assert one["reaped"] and two["reaped"]
    assert one["others"] == 40 - one["reaped"]
    assert names(objects) == []


def test_an_expirer_outside_the_group_reaps_everything(objects, api):
    for i in range(5):
        put(api, "o%d" % i)
    counters = run(worker(objects, api, Group("node-c:expirer", ["node-a:expirer"])))
    assert counters["reaped"] == 5


def test_empty_queue_containers_are_removed_once_over(objects, api):
    put(api, "o")
    run(worker(objects, api, now=DELETE_AT + 1))
    assert api.queue.buckets(DELETE_AT + 1) != []  # its hour is not over
    run(worker(objects, api, now=DELETE_AT + 2 * expiry.BUCKET_SECONDS))
    assert api.queue.buckets(DELETE_AT + 2 * expiry.BUCKET_SECONDS) == []


def test_expired_objects_are_hidden_but_listed(objects, api):
    put(api, "o", int(time.time()) - 5)
    with pytest.raises(exception.ObjectNotFound):
        api.head_object("AUTH_a", "c", "o")
    with pytest.raises(exception.ObjectNotFound):
        api.get_object("AUTH_a", "c", "o")
    assert api.update_object_metadata("AUTH_a", "c", "o", Timestamp.now(), {}) is None
    assert names(api) == ["o"]
    assert api.head_any("AUTH_a", "c", "o").name == "o"


def test_entry_names():
    entry = expiry.Entry(1700003700, "AUTH_a", "c", "dir/o-1")
    assert entry.name == "1700003700-AUTH_a/c/dir/o-1"
    assert entry.bucket == "1700002800"
    assert expiry.Entry.parse(entry.name) == entry
    assert expiry.Entry.parse("junk") is None
