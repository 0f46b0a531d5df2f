"""Timestamps in Swift's format, the clock of last-writer-wins.

Swift orders every write of an object or a container by a timestamp that
the client may send (``X-Timestamp``) and that container-sync carries from
one cluster to the other unchanged.  storaged uses the same values so that
both can sync with each other.

Forms
    *normal*: seconds since the epoch with exactly 10 integer and 5 decimal
    digits, ``1700000000.12345`` (zero-padded: ``0000000001.50000``).

    *internal*: the normal form, then, when the *offset* is not zero, ``_``
    and the offset as 16 lower-case hex digits:
    ``1700000000.12345_0000000000000002``.  Swift uses offsets to order
    events that happen at the same time (a delete marker written "just
    after" a PUT); container-sync sends ``X-Timestamp`` in this form.

Order
    By time, then by offset.  As both forms are fixed-width, their text
    sorts in the same order as the timestamps do, which is why the catalog
    can keep them in ``TEXT`` columns and compare them in SQL.

Precision
    Ten microseconds (1e-5 s).  Values with more decimals are rounded to
    the nearest 1e-5 (half to even), as Swift does with ``round``.

Range
    ``0 <= time < 10**10`` seconds, ``0 <= offset < 16**16 - 1``.
"""

from __future__ import annotations

import datetime
import decimal
import functools
import re
import time
from typing import Final
from typing import TypeAlias
from typing import Union

#: Units per second of the raw integer value (Swift's PRECISION is 1e-5).
UNITS_PER_SECOND: Final = 100_000
#: Timestamps must be below this many seconds (ten integer digits).
MAX_SECONDS: Final = 10**10
#: Offsets must be below this (Swift's ``MAX_OFFSET``).
MAX_OFFSET: Final = 16**16 - 1

# The forms the catalog stores, parsed without Decimal (the common case).
_FIXED = re.compile(r"^([0-9]{10})\.([0-9]{5})(?:_([0-9a-f]{16}))?$")
_TEXT = re.compile(
    r"^(?P<seconds>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:_(?P<offset>[0-9a-fA-F]{1,16}))?$"
)


