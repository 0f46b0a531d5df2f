"""Listing bounds as PostgreSQL conditions.

PostgreSQL text cannot hold NUL, but a listing marker may (Swift allows
it: ``marker=b1%00`` lists from just after ``b1``).  No name holds NUL, so
a bound is cut at its first NUL and the comparison adjusted: for a name
``n`` without NUL and ``v = w + "\\0" + rest``, ``n > v`` and ``n >= v``
both mean ``n > w``, and ``n < v`` means ``n <= w``.
"""

from __future__ import annotations

from storaged.catalog import listing


def _cut(value: str) -> tuple[str, bool]:
    head, nul, _rest = value.partition("\x00")
    return head, bool(nul)


def bounds_sql(bounds: listing.Bounds, column: str) -> tuple[str, list[str]]:
    """Return a ``WHERE`` fragment (``TRUE`` when unbounded) and its values.

    :param column: a column name of this package (constant text).
    """
    parts: list[str] = []
    args: list[str] = []
    if bounds.lower is not None:
        value, cut = _cut(bounds.lower)
        operator = ">=" if bounds.lower_inclusive and not cut else ">"
        parts.append(f"{column} {operator} %s")
        args.append(value)
    if bounds.upper is not None:
        value, cut = _cut(bounds.upper)
        parts.append(f"{column} {'<=' if cut else '<'} %s")
        args.append(value)
    return (" AND ".join(parts) or "TRUE"), args
