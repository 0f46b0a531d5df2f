"""``postgresql://`` catalog URLs: :mod:`storaged.common.pgurl`, its schema."""

from __future__ import annotations

from typing import Any
from typing import Final

from storaged.common import pgurl
from storaged.common.pgurl import SCHEMA_NAME_RE
from storaged.common.pgurl import SCHEMES
from storaged.common.pgurl import check_schema_name

__all__ = [
    "DEFAULT_SCHEMA", "SCHEMA_NAME_RE", "SCHEMES", "check_schema_name", "parse_url",
]

#: The schema of the catalog's tables when the URL names none.  Not the
#: state store's default (``storaged``): both may share one database.
DEFAULT_SCHEMA: Final = "storaged_catalog"


def parse_url(url: str) -> dict[str, Any]:
    """Return the libpq connection arguments of a catalog URL, and ``schema``.

    :raises ValueError: not a valid catalog URL (the message never quotes it).
    """
    return pgurl.parse_url(url, DEFAULT_SCHEMA)