@functools.total_ordering
class Timestamp:
    """A point in time, to 1e-5 s, with an optional ordering offset.

    Immutable and hashable.  Build one from another ``Timestamp``, a
    ``float`` or ``int`` of seconds, or text in the normal or internal form
    (what ``X-Timestamp`` carries)::

        >>> Timestamp("1700000000.12345_2").internal
        '1700000000.12345_0000000000000002'
        >>> Timestamp(1.5).normal
        '0000000001.50000'
        >>> Timestamp("1700000000.1") < Timestamp("1700000000.1", offset=1)
        True

    :param value: the time.
    :param offset: the offset; when ``value`` carries one already (text with
        ``_`` or a ``Timestamp``), this one is added to it.
    :raises ValueError: for a negative, too large, NaN or unparsable value.
    """

    __slots__ = ("_offset", "_raw")

    def __init__(self, value: TimestampLike, offset: int = 0) -> None:
        raw, base_offset = _parse(value)
        if isinstance(offset, bool) or not isinstance(offset, int):
            raise ValueError(f"timestamp offset must be an integer: {offset!r}")
        total = base_offset + offset
        if total < 0:
            raise ValueError("timestamp offset must not be negative")
        if total >= MAX_OFFSET:
            raise ValueError(f"timestamp offset must be smaller than {MAX_OFFSET}")
        self._raw = raw
        self._offset = total

    @classmethod
    def now(cls, offset: int = 0) -> Timestamp:
        """Return the current time (``time.time()``) as a timestamp."""
        return cls(time.time(), offset=offset)

    @classmethod
    def zero(cls) -> Timestamp:
        """Return the earliest timestamp, ``0000000000.00000``."""
        return cls(0)

    # -- the value ---------------------------------------------------------

    @property
    def raw(self) -> int:
        """The time as an integer number of 1e-5 s units."""
        return self._raw

    @property
    def offset(self) -> int:
        """The ordering offset (0 for most timestamps)."""
        return self._offset

    @property
    def timestamp(self) -> float:
        """The time as float seconds (loses nothing below 2**53 units)."""
        return self._raw / UNITS_PER_SECOND

    def __float__(self) -> float:
        return self.timestamp

    # -- the text forms ----------------------------------------------------

    @property
    def normal(self) -> str:
        """The time as ``%016.05f`` text, without the offset."""
        seconds, units = divmod(self._raw, UNITS_PER_SECOND)
        return f"{seconds:010d}.{units:05d}"

    @property
    def internal(self) -> str:
        """The normal form plus ``_<16 hex digits>`` when there is an offset.

        This is the form stored in the catalog and sent as ``X-Timestamp``.
        """
        if self._offset:
            return f"{self.normal}_{self._offset:016x}"
        return self.normal

    @property
    def short(self) -> str:
        """Like :attr:`internal` with the offset's hex digits not padded."""
        if self._offset:
            return f"{self.normal}_{self._offset:x}"
        return self.normal

    @property
    def isoformat(self) -> str:
        """UTC ISO 8601 text with microseconds, as Swift's listings show it.

        ``1700000000.12345`` gives ``2023-11-14T22:13:20.123450``.
        """
        seconds, units = divmod(self._raw, UNITS_PER_SECOND)
        moment = datetime.datetime(1970, 1, 1) + datetime.timedelta(
            seconds=seconds, microseconds=units * 10
        )
        return moment.isoformat(timespec="microseconds")

    def __str__(self) -> str:
        return self.internal

    def __repr__(self) -> str:
        return f"Timestamp({self.internal!r})"

    # -- order -------------------------------------------------------------

    def _key(self) -> tuple[int, int]:
        return (self._raw, self._offset)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Timestamp):
            return self._key() == other._key()
        return NotImplemented

    def __lt__(self, other: object) -> bool:
        if isinstance(other, Timestamp):
            return self._key() < other._key()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._key())


#: What :class:`Timestamp` accepts: a timestamp, seconds, or ``X-Timestamp`` text.
TimestampLike: TypeAlias = Union[Timestamp, str, float, int]  # noqa: UP007


def _parse(value: TimestampLike) -> tuple[int, int]:
    """Turn ``value`` into ``(raw units, offset)``, or raise ``ValueError``."""
    if isinstance(value, Timestamp):
        return value.raw, value.offset
    if isinstance(value, bool):
        raise ValueError("a boolean is not a timestamp")
    if isinstance(value, int):
        return _check_raw(value * UNITS_PER_SECOND, value), 0
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"timestamp must be a finite number: {value!r}")
        return _check_raw(round(value * UNITS_PER_SECOND), value), 0
    if isinstance(value, str):
        fixed = _FIXED.match(value)
        if fixed is not None:
            offset_hex = fixed.group(3)
            return (
                int(fixed.group(1)) * UNITS_PER_SECOND + int(fixed.group(2)),
                int(offset_hex, 16) if offset_hex else 0,
            )
        match = _TEXT.match(value) if len(value) <= 64 else None
        if match is None:
            raise ValueError(f"invalid timestamp {value[:64]!r}")
        seconds = decimal.Decimal(match.group("seconds"))
        units = int(
            (seconds * UNITS_PER_SECOND).to_integral_value(decimal.ROUND_HALF_EVEN)
        )
        offset_text = match.group("offset")
        return _check_raw(units, value), int(offset_text, 16) if offset_text else 0
    raise ValueError(f"cannot make a timestamp of {type(value).__name__}")


def _check_raw(units: int, value: object) -> int:
    if units < 0:
        raise ValueError(f"timestamp must not be negative: {value!r}")
    if units >= MAX_SECONDS * UNITS_PER_SECOND:
        raise ValueError(f"timestamp too large: {value!r}")
    return units


def parse_timestamp(value: TimestampLike | None) -> Timestamp:
    """Return ``value`` as a :class:`Timestamp`, or now when it is None."""
    if value is None:
        return Timestamp.now()
    return Timestamp(value)
