"""A free-space reserve, as Swift's ``fallocate_reserve``.

Writes that add something (new object data, a new container, metadata) are
refused while the filesystem they go to has less free space than the
reserve; deletes never are.  So when clients fill a disk, the last bytes
stay free for what gives space back: a delete writes a tombstone row (a few
sqlite pages) before the object's data can be removed, and with no room at
all even that would fail.

The value is a number of bytes (``10485760``) or a percentage of the
filesystem's size (``1%``, ``0.5%``), as Swift accepts.  ``0`` turns the
reserve off.  Example::

    reserve = Reserve.parse("1%")
    reserve.allows(os.statvfs(path), 4096)   # False on a 99.5% full disk
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Final

#: What the options accept: bytes, or a percentage (fractions allowed).
PATTERN: Final = (
    r"^\s*(?:[0-9]+"                                 # bytes
    r"|(?:100(?:\.0+)?|[0-9]{1,2}(?:\.[0-9]+)?)\s*%"  # 0% to 100%
    r"|\.[0-9]+\s*%)\s*$"
)
_RE: Final = re.compile(PATTERN)


@dataclasses.dataclass(frozen=True)
class Reserve:
    """Free space to keep on a filesystem: ``value`` bytes, or percent."""

    value: float
    percent: bool

    @classmethod
    def parse(cls, text: str) -> Reserve:
        """Read ``"1%"`` or ``"10485760"``.

        :raises ValueError: neither (or a percentage over 100).
        """
        if not _RE.match(text):
            raise ValueError(
                f"{text!r} is not a number of bytes nor a percentage such as 1%"
            )
        text = text.strip()
        if text.endswith("%"):
            value = float(text[:-1])
            if value > 100:
                raise ValueError(f"{text!r} is over 100%")
            return cls(value, True)
        return cls(int(text), False)

    def __str__(self) -> str:
        return f"{self.value:g}%" if self.percent else str(int(self.value))

    def bytes_of(self, total: int) -> int:
        """Return the reserve in bytes on a filesystem of ``total`` bytes."""
        if self.percent:
            return int(total * self.value / 100)
        return int(self.value)

    def allows(self, st: os.statvfs_result, size: int = 0) -> bool:
        """Tell whether ``size`` more bytes leave the reserve free.

        A reserve of 0 is off (as Swift's): nothing is refused here, and
        the write fails or not when it is made.  A filesystem that reports
        no size (some FUSE ones, ramfs) has an unknown amount free: it is
        not refused on that account.
        """
        if not self.value or not st.f_blocks:
            return True
        free = st.f_bavail * st.f_frsize - size
        reserve = self.bytes_of(st.f_blocks * st.f_frsize)
        # As Swift's fallocate(): exactly at the reserve is too full.
        return free > reserve

    def check(self, path: str, size: int = 0) -> str | None:
        """Return why ``size`` more bytes at ``path`` are refused, or None.

        :raises OSError: ``path`` cannot be examined.
        """
        st = os.statvfs(path)
        if self.allows(st, size):
            return None
        free = st.f_bavail * st.f_frsize
        return (
            f"{free} bytes free, {size} more asked for, reserve "
            f"{self} ({self.bytes_of(st.f_blocks * st.f_frsize)} bytes)"
        )
