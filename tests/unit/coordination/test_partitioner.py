"""Rendezvous partitioner: balance, minimal movement, settling."""

from __future__ import annotations

import collections

import pytest

from storaged.coordination import Partitioner


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _members(*names, **weights):
    return {n: {"weight": weights.get(n, 1)} for n in names}


def _load(part: Partitioner, keys):
    counts = collections.Counter(part.owner(k) for k in keys)
    return counts


KEYS = ["AUTH_test/container-%d" % i for i in range(20000)]


@pytest.mark.parametrize("count", [3, 5, 10])
def test_balance_with_256_partitions(count):
    part = Partitioner("m0", "g", 256)
    part.update(_members(*("node%d:sync" % i for i in range(count))))
    load = _load(part, KEYS)
    mean = len(KEYS) / count
    assert max(load.values()) / mean <= 1.1
    assert sum(load.values()) == len(KEYS)
    # Partitions themselves: nobody above its rounded-up share.
    table = collections.Counter(part._versions[-1][1])
    assert max(table.values()) <= -(-256 // count)


def test_same_view_same_owners_in_every_process():
    a = Partitioner("a", "g", 256)
    b = Partitioner("b", "g", 256)
    view = _members("a", "b", "c")
    a.update(view)
    b.update(dict(reversed(list(view.items()))))
    assert [a.owner(k) for k in KEYS[:500]] == [b.owner(k) for k in KEYS[:500]]
    assert a.members_for("x")[0] == a.owner("x")
    assert sorted(a.members_for("x")) == ["a", "b", "c"]


@pytest.mark.parametrize("count", [3, 5, 10])
def test_a_leave_moves_little_more_than_the_leavers_keys(count):
    names = ["node%d:sync" % i for i in range(count)]
    part = Partitioner("a", "g", 256)
    part.update(_members(*names))
    before = {k: part.owner(k) for k in KEYS}
    part.update(_members(*names[:-1]))
    after = {k: part.owner(k) for k in KEYS}
    moved = [k for k in before if before[k] != after[k]]
    leavers = [k for k in before if before[k] == names[-1]]
    assert set(leavers) <= set(moved)
    assert len(moved) <= 1.5 * len(leavers)


def test_weights_scale_the_share():
    part = Partitioner("a", "g", 1024)
    part.update(_members("a", "b", a=3, b=1))
    load = _load(part, KEYS)
    assert 2.7 < load["a"] / load["b"] < 3.3
    part.update({"a": {"weight": 0}, "b": {}})
    assert set(_load(part, KEYS[:100])) == {"b"}


def test_nothing_is_owned_before_the_first_view_settles():
    clock = Clock()
    part = Partitioner("a", "g", 64, settle_time=10, clock=clock)
    assert part.owned_count == 0 and part.settling
    part.update(_members("a"))
    assert part.owner("k") == "a"
    assert not part.owns("k")
    clock.now += 9.9
    assert not part.owns("k")
    clock.now += 0.2
    assert part.owns("k")
    assert part.owned_count == 64 and not part.settling


def test_keys_moving_in_wait_keys_moving_out_stop_at_once():
    clock = Clock()
    part = Partitioner("a", "g", 256, settle_time=5, clock=clock)
    part.update(_members("a", "b"))
    clock.now += 6
    mine = [k for k in KEYS[:2000] if part.owns(k)]
    theirs = [k for k in KEYS[:2000] if part.owner(k) == "b"]
    assert mine and theirs
    # b leaves: its keys move to a, but only after settling.
    part.update(_members("a"))
    assert all(part.owns(k) for k in mine)
    assert not any(part.owns(k) for k in theirs)
    clock.now += 5.1
    assert all(part.owns(k) for k in theirs)
    # c joins: what c takes is no longer a's, at once.
    part.update(_members("a", "c"))
    taken = [k for k in KEYS[:2000] if part.owner(k) == "c"]
    assert taken and not any(part.owns(k) for k in taken)


def test_flapping_restarts_the_settling():
    clock = Clock()
    part = Partitioner("a", "g", 64, settle_time=5, clock=clock)
    part.update(_members("a"))
    clock.now += 6
    assert part.owned_count == 64
    part.update(_members("a", "b"))
    clock.now += 1
    part.update(_members("a"))  # b gone again after 1 s
    clock.now += 3
    assert part.owned_count < 64  # b's partitions were b's 4 s ago
    clock.now += 2.1
    assert part.owned_count == 64


def test_forget_means_own_nothing_until_settled_again():
    clock = Clock()
    part = Partitioner("a", "g", 64, settle_time=3, clock=clock)
    part.update(_members("a"))
    clock.now += 4
    assert part.owned_count == 64
    part.forget()  # evicted or disconnected
    assert part.owned_count == 0
    part.update(_members("a"))  # back, same view
    assert part.owned_count == 0
    clock.now += 3.1
    assert part.owned_count == 64


def test_not_a_member_owns_nothing():
    part = Partitioner("z", "g", 64)
    part.update(_members("a", "b"))
    assert part.owned_count == 0
    assert part.members == ["a", "b"]
    part.update({})
    assert part.owner("k") is None and part.members_for("k") == []


def test_partition_of_is_stable_and_in_range():
    part = Partitioner("a", "g", 256)
    assert part.partition_of("abc") == part.partition_of(b"abc")
    assert {part.partition_of(k) for k in KEYS[:5000]} == set(range(256))
    with pytest.raises(ValueError):
        Partitioner("a", "g", 0)
