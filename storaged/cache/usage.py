"""How much the cache holds: one snapshot of the directory, and its total.

The pruner plans its victims from a :class:`Snapshot`; a fill's admission
compares the object's size with :func:`measure` (a snapshot without the
recorded last accesses) taken at most :data:`USAGE_TTL` seconds earlier.
Fills in ``incomplete/`` (their reservation included) and failed fills in
``invalid/`` count: the cache holds at most ``max_size`` of everything.

This module knows the directory's layout and the metadata store, nothing of
the engine or the pruner, so both can use it.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from typing import Protocol

from storaged.cache.layout import ENTRY_ID_RE
from storaged.cache.layout import INCOMPLETE
from storaged.cache.layout import INVALID
from storaged.cache.layout import INVALID_NAME_RE
from storaged.cache.metadata import MetadataBackend

#: how long a process trusts its estimate of the cache's size
USAGE_TTL = 10.0
#: a fill about to be refused for want of room re-measures the cache if its
#: estimate is older than this (another process, or a prune, may have made
#: room meanwhile)
USAGE_RECHECK = 1.0

#: allocated bytes beyond a fill's length that are only block rounding
_SLACK = 64 * 1024


class CacheDir(Protocol):
    """What a measurement needs of a cache: its directory and metadata."""

    cache_dir: str
    meta: MetadataBackend


@dataclasses.dataclass
class Snapshot:
    """What the cache directory held at one moment."""

    #: (recorded last access in ns, entry id, bytes)
    entries: list[tuple[int, str, int]] = dataclasses.field(default_factory=list)
    entry_bytes: int = 0
    #: entries with no recorded access (their mtime stands in for it)
    adopted: int = 0
    incomplete_count: int = 0
    incomplete_bytes: int = 0
    #: (failure time in ns, file name, bytes)
    invalid: list[tuple[int, str, int]] = dataclasses.field(default_factory=list)
    invalid_bytes: int = 0

    @property
    def total(self) -> int:
        """Bytes the cache holds, fills in progress and failed ones included."""
        return self.entry_bytes + self.incomplete_bytes + self.invalid_bytes


def scan(cache: CacheDir, access: bool = True) -> Snapshot:
    """Take one snapshot of the cache directory (blocking).

    :param access: read each entry's recorded last access (the pruner
        needs it; a size estimate does not).
    """
    snap = Snapshot()
    lookup = cache.meta.access_lookup(cache.cache_dir) if access else None
    entries = snap.entries
    match = ENTRY_ID_RE.match
    reg = stat.S_ISREG
    with os.scandir(cache.cache_dir) as it:
        for de in it:
            name = de.name
            if len(name) != 64 or not match(name):
                continue
            try:
                st = de.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if not reg(st.st_mode):
                continue
            last = lookup(name, de.path) if lookup is not None else None
            if last is None:
                last = st.st_mtime_ns
                snap.adopted += 1
            entries.append((last, name, st.st_size))
            snap.entry_bytes += st.st_size
    for de in _scandir(os.path.join(cache.cache_dir, INCOMPLETE)):
        try:
            st = de.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if reg(st.st_mode):
            snap.incomplete_count += 1
            # A fill reserves its space before writing it (fallocate keeps
            # the length at what was written): count the reservation, but
            # not the rounding of small files up to whole blocks.
            reserved = st.st_blocks * 512
            snap.incomplete_bytes += (
                reserved if reserved > st.st_size + _SLACK else st.st_size
            )
    for de in _scandir(os.path.join(cache.cache_dir, INVALID)):
        if not INVALID_NAME_RE.match(de.name):
            continue
        try:
            st = de.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if reg(st.st_mode):
            snap.invalid.append((st.st_mtime_ns, de.name, st.st_size))
            snap.invalid_bytes += st.st_size
    return snap


def _scandir(path: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return list(it)
    except FileNotFoundError:
        return []


def measure(cache: CacheDir) -> int:
    """Return the bytes the cache holds (one scan, no metadata read)."""
    return scan(cache, access=False).total
