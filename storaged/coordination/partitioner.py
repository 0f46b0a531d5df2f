"""Dividing work between the members of a group.

A :class:`Partitioner` maps each key (a container, an object name) to one
member of a group, the same way in every process, and moves as few keys as
possible when members come and go.

Algorithm
    A key hashes to one of ``partitions`` partitions (256 by default).
    Every (member, partition) pair gets a *rendezvous* score ``weight /
    -ln(u)``, where ``u`` in (0, 1) is a hash of the member id and the
    partition number.  Pairs are taken from the highest score down; a pair
    assigns its partition to its member unless the partition already has an
    owner or the member already has its share (``ceil(partitions *
    weight / total weight)``).  Worked example, members ``a`` and ``b``
    (weight 1, share 2 each) and 4 partitions::

        partition      0     1     2     3
        score of a   2.30  2.10  1.80  1.40
        score of b   1.90  0.52  0.88  0.97

        pairs by score: a0 a1 b0 a2 a3 b3 b2 b1
        a0 -> a, a1 -> a (a's share is full), b0 (0 taken), a2 (a full),
        a3 (a full), b3 -> b, b2 -> b                  owners: a a b b

    Plain rendezvous (each partition to its best score) would give ``a``
    all four.  The share bound keeps the busiest member within a few
    percent of its share (256 partitions: 1.02-1.04 x the mean for 3 to 10
    members; tooz's hash ring: 1.16-1.25 x); in exchange, when a member
    leaves, a few partitions besides its own may move (measured: 1.1 to 1.4
    x the ideal fraction).  A member's ``weight`` capability (a positive
    number, default 1) scales its share.

Settling
    A partition that just moved to this member is not *owned* yet: the
    previous owner may still be working on it until it notices that it was
    dropped, which can take up to the TTLs.  :meth:`Partitioner.owns` is
    true only if this member owned the key's partition in every membership
    view of the last ``settle_time`` seconds.  The same holds after this
    member joins, re-joins after an eviction, or reconnects: until it has
    seen a stable view for ``settle_time``, it owns nothing.  Keys moving
    *away* stop being owned at once.  Each key should still be worked on
    under its own lock, taken with ``blocking=False``.

The coordinator refreshes every partitioner from its heartbeat thread.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
import hashlib
import math
import time
from typing import Any

from storaged import concurrency

_Table = tuple[str | None, ...]


def _unit(data: bytes) -> float:
    """Hash ``data`` to a float in the open interval (0, 1)."""
    value = int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")
    return (value + 0.5) / 2.0**64


def _weight(capabilities: Any) -> float:
    if isinstance(capabilities, Mapping):
        weight = capabilities.get("weight", 1)
        if isinstance(weight, (int, float)) and not isinstance(weight, bool):
            return float(weight) if weight > 0 and math.isfinite(weight) else 0.0
    return 1.0


class Partitioner:
    """The share of a group's work that belongs to one member.

    Obtained from :meth:`Coordinator.partitioner
    <storaged.coordination.Coordinator.partitioner>`.

    :param member_id: this member.
    :param group: the group whose members share the work.
    :param partitions: number of partitions (the same in every member).
    :param settle_time: seconds a partition must stay this member's before
        :meth:`owns` says so.
    :param clock: monotonic clock (tests pass a fake one).
    """

    def __init__(
        self,
        member_id: str,
        group: str,
        partitions: int = 256,
        settle_time: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if partitions < 1:
            raise ValueError("partitions must be at least 1")
        self.member_id = member_id
        self.group = group
        self.partitions = partitions
        self.settle_time = settle_time
        self._clock = clock
        # A native lock: the heartbeat thread updates, any thread reads.
        self._mutex = concurrency.native_module("threading").Lock()
        self._weights: dict[str, float] = {}
        self._scores: dict[tuple[str, float], list[float]] = {}
        # (start, owner table or None for "unknown"), oldest first
        self._versions: list[tuple[float, _Table | None]] = [(clock(), None)]

    # -- reading ------------------------------------------------------------

    def partition_of(self, key: str | bytes) -> int:
        """Return the partition of ``key``."""
        data = key.encode("utf-8", "surrogatepass") if isinstance(key, str) else key
        value = int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")
        return value % self.partitions

    @property
    def members(self) -> list[str]:
        """Members in the current view, sorted."""
        return sorted(self._weights)

    def members_for(self, key: str | bytes) -> list[str]:
        """Members ranked for ``key``: its owner first, then who takes over."""
        part = self.partition_of(key)
        with self._mutex:
            scored = [
                (self._score_list(m, w)[part], m)
                for m, w in self._weights.items()
                if w > 0
            ]
        return [m for _s, m in sorted(scored, reverse=True)]

    def owner(self, key: str | bytes) -> str | None:
        """Owner of ``key`` in the current view (settled or not)."""
        table = self._versions[-1][1]
        return None if table is None else table[self.partition_of(key)]

    def owns(self, key: str | bytes) -> bool:
        """Whether this member owns ``key`` and has for ``settle_time``."""
        return self._owns_partition(self.partition_of(key), self._clock())

    @property
    def owned_count(self) -> int:
        """Number of partitions this member owns (settled)."""
        now = self._clock()
        return sum(1 for p in range(self.partitions) if self._owns_partition(p, now))

    @property
    def settling(self) -> bool:
        """Whether some partition of the current view is not settled yet."""
        table = self._versions[-1][1]
        if table is None:
            return True
        now = self._clock()
        return any(
            owner == self.member_id and not self._owns_partition(p, now)
            for p, owner in enumerate(table)
        )

    def _owns_partition(self, part: int, now: float) -> bool:
        cutoff = now - self.settle_time
        versions = self._versions
        for start, table in reversed(versions):
            if table is None or table[part] != self.member_id:
                return False
            if start <= cutoff:
                return True
        return False  # the view before the oldest version is unknown

    # -- updating (heartbeat thread) ------------------------------------------

    def update(self, members: Mapping[str, Any]) -> bool:
        """Take a new membership view (member id -> capabilities).

        :returns: whether the owners changed.
        """
        weights = {m: _weight(caps) for m, caps in members.items()}
        now = self._clock()
        with self._mutex:
            if weights == self._weights and self._versions[-1][1] is not None:
                self._prune(now)
                return False
            self._weights = weights
            table = self._table()
            if table == self._versions[-1][1]:
                self._prune(now)
                return False
            self._versions = [*self._versions, (now, table)]
            self._prune(now)
            return True

    def forget(self) -> None:
        """Mark the view unknown from now on (evicted, disconnected)."""
        now = self._clock()
        with self._mutex:
            if self._versions[-1][1] is not None:
                self._versions = [*self._versions, (now, None)]
            self._prune(now)

    def _prune(self, now: float) -> None:
        cutoff = now - self.settle_time
        versions = self._versions
        # Keep the newest version that started at or before the cutoff (it
        # covers the start of the window) and everything after it.
        keep = 0
        for i, (start, _table) in enumerate(versions):
            if start <= cutoff:
                keep = i
        if keep:
            self._versions = versions[keep:]
        live = set(self._weights.items())
        for key in [k for k in self._scores if k not in live]:
            del self._scores[key]

    def _score_list(self, member: str, weight: float) -> list[float]:
        key = (member, weight)
        scores = self._scores.get(key)
        if scores is None:
            prefix = member.encode("utf-8", "surrogatepass") + b"\0"
            scores = [
                weight / -math.log(_unit(prefix + str(p).encode()))
                for p in range(self.partitions)
            ]
            self._scores[key] = scores
        return scores

    def _table(self) -> _Table:
        candidates = sorted((m, w) for m, w in self._weights.items() if w > 0)
        owners: list[str | None] = [None] * self.partitions
        if not candidates:
            return tuple(owners)
        total = sum(w for _m, w in candidates)
        share = {m: math.ceil(self.partitions * w / total) for m, w in candidates}
        pairs = sorted(
            (
                (score, m, p)
                for m, w in candidates
                for p, score in enumerate(self._score_list(m, w))
            ),
            reverse=True,
        )
        left = self.partitions
        for _score, member, part in pairs:
            if owners[part] is None and share[member] > 0:
                owners[part] = member
                share[member] -= 1
                left -= 1
                if not left:
                    break
        return tuple(owners)
