"""Listings with prefix, delimiter, marker, end marker, limit and reverse.

The same algorithm lists objects of a container and containers of an
account, with Swift's semantics:

* names are compared as UTF-8 bytes (sqlite's ``BINARY`` collation), which
  for valid UTF-8 is the order of code points, the order Python sorts
  ``str`` in;
* ``prefix``: only names that start with it;
* ``marker``: only names after it; ``end_marker``: only names before it;
  with ``reverse`` the listing runs from the end, ``marker`` is then the
  upper bound and ``end_marker`` the lower one;
* ``delimiter``: a name that holds the delimiter after the prefix is folded
  into one :class:`Subdir` entry, ``name[:i + len(delimiter)]`` where ``i``
  is where the delimiter first occurs after the prefix; every other name
  under that subdir is skipped with one jump of the bounds (no scan);
* ``limit``: at most this many entries, subdirs included;
* a subdir equal to ``marker`` (with ``reverse``, ``end_marker``, as
  Swift's broker compares it) is not listed again, so that a client can
  page through a delimited listing by passing its last entry as the marker;
* ``path`` (Swift's container listing parameter, which replaces ``prefix``
  and ``delimiter``): the names directly under the pseudo-directory
  ``path``: prefix ``path/`` (``path`` stripped of trailing slashes;
  ``""`` for the top), delimiter ``/``; a deeper name is skipped, not
  folded into a subdir, except one that ends right after its first ``/``
  (``path/sub/`` is listed); ``path/`` itself is not listed.

Example, names ``a/1 a/2 b c/x/1``, delimiter ``/``::

    prefix=""    -> Subdir("a/"), b, Subdir("c/")
    prefix="c/"  -> Subdir("c/x/")
    reverse      -> Subdir("c/"), b, Subdir("a/")
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
import dataclasses
from typing import Final
from typing import TypeVar

from storaged.catalog import names

#: Most entries one listing returns, and the default (Swift's
#: ``CONTAINER_LISTING_LIMIT`` and ``ACCOUNT_LISTING_LIMIT``).
MAX_LIMIT: Final = 10_000

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Subdir:
    """A pseudo-directory in a delimited listing (``{"subdir": name}``)."""

    name: str


@dataclasses.dataclass
class Bounds:
    """The range of names a listing query may return."""

    lower: str | None = None
    lower_inclusive: bool = False
    upper: str | None = None

    def sql(self, column: str) -> tuple[str, list[str]]:
        """Return a ``WHERE`` fragment (``1`` when unbounded) and its values."""
        parts: list[str] = []
        args: list[str] = []
        if self.lower is not None:
            operator = ">=" if self.lower_inclusive else ">"
            parts.append(f"{column} {operator} ?")
            args.append(self.lower)
        if self.upper is not None:
            parts.append(f"{column} < ?")
            args.append(self.upper)
        return (" AND ".join(parts) or "1"), args


def after_prefix(prefix: str) -> str | None:
    """Return the least string greater than every string starting with ``prefix``.

    None when there is no such string (``prefix`` is all U+10FFFF, or empty).
    Surrogates are skipped: they cannot be stored.
    """
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if code <= 0x10FFFF:
            if 0xD800 <= code <= 0xDFFF:
                code = 0xE000
            return "".join(chars) + chr(code)
    return None


def _tighten_lower(bounds: Bounds, value: str, inclusive: bool) -> None:
    if bounds.lower is None or value > bounds.lower or (
        value == bounds.lower and not inclusive
    ):
        bounds.lower, bounds.lower_inclusive = value, inclusive


def _tighten_upper(bounds: Bounds, value: str | None) -> None:
    if value is not None and (bounds.upper is None or value < bounds.upper):
        bounds.upper = value


def initial_bounds(
    *, prefix: str, marker: str, end_marker: str, reverse: bool
) -> Bounds:
    """Turn the listing parameters into a range of names."""
    bounds = Bounds()
    if prefix:
        _tighten_lower(bounds, prefix, True)
        _tighten_upper(bounds, after_prefix(prefix))
    start, end = (end_marker, marker) if reverse else (marker, end_marker)
    if start:
        _tighten_lower(bounds, start, False)
    if end:
        _tighten_upper(bounds, end)
    return bounds


def list_entries(
    fetch: Callable[[Bounds, bool, int], Sequence[T]],
    name_of: Callable[[T], str],
    *,
    limit: int,
    prefix: str = "",
    delimiter: str = "",
    marker: str = "",
    end_marker: str = "",
    reverse: bool = False,
    path: str | None = None,
) -> list[T | Subdir]:
    """Run a listing over ``fetch``.

    :param fetch: ``fetch(bounds, reverse, n)`` returns at most ``n`` rows
        whose names are in ``bounds``, in name order (descending when
        ``reverse``).
    :param name_of: the name of a row.
    :param path: Swift's ``path`` (replaces ``prefix`` and ``delimiter``).
    :returns: rows and :class:`Subdir` entries, in listing order.
    """
    if path is not None:
        path = path.rstrip("/") + "/" if path else ""
        prefix, delimiter = path, "/"
    # Swift's broker swaps the markers first when reversed, then remembers
    # the (swapped) marker as the subdir not to list again.
    repeated = end_marker if reverse else marker
    bounds = initial_bounds(
        prefix=prefix, marker=marker, end_marker=end_marker, reverse=reverse
    )
    results: list[T | Subdir] = []
    while len(results) < limit:
        if (
            bounds.lower is not None
            and bounds.upper is not None
            and bounds.lower >= bounds.upper
        ):
            break
        want = limit - len(results)
        rows = fetch(bounds, reverse, want)
        jumped = False
        for row in rows:
            name = name_of(row)
            if path is not None and name == path:
                _skip(bounds, name, reverse)
                continue
            if delimiter:
                end = name.find(delimiter, len(prefix))
                deeper = path is None or len(name) > end + len(delimiter)
                if end >= 0 and deeper:
                    subdir = name[: end + len(delimiter)]
                    # A client paging by the last entry it got passes that
                    # subdir as the marker: it must not come back (Swift).
                    # Under ``path`` a deeper name is not listed at all.
                    if path is None and subdir != repeated:
                        results.append(Subdir(subdir))
                    if reverse:
                        # Everything under subdir sorts at or after it.
                        _tighten_upper(bounds, subdir)
                    else:
                        after = after_prefix(subdir)
                        if after is None:
                            return results
                        _tighten_lower(bounds, after, True)
                    jumped = True
                    break
            results.append(row)
            _skip(bounds, name, reverse)
            if len(results) >= limit:
                break
        if not jumped and len(rows) < want:
            break
    return results


def _skip(bounds: Bounds, name: str, reverse: bool) -> None:
    """Move the bounds past ``name`` (in the listing's direction)."""
    if reverse:
        _tighten_upper(bounds, name)
    else:
        _tighten_lower(bounds, name, False)


def check_limit(limit: int | None) -> int:
    """Return the listing limit to use, :data:`MAX_LIMIT` by default.

    :raises ValueError: not an integer in 0..MAX_LIMIT.
    """
    if limit is None:
        return MAX_LIMIT
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise ValueError("limit must be an integer")
    if not 0 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 0 and {MAX_LIMIT}")
    return limit


def check_listing_params(
    marker: str, end_marker: str, prefix: str, delimiter: str
) -> dict[str, str]:
    """Check the text parameters of a listing; return them as keyword arguments.

    NUL is allowed, as Swift allows it: no name holds one, so a parameter
    with NUL only bounds the listing (``marker=b1%00`` lists from just
    after ``b1``).

    :raises storaged.exception.InvalidName: one is not valid UTF-8 text.
    """
    params = {
        "marker": marker,
        "end_marker": end_marker,
        "prefix": prefix,
        "delimiter": delimiter,
    }
    checked: dict[str, str] = {}
    for key, value in params.items():
        if isinstance(value, bytes):
            names.check_text(value.replace(b"\x00", b""), "listing " + key)
            value = value.decode("utf-8")
        names.check_text(value.replace("\x00", ""), "listing " + key)
        checked[key] = value
    return checked
